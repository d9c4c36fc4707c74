/**
 * The server's core, independent of HTTP: WHIP sessions, their pipelines, the
 * worker pool and the recordings directory. Routes call into it; the CLI and the
 * programmatic API create it through `createServer`.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import type { FastifyBaseLogger } from 'fastify';
import { Observable, Subject, interval, map } from 'rxjs';
import { LatencyHistogram } from '../sinks/latency-histogram.js';
import { errors } from '../errors.js';
import { PeerPipeline } from '../pipeline/peer-pipeline.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import type { ProcessedFrame, StageSpec } from '../dsp/types.js';
import type { IngestFrame } from '../rtc/rtp-ingest.js';
import { defaultProcessors, type ProcessorEvent, type ProcessorRegistry } from '../sinks/processors.js';
import { WorkerPool, type WorkerPoolOptions, type WorkerPoolStats } from '../pool/worker-pool.js';
import type { IceOptions } from '../rtc/ice-config.js';
import { PeerSession, type PeerSessionEvents, type SessionEndReason } from '../rtc/peer-session.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import { RecordingsStore } from '../sinks/recordings-store.js';
import { recordingPreflight } from '../sinks/record-sink.js';
import { PeerRegistry, type PeerEntry, type PeerStatsSnapshot } from './peer-registry.js';
import { AdmissionControl, type AdmissionOptions, type AdmissionState } from './admission.js';

/** Jitter histogram bounds, seconds (RFC 3550 jitter of a healthy LAN call is well under 5 ms). */
export const JITTER_BOUNDS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

export interface EarshotCoreOptions {
  /** The pipelines by name (a directory's, or in memory). */
  pipelines: PipelineRegistry;
  /** Name of the pipeline a stream runs when neither the request nor its room names one. */
  defaultPipeline: string;
  recordingsDir: string;
  /** Pool options, or a pool to use (created by the caller, closed by `shutdown()`). */
  pool?: WorkerPoolOptions | WorkerPool;
  ice?: IceOptions;
  /** See PeerSessionOptions.mediaTimeoutMs. Default 10000 ms. */
  mediaTimeoutMs?: number;
  /** See PeerSessionOptions.connectTimeoutMs. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Most concurrent sessions; more get 503. Default 500. */
  maxSessions?: number;
  /**
   * Most sessions that are being answered or have not connected yet (they hold
   * UDP sockets and count against `maxSessions` too); more get 503. Bounds what
   * a flood of offers that never connect can hold. Default 50.
   */
  maxPendingSessions?: number;
  /** Admission by measured load (see AdmissionOptions); `false` admits by the counts alone. Default: on, with its defaults. */
  admission?: AdmissionOptions | false;
  /** Processor registry for `processor` sinks and attachments. Default: the process-wide one (`registerProcessor`). */
  processors?: ProcessorRegistry;
  log: FastifyBaseLogger;
}

/**
 * A stream as it starts, for programmatic consumers (`server.streams$`):
 * `server.streams$.pipe(mergeMap((s) => s.audio$.pipe(…)))`.
 */
export interface StreamHandle {
  peerId: string;
  roomId: string;
  sessionId: string;
  /** Name of the pipeline the stream runs. */
  pipeline: string;
  /** Processed audio of the first branch: hot, shared, in media order; completes when the stream ends. */
  audio$: Observable<ProcessedFrame>;
  /** Processed audio of every branch by name. */
  branches: Readonly<Record<string, Observable<ProcessedFrame>>>;
  /**
   * Encoded Opus frames as they leave the RTP ingest (reordered, with media
   * positions; `payload` null for a lost packet), before any worker: hot;
   * completes when the stream ends.
   */
  encoded$: Observable<IngestFrame>;
  /** The peer's statistics now (same shape as `GET /stats/:peer`). */
  stats(): PeerStatsSnapshot;
  /** Attaches a registered processor to this stream; returns a detach function. */
  attachProcessor(name: string, options?: Record<string, unknown>, branch?: string): () => void;
}

/** A session's place in the core: its entry once the pipeline exists, and where its frames go. */
interface SessionSlot {
  entry?: PeerEntry;
  /** The pipeline's push, or that and `encoded$` while it has subscribers; unset until the pipeline exists. */
  onFrame?: (frame: IngestFrame) => void;
}

/** A session started or ended. */
export interface SessionEvent {
  type: 'started' | 'ended';
  peer: string;
  room: string;
  session: string;
  pipeline: string;
  /** Why it ended (`ended` only). */
  reason?: SessionEndReason;
  /** Files finalized (`ended` only). */
  recordings?: string[];
  /** `Date.now()`. */
  at: number;
}

/** @deprecated renamed; kept for the slice's early users. */
export type StreamInfo = StreamHandle;

/** Where `attachProcessor` applies: one peer, one room, or (neither given) every stream. */
export interface ProcessorScope {
  peer?: string;
  room?: string;
  /** Branch to read (default: the first). Streams whose pipeline lacks it are skipped. */
  branch?: string;
  /** Passed to the factory as `context.options`. */
  options?: Record<string, unknown>;
}

export interface ServerStats {
  uptimeSeconds: number;
  peers: number;
  rooms: number;
  roomNames: string[];
  sessionsStarted: number;
  sessionsEnded: number;
  /** Sessions refused (any error answering the offer). */
  sessionsRefused: number;
  /** Refused sessions by error code. */
  refusedBy: Record<string, number>;
  /** Ended sessions by reason. */
  endedBy: Record<string, number>;
  pool: WorkerPoolStats;
  /** Main-thread event-loop delay since start, ms (how long ready work waited for the loop). */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  memory: { rssBytes: number; heapUsedBytes: number };
  /** The measured load that admission decides on (null with admission off). */
  admission: AdmissionState | null;
}

export class EarshotCore {
  readonly peers = new PeerRegistry();
  readonly store: RecordingsStore;
  readonly pool: WorkerPool;
  readonly streams$ = new Subject<StreamHandle>();
  /** Events processors emit (`context.emit`), from every stream. */
  readonly events$ = new Subject<ProcessorEvent>();
  /** Sessions starting and ending (for the live event stream and dashboards). */
  readonly sessions$ = new Subject<SessionEvent>();
  readonly processors: ProcessorRegistry;
  readonly #attachments = new Set<{ name: string; scope: ProcessorScope; detach: Array<() => void> }>();
  readonly #checkedPipelines = new WeakMap<Pipeline, number>();
  readonly #roomPipelines = new Map<string, string>();
  /** Sessions refused, by error code. */
  readonly #refusedBy = new Map<string, number>();
  /** RTP arrival → frame at the sinks, every frame of every stream since start (ms). */
  readonly latency = new LatencyHistogram();
  /** Interarrival jitter of each live peer, sampled every second (seconds). */
  readonly jitter = new LatencyHistogram(JITTER_BOUNDS_S);
  #jitterTimer: NodeJS.Timeout | undefined;
  readonly #options: EarshotCoreOptions;
  readonly #log: FastifyBaseLogger;
  readonly #startedAt = performance.now();
  readonly #loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });
  #shuttingDown = false;
  readonly #admission: AdmissionControl | undefined;
  /** Peers whose offer is being answered now: placement of a peer is one step at a time. */
  readonly #placing = new Set<string>();

  constructor(options: EarshotCoreOptions) {
    this.#options = options;
    this.#log = options.log;
    this.store = new RecordingsStore(options.recordingsDir);
    this.pool = options.pool instanceof WorkerPool ? options.pool : new WorkerPool(options.pool);
    this.processors = options.processors ?? defaultProcessors;
    this.#admission = options.admission === false ? undefined : new AdmissionControl(this.pool, this.latency, options.admission);
  }

  /** The pipelines this core knows. */
  get pipelines(): PipelineRegistry {
    return this.#options.pipelines;
  }

  /** The current version of the default pipeline. */
  get pipeline(): Pipeline {
    return this.#options.pipelines.get(this.#options.defaultPipeline);
  }

  get defaultPipelineName(): string {
    return this.#options.defaultPipeline;
  }

  /**
   * The pipeline a new stream in `room` runs: the one named by the request
   * (`?pipeline=`), else the room's binding (`PUT /rooms/:room`), else the
   * default. An unknown name is `EARSHOT_PIPELINE_NOT_FOUND` (404).
   */
  pipelineFor(room: string, requested?: string): Pipeline {
    return this.#options.pipelines.get(requested ?? this.#roomPipelines.get(room) ?? this.#options.defaultPipeline);
  }

  /** Binds a room to a pipeline for streams that start from now on. */
  bindRoom(room: string, pipeline: string): void {
    this.#options.pipelines.get(pipeline); // 404 for an unknown name
    this.#roomPipelines.set(room, pipeline);
  }

  /** Removes a room's binding; false if it had none. */
  unbindRoom(room: string): boolean {
    return this.#roomPipelines.delete(room);
  }

  /** Room → pipeline bindings. */
  roomBindings(): Record<string, string> {
    return Object.fromEntries([...this.#roomPipelines].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** What keeps a pipeline from being deleted (live sessions, room bindings, being the default), or undefined. */
  pipelineUsers(name: string): string | undefined {
    const uses: string[] = [];
    if (name === this.#options.defaultPipeline) uses.push('it is the default pipeline');
    const rooms = [...this.#roomPipelines].filter(([, p]) => p === name).map(([r]) => r);
    if (rooms.length) uses.push(`bound to room${rooms.length > 1 ? 's' : ''} ${rooms.join(', ')}`);
    const peers = this.peers.live().filter((e) => e.pipelineName === name).map((e) => e.peer);
    if (peers.length) uses.push(`${peers.length} live session${peers.length > 1 ? 's' : ''}: ${peers.slice(0, 5).join(', ')}${peers.length > 5 ? ', …' : ''}`);
    return uses.length ? uses.join('; ') : undefined;
  }

  async start(): Promise<void> {
    await this.store.init();
    await this.pool.start();
    this.#loopDelay.enable();
    this.#admission?.start();
    this.#jitterTimer = setInterval(() => {
      for (const e of this.peers.live()) if (e.session.state === 'connected') this.jitter.add(e.session.rtpStats().jitter);
    }, 1000);
    this.#jitterTimer.unref();
  }

  /** Sessions refused so far, by error code (`EARSHOT_OVERLOADED`, `EARSHOT_SDP_INVALID`, …). */
  refusedBy(): Record<string, number> {
    return Object.fromEntries([...this.#refusedBy].sort(([a], [b]) => a.localeCompare(b)));
  }

  #refused(code: string): void {
    this.#refusedBy.set(code, (this.#refusedBy.get(code) ?? 0) + 1);
  }

  /**
   * The statistics every `intervalMs` (default 1000), as `{ server, peers }`
   * like `GET /stats`; cold: each subscriber gets its own timer.
   */
  stats$(intervalMs = 1000): Observable<{ server: ServerStats; peers: PeerStatsSnapshot[] }> {
    if (!(intervalMs >= 50)) throw new RangeError(`stats$: intervalMs must be at least 50, got ${intervalMs}`);
    return interval(intervalMs).pipe(map(() => ({ server: this.stats(), peers: this.peers.snapshots() })));
  }

  hasSession(id: string): boolean {
    return this.peers.bySession(id) !== undefined;
  }

  /**
   * Answers a WHIP offer. A second publish for a peer that is already live
   * replaces the old session: it is ended and finalized first (a reconnecting
   * client must not be locked out until the media timeout).
   */
  async publish(room: string, peer: string, offer: string, options: { pipeline?: string; mayReplace?: boolean } = {}): Promise<PeerSession> {
    let placing = false;
    try {
      // One placement per peer at a time: concurrent offers for one peer would otherwise
      // each build a session and all but one would be orphaned (sockets held, never counted).
      if (this.#placing.has(peer)) throw errors.PEER_BUSY(peer);
      this.#placing.add(peer);
      placing = true;
      const existing = this.#admit(peer, options.mayReplace ?? true);
      // Resolved once: this stream keeps this version even if the pipeline is edited meanwhile.
      const pipeline = this.pipelineFor(room, options.pipeline);
      await this.checkPipeline(pipeline);
      await recordingPreflight(pipeline, this.store); // `required` recording on an unusable directory: 507, no session
      const slot: SessionSlot = {};
      const session = await PeerSession.answer(room, peer, offer, this.#sessionOptions(pipeline), this.#sessionEvents(slot, room, peer));
      await this.#start(slot, room, peer, session, pipeline, existing);
      if (!existing) this.#admission?.admitted();
      return session;
    } catch (e) {
      this.#refused((e as { code?: string }).code ?? 'EARSHOT_INTERNAL');
      throw e;
    } finally {
      if (placing) this.#placing.delete(peer);
    }
  }

  /**
   * A stream around a werift peer connection the caller negotiates itself
   * (`WebRTCHandler.createPeerConnection`); its first audio track is processed
   * with the server's pipeline like a WHIP publisher's.
   */
  adopt(room: string, peer: string, options: { pipeline?: string } = {}): PeerSession {
    if (this.#placing.has(peer)) throw errors.PEER_BUSY(peer);
    const existing = this.#admit(peer, true);
    const pipeline = this.pipelineFor(room, options.pipeline);
    this.#checkProcessors(pipeline);
    const slot: SessionSlot = {};
    const session = PeerSession.forPeerConnection(room, peer, this.#sessionOptions(pipeline), this.#sessionEvents(slot, room, peer));
    void this.#start(slot, room, peer, session, pipeline, existing);
    return session;
  }

  /**
   * Checks, before any peer uses it, that a pipeline can start here: every
   * `processor` sink names a registered processor and every stage builds in a
   * worker (custom stages' `create` accepts its options). Throws
   * `EARSHOT_PROCESSOR_NOT_FOUND` or `EARSHOT_PIPELINE_INVALID`. A pipeline that
   * passed is not checked again until another stage module is registered.
   */
  async checkPipeline(pipeline: Pipeline): Promise<void> {
    this.#checkProcessors(pipeline);
    const modules = this.pool.customStageTypes.length;
    if (this.#checkedPipelines.get(pipeline) === modules) return;
    const [problem] = await this.pool.checkSetups([this.#setupOf(pipeline)]);
    if (problem) {
      const m = /^branch (\d+), stage (\d+)/.exec(problem);
      const branch = m ? pipeline.branches[Number(m[1])] : undefined;
      const path = branch && m ? `${pipeline.branches.length > 1 || branch.name !== 'main' ? `/branches/${branch.name}` : ''}/stages/${m[2]}` : '';
      throw errors.PIPELINE_INVALID(pipeline.name, [{ path, message: problem }]);
    }
    this.#checkedPipelines.set(pipeline, modules);
  }

  /**
   * Attaches a registered processor to the streams in `scope` — those running
   * now and those that start later — until the returned function is called.
   */
  attachProcessor(name: string, scope: ProcessorScope = {}): () => void {
    this.processors.get(name); // unknown names fail now, not per stream
    const attachment = { name, scope, detach: [] as Array<() => void> };
    this.#attachments.add(attachment);
    for (const entry of this.peers.live()) this.#applyAttachment(attachment, entry);
    return () => {
      this.#attachments.delete(attachment);
      for (const d of attachment.detach.splice(0)) d();
    };
  }

  #applyAttachment(a: { name: string; scope: ProcessorScope; detach: Array<() => void> }, entry: PeerEntry): void {
    const { peer, room, branch, options } = a.scope;
    if ((peer !== undefined && peer !== entry.peer) || (room !== undefined && room !== entry.room)) return;
    if (branch !== undefined && !entry.pipeline.branches.some((b) => b.name === branch)) return;
    a.detach.push(entry.pipeline.attachProcessor(a.name, options ?? {}, branch));
  }

  /** Every `processor` sink must name a registered processor: `EARSHOT_PIPELINE_INVALID` listing each one that does not. */
  #checkProcessors(pipeline: Pipeline): void {
    const problems: Array<{ path: string; message: string }> = [];
    const single = pipeline.branches.length === 1 && pipeline.branches[0].name === 'main';
    for (const b of pipeline.branches) {
      b.sinks.forEach((sink, i) => {
        if (sink.type !== 'processor' || this.processors.has(sink.name)) return;
        const known = this.processors.names();
        problems.push({
          path: `${single ? '' : `/branches/${b.name}`}/sinks/${i}/name`,
          message: `processor "${sink.name}" is not registered; ${known.length ? `registered: ${known.join(', ')}` : 'none are'} (registerProcessor(name, factory) before streams start)`,
        });
      });
    }
    if (problems.length > 0) throw errors.PIPELINE_INVALID(pipeline.name, problems);
  }

  #setupOf(pipeline: Pipeline): { channels: 1 | 2; branches: Array<{ stages: StageSpec[] }> } {
    return { channels: pipeline.channels, branches: pipeline.branches.map((b) => ({ stages: b.stages as StageSpec[] })) };
  }

  /**
   * Refuses new sessions while shutting down, full, or with too many that have
   * not connected (those being answered right now included); returns the live
   * session a new one replaces, if the caller may replace it.
   */
  #admit(peer: string, mayReplace: boolean): PeerEntry | undefined {
    if (this.#shuttingDown) throw errors.SHUTTING_DOWN();
    const existing = this.peers.get(peer);
    if (existing && !mayReplace) throw errors.PEER_ACTIVE(peer);
    const limit = this.#options.maxSessions ?? 500;
    // #placing holds this peer already; the others are offers in negotiation.
    const negotiating = this.#placing.size - (this.#placing.has(peer) ? 1 : 0);
    if (!existing && this.peers.size + negotiating >= limit) throw errors.OVERLOADED(limit);
    const pendingLimit = this.#options.maxPendingSessions ?? 50;
    if (this.pendingSessions() - (this.#placing.has(peer) ? 1 : 0) >= pendingLimit) throw errors.OVERLOADED(pendingLimit, 'pending');
    // A replacement takes the place of a stream already counted in the load.
    const overloaded = existing ? [] : (this.#admission?.check() ?? []);
    if (overloaded.length > 0) throw errors.OVERLOADED(overloaded, 'load');
    return existing;
  }

  /** Sessions being answered or not yet connected. */
  pendingSessions(): number {
    let connecting = 0;
    for (const e of this.peers.live()) if (e.session.state === 'connecting') connecting++;
    return connecting + this.#placing.size;
  }

  #sessionOptions(pipeline: Pipeline) {
    return {
      ice: this.#options.ice,
      mediaTimeoutMs: this.#options.mediaTimeoutMs,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      stereo: pipeline.channels === 2,
      dtx: pipeline.dtx,
    };
  }

  #sessionEvents(slot: SessionSlot, room: string, peer: string): PeerSessionEvents {
    const log = this.#log.child({ room, peer });
    return {
      // Straight into the stream's pipeline once it exists (see #start); nothing before.
      onFrame: (f) => slot.onFrame?.(f),
      onConnected: () => log.info({ session: slot.entry?.session.id }, 'peer connected'),
      onEnd: (reason) => {
        if (slot.entry) void this.#finish(slot.entry, reason);
      },
    };
  }

  async #start(slot: SessionSlot, room: string, peer: string, session: PeerSession, pipeline: Pipeline, existing: PeerEntry | undefined): Promise<void> {
    const log = this.#log.child({ room, peer, session: session.id });
    const encoded$ = new Subject<IngestFrame>();
    const entry: PeerEntry = {
      peer,
      room,
      pipelineName: pipeline.name,
      session,
      encoded$,
      pipeline: new PeerPipeline({
        pool: this.pool,
        store: this.store,
        pipeline,
        room,
        peer,
        session: session.id,
        processors: this.processors,
        latency: this.latency,
        onProcessorEvent: (e) => this.events$.next(e),
        onPipelineError: (message) => {
          log.error({ err: message }, 'pipeline failed; ending session');
          void session.close('pipeline-error');
        },
        onSinkError: (sink, err) => log.error({ sink, err: err.message }, 'sink failed and was detached'),
        // Recording failures and dropped-audio episodes: logged, and published like processor events (processor "earshot").
        onEvent: (e) => {
          log[e.level](e.data, e.message);
          this.events$.next({ peerId: peer, roomId: room, sessionId: session.id, processor: 'earshot', event: e.type, data: e.data, at: Date.now() });
        },
      }),
    };
    slot.entry = entry;
    // Frames go straight to the pipeline; through encoded$ as well only while someone listens.
    const peerPipeline = entry.pipeline;
    const direct = (f: IngestFrame) => peerPipeline.push(f);
    const tee = (f: IngestFrame) => {
      peerPipeline.push(f);
      encoded$.next(f);
    };
    slot.onFrame = direct;
    const encodedFrames = new Observable<IngestFrame>((subscriber) => {
      const sub = encoded$.subscribe(subscriber);
      slot.onFrame = tee;
      return () => {
        sub.unsubscribe();
        if (!encoded$.observed) slot.onFrame = direct;
      };
    });
    this.peers.add(entry);
    // Registered first, so packets of the new session are not lost while the old one drains.
    if (existing) await this.#end(existing, 'replaced');
    log.info({ pipeline: pipeline.name, replaced: existing?.session.id }, 'session started');
    for (const a of this.#attachments) this.#applyAttachment(a, entry);
    const branches = Object.fromEntries(entry.pipeline.branches.map((b) => [b.name, b.audio$]));
    this.sessions$.next({ type: 'started', peer, room, session: session.id, pipeline: pipeline.name, at: Date.now() });
    this.streams$.next({
      peerId: peer,
      roomId: room,
      sessionId: session.id,
      pipeline: pipeline.name,
      audio$: entry.pipeline.branches[0].audio$,
      branches,
      encoded$: encodedFrames,
      stats: () => this.peers.snapshot(peer) ?? this.peerStats(peer),
      attachProcessor: (name, options, branch) => entry.pipeline.attachProcessor(name, options, branch),
    });
  }

  /** Ends a session by id (WHIP DELETE) and waits until its recordings are final. */
  async endSession(id: string, reason: SessionEndReason): Promise<{ peer: string; room: string; recordings: RecordingInfo[] }> {
    const entry = this.peers.bySession(id);
    if (!entry) throw errors.SESSION_NOT_FOUND(id);
    const recordings = await this.#end(entry, reason);
    return { peer: entry.peer, room: entry.room, recordings };
  }

  peer(peer: string): PeerEntry {
    const entry = this.peers.get(peer);
    if (!entry) throw errors.PEER_NOT_FOUND(peer);
    return entry;
  }

  stats(): ServerStats {
    const mem = process.memoryUsage();
    const rooms = this.peers.rooms();
    return {
      uptimeSeconds: Math.round((performance.now() - this.#startedAt) / 1000),
      peers: this.peers.size,
      rooms: rooms.length,
      roomNames: rooms,
      sessionsStarted: this.peers.sessionsStarted,
      sessionsEnded: this.peers.sessionsEnded,
      sessionsRefused: [...this.#refusedBy.values()].reduce((a, b) => a + b, 0),
      refusedBy: this.refusedBy(),
      endedBy: Object.fromEntries(this.peers.endedBy),
      pool: this.pool.stats(),
      eventLoopDelayMs: {
        p50: Math.round(this.#loopDelay.percentile(50) / 1e4) / 100,
        p99: Math.round(this.#loopDelay.percentile(99) / 1e4) / 100,
        max: Math.round(this.#loopDelay.max / 1e4) / 100,
      },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
      admission: this.#admission?.state() ?? null,
    };
  }

  peerStats(peer: string): PeerStatsSnapshot {
    const s = this.peers.snapshot(peer);
    if (!s) throw errors.PEER_NOT_FOUND(peer);
    return s;
  }

  /** Refuses new sessions, ends every live one (draining in-flight frames), stops the pool. */
  async shutdown(): Promise<void> {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    await Promise.all(this.peers.live().map((e) => this.#end(e, 'shutdown')));
    await this.pool.close();
    this.#loopDelay.disable();
    this.#admission?.stop();
    clearInterval(this.#jitterTimer);
    this.streams$.complete();
    this.events$.complete();
    this.sessions$.complete();
    this.#options.pipelines.close();
  }

  async #end(entry: PeerEntry, reason: SessionEndReason): Promise<RecordingInfo[]> {
    await entry.session.close(reason); // calls onEnd → #finish once
    return this.#finish(entry, reason);
  }

  #finish(entry: PeerEntry, reason: SessionEndReason): Promise<RecordingInfo[]> {
    entry.ended ??= (async () => {
      const recordings = await entry.pipeline.close();
      entry.encoded$?.complete();
      this.peers.retire(entry);
      const rtp = entry.session.rtpStats();
      this.#log.info(
        {
          room: entry.room,
          peer: entry.peer,
          session: entry.session.id,
          pipeline: entry.pipelineName,
          reason,
          seconds: Math.round((Date.now() - entry.session.createdAt) / 100) / 10,
          packets: rtp.packetsReceived,
          lost: rtp.packetsLost,
          lossRatio: Math.round(rtp.lossRatio * 10000) / 10000,
          jitterMs: Math.round(rtp.jitter * 1e5) / 100,
          recordings: recordings.map((r) => r.name),
        },
        'session ended',
      );
      this.sessions$.next({
        type: 'ended',
        peer: entry.peer,
        room: entry.room,
        session: entry.session.id,
        pipeline: entry.pipelineName,
        reason,
        recordings: recordings.map((r) => r.name),
        at: Date.now(),
      });
      return recordings;
    })();
    return entry.ended;
  }
}
