/**
 * `createCluster`: one machine, every core. A front process owns the public
 * port and N engine processes (src/cluster/engine-main.ts) each run a whole
 * single-process server — werift main thread, DSP worker pool — on a loopback
 * port of their own. `earshot serve --processes N` runs this; `--processes 1`
 * runs `createServer` alone, with no front and no hop.
 *
 * What the front does, and why there:
 * - WHIP POST: places the session (src/cluster/placement.ts: a live peer on
 *   the engine that owns it, a new one on the least-loaded engine with room,
 *   one placement per peer at a time) and forwards the offer; the answer
 *   carries the engine's own ICE candidates, so media flows straight to that
 *   engine's UDP sockets and never through the front. The Location stays
 *   `/whip/sessions/<id>`: the front knows which engine owns each session.
 * - DELETE/PATCH of a session, a peer's statistics and recording control go to
 *   the engine that owns it; pipeline and room changes go to every engine, so
 *   all agree (pipeline files are also shared through the watched directory;
 *   the front remembers room bindings and gives them to a restarted engine).
 * - `/stats`, `/health`, `/events`, `/metrics` show the whole machine;
 *   recordings are listed and served by the front from the one shared directory.
 * - Access control, CORS and TLS are the front's, the same code as a single
 *   process; requests it forwards keep their Authorization and Host, and the
 *   engine checks them again with the same tokens.
 *
 * An engine that exits is restarted. Its sessions end with it; the front
 * ends them in its place (reason `engine-exited`: statistics, events,
 * metrics, their recordings' headers made to cover what reached the disk;
 * src/cluster/engine-sessions.ts). `close()` refuses new sessions, lets every
 * engine drain and finalize, then stops.
 *
 * With `cluster`, the front is also a node of a cluster of machines sharing
 * state in Redis (src/cluster/cluster-node.ts): it places sessions across
 * nodes, forwards requests for sessions other nodes run, and shares pipelines
 * and room bindings.
 *
 * Why one file of ~700 lines: the front's routes, the engine supervision
 * (start, restart, drain) and the placement read and change the same engine
 * table inside one `createCluster` closure; the pieces with a life of their
 * own are already apart (placement, forwarding, stats merging, metrics, the
 * cluster node).
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { join, resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyCors from '@fastify/cors';
import fastifyStatic from '@fastify/static';
import client from 'prom-client';
import { Subject } from 'rxjs';
import { errors, isEarshotError, type EarshotError } from '../errors.js';
import { installAccessControl } from '../server/access-control.js';
import { corsDelegator, checkOrigin } from '../server/cors-policy.js';
import { queryFlag } from '../server/query-flag.js';
import type { RouteMethods } from '../server/route-methods.js';
import { defaultIceHosts, isBundledPipelinesDir, type CreateServerOptions } from '../server/create-server.js';
import { asPipelineDocument, isBuiltPipeline, type PipelineSource } from '../pipeline/pipeline-builder.js';
import type { PipelineDocument } from '../pipeline/schema.js';
import { checkServerOptions, eventStreamLimits } from '../server/server-options.js';
import { listenerAccess } from '../server/trust-proxy.js';
import { checkInteger } from '../core/option-checks.js';
import { byRoom, RoomBindingsFile } from '../core/room-bindings-file.js';
import { packageRoot } from '../package-root.js';
import { DownloadLinks } from '../server/download-links.js';
import type { SessionEvent } from '../core/earshot-core.js';
import { listenOn } from '../server/listen.js';
import { httpServerLimits, installProblemHandling, problemFor } from '../server/problem.js';
import { continueOnlyWhenRead } from '../server/expect-continue.js';
import { QuietRoutesLogController } from '../server/request-logs.js';
import { installBodyTypeCheck } from '../server/body-types.js';
import { applyConnectionLimit } from '../server/connection-limit.js';
import { refuseDuplicateHost } from '../server/host-header.js';
import { readForwardedHeader } from '../server/forwarded-header.js';
import { dashboardRoutes, registerDashboardRoutes } from '../server/routes/dashboard.js';
import { registerRecordingRoutes, type ServeRecording } from '../server/routes/recordings.js';
import { checkIfMatch } from '../server/if-match.js';
import { checkName } from '../core/names.js';
import { notAllowed, RETRY_AFTER_SECONDS } from '../server/routes/whip.js';
import { loadTls } from '../server/tls.js';
import { iceConfig } from '../rtc/ice-config.js';
import { checkIceServers } from '../rtc/ice-servers.js';
import { MAX_SDP_BYTES } from '../rtc/sdp-offer.js';
import { RecordingsStore } from '../sinks/recordings-store.js';
import type { ProcessorEvent } from '../sinks/processors.js';
import { ENGINE_SILENT_MS, type EngineMessage, type EngineReport, type EngineServerOptions, type EngineStats } from './engine-protocol.js';
import { EngineProcess, type EngineExit } from './engine-process.js';
import { bodyOf, clientOf, forward, forwardedHeaders, jsonOf, relay, requestEngine, type EngineResponse } from './forward.js';
import { mergeExpositions } from './front-metrics.js';
import { withProcessMetrics } from '../server/process-metrics.js';
import { EngineSessions } from './engine-sessions.js';
import { registerEventRoutes } from '../server/routes/events.js';
import { mergeStats, RetiredCounters, type EngineSummary } from './merge-stats.js';
import { LocalPlacement } from './placement.js';
import { checkClusterNodeOptions, ClusterNode, HOP_HEADER, type ClusterNodeOptions, type NodeLoad } from './cluster-node.js';
import { installUpgradeProxy } from './upgrade-proxy.js';
import { noWebSocketHere } from '../server/websocket-upgrades.js';
import type { NodeStats } from './merge-cluster-stats.js';
import { defaultProcesses, defaultThreadsPerEngine, perEngineLimit, splitPortRange } from './processes.js';
import { DEFAULT_MAX_LISTENERS } from '../core/listeners.js';
import { defaultMaxPendingSessionsPerClient } from '../core/core-options.js';

export interface ClusterOptions extends Omit<CreateServerOptions, 'logger' | 'processors' | 'pipeline'> {
  /**
   * Engine processes, each with its own werift main thread and DSP pool,
   * behind the one port. Default: 1 up to 3 cores, then one per 3 cores
   * (`defaultProcesses()`; docs/scaling.md says why).
   */
  processes?: number;
  /**
   * DSP worker threads **per engine**. Default: the cores shared out among
   * the engines (`floor(cores / processes)`, at least 1).
   */
  threads?: number;
  /**
   * The default pipeline: a name in `pipelinesDir`, a JSON file path, or a
   * pipeline document or definition (stage operators allowed; a built
   * `Pipeline` is sent as its `toJSON()`).
   * Each engine loads it. Default `default`.
   */
  pipeline?: PipelineSource;
  /**
   * Most concurrent sessions on the machine; each engine admits
   * `ceil(maxSessions / processes)`, and the front offers a session another
   * engine when one is full. Default 500.
   */
  maxSessions?: number;
  /** Most not-yet-connected sessions on the machine, shared out like `maxSessions`. Default 50. */
  maxPendingSessions?: number;
  /**
   * Most not-yet-connected sessions from one client address (an IPv6 client:
   * its /64) on the machine, shared out like `maxSessions`: each engine admits
   * `ceil(maxPendingSessionsPerClient / processes)` from one client, and the
   * front offers the session to another engine when one refuses. With
   * `cluster`, on each node. Default: half of `maxPendingSessions` (25).
   */
  maxPendingSessionsPerClient?: number;
  /**
   * Most listeners (WHEP players and audio sockets) on the machine, shared out
   * like `maxSessions`: a peer's listeners are on its engine, and each engine
   * admits `ceil(maxListeners / processes)`; 0 turns listening off. Default 64.
   */
  maxListeners?: number;
  /**
   * UDP port range for media, `[min, max]`, split into one contiguous share
   * per engine (each werift binds its own sockets; a share needs a port per
   * concurrent session). Default: any free port.
   */
  icePortRange?: [number, number];
  /** How long `close()` lets each engine drain and finalize before killing it. Default 30000 ms. */
  drainTimeoutMs?: number;
  /**
   * Join a cluster of machines whose shared state is in Redis
   * (`earshot serve --cluster`): sessions are placed on the least-loaded
   * node, peer ids are unique in the cluster, pipelines and room bindings are
   * shared, and `/cluster/*` shows every node. Default: none (one machine).
   */
  cluster?: ClusterNodeOptions;
}

export interface EarshotCluster {
  /** The front's fastify instance (the public port). */
  readonly app: FastifyInstance;
  /**
   * Starts every engine, then the public listener; resolves to the base URL.
   * Rejects with an engine's start-up error, or `EARSHOT_PORT_IN_USE` when
   * another process already listens on the public `host`:`port`.
   */
  listen(): Promise<string>;
  /** Graceful shutdown: refuse new sessions, let every engine drain and finalize its recordings, then stop. */
  close(): Promise<void>;
  /**
   * In a cluster: stop taking sessions, let the live ones end (up to
   * `cluster.drainTimeoutMs`), then `close()` and leave the cluster. Without
   * one: `close()`. Resolves when the server has stopped.
   */
  drain(): Promise<void>;
  /** Resolves once the server has stopped, whatever stopped it (`close()`, `drain()`, `POST /admin/drain`). */
  readonly closed: Promise<void>;
  /** What the CLI logs at start. */
  describe(): Record<string, unknown>;
}

/** How long after an engine exited `/health` still says `degraded` (like a replaced DSP worker). */
const HEALTH_WINDOW_MS = 30_000;
/** First delay before restarting an engine; doubled (up to the max) while it keeps dying within `STABLE_MS` of starting. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
const STABLE_MS = 10_000;
/** How long `close()` lets open HTTP responses finish before cutting their connections (as createServer). */
const CLOSE_GRACE_MS = 2000;

/**
 * earshot on every core of a machine, and optionally as one node of a cluster
 * of machines: a front on the public port and `processes` engine processes,
 * each a whole server with its own WebRTC main thread and DSP threads. With
 * `cluster`, the node joins the machines sharing the same Redis. What
 * `earshot serve --processes N` and `earshot serve --cluster URL` run; see
 * docs/scaling.md. Main-thread processors (`registerProcessor`,
 * `streams$`) are per process and not available here: use `createServer`
 * for those.
 *
 * ```ts
 * const node = await createCluster({ processes: 2, cluster: { redis: 'redis://10.0.0.5:6379', publicUrl: 'http://10.0.0.11:8080' }, host: '0.0.0.0', token, adminToken });
 * await node.listen();
 * process.on('SIGTERM', () => void node.drain().then(() => process.exit(0)));
 * ```
 */
export async function createCluster(options: ClusterOptions = {}): Promise<EarshotCluster> {
  // createServer's checks, plus this function's own options; `logger` and `processors` live in
  // one process and cannot reach the engines, so they are refused rather than ignored.
  const { logger, processors } = options as CreateServerOptions;
  if (logger !== undefined) throw errors.OPTION_INVALID('logger', 'is not supported by createCluster: each engine process logs on its own (set logLevel)');
  if (processors !== undefined) throw errors.OPTION_INVALID('processors', 'is not supported by createCluster: main-thread processors run in one process (use worker stage modules)');
  checkServerOptions(options as CreateServerOptions, 'createCluster', { processes: true, drainTimeoutMs: true, cluster: true });
  checkInteger('processes', options.processes, 1, 64);
  checkInteger('drainTimeoutMs', options.drainTimeoutMs, 1, 2 ** 31 - 1);
  if (options.cluster !== undefined) checkClusterNodeOptions(options.cluster);
  const processes = options.processes ?? defaultProcesses();
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  // The same checks as createServer, made here because the front is what faces the network. It also faces
  // the proxies: it reads their headers and names the client to its engines and to the other nodes
  // (`CLIENT_HEADER`, forward.ts); the engines believe no proxy (createEngineServer).
  const { access, trustProxy } = listenerAccess(options, host);
  for (const [name, list] of [['corsOrigins', options.corsOrigins], ['whipCorsOrigins', options.whipCorsOrigins]] as const) {
    for (const origin of list ?? []) checkOrigin(name, origin, name === 'whipCorsOrigins');
  }
  if (options.cluster && options.cluster.publicUrl === undefined && (host === '0.0.0.0' || host === '::')) {
    throw errors.OPTION_INVALID('cluster.publicUrl', 'is required when listening on every address (--public-url): the other nodes must know where to reach this one');
  }
  const tls = loadTls(options.tlsCert, options.tlsKey);
  checkIceServers(options.iceServers ?? []);
  iceConfig({ hostAddresses: options.iceHostAddresses, portRange: options.icePortRange });
  const portShares = options.icePortRange ? splitPortRange(options.icePortRange, processes) : undefined;
  const downloadLimits = {
    perClient: options.maxDownloadsPerClient ?? 4,
    total: options.maxDownloads ?? 32,
    idleTimeoutMs: options.downloadIdleTimeoutMs ?? 30_000,
  };
  const links = new DownloadLinks(options.downloadLinkSeconds ?? 3600);
  const threads = options.threads ?? defaultThreadsPerEngine(processes);
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  const store = new RecordingsStore(options.recordingsDir ?? 'recordings');
  await store.init();

  const engineOptions = (slot: number): EngineServerOptions => {
    const { processes: _p, drainTimeoutMs: _d, host: _h, port: _port, tlsCert: _c, tlsKey: _k, cluster: _cl, trustProxy: _t, ...rest } = options;
    return {
      ...rest,
      pipeline: pipelineOption(options.pipeline),
      // The front keeps the machine's bindings (rooms.json, or Redis for a cluster) and gives them to each engine.
      persistRoomBindings: false,
      stageModules: options.stageModules?.map((m) => (m instanceof URL ? m.href : m)),
      recordingsDir: store.dir,
      threads,
      maxSessions: perEngineLimit(options.maxSessions ?? 500, processes),
      maxPendingSessions: perEngineLimit(options.maxPendingSessions ?? 50, processes),
      // The front names the client of each request it forwards (forward.ts): an engine that refuses one
      // client its share sends the front on to the next engine, so a client gets about the machine's limit.
      maxPendingSessionsPerClient: perEngineLimit(options.maxPendingSessionsPerClient ?? defaultMaxPendingSessionsPerClient(options.maxPendingSessions ?? 50), processes),
      // A peer's listeners are on its engine, so each engine bounds its own: the machine's limit
      // shared out like maxSessions (0 keeps listening off). maxListenersPerPeer applies as given.
      maxListeners: options.maxListeners === 0 ? 0 : perEngineLimit(options.maxListeners ?? DEFAULT_MAX_LISTENERS, processes),
      ...(processes > 1 ? { listenersOfMachine: { engines: processes, limit: options.maxListeners ?? DEFAULT_MAX_LISTENERS } } : {}),
      // Engines listen on loopback; they announce what a single process on `host` would ([] = every interface).
      iceHostAddresses: options.iceHostAddresses ?? defaultIceHosts(host) ?? [],
      icePortRange: portShares?.[slot],
    };
  };

  const app = Fastify({
    logger: { level: options.logLevel ?? 'info' },
    logController: new QuietRoutesLogController(['/health', '/metrics', '/events', ...dashboardRoutes()]),
    ...httpServerLimits(options.requestTimeoutMs, tls),
    ...(trustProxy ? { trustProxy } : {}),
  }) as unknown as FastifyInstance;
  applyConnectionLimit(app.server, options.maxConnections);
  refuseDuplicateHost(app);
  if (trustProxy) readForwardedHeader(app.server);
  const log = app.log.child({ module: 'cluster' });
  // The front reads no body: each is passed on to an engine as it came, whatever its type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const placement = new LocalPlacement();
  /** With `cluster`: this machine as a node of the cluster (created once the routes it needs exist). */
  let node: ClusterNode | undefined;
  /** Serves a recording of this machine's directory (set once the recording routes exist, before the server listens). */
  let serveRecording: ServeRecording | undefined;
  const retired = new RetiredCounters();
  const frontRefusedBy: Record<string, number> = {};
  const countRefusal = (code: string) => {
    frontRefusedBy[code] = (frontRefusedBy[code] ?? 0) + 1;
  };
  /**
   * Counts the answer to an offer if it is a load refusal (503) from an engine
   * or another node: they leave those to the front the client asked, which may
   * have offered the session to several of them before it got this answer.
   */
  const countLoadRefusal = (res: EngineResponse) => {
    if (res.status !== 503) return;
    const code = jsonOf<{ code?: unknown }>(res)?.code;
    countRefusal(typeof code === 'string' ? code.slice(0, 64) : 'EARSHOT_INTERNAL');
  };
  /** An offer another node of the cluster sent on (it counts the answer its client gets). */
  const isNodeHop = (req: FastifyRequest) => node !== undefined && req.headers[HOP_HEADER] !== undefined;
  const sessions$ = new Subject<SessionEvent>();
  const events$ = new Subject<ProcessorEvent>();
  /**
   * Room bindings applied on every engine, replayed to restarted ones. The
   * front owns them: it keeps them in rooms.json of the pipelines directory
   * (a cluster: in Redis), and makes each change on the engines in turn.
   */
  const rooms = new Map<string, string>();
  /** Rooms bound to a pipeline the engines have not loaded, as last logged (room → pipeline): each is logged once. */
  const missingLogged = new Map<string, string>();
  const pipelinesDir = options.pipelinesDir ?? join(packageRoot(), 'pipelines');
  const roomsFile = options.cluster ? undefined : await RoomBindingsFile.of(pipelinesDir, { bundled: isBundledPipelinesDir(pipelinesDir), persist: options.persistRoomBindings });
  for (const { room, pipeline } of (await roomsFile?.changes()) ?? []) if (pipeline !== undefined) rooms.set(room, pipeline);
  /** The room change in progress (and an engine's catching up): the next waits for it. */
  let roomTurn: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(task: () => Promise<T>): Promise<T> => {
    const run = roomTurn.then(task, task);
    roomTurn = run.catch(() => undefined);
    return run;
  };
  /** The live sessions' starts and latest figures, to end them in their engine's place when it dies with them. */
  const engineSessions = new EngineSessions({ store, log, emit: (event) => sessions$.next(event) });
  const startedAt = performance.now();
  let closing = false;
  let listening = false;
  const restartTimers = new Set<NodeJS.Timeout>();

  const onMessage = (engine: EngineProcess, message: EngineMessage) => {
    switch (message.t) {
      case 'report': {
        const r = message.report;
        if (silent.delete(engine) && !closing) log.warn({ engine: engine.slot, pid: engine.pid, silentMs: Math.round(performance.now() - engine.reportedAt) }, 'engine process answers again; it takes new sessions');
        engine.reportedAt = performance.now();
        placement.report({ engine: engine.id, accepting: engine.state === 'up' && !closing, ready: r.ready, sessions: r.peers, pending: r.pending, workerUtilization: r.workerUtilization });
        break;
      }
      case 'session': {
        const e = message.event;
        if (e.type === 'started') {
          placement.sessionStarted(engine.id, e.peer, e.session);
          if (node) node.placement.sessionStarted(node.id, e.peer, e.session);
          engineSessions.started(engine.id, e, message.snapshot);
        } else {
          placement.sessionEnded(engine.id, e.peer, e.session);
          if (node) node.placement.sessionEnded(node.id, e.peer, e.session);
          engineSessions.ended(e, engine.slot, message.snapshot);
        }
        sessions$.next(e);
        break;
      }
      case 'peers':
        engineSessions.report(engine.id, message.peers);
        break;
      case 'processor':
        events$.next(message.event);
        break;
    }
  };
  const onExit = (engine: EngineProcess, exit: EngineExit) => {
    placing.delete(engine);
    // What a silent process was is no concern of the next one (and its counts are retired below).
    silent.delete(engine);
    lastStats.delete(engine);
    const lost = placement.engineDown(engine.id);
    if (!exit.wasUp) return; // a start that failed: start() reports it to its caller
    retired.retire(engine.report, lost.length);
    for (const s of lost) if (node) node.placement.sessionEnded(node.id, s.peer, s.session);
    // Their statistics now; their recordings' headers repaired, then their `ended` events.
    void engineSessions.engineExited(engine.id, lost, { slot: engine.slot, code: exit.code, signal: exit.signal, at: exit.at });
    if (closing) return;
    // An engine that drained and exited 0 was stopped (a SIGTERM to it alone: a rolling restart), not
    // crashed, however soon after its start: it comes back after the first delay, never a backed-off one.
    const stopped = exit.code === 0;
    const delayMs = restartDelay(engine, !stopped && exit.at - engine.startedAt < STABLE_MS);
    log[stopped ? 'info' : 'error']({ engine: engine.slot, pid: engine.pid, code: exit.code, signal: exit.signal, sessionsEnded: lost.length, restartInMs: delayMs }, 'engine process exited; its sessions ended; restarting it');
    scheduleRestart(engine, delayMs);
  };
  const engines = Array.from({ length: processes }, (_, slot) => new EngineProcess(slot, { onMessage, onExit }));
  /** Engines new sessions are placed on: up, and caught up with the room bindings. */
  const placing = new Set<EngineProcess>();

  /** Restarted, an engine must start even if a pipeline file is broken now, and run what the engines that are up run. */
  const startEngine = async (engine: EngineProcess, restart = false) => {
    const previous = restart ? await previousPipelines(engine) : undefined;
    const snapshot = Object.fromEntries(rooms);
    await engine.start(engineOptions(engine.slot), snapshot, previous);
    // A change made while it started reached the engines that were up, not this one: it catches up now.
    await inTurn(() => catchUpRooms(engine)).catch((e: unknown) => log.error({ engine: engine.slot, err: (e as Error).message }, 'engine did not take the room bindings'));
    placement.report({ engine: engine.id, accepting: !closing, ready: engine.report?.ready ?? true, sessions: 0, pending: 0, workerUtilization: 0 });
    placing.add(engine);
  };
  const restartDelays = new Map<EngineProcess, number>();
  /** 0.5 s after a process that ran for a while or was stopped; doubling, up to 30 s, while it keeps dying soon after starting (a crash loop). */
  const restartDelay = (engine: EngineProcess, quick: boolean): number => {
    const delay = quick ? Math.min(MAX_RESTART_DELAY_MS, (restartDelays.get(engine) ?? RESTART_DELAY_MS / 2) * 2) : RESTART_DELAY_MS;
    restartDelays.set(engine, delay);
    return delay;
  };
  const scheduleRestart = (engine: EngineProcess, delayMs: number) => {
    const timer = setTimeout(async () => {
      restartTimers.delete(timer);
      if (closing) return;
      engine.restarts++;
      try {
        await startEngine(engine, true);
        log.info({ engine: engine.slot, pid: engine.pid, port: engine.port }, 'engine process restarted');
      } catch (e) {
        if (closing) return; // told to stop while it was starting
        // The machine out of memory, the recordings disk gone: back off, keep trying.
        const next = restartDelay(engine, true);
        log.error({ engine: engine.slot, err: (e as Error).message, retryInMs: next }, 'engine process failed to restart');
        scheduleRestart(engine, next);
      }
    }, delayMs);
    restartTimers.add(timer);
  };

  /** How long a read asked of every engine (/metrics, /stats/:peer, /pipelines) waits for each. */
  const FAN_OUT_TIMEOUT_MS = 5000;
  const live = () => engines.filter((e) => e.state === 'up');
  /**
   * Engines that are up but have sent no load report for ENGINE_SILENT_MS (a report comes every
   * 250 ms): hung (a processor that never returns, a stopped process) or starved of CPU. They take
   * no new session, /health says so, and reads (/metrics, /stats) do not wait for them: a scrape
   * that waited out the 30 s request timeout failed as a whole.
   */
  const silent = new Set<EngineProcess>();
  const isSilent = (e: EngineProcess, now = performance.now()) => e.state === 'up' && now - e.reportedAt > ENGINE_SILENT_MS;
  /** How long a silent engine has been so, as messages say it. */
  const silentFor = (e: EngineProcess) => `no report for ${((performance.now() - e.reportedAt) / 1000).toFixed(1)} s`;
  /**
   * The engine that runs `what` (a peer, a session) does not answer: 503 (with `reply`, Retry-After),
   * not a wait of the request timeout nor another engine's 404.
   */
  const engineSilent = (e: EngineProcess, what: string, reply?: FastifyReply): EarshotError => {
    const error = errors.ENGINE_UNAVAILABLE(`engine ${e.slot}, which runs ${what}, is not answering (${silentFor(e)})`);
    return reply ? refuse(reply, error, RETRY_AFTER_SECONDS) : error;
  };
  /** Engines up and answering: the ones reads ask. */
  const serving = () => live().filter((e) => !silent.has(e));
  /** Engines up, those answering first: the one asked first (a read, the engine that decides a change) is not a hung one. */
  const upServingFirst = () => [...serving(), ...live().filter((e) => silent.has(e))];
  /** Each engine's last full statistics: a silent engine's counts stay in /stats (they only go up) while it is not asked. */
  const lastStats = new Map<EngineProcess, EngineStats>();
  let lastWatch = performance.now();
  const silenceWatch = setInterval(() => {
    const now = performance.now();
    // The front itself stalled (its timers then run before the reports that queued meanwhile are read):
    // judge the engines at the next turn, not now.
    const late = now - lastWatch > ENGINE_SILENT_MS / 2;
    lastWatch = now;
    if (late) return;
    for (const e of engines) {
      if (e.state !== 'up') silent.delete(e);
      else if (!silent.has(e) && isSilent(e, now)) {
        silent.add(e);
        log.error({ engine: e.slot, pid: e.pid, silentMs: Math.round(now - e.reportedAt) }, 'engine process has sent no report (hung, or starved of CPU); it takes no new sessions until it answers');
        placement.report({ engine: e.id, accepting: false, ready: false, sessions: e.report?.peers ?? 0, pending: e.report?.pending ?? 0, workerUtilization: e.report?.workerUtilization ?? 0 });
      }
    }
  }, ENGINE_SILENT_MS / 4);
  silenceWatch.unref();
  const anyEngine = (): EngineProcess => {
    const e = upServingFirst()[0];
    if (!e) throw errors.ENGINE_UNAVAILABLE('every engine process is starting or restarting');
    return e;
  };
  const refuse = (reply: FastifyReply, error: EarshotError, retryAfter: number): EarshotError => {
    void reply.header('Retry-After', String(retryAfter));
    return error;
  };
  const summaries = (): EngineSummary[] =>
    engines.map((e) => ({
      engine: e.slot,
      pid: e.pid ?? null,
      state: e.state === 'up' && silent.has(e) ? 'unresponsive' : e.state,
      restarts: e.restarts,
      peers: e.state === 'up' ? (e.report?.peers ?? 0) : 0,
      // Up, and taking sessions: its room bindings caught up (`startEngine`).
      ready: e.state === 'up' && !silent.has(e) && placing.has(e) && (e.report?.ready ?? false),
      threads: e.threads,
      uptimeSeconds: e.state === 'up' ? (e.report?.uptimeSeconds ?? 0) : null,
    }));
  const machineStats = async () => {
    const up = live();
    // A silent engine is not asked (its answer would take the call's timeout): its last figures stand in.
    const results = await Promise.allSettled(up.map((e) => (silent.has(e) ? Promise.resolve(lastStats.get(e)) : e.stats())));
    const parts = results.flatMap((r, i) => {
      if (r.status !== 'fulfilled' || r.value === undefined) return [];
      lastStats.set(up[i], r.value);
      return [{ engine: up[i].slot, stats: r.value }];
    });
    const mem = process.memoryUsage();
    return mergeStats(parts, {
      uptimeSeconds: Math.round((performance.now() - startedAt) / 1000),
      retired,
      frontRefusedBy,
      engines: summaries(),
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
    });
  };
  /** Every live engine's answer to the client's request (or to `method path` with its headers). */
  const fanOut = async (req: FastifyRequest, method = req.method, path = req.url) => {
    const up = serving();
    // Reads: an engine that hangs while asked is left out after FAN_OUT_TIMEOUT_MS, not waited for
    // (Prometheus gives up on a scrape after 10 s by default, and with it on every engine's figures).
    const results = await Promise.allSettled(up.map((e) => requestEngine(e.port, method, path, forwardedHeaders(req), method === req.method ? bodyOf(req) : undefined, FAN_OUT_TIMEOUT_MS)));
    return results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ engine: up[i], res: r.value }] : []));
  };
  /**
   * A change every engine must make (pipelines, rooms): the first engine
   * decides (validation errors come back from it, nothing changed); the
   * others follow. Returns the first engine's answer.
   */
  const onEveryEngine = (req: FastifyRequest): Promise<EngineResponse> => changeEveryEngine(req.method, req.url, forwardedHeaders(req), bodyOf(req));
  const changeEveryEngine = async (method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer | undefined): Promise<EngineResponse> => {
    const [first, ...others] = upServingFirst();
    if (!first) throw errors.ENGINE_UNAVAILABLE('every engine process is starting or restarting');
    const res = await requestEngine(first.port, method, path, headers, body);
    if (res.status >= 400) return res;
    await followOnOthers(others, method, path, headers, body);
    return res;
  };
  /** The engines after the first make the change it made; one that refuses or is gone is logged (a restarted one is given the machine's state). */
  const followOnOthers = async (others: EngineProcess[], method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer | undefined): Promise<void> => {
    for (const e of others) {
      try {
        const r = await requestEngine(e.port, method, path, headers, body);
        // 404 after the first engine deleted a shared pipeline file: that engine's watcher was quicker.
        if (r.status >= 400 && !(r.status === 404 && method === 'DELETE')) log.error({ engine: e.slot, status: r.status, url: path }, 'engine disagreed on a change the others made');
      } catch (err) {
        log.error({ engine: e.slot, err: (err as Error).message, url: path }, 'change not applied on an engine (it exited; a restarted one is given the machine\'s state)');
      }
    }
  };
  /** The front's own requests to an engine (loopback; the admin token where there is one). */
  const ownHeaders = (): OutgoingHttpHeaders => ({
    host: '127.0.0.1',
    'content-type': 'application/json',
    ...(options.adminToken ? { authorization: `Bearer ${options.adminToken}` } : {}),
  });
  const byId = (id: string) => engines.find((e) => e.id === id);
  const engineOf = (id: string | undefined): EngineProcess | undefined => (id === undefined ? undefined : byId(id));
  /**
   * The engine that runs a peer or session, up and answering; `what` names it
   * in the refusal when it is silent: 503 at once (with `reply`, Retry-After),
   * not a wait of the 30 s request timeout that ends in a 500.
   */
  const owned = async (id: string | undefined, notFound: () => EarshotError, what: string, reply?: FastifyReply): Promise<EngineProcess> => {
    const engine = engineOf(id);
    if (!engine || engine.state !== 'up') throw notFound();
    if (silent.has(engine)) throw engineSilent(engine, what, reply);
    return engine;
  };

  /**
   * The engine's answer to the client's request. An engine that does not answer (it hung past the
   * request timeout, or died while answering) is a 503 saying so, not a 500: the request may still
   * have been carried out (a DELETE the engine does once it answers again).
   */
  const forwardToOwner = async (engine: EngineProcess, req: FastifyRequest, reply: FastifyReply, what: string): Promise<FastifyReply> => {
    let res: EngineResponse;
    try {
      res = await forward(engine.port, req);
    } catch (e) {
      log.warn({ engine: engine.slot, method: req.method, url: req.url, err: (e as Error).message }, 'engine did not answer a request');
      // A connection reset or refused: the process died while answering (it is restarted; what it ran ended
      // with it). A timeout: it hung after taking the request, which it may still carry out.
      const died = ['ECONNRESET', 'ECONNREFUSED', 'EPIPE'].includes(String((e as NodeJS.ErrnoException).code));
      const why = died
        ? `engine ${engine.slot}, which ran ${what}, exited while answering; what it ran ended with it`
        : `engine ${engine.slot}, which runs ${what}, did not answer (${(e as Error).message}); it may still carry the request out when it answers again, so check before repeating it`;
      throw refuse(reply, errors.ENGINE_UNAVAILABLE(why), RETRY_AFTER_SECONDS);
    }
    return relay(reply, res);
  };

  // CORS first, so that even a refused request carries the headers a browser needs to read the refusal.
  let routes: RouteMethods | undefined;
  await app.register(fastifyCors, { delegator: corsDelegator(options.corsOrigins ?? [], options.whipCorsOrigins ?? ['*'], () => routes) });
  installAccessControl(app, access, { metricsPublic: options.metricsPublic === true, publicRoutes: new Set(['/health', ...dashboardRoutes()]) });
  routes = installProblemHandling(app);
  // As on an engine: a body of the wrong type gets 415 before it is read, not after the engine read it.
  installBodyTypeCheck(app);
  continueOnlyWhenRead(app);

  // ---- the cluster of machines (its routes: /cluster/*, /admin/drain)
  if (options.cluster) {
    node = new ClusterNode(options.cluster, {
      app,
      log,
      iceHosts: options.iceHostAddresses ?? defaultIceHosts(host) ?? [],
      load: (): NodeLoad => {
        const up = serving();
        const reports = up.flatMap((e) => (e.report ? [e.report] : []));
        // A session placed or started since the engines' last reports counts at once (a drain that read
        // no session would close the node and end it), and so does an offer on its way to an engine.
        const sessions = machineSessions(reports);
        return {
          accepting: !closing && up.length > 0,
          ready: (reports.length === 0 ? up.length > 0 : reports.some((r) => r.ready)) && sessions < machineLimits.sessions,
          sessions,
          pending: Math.max(reports.reduce((n, r) => n + r.pending, 0), placement.placing),
          workerUtilization: reports.length > 0 ? Math.min(...reports.map((r) => r.workerUtilization)) : 0,
          engines: processes,
        };
      },
      requireAdmin: (req, reply) => access.require('admin')(req, reply),
      stats: async () => (await machineStats()) as NodeStats,
      recordings: async () => {
        const page = await store.page({ limit: 1000, order: 'newest' });
        return { recordings: page.recordings.map((r) => ({ ...r, url: links.sign(r.name) })), total: page.total };
      },
      serveRecording: (req, reply, name) => serveRecording!(req, reply, name),
      placeLocally: (req, reply, peer) => placeLocally(req, reply, peer),
      rooms: () => Object.fromEntries(rooms),
      countLoadRefusal,
      endSession: async (session, reason) => {
        const engine = await placement.ownerOfSession(session);
        if (engine !== undefined) byId(engine)?.end(session, reason);
      },
      apply: async (method, path, body) => {
        // No body, no content type: the engines refuse an empty JSON body (a DELETE from another node would never apply).
        const { 'content-type': _type, ...bodiless } = ownHeaders();
        const headers = body === undefined ? bodiless : ownHeaders();
        const room = /^\/rooms\/([^/]+)$/.exec(path)?.[1];
        if (!room) return changeEveryEngine(method, path, headers, body === undefined ? undefined : Buffer.from(body));
        // A room binding, in turn with the others (a restarting engine's catch-up must not send the bindings
        // from before it): the first engine decides, then every engine gets the machine's bindings.
        return inTurn(async () => {
          const [first] = upServingFirst();
          if (!first) throw errors.ENGINE_UNAVAILABLE('every engine process is starting or restarting');
          const res = await requestEngine(first.port, method, path, headers, body === undefined ? undefined : Buffer.from(body));
          if (res.status >= 300) return res;
          if (method === 'DELETE') rooms.delete(decodeURIComponent(room));
          else rooms.set(decodeURIComponent(room), (JSON.parse(body ?? '{}') as { pipeline: string }).pipeline);
          await catchUpAll();
          return res;
        });
      },
      close: () => cluster.close(),
    });
  }

  // ---- WHIP
  const whipOptions = async (req: FastifyRequest, reply: FastifyReply) => {
    // The engine's answer carries what WHIP says about the endpoint (Allow, Accept-Post, ICE server Links by the caller's rights).
    try {
      return relay(reply, await forward(anyEngine().port, req));
    } catch {
      return reply.code(204).header('Allow', req.url.startsWith('/whip/sessions/') ? 'DELETE, OPTIONS' : 'POST, OPTIONS').header('Accept-Post', 'application/sdp').send();
    }
  };
  app.options('/whip/:room/:peer', whipOptions);
  app.options('/whip/sessions/:id', whipOptions);
  // No resource: the engine's 404 is relayed, and a POST there is a 404 too, not a 405 (route-methods.ts).
  app.options('/whip/*', { config: { notAResource: true } }, whipOptions);
  // As on an engine (server/routes/whip.ts): 405 and Allow; a POST on a session URL publishes nothing.
  notAllowed(app, '/whip/:room/:peer', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST, OPTIONS');
  notAllowed(app, '/whip/sessions/:id', ['GET', 'PUT', 'POST'], 'DELETE, OPTIONS');

  /** The one-machine placement: a live peer on the engine that runs it, a new one on the least-loaded engine with room. */
  const placeLocally = async (req: FastifyRequest, reply: FastifyReply, peer: string): Promise<EngineResponse> => {
    let ticket;
    try {
      ticket = await placement.begin(peer);
    } catch (e) {
      throw refuse(reply, e as EarshotError, 1);
    }
    try {
      // --max-sessions is the machine's: each engine admits its share rounded up, so N engines alone
      // would admit up to N × ceil(limit / N). A new peer (not a replacement) is counted here, over all
      // of them: the live peers, and the new peers whose offers came before this one.
      if (ticket.owner === undefined && placement.sessionsAhead(peer) >= machineLimits.sessions) {
        throw refuse(reply, errors.OVERLOADED(machineLimits.sessions, 'sessions', processes), RETRY_AFTER_SECONDS);
      }
      let last: EngineResponse | undefined;
      for (let id = ticket.next(); id !== undefined; id = ticket.next()) {
        const engine = byId(id);
        if (!engine || engine.state !== 'up') continue;
        // A hung engine would hold the offer for the 30 s request timeout; a live peer of its can only be replaced there.
        if (silent.has(engine)) {
          if (ticket.owner !== undefined) throw engineSilent(engine, `peer "${peer}"`, reply);
          continue;
        }
        let res: EngineResponse;
        try {
          res = await forward(engine.port, req);
        } catch (e) {
          // It died while answering: whatever it built died with it; offer the session elsewhere.
          log.warn({ engine: engine.slot, peer, err: (e as Error).message }, 'engine failed while answering an offer');
          continue;
        }
        if (res.status === 201) {
          const session = /\/whip\/sessions\/([^/?#]+)$/.exec(String(res.headers.location ?? ''))?.[1];
          if (session) ticket.placed(engine.id, decodeURIComponent(session));
          return res;
        }
        // The client hears the refusal of the candidate ranked first (the likeliest to have room, ready
        // ones first): its reason (a per-client limit, say) is the one that matters, not that a full
        // candidate tried after it refused too.
        if (last === undefined || res.status !== 503) last = res;
        // Only a load refusal (503) moves on, and never for a live peer: it must be replaced where it runs.
        if (res.status !== 503 || ticket.owner !== undefined) break;
      }
      if (last) return machineWide(last);
      throw refuse(reply, errors.ENGINE_UNAVAILABLE(ticket.owner !== undefined ? `the engine running peer "${peer}" is not answering` : live().length > 0 ? 'no engine process is answering' : 'no engine process is up'), 1);
    } finally {
      ticket.release();
    }
  };

  /**
   * An engine's refusal for a limit it holds a share of (`--max-sessions`,
   * `--max-pending-sessions`, the per-client one), worded with the machine's
   * limit, which is the one the operator set: an engine says "its maximum of
   * 250 sessions" where the server was given 500.
   */
  const machineLimits = {
    sessions: options.maxSessions ?? 500,
    pending: options.maxPendingSessions ?? 50,
    perClient: options.maxPendingSessionsPerClient ?? defaultMaxPendingSessionsPerClient(options.maxPendingSessions ?? 50),
  };
  const machineWide = (res: EngineResponse): EngineResponse => {
    if (res.status !== 503) return res;
    const problem = jsonOf<{ code?: string; of?: string; instance?: string }>(res);
    let e: EarshotError | undefined;
    if (problem?.code === errors.OVERLOADED.code && (problem.of === 'sessions' || problem.of === 'pending')) {
      e = errors.OVERLOADED(problem.of === 'sessions' ? machineLimits.sessions : machineLimits.pending, problem.of, processes);
    } else if (problem?.code === errors.TOO_MANY_PENDING.code) e = errors.TOO_MANY_PENDING(machineLimits.perClient, processes);
    return e ? { ...res, body: Buffer.from(JSON.stringify(e.toProblem(problem?.instance))) } : res;
  };

  app.post<{ Params: { room: string; peer: string } }>(
    '/whip/:room/:peer',
    {
      config: { access: 'publish', body: 'sdp' },
      bodyLimit: MAX_SDP_BYTES,
      // Refused here, by the front or the cluster — before the handler (415, 413), a bad name, shutting down,
      // no engine up, the peer's lock, Redis away, no node with room — no engine counted it; not a missing or
      // wrong token (401, 403), as in one process. An engine's own refusal is relayed, not thrown, and counted
      // there (or, for load, by countLoadRefusal). A 503 for another node's offer is counted by that node, which relays it.
      onError: async (req, _reply, error) => {
        const problem = problemFor(error, req.headers['content-type']);
        if (problem.statusCode === 401 || problem.statusCode === 403 || (problem.statusCode === 503 && isNodeHop(req))) return;
        countRefusal(problem.code);
      },
    },
    async (req, reply) => {
      const { room, peer } = req.params;
      checkName('room', room);
      checkName('peer', peer);
      if (closing) throw refuse(reply, errors.SHUTTING_DOWN(), RETRY_AFTER_SECONDS);
      if (node) return await node.publish(req, reply, peer);
      const res = await placeLocally(req, reply, peer);
      countLoadRefusal(res);
      return relay(reply, res);
    },
  );

  const toSession = async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    const notFound = () => errors.SESSION_NOT_FOUND(req.params.id);
    const local = await placement.ownerOfSession(req.params.id);
    // Not on this node: in a cluster, the node that runs it answers.
    if (local === undefined && node) return node.toOwner(req, reply, () => node.ownerOfSession(req.params.id), notFound);
    const what = 'this session';
    // A DELETE for a hung engine is passed on all the same (it ends the session once the engine
    // answers; a client seldom repeats a DELETE), and answered 202 at once, not held for the request timeout.
    const engine = engineOf(local);
    if (req.method === 'DELETE' && engine?.state === 'up' && silent.has(engine)) {
      // Answered here, not by the engine: its If-Match is judged here too (the session's ETag is its id).
      checkIfMatch(req, `"${req.params.id}"`);
      forward(engine.port, req).then(
        (res) => log.info({ engine: engine.slot, status: res.status }, 'engine answered a DELETE passed on while it did not answer'),
        (e: unknown) => log.warn({ engine: engine.slot, err: (e as Error).message }, 'engine did not take a DELETE passed on while it did not answer'),
      );
      return reply.code(202).type('application/json; charset=utf-8').send({
        session: req.params.id,
        state: 'ending',
        detail: `engine ${engine.slot}, which runs this session, is not answering (${silentFor(engine)}); the DELETE was passed on and ends the session when it answers (its recordings are then final)`,
      });
    }
    return forwardToOwner(await owned(local, notFound, what, reply), req, reply, what);
  };
  app.delete<{ Params: { id: string } }>('/whip/sessions/:id', { config: { access: 'publish' } }, toSession);
  app.patch<{ Params: { id: string } }>('/whip/sessions/:id', { config: { access: 'publish', methodNotAllowed: true }, bodyLimit: MAX_SDP_BYTES }, toSession);

  // ---- health and statistics
  /**
   * Why this machine is degraded beyond what its engines report of their own
   * workers: engines (re)starting or lately exited, the cluster. /health lists
   * them, and the front's `earshot_pool_degraded` series says 1 while there are any.
   */
  const frontReasons = (now: number): string[] => {
    const reasons: string[] = [];
    for (const e of engines) {
      if (e.state !== 'up') reasons.push(`engine ${e.slot} ${e.state === 'starting' ? (e.restarts > 0 ? 'restarting' : 'starting') : e.state}`);
      else if (silent.has(e)) reasons.push(`engine ${e.slot} has sent ${silentFor(e)} (hung, or starved of CPU): it takes no new sessions, and its sessions may have stalled`);
      if (e.lastExit?.wasUp && now - e.lastExit.at < HEALTH_WINDOW_MS) {
        reasons.push(`${((now - e.lastExit.at) / 1000).toFixed(1)} s ago: engine ${e.slot} exited (${e.lastExit.signal ?? `code ${e.lastExit.code}`}); its sessions ended`);
      }
    }
    const cluster = node?.health();
    if (cluster?.problem) reasons.push(`cluster: ${cluster.problem}; this node stays out of the cluster and refuses new sessions (EARSHOT_CLUSTER_UNAVAILABLE)`);
    else if (cluster?.redis === 'down') reasons.push('cluster: Redis unreachable; new sessions are refused (EARSHOT_CLUSTER_UNAVAILABLE) until it is back');
    return reasons;
  };
  /** Why a new session would be refused (`load` of /health): the machine's own reasons first, then each engine's. */
  const notReady = (cluster: ReturnType<ClusterNode['health']> | undefined, reports: Array<{ slot: number; report: EngineReport }>): string[] => [
    ...(closing ? ['shutting down'] : []),
    ...(cluster?.state === 'draining' ? ['this node is draining: it takes no new sessions (a POST to it is forwarded to another node)'] : []),
    ...(cluster?.problem ? [`out of the cluster: ${cluster.problem}`] : cluster !== undefined && cluster.redis !== 'up' ? ['Redis unreachable'] : []),
    ...(reports.length === 0 ? [live().length > 0 ? 'no engine process is answering' : 'no engine process is up'] : []),
    ...machineFull(reports.map((r) => r.report)),
    ...reports.flatMap((r) => r.report.loadReasons.map((x) => `engine ${r.slot}: ${engineShare(x)}`)),
  ];
  /**
   * The machine's `--max-sessions` reached: each engine holds only its share, rounded up, so with
   * one engine full and another with room the front refuses every new session all the same
   * (placeLocally counts the machine's) and must not read as ready. (Pending sessions need no
   * such count: the front enforces no machine-wide pending limit, and an engine at its share
   * says it is not ready itself.)
   */
  const machineFull = (reports: readonly EngineReport[]): string[] => {
    const sessions = machineSessions(reports);
    return sessions >= machineLimits.sessions ? [`${sessions} sessions on this machine, the most allowed (--max-sessions ${machineLimits.sessions})`] : [];
  };
  /**
   * The machine's sessions: the engines' last reports, or the sessions placed since if more (the
   * engines report every 250 ms; a session placed or started since counts at once).
   */
  const machineSessions = (reports: readonly EngineReport[]): number => Math.max(reports.reduce((n, r) => n + r.peers, 0), placement.sessions);
  /** An engine's limit is its share of the machine's (`ceil(limit / N)`): its reason says so, naming the limit the operator set. */
  const engineShare = (reason: string): string =>
    reason
      .replace(/\(--max-sessions (\d+)\)/, (_m, n: string) => `(its share, ${n}, of --max-sessions ${machineLimits.sessions})`)
      .replace(/\(--max-pending-sessions (\d+)\)/, (_m, n: string) => `(its share, ${n}, of --max-pending-sessions ${machineLimits.pending})`);
  app.get('/health', async () => {
    const now = Date.now();
    // Every engine up, silent ones with their last report (counts that only go up must not drop), but only
    // those that answer can be ready.
    const up = live();
    const reasons = frontReasons(now);
    for (const e of up) for (const r of e.report?.health.reasons ?? []) reasons.push(`engine ${e.slot}: ${r}`);
    const reports = up.flatMap((e) => (e.report ? [{ slot: e.slot, report: e.report }] : []));
    const answering = reports.filter((r) => !silent.has(engines[r.slot]));
    const cluster = node?.health();
    // A node that cannot place (no Redis, or out of the cluster) or is draining is not ready for publishers.
    const ready = !closing && answering.some((r) => r.report.ready) && machineFull(answering.map((r) => r.report)).length === 0 && (cluster === undefined || (cluster.redis === 'up' && cluster.state === 'up' && !cluster.problem));
    const restartTimes = reports.map((r) => r.report.health.lastRestartAt).filter((t): t is string => t !== null).sort();
    return {
      status: reasons.length > 0 ? 'degraded' : 'ok',
      reasons,
      ready,
      ...(!ready ? { load: notReady(cluster, answering) } : {}),
      uptimeSeconds: Math.round((performance.now() - startedAt) / 1000),
      peers: reports.reduce((n, r) => n + r.report.peers, 0),
      rooms: new Set(reports.flatMap((r) => r.report.roomNames)).size,
      poolThreads: reports.reduce((n, r) => n + r.report.poolThreads, 0),
      workerRestarts: retired.workerRestarts + reports.reduce((n, r) => n + r.report.health.workerRestarts, 0),
      lastRestartAt: restartTimes[restartTimes.length - 1] ?? null,
      quarantined: reports.flatMap((r) => r.report.health.quarantined),
      access: { publish: access.publishOpen ? 'open' : 'token', admin: access.adminOpen ? 'open' : 'token' },
      processes,
      engines: summaries(),
      ...(cluster ? { cluster } : {}),
    };
  });

  app.get('/stats', async () => machineStats());

  app.get<{ Params: { peer: string }; Querystring: { histogram?: string } }>('/stats/:peer', async (req, reply) => {
    // Checked here too: an engine's 400 would read as "not this engine's peer", and the answer be a 404.
    const histogram = queryFlag(req.query.histogram, 'histogram');
    // A live peer of an engine that does not answer: say so, not another engine's 404.
    const owner = engineOf(await placement.ownerOfPeer(req.params.peer));
    if (owner && owner.state === 'up' && silent.has(owner)) throw engineSilent(owner, `peer "${req.params.peer}"`, reply);
    // A live peer runs on one engine; an ended one may be remembered by several (it ran on each in turn),
    // or by the front (its engine died with it): the newest wins.
    const answers = await fanOut(req);
    let best: { engine: number; doc: { state?: string; createdAt?: string } } | undefined;
    for (const { engine, res } of answers) {
      if (res.status !== 200) continue;
      const doc = jsonOf<{ state?: string; createdAt?: string }>(res);
      if (!doc) continue;
      if (!best || rank(doc) > rank(best.doc)) best = { engine: engine.slot, doc };
    }
    // The front keeps every ended peer's final figures, but an engine that still has the session
    // answers for it: its answer has what was asked (?histogram), which the front's copy does not.
    const exited = engineSessions.endedPeer(req.params.peer);
    if (exited && (!best || rank(exited) > rank(best.doc))) best = { engine: exited.engine, doc: histogram ? Object.assign({}, exited, { latencyHistogram: null }) : exited };
    const peer = req.params.peer;
    // This machine remembers only an ended session of the peer: if another node runs it now, its live
    // figures are the answer, whichever node is asked (not the ended one here, or the answer would
    // depend on which node a load balancer picked).
    if (best && best.doc.state === 'ended' && node && !isNodeHop(req)) {
      let elsewhere: string | undefined;
      try {
        elsewhere = await node.ownerOfPeer(peer);
      } catch {
        // Redis away: what this machine knows is still an answer.
      }
      // The owner's answer, when it has one; otherwise (gone from the registry, not answering, or its
      // session just ended) this machine's ended record is still the answer.
      const live = elsewhere !== undefined && elsewhere !== node.id ? await node.readFrom(elsewhere, req) : undefined;
      if (live?.status === 200) return relay(reply, live);
    }
    if (best) return reply.code(200).type('application/json; charset=utf-8').send({ ...best.doc, engine: best.engine });
    if (node) {
      // A live peer elsewhere: its node answers. An ended one: the nodes that ran it remember it, the newest wins.
      const ended = async () => {
        let newest: { state?: string; createdAt?: string } | undefined;
        for (const res of await node.askOtherNodes(req, reply)) {
          const doc = res.status === 200 ? jsonOf<{ state?: string; createdAt?: string }>(res) : undefined;
          if (doc && (!newest || rank(doc) > rank(newest))) newest = doc;
        }
        return newest ? reply.code(200).type('application/json; charset=utf-8').send(newest) : undefined;
      };
      return node.toOwner(req, reply, () => node.ownerOfPeer(peer), () => errors.PEER_NOT_FOUND(peer, 'known'), ended);
    }
    if (answers[0]) return relay(reply, answers[0].res);
    throw errors.PEER_NOT_FOUND(req.params.peer, 'known');
  });

  const toPeer = async (req: FastifyRequest<{ Params: { peer: string; id?: string } }>, reply: FastifyReply) => {
    // A listener's route answers as one process does when its peer is not here: the listener is not found.
    const id = req.params.id;
    const notFound = () => (id !== undefined ? errors.LISTENER_NOT_FOUND(id, req.params.peer) : errors.PEER_NOT_FOUND(req.params.peer));
    const local = await placement.ownerOfPeer(req.params.peer);
    if (local === undefined && node) return node.toOwner(req, reply, () => node.ownerOfPeer(req.params.peer), notFound);
    const what = `peer "${req.params.peer}"`;
    return forwardToOwner(await owned(local, notFound, what, reply), req, reply, what);
  };
  app.post<{ Params: { peer: string } }>('/peers/:peer/recording', { bodyLimit: 16 * 1024 }, toPeer);
  // Without an upgrade (the upgrade itself is spliced below): the peer's engine answers as one process
  // does — 426, or the peer's or branch's 404 — rather than the front's 404 for an unknown route.
  app.get<{ Params: { peer: string } }>('/peers/:peer/audio', toPeer);
  app.delete<{ Params: { peer: string } }>('/peers/:peer/recording', toPeer);
  // WHEP listeners: to wherever the peer runs (the session URL names the peer for this).
  app.options('/whep/:peer', whipOptions);
  app.options('/whep/:peer/:id', whipOptions);
  notAllowed(app, '/whep/:peer', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST, OPTIONS');
  notAllowed(app, '/whep/:peer/:id', ['GET', 'PUT', 'POST'], 'DELETE, OPTIONS');
  app.post<{ Params: { peer: string } }>('/whep/:peer', { bodyLimit: MAX_SDP_BYTES, config: { body: 'sdp' } }, toPeer);
  app.delete<{ Params: { peer: string; id: string } }>('/whep/:peer/:id', toPeer);
  app.patch<{ Params: { peer: string; id: string } }>('/whep/:peer/:id', { config: { methodNotAllowed: true }, bodyLimit: MAX_SDP_BYTES }, toPeer);

  // ---- recordings: one directory for the machine, served here (signed links verify wherever they were made)
  // A download another node of the cluster forwards counts against the client it names (ClusterNode.downloadClient).
  serveRecording = registerRecordingRoutes(app, { store }, access, links, downloadLimits, (req) => (node ? node.downloadClient(req) : clientOf(req)));
  await app.register(fastifyStatic, { root: store.dir, serve: false, decorateReply: true });

  // ---- pipelines and rooms
  app.get('/pipelines', async (req, reply) => {
    const answers = (await fanOut(req)).filter((a) => a.res.status === 200);
    if (answers.length === 0) return relay(reply, await forward(anyEngine().port, req));
    type Listing = { pipelines: Array<{ name: string; inUse: string | null }> };
    const docs = answers.map((a) => jsonOf<Listing>(a.res));
    const first = docs[0];
    if (!first) return relay(reply, answers[0].res);
    // Each engine knows only its own sessions: a pipeline is in use if it is on any of them.
    for (const p of first.pipelines) p.inUse = mergeUses(docs.map((d) => d?.pipelines.find((q) => q.name === p.name)?.inUse ?? null));
    return reply.type('application/json; charset=utf-8').send(first);
  });
  app.get('/pipelines/:name', async (req, reply) => relay(reply, await forward(anyEngine().port, req)));
  app.put<{ Params: { name: string } }>('/pipelines/:name', { bodyLimit: 256 * 1024 }, async (req, reply) => {
    // In a cluster, a change Redis cannot share is refused rather than made on this node alone.
    node?.refuseChangeWithoutRedis(reply);
    const res = await onEveryEngine(req);
    if (node && res.status < 300) await node.changed(reply, 'pipeline', req.params.name, bodyOf(req)?.toString('utf8'));
    return relay(reply, res);
  });
  app.delete<{ Params: { name: string } }>('/pipelines/:name', async (req, reply) => {
    node?.refuseChangeWithoutRedis(reply);
    // Whether it is in use is every engine's to say: one that does not answer (silent, or not within the
    // read's time) may run it.
    type Listing = { writable: boolean; pipelines: Array<{ name: string; inUse: string | null }> };
    const answered = (await fanOut(req, 'GET', '/pipelines')).filter((a) => a.res.status === 200);
    const unanswered = live().find((e) => !answered.some((a) => a.engine === e));
    if (unanswered) throw refuse(reply, errors.ENGINE_UNAVAILABLE(`engine ${unanswered.slot} did not say whether it runs pipeline "${req.params.name}"; retry once it answers`), RETRY_AFTER_SECONDS);
    const listings = answered.map((a) => jsonOf<Listing>(a.res));
    const uses = mergeUses(listings.map((l) => l?.pipelines.find((p) => p.name === req.params.name)?.inUse ?? null));
    // Bundled pipelines: the engines answer that they are read-only, in use or not (as one process does).
    if (uses && !listings.some((l) => l?.writable === false)) throw errors.PIPELINE_IN_USE(req.params.name, uses);
    const res = await onEveryEngine(req);
    if (node && res.status < 300) await node.changed(reply, 'pipeline', req.params.name, undefined);
    return relay(reply, res);
  });
  /**
   * What an engine that is up runs for each pipeline file it found invalid
   * (edited on disk while it ran), by file name: a restarted engine loads these
   * instead of failing on the files. None up, or none answering: {} (the
   * restarted engine then leaves such files out, and says so).
   */
  async function previousPipelines(restarting: EngineProcess): Promise<Record<string, unknown>> {
    const versions: Record<string, unknown> = {};
    const sibling = live().find((e) => e !== restarting);
    if (!sibling) return versions;
    try {
      const listing = jsonOf<{ invalidFiles?: Array<{ file: string; pipeline: string; previousVersionLoaded: boolean }> }>(await requestEngine(sibling.port, 'GET', '/pipelines', ownHeaders()));
      for (const f of listing?.invalidFiles ?? []) {
        if (!f.previousVersionLoaded) continue;
        const res = await requestEngine(sibling.port, 'GET', `/pipelines/${encodeURIComponent(f.pipeline)}`, ownHeaders());
        const doc = res.status === 200 ? jsonOf<unknown>(res) : undefined;
        if (doc !== undefined) versions[f.file] = doc;
      }
    } catch (e) {
      log.warn({ engine: sibling.slot, err: (e as Error).message }, 'could not read the pipelines of a running engine for a restarted one');
    }
    return versions;
  }
  /**
   * Makes the engine's bindings the machine's, kept as they are: one bound to
   * a pipeline the engine has not loaded (an edit of rooms.json) is kept too,
   * and its room's streams get 404 naming the pipeline, as on a single server.
   */
  async function catchUpRooms(engine: EngineProcess): Promise<void> {
    if (engine.state !== 'up') return;
    // Over the IPC channel, whose messages an engine takes in order: a snapshot that arrives late (its call
    // timed out) is replaced by the next one, which every change sends to every engine (catchUpAll).
    const missing = await engine.setRooms(Object.fromEntries(rooms));
    for (const [room, pipeline] of Object.entries(missing)) {
      if (missingLogged.get(room) === pipeline) continue;
      missingLogged.set(room, pipeline);
      log.error({ room, pipeline, file: roomsFile?.path }, `room "${room}" is bound to pipeline "${pipeline}", which is not loaded: its streams get 404 until the pipeline is back or the room is bound again`);
    }
    for (const room of [...missingLogged.keys()]) if (!Object.hasOwn(missing, room)) missingLogged.delete(room);
  }
  /**
   * Gives every engine that is up the machine's bindings; one that fails (it
   * exited, or did not answer) is logged, and the others still get them (a
   * restarted engine is caught up when it is back).
   */
  async function catchUpAll(): Promise<void> {
    for (const engine of live()) {
      await catchUpRooms(engine).catch((e: unknown) => log.error({ engine: engine.slot, err: (e as Error).message }, 'engine did not take the room bindings'));
    }
  }
  /**
   * Applies what changed in rooms.json on disk since it was last read (an
   * edit, another server sharing the directory) to the machine's bindings and
   * every engine; run in turn. A file that is not room bindings rejects with
   * `EARSHOT_ROOM_BINDINGS_INVALID`, nothing changed.
   */
  async function syncRoomsFromDisk(): Promise<void> {
    if (!roomsFile) return;
    let changed = false;
    for (const { room, pipeline } of await roomsFile.changes()) {
      if (rooms.get(room) === pipeline) continue;
      if (pipeline === undefined) rooms.delete(room);
      else rooms.set(room, pipeline);
      changed = true;
      log.info({ room, pipeline: pipeline ?? null, file: roomsFile.path }, 'room binding changed on disk');
    }
    if (changed) await catchUpAll();
  }
  const stopWatchingRooms =
    roomsFile && options.watchPipelines !== false
      ? roomsFile.watch(
          () =>
            void inTurn(syncRoomsFromDisk).catch((e: unknown) =>
              log.error(
                { file: roomsFile.path, err: (e as Error).message },
                `rooms.json changed on disk but cannot be read: the room bindings stay as they were${roomsFile.readOnly ? '' : ', and changes over HTTP are refused until it is fixed'}`,
              ),
            ),
          (e) =>
            log.warn({ file: roomsFile.path, code: e.code, err: e.message }, `cannot watch the pipelines directory: rooms.json edited on disk applies ${roomsFile.readOnly ? 'at restart' : 'at the next change over HTTP or restart'}`),
        )
      : undefined;
  /**
   * A room's binding changed on every engine, in turn with the other changes:
   * the first engine decides (its 404 or 400 comes back, nothing changed);
   * then the bindings file is written (a write that fails undoes the first
   * engine's change: 500, nothing changed); then the other engines follow.
   */
  const changeRoom = (req: FastifyRequest<{ Params: { room: string } }>) =>
    inTurn(() => (roomsFile ? roomsFile.locked(() => changeRoomNow(req)) : changeRoomNow(req)));
  /** `changeRoom`'s change, in turn (and, with a bindings file, holding its lock). */
  async function changeRoomNow(req: FastifyRequest<{ Params: { room: string } }>): Promise<EngineResponse> {
    const room = req.params.room;
    // Onto what the file holds now, as a single server does (core/rooms.ts).
    if (roomsFile && !roomsFile.readOnly) await syncRoomsFromDisk();
    const [first] = upServingFirst();
    if (!first) throw errors.ENGINE_UNAVAILABLE('every engine process is starting or restarting');
    const res = await requestEngine(first.port, req.method, req.url, forwardedHeaders(req), bodyOf(req));
    if (res.status >= 400) return res;
    const bound = req.method === 'PUT' ? jsonOf<{ pipeline?: string }>(res)?.pipeline : undefined;
    const before = rooms.get(room);
    if (bound !== before && roomsFile) {
      const next = new Map(rooms);
      if (bound === undefined) next.delete(room);
      else next.set(room, bound);
      try {
        await roomsFile.write(byRoom(next));
      } catch (e) {
        // The machine's bindings, still as they were: a binding to a pipeline not loaded is put back too.
        await first.setRooms(Object.fromEntries(rooms)).catch((err: unknown) => log.error({ engine: first.slot, room, err: (err as Error).message }, 'room binding not undone on an engine'));
        throw e;
      }
    }
    if (bound === undefined) rooms.delete(room);
    else rooms.set(room, bound);
    // The first engine too: a snapshot it has not taken yet (a catch-up that timed out) would undo its change.
    await catchUpAll();
    return res;
  }
  app.get('/rooms', async (req, reply) => relay(reply, await forward(anyEngine().port, req)));
  app.get('/rooms/:room', async (req, reply) => relay(reply, await forward(anyEngine().port, req)));
  app.put<{ Params: { room: string } }>('/rooms/:room', { bodyLimit: 4096 }, async (req, reply) => {
    node?.refuseChangeWithoutRedis(reply);
    let res = await changeRoom(req);
    // A pipeline another node has just stored may not have reached this one yet: fetch it, then bind.
    if (node && res.status === 404 && jsonOf<{ code?: string }>(res)?.code === errors.PIPELINE_NOT_FOUND.code) {
      const wanted = pipelineOfBinding(bodyOf(req));
      if (typeof wanted === 'string' && (await node.fetchPipeline(wanted))) res = await changeRoom(req);
    }
    const bound = res.status < 300 ? jsonOf<{ pipeline?: string }>(res)?.pipeline : undefined;
    if (node && bound) await node.changed(reply, 'room', req.params.room, bound);
    return relay(reply, res);
  });
  app.delete<{ Params: { room: string } }>('/rooms/:room', async (req, reply) => {
    node?.refuseChangeWithoutRedis(reply);
    const res = await changeRoom(req);
    if (node && res.status < 300) await node.changed(reply, 'room', req.params.room, undefined);
    return relay(reply, res);
  });

  // ---- live events and metrics
  // The front holds the streams (its engines' /events are never reached): the limits are the machine's.
  registerEventRoutes(app, { stats: machineStats, sessions$, events$ }, eventStreamLimits(options));
  const frontMetrics = new client.Registry();
  new client.Counter({
    name: 'earshot_engine_restarts_total',
    help: 'Engine processes restarted after they exited, by slot.',
    registers: [frontMetrics],
    collect() {
      this.reset();
      for (const e of engines) this.inc({ slot: String(e.slot) }, e.restarts);
    },
    labelNames: ['slot'],
  });
  // Same name and help as the engines' counter: the front's own refusals are its `engine="front"` series.
  new client.Counter({
    name: 'earshot_sessions_refused_total',
    help: 'Offers refused, by error code.',
    labelNames: ['code'],
    registers: [frontMetrics],
    collect() {
      this.reset();
      for (const [code, n] of Object.entries(frontRefusedBy)) this.inc({ code }, n);
    },
  });
  // The sessions no engine can count: those that ended with their engine. The engines' own ends are in their expositions.
  new client.Counter({
    name: 'earshot_sessions_ended_total',
    help: 'Sessions ended, by reason.',
    registers: [frontMetrics],
    labelNames: ['reason'],
    collect() {
      this.reset();
      if (engineSessions.endedByExit > 0) this.inc({ reason: 'engine-exited' }, engineSessions.endedByExit);
    },
  });
  // Same name as the engines' gauge: its engine="front" series is 1 while /health is degraded for what only
  // the front sees (an engine restarting or lately exited, the cluster), so one alert on the metric covers all.
  new client.Gauge({
    name: 'earshot_pool_degraded',
    help: '1 while GET /health says degraded (a worker restarting, or a worker fault within the health window), else 0.',
    registers: [frontMetrics],
    collect() {
      this.set(frontReasons(Date.now()).length > 0 ? 1 : 0);
    },
  });
  new client.Gauge({
    name: 'earshot_engines_up',
    help: 'Engine processes up and serving.',
    registers: [frontMetrics],
    collect() {
      this.set(serving().length);
    },
  });
  const frontExposed = withProcessMetrics(frontMetrics);
  app.get('/metrics', { config: { access: 'metrics' } }, async (req, reply) => {
    const texts = (await fanOut(req)).filter((a) => a.res.status === 200).map((a) => ({ label: 'engine', value: String(a.engine.slot), text: a.res.body.toString('utf8') }));
    texts.push({ label: 'engine', value: 'front', text: await frontExposed.metrics() });
    return reply.type(frontExposed.contentType).send(mergeExpositions(texts));
  });

  registerDashboardRoutes(app);

  // GET /peers/:peer/audio as a WebSocket: spliced to the engine, or the node, that runs the peer.
  installUpgradeProxy(app.server, async (req) => {
    // Whatever the path, the admin role first (the only WebSocket is the admin's), with its Host checks:
    // the splice drops a proxy's forwarding headers, so the engine could not tell a proxied request.
    access.check(req, 'admin');
    // The path as the engines' router reads it: each segment percent-decoded (`/peers/alice/%61udio` is
    // the audio route there), empty ones aside. Matched on the raw text, such a path went by unchecked.
    const segments = (req.url ?? '').split(/[?#]/)[0].split('/').filter((segment) => segment !== '');
    let decoded: string[];
    try {
      decoded = segments.map((segment) => decodeURIComponent(segment));
    } catch {
      throw errors.BAD_REQUEST('the path is not valid percent-encoding');
    }
    const audioRoute = decoded.length === 3 && decoded[0].toLowerCase() === 'peers' && decoded[2].toLowerCase() === 'audio';
    if (!audioRoute) {
      // An engine has the same routes: it answers as one process does (404 for a path no route has,
      // 400 for a route without a WebSocket), where the front could only say 400 for every path.
      const any = live().find((e) => !silent.has(e));
      if (any) return { host: '127.0.0.1', port: any.port };
      throw noWebSocketHere((req.url ?? '').split('?')[0]);
    }
    const peer = decoded[1];
    checkName('peer', peer);
    const notFound = () => errors.PEER_NOT_FOUND(peer);
    const local = await placement.ownerOfPeer(peer);
    if (local === undefined && node) return node.upgradeTargetOf(peer, req.headers[HOP_HEADER], notFound);
    const engine = await owned(local, notFound, `peer "${peer}"`);
    return { host: '127.0.0.1', port: engine.port };
  });

  let closingPromise: Promise<void> | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  const cluster: EarshotCluster = {
    app,
    async listen() {
      if (closingPromise) throw errors.LISTEN_FAILED(host, port, 'this server has been closed. Create a new one.');
      if (listening) throw errors.LISTEN_FAILED(host, port, 'listen() was already called; a server listens once.');
      listening = true;
      const started = await Promise.allSettled(engines.map((e) => startEngine(e)));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        await cluster.close();
        throw failed.reason;
      }
      const url = await listenOn(app, host, port);
      node?.start(url);
      return url;
    },
    close() {
      closingPromise ??= (async () => {
        closing = true;
        clearInterval(silenceWatch);
        stopWatchingRooms?.();
        await node?.stopAccepting();
        for (const t of restartTimers) clearTimeout(t);
        restartTimers.clear();
        for (const e of engines) placement.report({ engine: e.id, accepting: false, ready: false, sessions: 0, pending: 0, workerUtilization: 0 });
        // Engines drain first (sessions end, recordings finalize) while the front still answers their DELETEs and /health.
        if (listening) await Promise.all(engines.map((e) => e.shutdown(drainTimeoutMs)));
        // An engine killed after its drain timeout: its sessions' recordings repaired and their ends announced first.
        await engineSessions.settled();
        await node?.leave();
        sessions$.complete();
        events$.complete();
        const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
          markClosed();
        }
      })();
      return closingPromise;
    },
    drain: () => (node ? node.drain() : cluster.close()),
    closed,
    describe: () => ({
      processes,
      threadsPerEngine: threads,
      pipeline: typeof options.pipeline === 'string' ? options.pipeline : (options.pipeline as { name?: string } | undefined)?.name ?? 'default',
      recordings: resolvePath(store.dir),
      engines: engines.map((e) => ({ engine: e.slot, pid: e.pid, port: e.port, icePorts: portShares?.[e.slot] ?? null })),
      ...(node ? { cluster: node.describe() } : {}),
    }),
  };
  return cluster;
}

/** A pipeline option as engines take it: a built Pipeline becomes its document. */
function pipelineOption(p: ClusterOptions['pipeline']): string | PipelineDocument | undefined {
  if (typeof p !== 'object' || p === null) return p;
  // Not checked here: each engine validates it as createServer does, and says what is wrong.
  return (isBuiltPipeline(p) ? p.toJSON() : asPipelineDocument(p)) as PipelineDocument;
}

/** The pipeline a `PUT /rooms/:room` body names, if it is one. */
function pipelineOfBinding(body: Buffer | undefined): unknown {
  try {
    return (JSON.parse(body?.toString('utf8') ?? '') as { pipeline?: unknown } | null)?.pipeline;
  } catch {
    return undefined;
  }
}

/** "In use" reasons of one pipeline from several engines, each said once. */
function mergeUses(uses: Array<string | null>): string | null {
  const parts = [...new Set(uses.flatMap((u) => (u ? u.split('; ') : [])))];
  return parts.length > 0 ? parts.join('; ') : null;
}

/** Orders two remembered states of a peer: live before ended, then the newest session. */
function rank(doc: { state?: string; createdAt?: string }): number {
  return (doc.state === 'ended' ? 0 : 1e15) + (Date.parse(doc.createdAt ?? '') || 0);
}

