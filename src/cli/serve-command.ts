/**
 * `earshot serve`: run the server until SIGINT/SIGTERM, then drain and finalize
 * every recording before exiting.
 */
import { existsSync, statSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { RTCIceServer } from 'werift';
import { createServer, type CreateServerOptions } from '../server/create-server.js';
// Hook for `--processes N` (src/cluster/): a front process and N engine processes behind the one port.
import { createCluster, type EarshotCluster } from '../cluster/cluster-server.js';
import { CORES_PER_ENGINE, defaultProcesses } from '../cluster/processes.js';
import { errors, isEarshotError } from '../errors.js';
import { isLoopbackHost } from '../rtc/ice-config.js';
import { iceServers } from './ice-server-option.js';
import { invalidArgument } from './invalid-argument.js';
import { POOL_OPTION_RANGES, describeRange, inRange, type OptionRange } from '../pool/pool-limits.js';
import { applyParallelScavenge, type ParallelScavenge } from '../server/young-gc.js';
import { trustedProxies } from '../server/trust-proxy.js';
import { LOG_LEVELS, type LogLevel } from '../core/option-checks.js';
import { insideContainer } from './container.js';
import { SINK_ENV_LIST } from '../sinks/sink-environment.js';
import { writeHealthFile } from './health-file.js';

/** Decimal digits only: `Number()` would read "" as 0 (an empty `PORT=` would listen on a random port) and "0x1f" as hex. */
function integer(name: string, min: number, max: number) {
  return (value: string) => {
    const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    return n;
  };
}

/** A pool option, checked against the range the library checks it with (fractions allowed where the library allows them). */
function inPoolRange(name: string, range: OptionRange) {
  return (value: string) => {
    const n = /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
    if (!inRange(range, n)) throw new InvalidArgumentError(`${name} must be ${describeRange(range)}.`);
    return n;
  };
}

/**
 * An on/off option's value when its environment variable set it. commander
 * turns a boolean option on whenever its variable exists, so
 * `EARSHOT_INSECURE=0` would open the server: the variable's value is read
 * here instead, and anything but a clear yes or no is refused.
 */
export function switchOption(command: Command, key: string, flag: string): boolean {
  const source = command.getOptionValueSource(key);
  if (source === 'cli') return command.getOptionValue(key) === true;
  if (source !== 'env') return false;
  const option = command.options.find((o) => o.long === flag)!;
  const raw = process.env[option.envVar!] ?? '';
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(value)) return false;
  throw new InvalidArgumentError(`${option.envVar} (${flag}) must be 1, true, yes or on to turn it on, or 0, false, no, off or empty to leave it off; got "${raw}".`);
}

function portRange(value: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('use MIN-MAX, e.g. 40000-40999');
  if (Number(m[2]) > 65535) throw new InvalidArgumentError(`${m[2]} is not a port: ports go up to 65535 (use MIN-MAX, e.g. 40000-40999)`);
  // werift refuses a range of one port (its RTCPeerConnection throws "should not be same value").
  if (Number(m[1]) === Number(m[2])) {
    const p = Number(m[1]);
    throw new InvalidArgumentError(`a range needs at least two ports, got ${m[1]}-${m[2]} (use MIN-MAX, e.g. ${p < 65535 ? `${p}-${p + 1}` : `${p - 1}-${p}`} for two sessions at a time)`);
  }
  if (Number(m[1]) > Number(m[2])) throw new InvalidArgumentError(`the first port must be below the second, got ${m[1]}-${m[2]} (use MIN-MAX, e.g. 40000-40999)`);
  return [Number(m[1]), Number(m[2])];
}

/** Repeatable or comma-separated values (`--stage-module a.js --stage-module b.js`, `EARSHOT_STAGE_MODULES=a.js,b.js`). */
function list(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((v) => v.trim()).filter(Boolean)];
}

/** Environment variable names, repeatable or comma-separated: a name a sink's `${NAME}` could never match is a slip. */
function variableNames(value: string, previous: string[] | undefined): string[] {
  const names = list(value, previous);
  const bad = names.find((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
  if (bad !== undefined) throw new InvalidArgumentError(`--sink-env takes environment variable names (letters, digits and _, not starting with a digit), got "${bad}"`);
  return names;
}

/** Repeatable, or separated by commas or whitespace (`--ice-host a --ice-host b`, `EARSHOT_ICE_HOSTS="a b"`). */
function addresses(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(/[\s,]+/).filter(Boolean)];
}

/**
 * Repeatable, or separated by commas or whitespace (`--trust-proxy 127.0.0.1
 * --trust-proxy 10.0.0.0/8`, `EARSHOT_TRUST_PROXY=127.0.0.1,10.0.0.0/8`),
 * each entry checked as `createServer` checks it. An empty value (an
 * `EARSHOT_TRUST_PROXY=` a compose file leaves empty) adds nothing: with
 * nothing else, no proxy is believed (the action passes an empty list as none).
 */
function proxies(value: string, previous: string[] | undefined): string[] {
  if (value.trim() === '') return previous ?? [];
  try {
    return [...(previous ?? []), ...(trustedProxies(value) ?? [])];
  } catch (e) {
    throw invalidArgument(e, (e as Error).message.replace(/^options\.trustProxy /, '--trust-proxy '));
  }
}

/** Repeatable or comma-separated values (`--cors-origin a --cors-origin b`, `EARSHOT_CORS_ORIGINS=a,b`). */
function origins(value: string, previous: string[] | undefined): string[] {
  const list = value.split(',').map((v) => v.trim()).filter(Boolean);
  // commander passes the default as `previous` on the first use: a given value replaces it.
  return previous && previous !== WHIP_DEFAULT ? [...previous, ...list] : list;
}
const WHIP_DEFAULT = ['*'];

/**
 * The flag of each library option the server checks beyond the parsers
 * above, so that its error names what the user typed: `options.corsOrigins
 * must not contain "*"` reads `--cors-origin must not contain "*"`.
 */
const FLAG_OF_OPTION: Record<string, string> = {
  host: '--host',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  token: '--token',
  adminToken: '--admin-token',
  trustProxy: '--trust-proxy',
  corsOrigins: '--cors-origin',
  whipCorsOrigins: '--whip-cors-origin',
  pipeline: '--pipeline',
  pipelinesDir: '--pipelines',
  recordingsDir: '--recordings',
  iceHostAddresses: '--ice-host',
  icePortRange: '--ice-ports',
  iceServers: '--ice-server',
  stageModules: '--stage-module',
  cluster: '--cluster',
  'cluster.redis': '--cluster',
  'cluster.publicUrl': '--public-url',
  'cluster.nodeId': '--node-id',
};

/**
 * An error's message with the library option it names (`options.X …`)
 * replaced by what the user set: its flag, or its variable when the value
 * came from the environment (`EARSHOT_TOKEN= earshot serve` reads
 * `EARSHOT_TOKEN (--token): …`, not a flag nobody typed).
 */
function inFlagTerms(e: Error, command: Command): string {
  const option = isEarshotError(e) ? e.extensions.option : undefined;
  if (typeof option !== 'string') return e.message;
  const flag = FLAG_OF_OPTION[option.replace(/\[\d+\]$/, '')];
  const prefix = `options.${option} `;
  if (!flag || !e.message.startsWith(prefix)) return e.message;
  const declared = command.options.find((o) => o.long === flag);
  const fromEnv = declared?.envVar !== undefined && command.getOptionValueSource(declared.attributeName()) === 'env';
  return `${fromEnv ? `${declared.envVar} (${flag})` : flag}: ${e.message.slice(prefix.length)}`;
}

/** `./pipelines` when the working directory has one (a project), else undefined (the bundled ones). */
export function defaultPipelinesDir(): string | undefined {
  return existsSync('pipelines') && statSync('pipelines').isDirectory() ? 'pipelines' : undefined;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve', { isDefault: true })
    .description('run the earshot server (WHIP ingest, DSP workers, recordings, stats)')
    .addOption(new Option('-p, --port <port>', 'HTTP(S) port').env('PORT').default(8080).argParser(integer('--port', 0, 65535)))
    .addOption(new Option('-H, --host <host>', 'address to listen on (0.0.0.0 for all)').env('EARSHOT_HOST').default('127.0.0.1'))
    .addOption(new Option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain), needs --tls-key (default: none, plain HTTP)').env('EARSHOT_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert (default: none)').env('EARSHOT_TLS_KEY'))
    .addOption(new Option('--token <token>', 'publish token: required on WHIP POST, PATCH and DELETE (default: none: publishing is open, and a live peer may be replaced by a holder of the admin token, or with no tokens at all by any client but a page on another site; see docs/security.md)').env('EARSHOT_TOKEN'))
    .addOption(new Option('--admin-token <token>', 'admin token: required for stats, events, recordings, pipelines, rooms and metrics (may equal --token) (default: none; the server then only listens on loopback)').env('EARSHOT_ADMIN_TOKEN'))
    .addOption(new Option('--insecure', 'allow open roles (no token) on a non-loopback --host and any Host header: only behind something that protects the server (default: off)').env('EARSHOT_INSECURE'))
    .addOption(new Option('--trust-proxy <addresses>', "reverse proxies whose X-Forwarded-For (or RFC 7239 Forwarded) to believe: IP addresses, CIDR ranges, loopback, linklocal or uniquelocal (repeatable, or comma-separated), so the per-client limits and the request logs see each client behind them; never every address nor a hop count; needs --admin-token and --token, or --insecure (default: none, every request is from the address it comes from)").env('EARSHOT_TRUST_PROXY').argParser(proxies))
    .addOption(new Option('--cors-origin <origin...>', 'origins whose pages may call the control API (default: same origin only)').env('EARSHOT_CORS_ORIGINS').argParser(origins))
    .addOption(new Option('--whip-cors-origin <origin...>', 'origins whose pages may publish over WHIP').env('EARSHOT_WHIP_CORS_ORIGINS').default(WHIP_DEFAULT, '*').argParser(origins))
    .addOption(new Option('--metrics-public', 'serve /metrics without the admin token (default: off)').env('EARSHOT_METRICS_PUBLIC'))
    .addOption(new Option('--pipelines <dir>', 'directory of pipeline files, loaded at start and watched (default: ./pipelines if it exists, else the bundled ones)').env('EARSHOT_PIPELINES'))
    .addOption(new Option('--pipeline <name|file>', 'default pipeline: a name in --pipelines, or a JSON file').env('EARSHOT_PIPELINE').default('default'))
    .addOption(new Option('--recordings <dir>', 'directory for recordings').env('EARSHOT_RECORDINGS').default('recordings'))
    .addOption(new Option('--threads <n>', 'DSP worker threads, per engine process (default: one per core, shared out among the processes)').env('EARSHOT_THREADS').argParser(integer('--threads', POOL_OPTION_RANGES.threads.min, POOL_OPTION_RANGES.threads.max)))
    .addOption(new Option('--processes <n>', `engine processes behind the one port, each with its own WebRTC main thread and DSP threads; 1 is a single process (default: 1 up to ${CORES_PER_ENGINE} cores, then one per ${CORES_PER_ENGINE}: ${defaultProcesses()} here)`).env('EARSHOT_PROCESSES').argParser(integer('--processes', 1, 64)))
    .addOption(new Option('--cluster <redis-url>', 'join a cluster of machines whose shared state is in this Redis, redis://[user:password@]host:port[/db] (default: none, one machine)').env('EARSHOT_CLUSTER'))
    .addOption(new Option('--public-url <url>', 'with --cluster: where the other nodes reach this node (they forward offers, requests and downloads to it; clients never need it), http(s)://host:port (default: the address it listens on; required with --host 0.0.0.0)').env('EARSHOT_PUBLIC_URL'))
    .addOption(new Option('--node-id <id>', 'with --cluster: this node\'s id, unique in the cluster (default: <hostname>-<port>)').env('EARSHOT_NODE_ID'))
    .addOption(new Option('--drain-timeout <seconds>', 'with --cluster: how long draining (SIGTERM, POST /admin/drain) waits for live sessions to end before ending them').env('EARSHOT_DRAIN_TIMEOUT').default(30).argParser(integer('--drain-timeout', 0, 86400)))
    .addOption(new Option('--media-timeout <seconds>', 'end a session after this long without RTP').env('EARSHOT_MEDIA_TIMEOUT').default(10).argParser(integer('--media-timeout', 1, 3600)))
    .addOption(new Option('--connect-timeout <seconds>', 'end a session that has not connected (ICE + DTLS) in this time').env('EARSHOT_CONNECT_TIMEOUT').default(15).argParser(integer('--connect-timeout', 1, 300)))
    .addOption(new Option('--max-sessions <n>', 'concurrent session limit').env('EARSHOT_MAX_SESSIONS').default(500).argParser(integer('--max-sessions', 1, 100000)))
    .addOption(new Option('--admission <on|off>', 'admit new sessions only while the measured load leaves room (off: by --max-sessions alone)').env('EARSHOT_ADMISSION').default('on').choices(['on', 'off']))
    .addOption(new Option('--admission-max-latency <ms>', 'admission: refuse new sessions while the recent frame latency p99 (RTP in → frame at the sinks) exceeds this, ms, and earshot is at least 25 % loaded; 100 or more suits a service that wants every stream it can carry over latency').env('EARSHOT_ADMISSION_MAX_LATENCY').default(20).argParser(integer('--admission-max-latency', 1, 60000)))
    .addOption(new Option('--admission-latency-min-load <percent>', "admission: apply --admission-max-latency only while earshot's workers or its CPU are at least this busy, %; 0 at any load (a many-core host whose neighbours, not earshot, make the latency)").env('EARSHOT_ADMISSION_LATENCY_MIN_LOAD').default(25).argParser(integer('--admission-latency-min-load', 0, 100)))
    .addOption(new Option('--admission-max-process-cpu <percent>', "admission: refuse new sessions while earshot's own CPU time (all its threads) is more than this share of the CPUs it may run on; 100 leaves it out").env('EARSHOT_ADMISSION_MAX_PROCESS_CPU').default(75).argParser(integer('--admission-max-process-cpu', 1, 100)))
    .addOption(new Option('--admission-max-machine-cpu <percent>', "admission: refuse new sessions while the machine's CPUs (all processes) are busier than this; 100 leaves it out").env('EARSHOT_ADMISSION_MAX_MACHINE_CPU').default(100).argParser(integer('--admission-max-machine-cpu', 1, 100)))
    .addOption(new Option('--max-pending-sessions <n>', 'most sessions not yet connected').env('EARSHOT_MAX_PENDING_SESSIONS').default(50).argParser(integer('--max-pending-sessions', 1, 100000)))
    .addOption(new Option('--max-pending-sessions-per-client <n>', 'most sessions not yet connected from one client address (an IPv6 client: its /64); raise it for a gateway publishing many peers at once, or behind a reverse proxy (default: half of --max-pending-sessions)').env('EARSHOT_MAX_PENDING_SESSIONS_PER_CLIENT').argParser(integer('--max-pending-sessions-per-client', 1, 100000)))
    .addOption(new Option('--max-listeners <n>', 'most listeners (WHEP players and audio sockets) on the server (0: listening off)').env('EARSHOT_MAX_LISTENERS').default(64).argParser(integer('--max-listeners', 0, 100000)))
    .addOption(new Option('--max-listeners-per-peer <n>', 'most listeners (WHEP players and audio sockets) of one peer').env('EARSHOT_MAX_LISTENERS_PER_PEER').default(8).argParser(integer('--max-listeners-per-peer', 0, 100000)))
    .addOption(new Option('--listener-timeout <seconds>', 'end a WHEP listener whose player has sent no RTCP report for this long (gone without DELETE), or an audio socket that answers no ping for about this long; 0 never').env('EARSHOT_LISTENER_TIMEOUT').default(25).argParser(integer('--listener-timeout', 0, 3600)))
    .addOption(new Option('--max-downloads-per-client <n>', 'concurrent recording downloads per client address (an IPv6 client: its /64)').env('EARSHOT_MAX_DOWNLOADS_PER_CLIENT').default(4).argParser(integer('--max-downloads-per-client', 1, 1000)))
    .addOption(new Option('--max-connections <n>', 'most HTTP connections held at once, WebSockets and event streams included (default: half the open-file limit, 64–16384)').env('EARSHOT_MAX_CONNECTIONS').argParser(integer('--max-connections', 1, 1_000_000)))
    .addOption(new Option('--max-downloads <n>', 'concurrent recording downloads in all').env('EARSHOT_MAX_DOWNLOADS').default(32).argParser(integer('--max-downloads', 1, 10000)))
    .addOption(new Option('--max-event-streams-per-client <n>', 'concurrent event streams (GET /events: dashboard tabs, tools) per client address').env('EARSHOT_MAX_EVENT_STREAMS_PER_CLIENT').default(8).argParser(integer('--max-event-streams-per-client', 1, 10000)))
    .addOption(new Option('--max-event-streams <n>', 'concurrent event streams in all').env('EARSHOT_MAX_EVENT_STREAMS').default(64).argParser(integer('--max-event-streams', 1, 100000)))
    .addOption(new Option('--ice-host <ip...>', 'ICE host addresses to announce, e.g. the public IP behind 1:1 NAT (default: the --host address, or all interfaces for 0.0.0.0)').env('EARSHOT_ICE_HOSTS').argParser(addresses))
    .addOption(new Option('--ice-ports <min-max>', 'UDP port range for media, e.g. 40000-40999 (default: any free port)').env('EARSHOT_ICE_PORTS').argParser(portRange))
    .addOption(new Option('--ice-server <url[,username,credential]>', 'STUN/TURN server advertised to WHIP clients (Link rel="ice-server"), repeatable; the server never contacts it (default: none)').env('EARSHOT_ICE_SERVERS').argParser(iceServers))
    .addOption(new Option('--batch-interval <ms>', 'milliseconds between batches of frames sent to each DSP worker: longer costs less CPU per stream at light load and adds up to as much latency').env('EARSHOT_BATCH_INTERVAL').default(5).argParser(inPoolRange('--batch-interval', POOL_OPTION_RANGES.batchIntervalMs)))
    .addOption(new Option('--early-output <ms>', 'how long a DSP worker\'s batch may run before it hands back the streams it has finished (0: after every stream)').env('EARSHOT_EARLY_OUTPUT').default(4).argParser(inPoolRange('--early-output', POOL_OPTION_RANGES.earlyOutputMs)))
    .addOption(new Option('--quiet-hold <ms>', 'how long a silent talker\'s comfort-noise updates (DTX) may wait for a batch their DSP worker runs anyway (0: never held)').env('EARSHOT_QUIET_HOLD').default(200).argParser(inPoolRange('--quiet-hold', POOL_OPTION_RANGES.quietHoldMs)))
    .addOption(new Option('--stage-timeout <ms>', 'longest a stream\'s stages may run on one batch before its worker is replaced and the stream ends').env('EARSHOT_STAGE_TIMEOUT').default(500).argParser(integer('--stage-timeout', 50, 600000)))
    .addOption(new Option('--processor-drain-timeout <ms>', 'when a session ends, how long to wait for each processor stage (operator form) that still holds audio; then what it holds is cut off, counted and logged (0: no wait); attached processors that have not completed by then are unsubscribed').env('EARSHOT_PROCESSOR_DRAIN_TIMEOUT').default(2000).argParser(integer('--processor-drain-timeout', 0, 600000)))
    .addOption(new Option('--sink-env <name...>', 'environment variables, besides those named EARSHOT_SINK_…, that a websocket sink\'s headers may name as ${NAME}, repeatable or comma-separated (default: none)').env('EARSHOT_SINK_ENV').argParser(variableNames))
    .addOption(new Option('--stage-module <file...>', 'custom worker stage module(s) to load in every worker (ES module exporting { type, create }) (default: none)').env('EARSHOT_STAGE_MODULES').argParser(list))
    .addOption(new Option('--parallel-scavenge <on|off>', "collect the young generation with V8's helper threads (on) or on the collecting thread (off: shorter pauses while the DSP threads keep the cores busy)").env('EARSHOT_PARALLEL_SCAVENGE').default('off').choices(['on', 'off']))
    .addOption(new Option('--log-level <level>', 'log level').env('EARSHOT_LOG_LEVEL').default('info').choices(LOG_LEVELS))
    .action(async (opts: {
      port: number; host: string; token?: string; adminToken?: string; trustProxy?: string[]; corsOrigin?: string[]; whipCorsOrigin: string[];
      connectTimeout: number; batchInterval: number; earlyOutput: number; quietHold: number; stageTimeout: number; processorDrainTimeout: number; admission: 'on' | 'off'; admissionMaxLatency: number; admissionLatencyMinLoad: number; admissionMaxProcessCpu: number; admissionMaxMachineCpu: number; maxPendingSessions: number; maxPendingSessionsPerClient?: number; maxListeners: number; maxListenersPerPeer: number; listenerTimeout: number; maxConnections?: number; maxDownloadsPerClient: number; maxDownloads: number; maxEventStreamsPerClient: number; maxEventStreams: number; pipeline: string; pipelines?: string; recordings: string; threads?: number;
      mediaTimeout: number; maxSessions: number; iceHost?: string[]; icePorts?: [number, number]; iceServer?: RTCIceServer[]; logLevel: LogLevel; stageModule?: string[];
      tlsCert?: string; tlsKey?: string; processes?: number; sinkEnv?: string[]; parallelScavenge: ParallelScavenge; cluster?: string; publicUrl?: string; nodeId?: string; drainTimeout: number;
    }, command: Command) => {
      let server: Awaited<ReturnType<typeof createServer>> | EarshotCluster | undefined;
      // Before any stream's garbage: the whole process (workers, and engine processes through the environment).
      applyParallelScavenge(opts.parallelScavenge);
      // Read where headers are checked and filled in (pipelines, and engine processes through the environment).
      if (opts.sinkEnv) process.env[SINK_ENV_LIST] = opts.sinkEnv.join(',');
      let insecure = false;
      try {
        insecure = switchOption(command, 'insecure', '--insecure');
        const metricsPublic = switchOption(command, 'metricsPublic', '--metrics-public');
        const serverOptions: CreateServerOptions = {
          host: opts.host,
          port: opts.port,
          tlsCert: opts.tlsCert,
          tlsKey: opts.tlsKey,
          token: opts.token,
          adminToken: opts.adminToken,
          insecure,
          trustProxy: opts.trustProxy?.length ? opts.trustProxy : undefined,
          corsOrigins: opts.corsOrigin,
          whipCorsOrigins: opts.whipCorsOrigin,
          metricsPublic,
          connectTimeoutMs: opts.connectTimeout * 1000,
          batchIntervalMs: opts.batchInterval,
          earlyOutputMs: opts.earlyOutput,
          quietHoldMs: opts.quietHold,
          stageTimeoutMs: opts.stageTimeout,
          processorDrainTimeoutMs: opts.processorDrainTimeout,
          admission: opts.admission === 'off' ? false : { maxLatencyMs: opts.admissionMaxLatency, latencyMinLoad: opts.admissionLatencyMinLoad / 100, maxProcessUtilization: opts.admissionMaxProcessCpu / 100, maxMachineUtilization: opts.admissionMaxMachineCpu / 100 },
          maxPendingSessions: opts.maxPendingSessions,
          maxPendingSessionsPerClient: opts.maxPendingSessionsPerClient,
          maxListeners: opts.maxListeners,
          maxListenersPerPeer: opts.maxListenersPerPeer,
          listenerTimeoutMs: opts.listenerTimeout * 1000,
          maxDownloadsPerClient: opts.maxDownloadsPerClient,
          maxDownloads: opts.maxDownloads,
          maxConnections: opts.maxConnections,
          maxEventStreamsPerClient: opts.maxEventStreamsPerClient,
          maxEventStreams: opts.maxEventStreams,
          pipeline: opts.pipeline,
          pipelinesDir: opts.pipelines ?? defaultPipelinesDir(),
          recordingsDir: opts.recordings,
          threads: opts.threads,
          mediaTimeoutMs: opts.mediaTimeout * 1000,
          maxSessions: opts.maxSessions,
          iceHostAddresses: opts.iceHost,
          icePortRange: opts.icePorts,
          iceServers: opts.iceServer,
          logLevel: opts.logLevel,
          stageModules: opts.stageModule,
        };
        const processes = opts.processes ?? defaultProcesses();
        // Given on the command line, a cluster-only option without --cluster would do nothing (from the environment it may be shared by every configuration, so it is left alone).
        if (!opts.cluster && (opts.publicUrl || opts.nodeId)) throw new InvalidArgumentError('--public-url and --node-id need --cluster');
        if (!opts.cluster && command.getOptionValueSource('drainTimeout') === 'cli') throw new InvalidArgumentError('--drain-timeout needs --cluster (one machine ends its sessions at once on SIGTERM)');
        // A cluster node always runs the front (it places, forwards and shares state), with at least one engine process.
        const cluster = opts.cluster ? { redis: opts.cluster, publicUrl: opts.publicUrl, nodeId: opts.nodeId, drainTimeoutMs: opts.drainTimeout * 1000 } : undefined;
        server = processes > 1 || cluster ? await createCluster({ ...serverOptions, processes, cluster }) : await createServer(serverOptions);
        const url = await server.listen();
        if (!opts.adminToken) {
          server.app.log.warn({ url }, insecure
            ? 'no admin token and --insecure: the admin API (recordings, stats, pipelines) is open to anyone who reaches this address'
            : 'no admin token: the admin API is open, so earshot serves loopback only (set --admin-token to listen elsewhere)');
        }
        if (!opts.tlsCert && !isLoopbackHost(opts.host)) {
          // RFC 9725 §6: WHIP outside development is HTTPS (bearer tokens and SDP travel in the clear otherwise).
          server.app.log.warn({ url }, 'serving plain HTTP on a non-loopback address: give --tls-cert and --tls-key, or put a TLS-terminating reverse proxy in front (then ignore this)');
        }
        if (!opts.iceHost?.length && !isLoopbackHost(opts.host) && insideContainer()) {
          server.app.log.warn(
            { url },
            "running in a container without --ice-host (EARSHOT_ICE_HOSTS): the media candidates carry the container's own addresses, which clients outside its network cannot reach (they get 201 and never connect); set it to the address clients reach the host on, unless the container uses the host's network",
          );
        }
        const details = 'core' in server
          ? { pipeline: server.pipeline.name, pipelines: server.core.pipelines.names(), threads: server.core.pool.threads, recordings: server.core.store.dir }
          : server.describe();
        server.app.log.info({ url, ...details }, `earshot listening on ${url}`);
        const unwritten = await writeHealthFile(url);
        if (unwritten) server.app.log.warn({ url }, unwritten);
      } catch (e) {
        // An error about several files has each file's code in its lines: the first one's again after the last read as the last one's.
        // A refusal of the command line's own (options that need each other, a variable's value) is an option's.
        const code = isEarshotError(e) ? (e.extensions?.files === undefined ? ` [${e.code}]` : '') : e instanceof InvalidArgumentError ? ` [${errors.OPTION_INVALID.code}]` : '';
        process.stderr.write(`earshot: ${inFlagTerms(e as Error, command)}${code}\n`);
        await server?.close().catch(() => {});
        process.exit(1);
      }
      const s = server;
      // POST /admin/drain ends a cluster node by itself: the process goes with it.
      if ('closed' in s) void s.closed.then(() => process.exit(0));
      let signals = 0;
      const stop = (signal: string) => {
        if (++signals > 1) {
          s.app.log.warn('second signal: exiting without draining');
          // 128 + the signal's number, as a shell reports a process ended by it.
          process.exit(signal === 'SIGTERM' ? 143 : 130);
        }
        s.app.log.info({ signal }, 'shutting down: draining streams and finalizing recordings');
        // A cluster node lets its sessions finish first (--drain-timeout); one machine ends them now.
        ('drain' in s ? s.drain() : s.close()).then(
          () => process.exit(0),
          (err: unknown) => {
            s.app.log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
