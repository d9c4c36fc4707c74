/**
 * The options of `createServer`, and their checks: every option is checked
 * before anything starts, and an unusable one is `EARSHOT_OPTION_INVALID`
 * naming it (`options.maxSessions must be an integer ≥ 1, got -3`), like a
 * misspelt name (`options.maxSesions is not an option of createServer (did
 * you mean maxSessions?)`). The checks of values with their own error code
 * (TLS files, ICE servers, CORS origins, tokens) run where they are used.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { RTCIceServer } from 'werift';
import type { AdmissionOptions } from '../core/admission.js';
import { checkCoreOptions } from '../core/core-options.js';
import {
  checkBoolean,
  checkInteger,
  checkIpAddresses,
  checkListenHost,
  checkNonEmptyString,
  checkOneOf,
  checkOptionNames,
  checkPipelineOption,
  checkPoolOptions,
  LOG_LEVELS,
  type LogLevel,
  checkPortRange,
  checkStringArray,
  describeValue,
} from '../core/option-checks.js';
import { errors } from '../errors.js';
import type { PipelineSource } from '../pipeline/pipeline-builder.js';
import { ProcessorRegistry } from '../sinks/processors.js';
import type { EventStreamLimits } from './routes/events.js';
import { trustedProxies } from './trust-proxy.js';

export interface CreateServerOptions {
  /** Address to listen on. Default `127.0.0.1`. Use `0.0.0.0` to accept remote clients. */
  host?: string;
  /** TCP port for HTTP (or HTTPS with `tlsCert`). Default 8080; 0 picks a free port. */
  port?: number;
  /**
   * Serve HTTPS with this certificate (RFC 9725 requires HTTPS for WHIP
   * outside development): a file path, or the PEM text itself (a string
   * holding `-----BEGIN CERTIFICATE-----`, or a Buffer). May be a chain, leaf
   * first (`fullchain.pem`). Needs `tlsKey`; files are read once, at start.
   * Default: none — plain HTTP (fine on loopback or behind a TLS-terminating proxy).
   */
  tlsCert?: string | Buffer;
  /** The private key of `tlsCert` (unencrypted PEM): a file path, PEM text or a Buffer. Needs `tlsCert`. */
  tlsKey?: string | Buffer;
  /**
   * Token of the **publish** role: required (as `Authorization: Bearer …`) on
   * WHIP POST, DELETE and PATCH. Default: none — publishing is open (served,
   * like an open admin API, only to loopback Host names and not through a
   * proxy, unless `insecure`), but only a token holder or an admin may
   * replace a live peer.
   * Visible ASCII characters only (what an `Authorization: Bearer` header
   * carries as one token); a space, a line break or non-ASCII is refused
   * (`EARSHOT_OPTION_INVALID`).
   */
  token?: string;
  /**
   * Token of the **admin** role: statistics, events, recordings, pipelines,
   * rooms, recording control and metrics (and publishing). It may be the same
   * value as `token`. Default: none — the admin API is open, which is allowed
   * only on a loopback `host` (or with `insecure`); requests must then name a
   * loopback host (protects against DNS rebinding) and carry no proxy's
   * forwarding header such as `X-Forwarded-For` (403
   * `EARSHOT_PROXY_NOT_ALLOWED`: a reverse proxy on this machine would
   * otherwise open it to everyone who reaches the proxy). The same characters
   * as `token`.
   */
  adminToken?: string;
  /**
   * Allow an open role (no token) on a non-loopback `host`, with any Host
   * header and through a proxy (forwarding headers). Only for a server that
   * something in front of it already protects. Default false.
   */
  insecure?: boolean;
  /**
   * The reverse proxies (nginx, a load balancer) whose `X-Forwarded-For` (or,
   * in a request without one, RFC 7239 `Forwarded`) to believe: IP addresses, CIDR ranges (`10.0.0.0/8`, `fd00::/8`) and the
   * names `loopback`, `linklocal`, `uniquelocal`, as a list or one string
   * separated by commas (`'127.0.0.1,10.0.0.0/8'`). A request from a listed
   * address is then from the client its proxy names (`req.ip`): the
   * per-client limits (`maxPendingSessionsPerClient`,
   * `maxEventStreamsPerClient`, `maxDownloadsPerClient`) count each client
   * behind the proxy on its own, and the request logs show it. The header is
   * ignored from any other address, so a client that connects directly
   * cannot pick the address it is counted as. Never `true` (every address)
   * nor a hop count: either would let a client name its own address.
   * Needs `adminToken` and `token` (or `insecure`): an open role is served
   * only to clients on this machine. Default: none — every request is from
   * the address it comes from.
   */
  trustProxy?: string | string[];
  /**
   * Origins (e.g. `https://ops.example.com`) whose pages may call the control
   * API from a browser (CORS). Default: none — the API answers same-origin
   * pages only (the dashboard it serves). Never `*`.
   */
  corsOrigins?: string[];
  /**
   * Origins whose pages may publish over WHIP (CORS, RFC 9725 §4.1). Default
   * `['*']`: any page — the publish token, not the origin, protects publishing.
   */
  whipCorsOrigins?: string[];
  /** Serve `GET /metrics` without the admin token (for a scraper on a trusted network). Default false. */
  metricsPublic?: boolean;
  /**
   * Most HTTP connections held at once (WebSockets and event streams
   * included); past it a new connection is closed at once. Default: half the
   * process's open-file limit (`ulimit -n`), between 64 and 16384 (4096 where
   * the limit cannot be read): the other half stays for sessions, recordings
   * and workers, so idle connections cannot keep recordings from opening.
   */
  maxConnections?: number;
  /** Concurrent recording downloads per client address (an IPv6 client: its /64; behind a reverse proxy, see `trustProxy`); more get 429. Default 4. */
  maxDownloadsPerClient?: number;
  /** Concurrent recording downloads in all; more get 429. Default 32. */
  maxDownloads?: number;
  /**
   * Concurrent event streams (`GET /events`: a dashboard tab, a tool) per
   * client address (an IPv6 client: its /64); more get 429
   * `EARSHOT_TOO_MANY_EVENT_STREAMS`. Behind a reverse proxy, list it in
   * `trustProxy`: otherwise every client is the proxy's address. Default 8.
   */
  maxEventStreamsPerClient?: number;
  /** Concurrent event streams in all; more get 429 `EARSHOT_TOO_MANY_EVENT_STREAMS`. Default 64. */
  maxEventStreams?: number;
  /** A download whose client reads nothing for this long is cut off. Default 30000 ms. */
  downloadIdleTimeoutMs?: number;
  /** Lifetime of the signed download links `GET /recordings` returns. Default 3600 s. */
  downloadLinkSeconds?: number;
  /**
   * How long a client may take to send a whole request, headers and body; a
   * slower one gets 408 and its connection is closed, so that clients that
   * never finish a request cannot hold connections. Responses (downloads,
   * event streams) and WebSockets are not limited by it. Default 30000 ms.
   */
  requestTimeoutMs?: number;
  /**
   * Directory of pipeline files (`*.json`, each named after its pipeline),
   * loaded at start and watched for changes; `PUT`/`DELETE /pipelines/:name`
   * write here. Default: the package's `pipelines/` (default, voice-agent,
   * call-recording, telephony, podcast, handler), which are read-only over
   * HTTP (409 `EARSHOT_PIPELINES_READ_ONLY`): they belong to the installed package.
   */
  pipelinesDir?: string;
  /** Reload pipeline files, and apply the room bindings file (`rooms.json`), when they change on disk. Default true. */
  watchPipelines?: boolean;
  /**
   * Keep room bindings (`PUT /rooms/:room`) across restarts in `rooms.json`
   * of `pipelinesDir`: read at start and when it changes on disk (an edit,
   * another server sharing the directory), written before each change
   * applies, onto what the file holds then (a failed write is 500
   * `EARSHOT_ROOM_BINDINGS_WRITE_FAILED`, a file broken on disk 500
   * `EARSHOT_ROOM_BINDINGS_INVALID`; either changes nothing). Only with a `pipelinesDir` of your own: with the bundled
   * pipelines, and with `cluster` (where Redis keeps them), bindings live in
   * memory. Default true.
   */
  persistRoomBindings?: boolean;
  /**
   * The default pipeline (used when neither the request's `?pipeline=` nor the
   * room's binding names one): the name of a pipeline in `pipelinesDir`, a JSON
   * file path (anything with a "/" or ending in ".json"), a pipeline document
   * or definition (stage operators allowed, as for `definePipeline`), or a
   * built `Pipeline`; the last three are added to the pipelines under their
   * name, in memory. Default: `default` (denoise → WAV + stats).
   */
  pipeline?: PipelineSource;
  /** Directory for recordings (created if missing). Default `recordings`. */
  recordingsDir?: string;
  /** DSP worker threads, 1 to 4 × the cores. Default: one per CPU the process may use (its affinity, or a container's CPU limit where lower; see docs/performance.md). */
  threads?: number;
  /** Milliseconds between batches sent to the workers. Default 5. */
  batchIntervalMs?: number;
  /**
   * How long a worker's batch may run before it hands back the streams it has
   * finished, so their frames need not wait for the batch's last stream (and
   * again each time this long has passed). Default 4 ms; 0: after every stream.
   */
  earlyOutputMs?: number;
  /**
   * How long a silent talker's comfort-noise updates (DTX) may wait for a
   * batch their worker runs anyway, so that silent talkers do not wake the
   * workers one update at a time. Only the second and later updates of a
   * pause that their encoder marked as no voice are held; a held frame's
   * latency counts from the end of its hold. Default 200 ms; 0 turns it off.
   */
  quietHoldMs?: number;
  /**
   * Longest a stream's stages may run on one batch (a custom stage stuck in a
   * loop) before its worker is replaced and that stream ends with
   * `pipeline-error`; the worker's other streams move on unharmed. Default 500 ms.
   */
  stageTimeoutMs?: number;
  /** Worker crashes blamed on one stream before it is ended instead of rebuilt again. Default 2. */
  maxStreamCrashes?: number;
  /** Frames a stream may wait for its worker before the oldest are dropped (counted, logged). Default 100 (2 s). */
  maxQueuedFrames?: number;
  /** End a session when no RTP arrives for this long. Default 10000 ms. */
  mediaTimeoutMs?: number;
  /**
   * When a session ends, how long to wait for each `processor` stage in
   * operator form that still holds frames to emit them and complete. One that
   * has not by then is cut off: the media time it held is recorded as
   * silence, counted (`droppedBy.processorStage` of the recording,
   * `processorStages[].framesCutOff`, `earshot_frames_dropped_total{reason="processor_stage"}`)
   * and reported (`processor-stage-cut-off` event, logged). 0 does not wait.
   * Attached processors (sinks) get as long to complete after their input
   * does; one that has not is unsubscribed. `close()` waits as long, at most,
   * for the stage operators on the ended streams to drain. Default 2000 ms.
   */
  processorDrainTimeoutMs?: number;
  /** End a session that has not connected (ICE + DTLS) in this time. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Most concurrent sessions; more are refused with 503 and `Retry-After`. Default 500. */
  maxSessions?: number;
  /**
   * Most sessions being answered or not yet connected (each holds UDP sockets
   * until it connects or `connectTimeoutMs` passes); more are refused with 503.
   * Default 50.
   */
  maxPendingSessions?: number;
  /**
   * Most of those from one client address (an IPv6 client: its /64), so that
   * one client's offers that never connect cannot take every pending place
   * and lock the other publishers out until `connectTimeoutMs`; more are
   * refused with 503 `EARSHOT_TOO_MANY_PENDING` and `Retry-After`. A
   * publisher that reconnects (publishes its peer again) replaces its own
   * pending session rather than adding one. Raise it, up to
   * `maxPendingSessions`, for a gateway that starts many peers at once from
   * one address. Behind a reverse proxy, list it in `trustProxy` (otherwise
   * every client is the proxy's address). Default: half of `maxPendingSessions` (25 of 50),
   * so that one client can never hold every place alone.
   */
  maxPendingSessionsPerClient?: number;
  /** Most listeners of one peer, WHEP players (`POST /whep/:peer`) and audio sockets (`GET /peers/:peer/audio`) together; more get 503 `EARSHOT_LISTENERS_FULL`. Default 8. */
  maxListenersPerPeer?: number;
  /** Most listeners (WHEP players and audio sockets) on the server; 0 turns listening off. Default 64. */
  maxListeners?: number;
  /**
   * A WHEP player that has sent no RTCP report for this long is gone (a closed
   * tab, a crashed player that never sent its DELETE): its listener ends
   * (reason `disconnected`) and frees its place. RFC 3550 §6.3.5 times a
   * participant out after five report intervals: 25 s at the 5 s minimum
   * (the default); 0 turns it off. ms. An audio socket (`GET
   * /peers/:peer/audio`) is pinged every half of it and closed, its place
   * freed, once a half passes without an answer (a pong or any message).
   */
  listenerTimeoutMs?: number;
  /**
   * Admission by measured load: a new session is refused (503 `EARSHOT_OVERLOADED`,
   * `Retry-After`) while the workers, the main thread, the frame queues or the
   * frame latency are past their limits, so admitted streams stay clean; `/health`
   * says `ready: false` meanwhile. `false` admits by `maxSessions` alone.
   * Default: on, with the defaults of `AdmissionOptions`.
   */
  admission?: AdmissionOptions | false;
  /**
   * ICE host candidates to announce. Default: `[host]` when `host` is a specific
   * IP (e.g. `127.0.0.1`), every non-loopback interface when it is `0.0.0.0`.
   * Behind 1:1 NAT, give the public address.
   */
  iceHostAddresses?: string[];
  /** UDP port range for media, `[min, max]`. Default: any free port. */
  icePortRange?: [number, number];
  /**
   * STUN/TURN servers for clients behind NAT or firewalls (`stun:`, `stuns:`,
   * `turn:`, `turns:` URLs; TURN needs `username` and `credential`).
   * Advertised to WHIP clients as `Link: <…>; rel="ice-server"` fields on the
   * 201 and on OPTIONS (RFC 9725 §4.6; TURN credentials only to requests with
   * publish rights). The WHIP server itself is ICE-lite and never contacts
   * them. Checked at start (`EARSHOT_ICE_SERVER_INVALID`). Default none.
   */
  iceServers?: RTCIceServer[];
  /**
   * Log level of the built-in logger: fatal, error, warn, info (default),
   * debug, trace, silent. Ignored with `logger` (set your logger's level).
   */
  logLevel?: LogLevel;
  /**
   * Your own pino logger (or a pino-compatible one) for everything the server
   * logs; fastify adds its request serializers. Default: a pino logger to
   * stdout (JSON lines) at `logLevel`.
   */
  logger?: FastifyBaseLogger;
  /**
   * Custom worker stage modules (file paths or `file:` URLs) to load in every
   * worker before the pipeline is validated, so the pipeline can use their
   * stage types. A module that fails to load rejects `createServer` with
   * `EARSHOT_STAGE_MODULE_INVALID`. More can be added later with `registerStageModule`.
   */
  stageModules?: Array<string | URL>;
  /**
   * Registry for `processor` sinks and `attachProcessor`. Default: the
   * server's own, over the process-wide one (`registerProcessor`):
   * `server.registerProcessor` is seen by this server only.
   */
  processors?: ProcessorRegistry;
}


/** Every option of `createServer`, for the check of the names given (a new option must be added here: the type says so). */
const SERVER_OPTIONS: Record<keyof CreateServerOptions, true> = {
  host: true, port: true, tlsCert: true, tlsKey: true, token: true, adminToken: true, insecure: true, trustProxy: true,
  corsOrigins: true, whipCorsOrigins: true, metricsPublic: true, maxConnections: true, maxDownloadsPerClient: true, maxDownloads: true, maxEventStreamsPerClient: true, maxEventStreams: true,
  downloadIdleTimeoutMs: true, downloadLinkSeconds: true, requestTimeoutMs: true, pipelinesDir: true, watchPipelines: true, persistRoomBindings: true, pipeline: true,
  recordingsDir: true, threads: true, batchIntervalMs: true, earlyOutputMs: true, quietHoldMs: true, stageTimeoutMs: true, maxStreamCrashes: true,
  maxQueuedFrames: true, mediaTimeoutMs: true, processorDrainTimeoutMs: true, connectTimeoutMs: true, maxSessions: true, maxPendingSessions: true, maxPendingSessionsPerClient: true,
  maxListeners: true, maxListenersPerPeer: true, listenerTimeoutMs: true,
  admission: true, iceHostAddresses: true, icePortRange: true, iceServers: true, logLevel: true, logger: true,
  stageModules: true, processors: true,
};


/** Options only `createCluster` takes (it checks them itself). */
const CLUSTER_ONLY = ['processes', 'cluster', 'drainTimeoutMs'] as const;

/** The limits of `GET /events` from the options (createServer, and the front of createCluster). */
export function eventStreamLimits(options: Pick<CreateServerOptions, 'maxEventStreamsPerClient' | 'maxEventStreams'>): EventStreamLimits {
  return { perClient: options.maxEventStreamsPerClient ?? 8, total: options.maxEventStreams ?? 64 };
}

/**
 * Throws `EARSHOT_OPTION_INVALID` for the first option of `createServer` that
 * is not usable. A caller that takes these options and more of its own
 * (`createCluster`) names itself and its own options, which it checks itself.
 */
export function checkServerOptions(options: CreateServerOptions, what = 'createServer', ownOptions: Readonly<Record<string, true>> = {}): void {
  // createCluster's own options given to createServer: say where they belong (the near name would be "processors").
  if (what === 'createServer' && typeof options === 'object' && options !== null) {
    const clusterOption = CLUSTER_ONLY.find((k) => Object.hasOwn(options, k));
    if (clusterOption) throw errors.OPTION_INVALID(clusterOption, 'is an option of createCluster (several processes or machines), not of createServer');
  }
  checkOptionNames(what, options, { ...SERVER_OPTIONS, ...ownOptions });
  checkListenHost('host', options.host);
  checkInteger('port', options.port, 0, 65535);
  checkBoolean('insecure', options.insecure);
  trustedProxies(options.trustProxy);
  checkStringArray('corsOrigins', options.corsOrigins);
  checkStringArray('whipCorsOrigins', options.whipCorsOrigins);
  checkBoolean('metricsPublic', options.metricsPublic);
  checkInteger('maxConnections', options.maxConnections, 1, 1_000_000);
  checkInteger('maxDownloadsPerClient', options.maxDownloadsPerClient, 1);
  checkInteger('maxDownloads', options.maxDownloads, 1);
  checkInteger('maxEventStreamsPerClient', options.maxEventStreamsPerClient, 1);
  checkInteger('maxEventStreams', options.maxEventStreams, 1);
  checkInteger('downloadIdleTimeoutMs', options.downloadIdleTimeoutMs, 1, 2 ** 31 - 1);
  checkInteger('downloadLinkSeconds', options.downloadLinkSeconds, 1, 31_536_000);
  checkInteger('requestTimeoutMs', options.requestTimeoutMs, 100, 2 ** 31 - 1);
  checkNonEmptyString('pipelinesDir', options.pipelinesDir);
  checkBoolean('watchPipelines', options.watchPipelines);
  checkBoolean('persistRoomBindings', options.persistRoomBindings);
  checkPipelineOption('pipeline', options.pipeline);
  checkNonEmptyString('recordingsDir', options.recordingsDir);
  checkPoolOptions(options);
  checkCoreOptions(options);
  checkIpAddresses('iceHostAddresses', options.iceHostAddresses);
  checkPortRange('icePortRange', options.icePortRange);
  if (options.iceServers !== undefined && !Array.isArray(options.iceServers)) {
    throw errors.OPTION_INVALID('iceServers', `must be an array of { urls, username?, credential? }, got ${describeValue(options.iceServers)}`);
  }
  checkOneOf('logLevel', options.logLevel, LOG_LEVELS);
  checkLogger('logger', options.logger);
  checkStageModules('stageModules', options.stageModules);
  if (options.processors !== undefined && !(options.processors instanceof ProcessorRegistry)) {
    throw errors.OPTION_INVALID('processors', `must be a ProcessorRegistry, got ${describeValue(options.processors)}`);
  }
}



function checkLogger(name: string, value: unknown): void {
  if (value === undefined) return;
  const methods = ['info', 'warn', 'error', 'debug', 'child'];
  const missing = typeof value === 'object' && value !== null ? methods.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function') : methods;
  if (missing.length > 0) throw errors.OPTION_INVALID(name, `must be a pino-compatible logger (methods ${methods.join(', ')}); ${describeValue(value)} lacks ${missing.join(', ')}`);
}

function checkStageModules(name: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) throw errors.OPTION_INVALID(name, `must be an array of file paths or file: URLs, got ${describeValue(value)}`);
  value.forEach((m, i) => {
    if (!(m instanceof URL) && (typeof m !== 'string' || m.trim() === '')) throw errors.OPTION_INVALID(`${name}[${i}]`, `must be a file path or a file: URL, got ${describeValue(m)}`);
  });
}
