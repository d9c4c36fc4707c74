/**
 * `createServer`: the fastify app (WHIP, control API, recordings) around an
 * EarshotCore, with validated options and graceful shutdown.
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Observable } from 'rxjs';
import { loadPipelineFile, parsePipeline, type Pipeline } from '../pipeline/pipeline.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import type { RTCIceServer } from 'werift';
import { iceConfig, isLoopbackHost } from '../rtc/ice-config.js';
import { EarshotCore, type ProcessorScope, type ServerStats, type SessionEvent, type StreamHandle } from './earshot-core.js';
import type { PeerStatsSnapshot } from './peer-registry.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { hasDefaultPool, setDefaultPool } from '../pipeline/operators.js';
import type { ProcessorEvent, ProcessorFactory, ProcessorRegistry } from '../sinks/processors.js';
import { installProblemHandling } from './problem.js';
import fastifyCors from '@fastify/cors';
import fastifyStatic from '@fastify/static';
import { errors } from '../errors.js';
import { Access } from './access.js';
import type { AdmissionOptions } from './admission.js';
import { corsPolicy, checkOrigin } from './cors-policy.js';
import { installAccessControl } from './access-control.js';
import { DownloadLinks } from './download-links.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { registerControlRoutes } from './routes/control.js';
import { registerRecordingRoutes } from './routes/recordings.js';
import { registerPipelineRoutes } from './routes/pipelines.js';
import { registerEventRoutes } from './routes/events.js';
import { registerDashboardRoutes } from './routes/dashboard.js';
import { createMetrics } from './metrics.js';
import { registerWhipRoutes } from './routes/whip.js';
import { QuietRoutesLogController } from './request-logs.js';
import { loadTls } from './tls.js';
import { checkIceServers } from '../rtc/ice-servers.js';

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
   * WHIP POST, DELETE and PATCH. Default: none — anyone who reaches the port may
   * publish, but only a token holder or an admin may replace a live peer.
   */
  token?: string;
  /**
   * Token of the **admin** role: statistics, events, recordings, pipelines,
   * rooms, recording control and metrics (and publishing). It may be the same
   * value as `token`. Default: none — the admin API is open, which is allowed
   * only on a loopback `host` (or with `insecure`); requests must then name a
   * loopback host (protects against DNS rebinding).
   */
  adminToken?: string;
  /**
   * Allow an open role (no token) on a non-loopback `host`, and any Host
   * header. Only for a server that something in front of it already protects.
   * Default false.
   */
  insecure?: boolean;
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
  /** Concurrent recording downloads per client address; more get 429. Default 4. */
  maxDownloadsPerClient?: number;
  /** Concurrent recording downloads in all; more get 429. Default 32. */
  maxDownloads?: number;
  /** A download whose client reads nothing for this long is cut off. Default 30000 ms. */
  downloadIdleTimeoutMs?: number;
  /** Lifetime of the signed download links `GET /recordings` returns. Default 3600 s. */
  downloadLinkSeconds?: number;
  /**
   * Directory of pipeline files (`*.json`, each named after its pipeline),
   * loaded at start and watched for changes. Default: the package's
   * `pipelines/` (default, voice-agent, call-recording, telephony, podcast, handler).
   */
  pipelinesDir?: string;
  /** Reload pipeline files when they change on disk. Default true. */
  watchPipelines?: boolean;
  /**
   * The default pipeline (used when neither the request's `?pipeline=` nor the
   * room's binding names one): the name of a pipeline in `pipelinesDir`, a JSON
   * file path (anything with a "/" or ending in ".json"), a pipeline document,
   * or a built `Pipeline`; the last three are added to the pipelines under
   * their name, in memory. Default: `default` (denoise → WAV + stats).
   */
  pipeline?: string | Pipeline | object;
  /** Directory for recordings (created if missing). Default `recordings`. */
  recordingsDir?: string;
  /** DSP worker threads. Default: one per core (`availableParallelism()`; see docs/performance.md). */
  threads?: number;
  /** Milliseconds between batches sent to the workers. Default 5. */
  batchIntervalMs?: number;
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
  logLevel?: string;
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
  /** Registry for `processor` sinks and `attachProcessor`. Default: the process-wide one `registerProcessor` fills. */
  processors?: ProcessorRegistry;
}

export interface EarshotServer {
  readonly app: FastifyInstance;
  readonly core: EarshotCore;
  /** The current version of the default pipeline. */
  readonly pipeline: Pipeline;
  /** Every new stream as it starts, with its audio, encoded frames and stats. */
  readonly streams$: Observable<StreamHandle>;
  /** Events emitted by processors (`context.emit`) on any stream. */
  readonly events$: Observable<ProcessorEvent>;
  /** Sessions starting and ending. */
  readonly sessions$: Observable<SessionEvent>;
  /** `{ server, peers }` (as `GET /stats`) every `intervalMs` (default 1000); each subscriber gets its own timer. */
  stats$(intervalMs?: number): Observable<{ server: ServerStats; peers: PeerStatsSnapshot[] }>;
  /** Registers a main-thread processor in this server's registry (see `registerProcessor`). */
  registerProcessor(name: string, factory: ProcessorFactory): void;
  /** Attaches a registered processor to one peer, one room or every stream, now and later; returns a detach function. */
  attachProcessor(name: string, scope?: ProcessorScope): () => void;
  /** Loads a custom worker stage module in every worker; resolves to the stage types it provides. */
  registerStageModule(pathOrUrl: string | URL): Promise<string[]>;
  /** Starts the workers and the HTTP listener; resolves to the base URL (`https://…` with `tlsCert`). */
  listen(): Promise<string>;
  /** Graceful shutdown: refuse new sessions, finalize every recording, stop workers and HTTP. */
  close(): Promise<void>;
}


/** How long `close()` lets open HTTP responses finish before cutting their connections. */
const CLOSE_GRACE_MS = 2000;

export async function createServer(options: CreateServerOptions = {}): Promise<EarshotServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`options.port must be 0–65535, got ${port}`);
  const access = new Access({ publishToken: options.token, adminToken: options.adminToken, insecure: options.insecure });
  // An open admin API on a reachable address hands out every recording: refuse it unless told otherwise.
  if (access.adminOpen && !options.insecure && !isLoopbackHost(host)) throw errors.INSECURE_BIND(host);
  const downloadLimits = {
    perClient: positiveInteger('maxDownloadsPerClient', options.maxDownloadsPerClient ?? 4),
    total: positiveInteger('maxDownloads', options.maxDownloads ?? 32),
    idleTimeoutMs: positiveInteger('downloadIdleTimeoutMs', options.downloadIdleTimeoutMs ?? 30_000),
  };
  const links = new DownloadLinks(options.downloadLinkSeconds ?? 3600);
  for (const [name, list] of [['corsOrigins', options.corsOrigins], ['whipCorsOrigins', options.whipCorsOrigins]] as const) {
    for (const origin of list ?? []) checkOrigin(name, origin, name === 'whipCorsOrigins');
  }
  const tls = loadTls(options.tlsCert, options.tlsKey);
  const advertisedIceServers = checkIceServers(options.iceServers ?? []);
  // A malformed ICE address or port range fails here, not at the first publish.
  iceConfig({ hostAddresses: options.iceHostAddresses, portRange: options.icePortRange });
  const pool = new WorkerPool({
    threads: options.threads,
    batchIntervalMs: options.batchIntervalMs,
    taskTimeoutMs: options.stageTimeoutMs,
    maxStreamCrashes: options.maxStreamCrashes,
    maxQueuedFrames: options.maxQueuedFrames,
  });
  let pipelines: PipelineRegistry;
  let pipeline: Pipeline;
  // Reload messages go to the app's logger once it exists.
  const reloadLog: { log?: FastifyBaseLogger } = {};
  try {
    if (options.stageModules?.length) {
      await pool.start();
      for (const m of options.stageModules) await pool.registerStageModule(m);
    }
    pipelines = await PipelineRegistry.load({
      dir: options.pipelinesDir ?? join(packageRoot(), 'pipelines'),
      customStages: () => pool.customStageTypes,
      onReload: (name, change) => reloadLog.log?.info({ pipeline: name, change }, change === 'loaded' ? 'pipeline reloaded from disk' : 'pipeline file removed'),
      onReloadError: (file, error) =>
        reloadLog.log?.error({ file, problems: error.extensions.problems, err: error.message }, 'pipeline file changed but is invalid; the previous version stays'),
    });
    pipeline = await resolveDefaultPipeline(options.pipeline, pipelines, pool.customStageTypes);
  } catch (e) {
    await pool.close();
    throw e;
  }

  // Typed as the plain-HTTP instance: the HTTPS one has the same API, and EarshotServer.app keeps one type for both.
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: { level: options.logLevel ?? 'info' } }),
    // Polling routes log their requests at debug (request-logs.ts).
    logController: new QuietRoutesLogController(['/health', '/metrics', '/events', ...dashboardRoutes()]),
    bodyLimit: 16 * 1024,
    ...(tls ? { https: tls } : {}),
  }) as unknown as FastifyInstance;
  reloadLog.log = app.log.child({ module: 'pipelines' });
  if (options.watchPipelines !== false) pipelines.watch();
  const core = new EarshotCore({
    pipelines,
    defaultPipeline: pipeline.name,
    recordingsDir: options.recordingsDir ?? 'recordings',
    pool,
    processors: options.processors,
    ice: {
      hostAddresses: options.iceHostAddresses ?? defaultIceHosts(host),
      portRange: options.icePortRange,
      iceServers: options.iceServers,
    },
    mediaTimeoutMs: options.mediaTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    maxSessions: options.maxSessions,
    maxPendingSessions: options.maxPendingSessions,
    admission: options.admission,
    log: app.log.child({ module: 'core' }),
  });

  // CORS first, so that even a refused request carries the headers a browser needs to read the refusal.
  await app.register(fastifyCors, {
    delegator: (req, callback) => callback(null, corsPolicy(req.url, options.corsOrigins ?? [], options.whipCorsOrigins ?? ['*'])),
  });
  installAccessControl(app, access, { metricsPublic: options.metricsPublic === true, publicRoutes: new Set(['/health', ...dashboardRoutes()]) });
  installProblemHandling(app);
  registerWhipRoutes(app, core, access, { iceServers: advertisedIceServers });
  registerControlRoutes(app, core, access);
  registerRecordingRoutes(app, core, access, links, downloadLimits);
  registerPipelineRoutes(app, core);
  registerEventRoutes(app, { stats: () => ({ server: core.stats(), peers: core.peers.snapshots() }), sessions$: core.sessions$, events$: core.events$ });
  registerDashboardRoutes(app);
  // A second static instance, only for `reply.sendFile` of recordings.
  await app.register(fastifyStatic, { root: core.store.dir, serve: false, decorateReply: true });
  const metrics = createMetrics(core);
  app.get('/metrics', { config: { access: 'metrics' } }, async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));

  let closing: Promise<void> | undefined;
  let ownsDefaultPool = false;
  return {
    app,
    core,
    get pipeline() {
      return core.pipeline;
    },
    streams$: core.streams$.asObservable(),
    events$: core.events$.asObservable(),
    sessions$: core.sessions$.asObservable(),
    stats$: (intervalMs) => core.stats$(intervalMs),
    registerProcessor: (name, factory) => core.processors.register(name, factory),
    attachProcessor: (name, scope) => core.attachProcessor(name, scope),
    registerStageModule: (m) => pool.registerStageModule(m),
    async listen() {
      await core.start();
      // Stage operators without an explicit pool share this server's workers while it runs.
      if (!hasDefaultPool()) {
        setDefaultPool(pool);
        ownsDefaultPool = true;
      }
      return app.listen({ host, port });
    },
    close() {
      closing ??= (async () => {
        await core.shutdown();
        if (ownsDefaultPool) setDefaultPool(undefined);
        // Idle keep-alive connections close at once; a client still reading a
        // download gets a short grace period, then its connection is cut so a
        // stalled reader can't hold the shutdown.
        const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
        }
      })();
      return closing;
    },
  };
}

/** The default pipeline from the `pipeline` option; files, documents and built pipelines join the registry. */
async function resolveDefaultPipeline(p: CreateServerOptions['pipeline'], pipelines: PipelineRegistry, customStages: string[]): Promise<Pipeline> {
  if (p === undefined) return pipelines.get('default');
  if (typeof p === 'string' && !p.includes('/') && !p.includes('\\') && !p.endsWith('.json')) return pipelines.get(p);
  let pipeline: Pipeline;
  if (typeof p === 'string') pipeline = await loadPipelineFile(p, { customStages });
  else if ('branches' in p && Array.isArray((p as Pipeline).branches) && typeof (p as Pipeline).toJSON === 'function') pipeline = p as Pipeline;
  else pipeline = parsePipeline(p, 'pipeline', { customStages });
  pipelines.add(pipeline);
  return pipeline;
}

// Exported for src/cluster/ (hook: `--processes N`): engines listen on loopback but announce the front's addresses.
export function defaultIceHosts(host: string): string[] | undefined {
  if (host === 'localhost' || isLoopbackHost(host)) return ['127.0.0.1'];
  if (host === '0.0.0.0' || host === '::') return undefined;
  return isIP(host) ? [host] : undefined;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`options.${name} must be a positive integer, got ${value}`);
  return value;
}
