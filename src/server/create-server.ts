/**
 * `createServer`: the fastify app (WHIP, control API, recordings) around an
 * EarshotCore, with validated options and graceful shutdown.
 */
import { realpathSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';
import { loadPipelineFile, parsePipeline, type Pipeline } from '../pipeline/pipeline.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import { asPipelineDocument, isBuiltPipeline, isPipelineName } from '../pipeline/pipeline-builder.js';
import { iceConfig, isLoopbackHost } from '../rtc/ice-config.js';
import { EarshotCore, type ProcessorScope, type ServerStats, type SessionEvent, type StreamHandle } from '../core/earshot-core.js';
import type { PeerStatsSnapshot } from '../core/peer-registry.js';
import { RoomBindingsFile } from '../core/room-bindings-file.js';
import { isUnspecifiedAddress } from '../core/option-checks.js';
import { WorkerPool } from '../pool/worker-pool.js';
import type { ProcessorEvent, ProcessorFactory, ProcessorStageFactory, ProcessorStageOptions, RegisterProcessorOptions } from '../sinks/processors.js';
import { checkServerOptions, eventStreamLimits, type CreateServerOptions } from './server-options.js';
import { httpServerLimits, installProblemHandling } from './problem.js';
import { continueOnlyWhenRead } from './expect-continue.js';
import { RecordingsStore } from '../sinks/recordings-store.js';
import { installBodyTypeCheck } from './body-types.js';
import { installJsonBodyParser } from './json-body.js';
import { applyConnectionLimit } from './connection-limit.js';
import { refuseDuplicateHost } from './host-header.js';
import { readForwardedHeader } from './forwarded-header.js';
import { errors } from '../errors.js';
import fastifyCors from '@fastify/cors';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import { answerRefusedHandshakes, refuseUpgradesWithoutHandler } from './websocket-upgrades.js';
import { corsDelegator, checkOrigin } from './cors-policy.js';
import type { RouteMethods } from './route-methods.js';
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
import { registerWhepRoutes } from './routes/whep.js';
import { AUDIO_PROTOCOL, registerPeerAudioRoutes } from './routes/peer-audio.js';
import { listenOn } from './listen.js';
import { QuietRoutesLogController } from './request-logs.js';
import { loadTls } from './tls.js';
import { checkIceServers } from '../rtc/ice-servers.js';
import { forwardedClient } from './client-address.js';
import { listenerAccess } from './trust-proxy.js';

export type { CreateServerOptions } from './server-options.js';

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
  registerProcessor(name: string, factory: ProcessorFactory, options?: RegisterProcessorOptions & { stage?: false }): void;
  /** Registers a processor usable as a pipeline stage in this server's registry (see `registerProcessor`). */
  registerProcessor(name: string, factory: ProcessorStageFactory, options: RegisterProcessorOptions & { stage: true | ProcessorStageOptions }): void;
  registerProcessor(name: string, factory: ProcessorFactory | ProcessorStageFactory, options?: RegisterProcessorOptions): void;
  /** Attaches a registered processor to one peer, one room or every stream, now and later; returns a detach function. */
  attachProcessor(name: string, scope?: ProcessorScope): () => void;
  /** Loads a custom worker stage module in every worker; resolves to the stage types it provides. */
  registerStageModule(pathOrUrl: string | URL): Promise<string[]>;
  /**
   * Starts the workers and the HTTP listener; resolves to the base URL
   * (`https://…` with `tlsCert`). Rejects with `EARSHOT_PORT_IN_USE` when
   * another process already listens on `host`:`port`.
   */
  listen(): Promise<string>;
  /**
   * Graceful shutdown: refuse new sessions, finalize every recording, let
   * the stage operators on the streams drain (each chain completes with every
   * frame, up to `processorDrainTimeoutMs`), stop workers and HTTP.
   */
  close(): Promise<void>;
}


/** How long `close()` lets open HTTP responses finish before cutting their connections. */
const CLOSE_GRACE_MS = 2000;

export function createServer(options: CreateServerOptions = {}): Promise<EarshotServer> {
  return buildServer(options, {});
}

/**
 * An engine process of `--processes N` (src/cluster/engine-main.ts): a server
 * on loopback that only the front talks to, so it counts a request against
 * the client the front names in `CLIENT_HEADER` (its own peer is always the
 * front). Anyone else who can reach its loopback port could name another
 * client, but could as well publish to it directly; it gains nothing past the
 * engine's own `maxPendingSessions`. It believes no proxy's forwarding
 * headers (`trustProxy`): the front faces the proxies and has already read
 * them into `CLIENT_HEADER`. It does not count the offers it refuses for
 * load (503): the front may offer the session to another engine, and counts
 * a load refusal once, when it is the answer the client gets. Not part of the
 * library's API.
 * @internal
 */
export function createEngineServer(options: CreateServerOptions, restart?: { previousPipelines: Record<string, unknown> }): Promise<EarshotServer> {
  return buildServer({ ...options, trustProxy: undefined }, { clientOf: (req) => forwardedClient(req.headers, req.ip), countLoadRefusals: false, previousPipelines: restart?.previousPipelines });
}

/** What differs between a server and an engine process. */
interface ServerRole {
  /** Who a request is from, for the per-client limits. Default: its address (`requestClient`). */
  clientOf?: (req: FastifyRequest) => string;
  /** Count offers refused for load (503) in `refusedBy`. Default true; an engine leaves them to its front. */
  countLoadRefusals?: boolean;
  /**
   * A restarted engine: pipeline files that fail to load do not stop its start,
   * and these documents (by file name: its siblings' last good versions) are
   * loaded instead (`PipelineRegistryOptions.previousVersions`).
   */
  previousPipelines?: Record<string, unknown>;
}

async function buildServer(options: CreateServerOptions, role: ServerRole): Promise<EarshotServer> {
  checkServerOptions(options);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const { access, trustProxy } = listenerAccess(options, host);
  const downloadLimits = {
    perClient: options.maxDownloadsPerClient ?? 4,
    total: options.maxDownloads ?? 32,
    idleTimeoutMs: options.downloadIdleTimeoutMs ?? 30_000,
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
    earlyOutputMs: options.earlyOutputMs,
    quietHoldMs: options.quietHoldMs,
    taskTimeoutMs: options.stageTimeoutMs,
    maxStreamCrashes: options.maxStreamCrashes,
    maxQueuedFrames: options.maxQueuedFrames,
  });
  let pipelines: PipelineRegistry;
  let pipeline: Pipeline;
  let roomBindingsFile: RoomBindingsFile | undefined;
  // Reload messages go to the app's logger once it exists.
  const reloadLog: { log?: FastifyBaseLogger } = {};
  // What a pipeline is to the server (the default, a room's), once the core exists to say.
  const pipelineRoles: { of: (name: string) => string | undefined } = { of: () => undefined };
  try {
    if (options.stageModules?.length) {
      await pool.start();
      for (const m of options.stageModules) await pool.registerStageModule(m);
    }
    const pipelinesDir = options.pipelinesDir ?? join(packageRoot(), 'pipelines');
    pipelines = await PipelineRegistry.load({
      dir: pipelinesDir,
      // The package's own files: changed over HTTP they would be lost on the next install.
      readOnly: isBundledPipelinesDir(pipelinesDir),
      previousVersions: role.previousPipelines,
      customStages: () => pool.customStageTypes,
      onReload: (name, change) => reloadLog.log?.info({ pipeline: name, change }, change === 'loaded' ? 'pipeline reloaded from disk' : 'pipeline file removed'),
      // Live sessions keep their version anyway; the default and room bindings would be left without one.
      inUse: (name) => pipelineRoles.of(name),
      onRemovedInUse: (file, name, use) =>
        reloadLog.log?.error({ file, pipeline: name, use }, `pipeline file removed, but the pipeline is in use (${use}): the loaded version stays; restore the file, or choose another default or room binding first`),
      onReloadError: (file, error) =>
        reloadLog.log?.error({ file, problems: error.extensions.problems, err: error.message }, 'pipeline file changed but is invalid; the previous version stays'),
      onWatchError: (e) =>
        reloadLog.log?.warn(
          { code: e.code, err: e.message },
          e.code === 'EMFILE' || e.code === 'ENOSPC'
            ? 'cannot watch the pipelines directory (the system limit on file watches is reached; raise fs.inotify.max_user_instances / max_user_watches): pipeline files edited on disk are not reloaded until restart'
            : 'cannot watch the pipelines directory: pipeline files edited on disk are not reloaded until restart',
        ),
    });
    pipeline = await resolveDefaultPipeline(options.pipeline, pipelines, pool.customStageTypes);
    // Beside the pipelines they name; the bundled ones belong to the package (a reinstall would lose the file).
    roomBindingsFile = await RoomBindingsFile.of(pipelines.dir, { bundled: !pipelines.writable, persist: options.persistRoomBindings });
    // Before the recordings' static files are registered: their plugin warns about a root that
    // does not exist yet, and fails with a message of its own on a root that is a file.
    await new RecordingsStore(options.recordingsDir ?? 'recordings').init();
  } catch (e) {
    await pool.close();
    throw e;
  }

  // Typed as the plain-HTTP instance: the HTTPS one has the same API, and EarshotServer.app keeps one type for both.
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: { level: options.logLevel ?? 'info' } }),
    // Polling routes log their requests at debug (request-logs.ts).
    logController: new QuietRoutesLogController(['/health', '/metrics', '/events', ...dashboardRoutes()]),
    ...httpServerLimits(options.requestTimeoutMs, tls),
    // `req.ip` (the per-client limits, the request logs) is then the client a listed proxy names.
    ...(trustProxy ? { trustProxy } : {}),
  }) as unknown as FastifyInstance;
  applyConnectionLimit(app.server, options.maxConnections);
  refuseDuplicateHost(app);
  if (trustProxy) readForwardedHeader(app.server);
  reloadLog.log = app.log.child({ module: 'pipelines' });
  // Only a restarted engine starts with files it could not load (previousPipelines): said once here, listed by GET /pipelines.
  for (const p of pipelines.fileProblems()) {
    reloadLog.log.error(
      { file: join(pipelines.dir ?? '', p.file), problems: p.problems, err: p.detail },
      p.previousVersionLoaded ? 'pipeline file is invalid; the version the other engines run is loaded' : 'pipeline file is invalid, and no other engine runs a version of it: it is not loaded',
    );
  }
  if (options.watchPipelines !== false) pipelines.watch();
  const core = new EarshotCore({
    pipelines,
    defaultPipeline: pipeline.name,
    roomBindingsFile,
    watchRoomBindings: options.watchPipelines !== false,
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
    maxPendingSessionsPerClient: options.maxPendingSessionsPerClient,
    maxListeners: options.maxListeners,
    maxListenersPerPeer: options.maxListenersPerPeer,
    listenerTimeoutMs: options.listenerTimeoutMs,
    admission: options.admission,
    processorDrainTimeoutMs: options.processorDrainTimeoutMs,
    log: app.log.child({ module: 'core' }),
  });
  pipelineRoles.of = (name) => core.pipelineRole(name);

  // CORS first, so that even a refused request carries the headers a browser needs to read the refusal.
  let routes: RouteMethods | undefined;
  await app.register(fastifyCors, { delegator: corsDelegator(options.corsOrigins ?? [], options.whipCorsOrigins ?? ['*'], () => routes) });
  // WebSocket upgrades go through fastify's routing and hooks (access control, problem responses) before
  // the socket is upgraded. Registered before access control: its own hook must see every upgrade request,
  // or a refused one's socket is never released. Clients send nothing earshot reads: messages are kept small.
  await app.register(fastifyWebsocket, {
    options: { maxPayload: 4096, handleProtocols: (offered: Set<string>) => (offered.has(AUDIO_PROTOCOL) ? AUDIO_PROTOCOL : false) },
  });
  refuseUpgradesWithoutHandler(app);
  answerRefusedHandshakes(app);
  installAccessControl(app, access, { metricsPublic: options.metricsPublic === true, publicRoutes: new Set(['/health', ...dashboardRoutes()]) });
  routes = installProblemHandling(app);
  installBodyTypeCheck(app);
  continueOnlyWhenRead(app);
  installJsonBodyParser(app);
  registerWhipRoutes(app, core, access, { iceServers: advertisedIceServers, clientOf: role.clientOf, countLoadRefusals: role.countLoadRefusals });
  registerWhepRoutes(app, core);
  registerControlRoutes(app, core, access);
  registerPeerAudioRoutes(app, core);
  registerRecordingRoutes(app, core, access, links, downloadLimits);
  registerPipelineRoutes(app, core);
  registerEventRoutes(app, { stats: () => ({ server: core.stats(), peers: core.peers.snapshots() }), sessions$: core.sessions$, events$: core.events$ }, eventStreamLimits(options));
  registerDashboardRoutes(app);
  // A second static instance, only for `reply.sendFile` of recordings.
  await app.register(fastifyStatic, { root: core.store.dir, serve: false, decorateReply: true });
  const metrics = createMetrics(core);
  app.get('/metrics', { config: { access: 'metrics' } }, async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));

  let closing: Promise<void> | undefined;
  /** listen() has been called and has not failed. */
  let listening = false;
  return {
    app,
    core,
    get pipeline() {
      return core.pipeline;
    },
    streams$: core.streams$,
    events$: core.events$,
    sessions$: core.sessions$,
    stats$: (intervalMs) => core.stats$(intervalMs),
    // After close() these would register or attach into a server that runs no more streams, and
    // hand back a detach that does nothing: EARSHOT_SHUTTING_DOWN, as a new session gets.
    registerProcessor: (name, factory, processorOptions) => {
      if (closing) throw errors.SHUTTING_DOWN('registerProcessor() after close() registers into a server that runs no more streams; create a new one with createServer()');
      core.processors.register(name, factory, processorOptions);
    },
    attachProcessor: (name, scope) => {
      if (closing) throw errors.SHUTTING_DOWN('attachProcessor() after close() attaches to a server that runs no more streams; create a new one with createServer()');
      return core.attachProcessor(name, scope);
    },
    registerStageModule: async (m) => {
      if (closing) throw errors.SHUTTING_DOWN('registerStageModule() after close() loads into workers that have stopped; create a new server with createServer()');
      return pool.registerStageModule(m);
    },
    async listen() {
      const closed = () => errors.LISTEN_FAILED(host, port, 'this server has been closed. Create a new one with createServer().');
      if (closing) throw closed();
      if (listening) {
        // Where it listens (port 0 was given a real one), not the address it was asked for.
        const at = app.server.address();
        const bound = at !== null && typeof at === 'object' ? at.port : port;
        throw errors.LISTEN_FAILED(host, bound, 'listen() was already called; a server listens once. Create another with createServer() for another address.');
      }
      listening = true;
      try {
        // Stage operators on this server's streams run on its workers (core.withPool), never another server's.
        await core.start();
        if (closing) throw closed();
        const url = await listenOn(app, host, port);
        // close() during these awaits: no URL of a server that is shutting down.
        if (closing) throw closed();
        return url;
      } catch (e) {
        // A failed listen (the port taken) may be tried again.
        listening = false;
        // close() while listen() waited for the workers: they were stopped under it.
        if (closing) throw closed();
        throw e;
      }
    },
    close() {
      closing ??= (async () => {
        await core.shutdown();
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
  if (typeof p === 'string' && isPipelineName(p)) return pipelines.get(p);
  let pipeline: Pipeline;
  if (typeof p === 'string') pipeline = await loadPipelineFile(p, { customStages });
  else if (isBuiltPipeline(p)) pipeline = p;
  else pipeline = parsePipeline(asPipelineDocument(p), 'pipeline', { customStages });
  // A pipeline of the operator's own directory by the same name would be hidden (unreachable by
  // name), and a PUT of what GET /pipelines/:name shows would overwrite its file with this one.
  // The bundled pipelines may be replaced: their directory is read-only.
  const own = pipelines.dir !== undefined && pipelines.writable && pipelines.has(pipeline.name) ? join(pipelines.dir, `${pipeline.name}.json`) : undefined;
  if (own !== undefined) {
    // The directory's own file, named by its path: the directory's pipeline, reloaded when the file changes.
    if (typeof p === 'string' && sameFile(p, own)) return pipelines.get(pipeline.name);
    throw errors.OPTION_INVALID(
      'pipeline',
      `names its pipeline "${pipeline.name}", as does ${own} in the pipelines directory: it would hide that pipeline, and a PUT /pipelines/${pipeline.name} would overwrite that file with it. Give one of them another "name" (and file name), or name the directory's pipeline instead (--pipeline ${pipeline.name}, or pipeline: "${pipeline.name}" in code)`,
    );
  }
  pipelines.add(pipeline);
  return pipeline;
}

/** The same file, whatever the path's case on a case-insensitive file system, links, or a hard link. */
function sameFile(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    // A file system without inode numbers (FAT) gives 0 for every file: compare where the paths lead.
    if (x.ino === 0 || y.ino === 0) return realpathSync.native(a) === realpathSync.native(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

// Exported for src/cluster/ (hook: `--processes N`): engines listen on loopback but announce the front's addresses.
export function defaultIceHosts(host: string): string[] | undefined {
  if (host === 'localhost' || isLoopbackHost(host)) return ['127.0.0.1'];
  if (isUnspecifiedAddress(host)) return undefined;
  return isIP(host) ? [host] : undefined;
}

/** Whether `dir` is the package's own pipelines directory (however it is named: a link, `./pipelines` in the repository). */
export function isBundledPipelinesDir(dir: string): boolean {
  try {
    return realpathSync(dir) === realpathSync(join(packageRoot(), 'pipelines'));
  } catch {
    return false;
  }
}
