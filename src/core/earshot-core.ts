/**
 * The server's core, independent of HTTP: WHIP sessions, their pipelines, the
 * worker pool and the recordings directory. Routes call into it; the CLI and
 * the programmatic API create it through `createServer`, programs that do
 * their own signaling through `WebRTCHandler`.
 *
 * This class places sessions and answers for the whole; each concern is its
 * own module: who may start a session (session-gate.ts, admission.ts), which
 * pipeline it runs (rooms.ts) and whether that can start (pipeline-checks.ts),
 * its life from pipeline to finalized recordings (session-lifecycle.ts),
 * processors attached by scope (processor-attachment.ts), the live and ended
 * peers (peer-registry.ts) and what the core measures (monitoring.ts).
 */
import { EMPTY, Observable, Subject, interval, map, takeUntil } from 'rxjs';
import { describeValue } from '../option-checks.js';
import { checkName } from './names.js';
import { errors } from '../errors.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import { DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS } from '../pipeline/processor-stage-chain.js';
import { withDefaultPool } from '../pool/default-pool.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { PeerSession, type SessionEndReason } from '../rtc/peer-session.js';
import type { ListenerSession } from '../rtc/listener-session.js';
import type { LatencyHistogram } from '../media/latency-histogram.js';
import { defaultProcessors, ProcessorRegistry, type ProcessorEvent } from '../sinks/processors.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import { recordingPreflight } from '../sinks/recording-preflight.js';
import { RecordingsStore } from '../sinks/recordings-store.js';
import { AdmissionControl } from './admission.js';
import { checkCoreOptions, DEFAULT_MAX_PENDING_SESSIONS, DEFAULT_MAX_SESSIONS, defaultMaxPendingSessionsPerClient, type EarshotCoreOptions } from './core-options.js';
import { Listeners } from './listeners.js';
import { CoreMonitor, type ServerStats } from './monitoring.js';
import { PeerRegistry, type PeerEntry, type PeerStatsSnapshot } from './peer-registry.js';
import { PipelineChecks } from './pipeline-checks.js';
import { ProcessorAttachments, type ProcessorScope } from './processor-attachment.js';
import { RoomPipelines, type RoomChange } from './rooms.js';
import { SessionGate } from './session-gate.js';
import { SessionLifecycle, type SessionEvent, type SessionSlot, type StreamHandle, type StreamObservableLabel } from './session-lifecycle.js';
import { guardSubscribers } from './subscriber-guard.js';
import type { CoreLogger } from './logger.js';

export type { EarshotCoreOptions } from './core-options.js';
export { JITTER_BOUNDS_S, type ServerStats } from './monitoring.js';
export type { ProcessorScope } from './processor-attachment.js';
export type { SessionEvent, StreamHandle, StreamInfo } from './session-lifecycle.js';

/** Errors `publish` threw, counted there (or left to its caller) already: `countRefusal` skips them. */
const seenByPublish = new WeakSet<object>();

export class EarshotCore {
  readonly peers = new PeerRegistry();
  readonly store: RecordingsStore;
  readonly pool: WorkerPool;
  readonly processors: ProcessorRegistry;
  /** Every new stream as it starts. */
  readonly streams$: Observable<StreamHandle>;
  /** Events processors emit (`context.emit`), from every stream, and earshot's own (processor `earshot`). */
  readonly events$: Observable<ProcessorEvent>;
  /** Sessions starting and ending (for the live event stream and dashboards). */
  readonly sessions$: Observable<SessionEvent>;
  readonly #streams$ = new Subject<StreamHandle>();
  readonly #events$ = new Subject<ProcessorEvent>();
  readonly #sessions$ = new Subject<SessionEvent>();
  /** Emits once when the server shuts down: ends the timers of `stats$` subscriptions. */
  readonly #closing$ = new Subject<void>();
  readonly #options: EarshotCoreOptions;
  readonly #log: CoreLogger;
  readonly #monitor: CoreMonitor;
  readonly #admission: AdmissionControl | undefined;
  readonly #gate: SessionGate;
  readonly #rooms: RoomPipelines;
  /** Stops applying changes to the room bindings file made on disk (from `start()`). */
  #stopWatchingRooms: (() => void) | undefined;
  readonly #checks: PipelineChecks;
  readonly #attachments: ProcessorAttachments;
  readonly #lifecycle: SessionLifecycle;
  /** WHEP listeners of live peers. */
  readonly listeners: Listeners;

  /** Throws `EARSHOT_OPTION_INVALID` for an unusable session option. */
  constructor(options: EarshotCoreOptions) {
    checkCoreOptions(options);
    this.#options = options;
    this.#log = options.log;
    this.store = new RecordingsStore(options.recordingsDir);
    this.pool = options.pool instanceof WorkerPool ? options.pool : new WorkerPool(options.pool);
    this.processors = options.processors ?? new ProcessorRegistry({ fallback: defaultProcessors });
    this.#monitor = new CoreMonitor(this.peers);
    this.#admission = options.admission === false ? undefined : new AdmissionControl(this.pool, this.#monitor.latency, options.admission);
    this.#gate = new SessionGate(
      this.peers,
      {
        maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
        maxPendingSessions: options.maxPendingSessions ?? DEFAULT_MAX_PENDING_SESSIONS,
        maxPendingSessionsPerClient: options.maxPendingSessionsPerClient ?? defaultMaxPendingSessionsPerClient(options.maxPendingSessions ?? DEFAULT_MAX_PENDING_SESSIONS),
      },
      this.#admission,
    );
    this.#rooms = new RoomPipelines(options.pipelines, options.defaultPipeline, options.roomBindingsFile, (changes) => this.#logRoomChanges(changes));
    this.#checks = new PipelineChecks(this.pool, this.processors);
    this.#attachments = new ProcessorAttachments(this.processors);
    this.streams$ = this.#guard(this.#streams$, { observable: 'streams$' });
    this.events$ = this.#guard(this.#events$, { observable: 'events$' });
    this.sessions$ = this.#guard(this.#sessions$, { observable: 'sessions$' });
    this.#lifecycle = new SessionLifecycle({
      pool: this.pool,
      store: this.store,
      processors: this.processors,
      peers: this.peers,
      attachments: this.#attachments,
      latency: this.#monitor.latency,
      log: this.#log,
      streams$: this.#streams$,
      events$: this.#events$,
      sessions$: this.#sessions$,
      guard: (source, label) => this.#guard(source, label),
      withPool: (fn) => this.withPool(fn),
      processorDrainTimeoutMs: options.processorDrainTimeoutMs,
    });
    this.listeners = new Listeners({
      ice: options.ice,
      connectTimeoutMs: options.connectTimeoutMs,
      maxListeners: options.maxListeners,
      maxListenersPerPeer: options.maxListenersPerPeer,
      rtcpTimeoutMs: options.listenerTimeoutMs,
      onEnd: (info, reason) => this.#log.info({ peer: info.peer, listener: info.id, reason, packetsSent: info.packetsSent }, 'listener ended'),
    });
  }

  /** Answers a WHEP player's offer for a live peer's audio (see Listeners.listen). */
  async listen(peer: string, offer: string, branch?: string): Promise<ListenerSession> {
    const entry = this.peer(peer);
    if (entry.session.state === 'ended') throw errors.PEER_NOT_FOUND(peer);
    return this.listeners.listen(entry, offer, branch);
  }

  /** RTP arrival → frame at the sinks, every frame of every stream since start (ms). */
  get latency(): LatencyHistogram {
    return this.#monitor.latency;
  }

  /** Interarrival jitter of each live peer, sampled every second (seconds). */
  get jitter(): LatencyHistogram {
    return this.#monitor.jitter;
  }

  /** The pipelines this core knows. */
  get pipelines(): PipelineRegistry {
    return this.#options.pipelines;
  }

  /** The current version of the default pipeline. */
  get pipeline(): Pipeline {
    return this.#options.pipelines.get(this.#rooms.defaultPipeline);
  }

  get defaultPipelineName(): string {
    return this.#rooms.defaultPipeline;
  }

  /**
   * The pipeline a new stream in `room` runs: the one named by the request
   * (`?pipeline=`), else the room's binding (`PUT /rooms/:room`), else the
   * default. An unknown name is `EARSHOT_PIPELINE_NOT_FOUND` (404).
   */
  pipelineFor(room: string, requested?: string): Pipeline {
    return this.#rooms.pipelineFor(room, requested);
  }

  /**
   * Binds a room to a pipeline for streams that start from now on (saved in
   * `roomBindingsFile` first, if there is one): `EARSHOT_PIPELINE_NOT_FOUND`
   * (404) for an unknown pipeline, `EARSHOT_ROOM_BINDINGS_WRITE_FAILED` (500)
   * when the file cannot be written (nothing changes).
   */
  bindRoom(room: string, pipeline: string): Promise<void> {
    return this.#rooms.bind(room, pipeline);
  }

  /** Removes a room's binding (saved first, as `bindRoom`); false if it had none. */
  unbindRoom(room: string): Promise<boolean> {
    return this.#rooms.unbind(room);
  }

  /**
   * Makes the room bindings exactly those made elsewhere (an engine process's
   * machine's, given to it at start and whenever they change), in memory
   * only: not checked against the pipelines (a room bound to one that is not
   * loaded gets 404, as a bindings file's) and not written to the bindings
   * file. Returns the bindings whose pipeline is not loaded, room → pipeline.
   */
  restoreRoomBindings(bindings: Record<string, string>): Record<string, string> {
    return this.#rooms.restore(bindings);
  }

  /** Room → pipeline bindings. */
  roomBindings(): Record<string, string> {
    return this.#rooms.bindings();
  }

  /**
   * Deletes a pipeline (its file too), unless it is in use:
   * `EARSHOT_PIPELINE_IN_USE` (409) while it is the default, bound to a room
   * or run by a live session. Taken in turn with room binding changes, so a
   * room cannot be bound to it while it goes.
   */
  deletePipeline(name: string): Promise<void> {
    return this.#rooms.exclusive(async () => {
      const users = this.pipelineUsers(name);
      if (users) throw errors.PIPELINE_IN_USE(name, users);
      await this.#options.pipelines.delete(name);
    });
  }

  /** What keeps a pipeline from being deleted (live sessions, room bindings, being the default), or undefined. */
  pipelineUsers(name: string): string | undefined {
    return this.#rooms.usersOf(name, this.peers.live());
  }

  /** Whether a pipeline is the default or bound to rooms (what new sessions would lose without it), or undefined. */
  pipelineRole(name: string): string | undefined {
    return this.#rooms.usersOf(name, []);
  }

  async start(): Promise<void> {
    const bindingsFile = this.#options.roomBindingsFile;
    if (bindingsFile?.readOnly) {
      this.#log.info({ file: bindingsFile.path }, 'the pipelines directory is read-only: room bindings are read from its rooms.json (if any) and changes over HTTP are kept in memory until a restart');
    }
    const missing = await this.#rooms.load();
    for (const [room, pipeline] of Object.entries(missing)) this.#logMissingPipeline(room, pipeline);
    await this.store.init();
    await this.pool.start();
    // Once nothing of the start can fail any more, and once (a failed listen() may be tried again).
    if (bindingsFile && this.#options.watchRoomBindings !== false && !this.#stopWatchingRooms) {
      const applies = bindingsFile.readOnly ? 'at restart' : 'at the next change over HTTP or restart';
      this.#stopWatchingRooms = bindingsFile.watch(
        () => void this.#reloadRoomBindings(),
        (e) => this.#log.warn({ file: bindingsFile.path, code: e.code, err: e.message }, `cannot watch the pipelines directory: rooms.json edited on disk applies ${applies}`),
      );
    }
    this.#monitor.start();
    this.#admission?.start();
  }

  #logMissingPipeline(room: string, pipeline: string): void {
    this.#log.error({ room, pipeline, file: this.#rooms.file }, `room "${room}" is bound to pipeline "${pipeline}", which is not loaded: its streams get 404 until the pipeline is back or the room is bound again`);
  }

  #logRoomChanges(changes: RoomChange[]): void {
    for (const change of changes) {
      if (change.pipeline !== undefined && change.missing) this.#logMissingPipeline(change.room, change.pipeline);
      else this.#log.info({ room: change.room, pipeline: change.pipeline ?? null, before: change.before ?? null, file: this.#rooms.file }, 'room binding changed on disk');
    }
  }

  /** Applies what changed in the room bindings file on disk (`#logRoomChanges` says what). */
  async #reloadRoomBindings(): Promise<void> {
    try {
      await this.#rooms.reload();
    } catch (e) {
      const refused = this.#options.roomBindingsFile?.readOnly ? '' : ', and changes over HTTP are refused until it is fixed';
      this.#log.error({ file: this.#rooms.file, err: (e as Error).message }, `rooms.json changed on disk but cannot be read: the room bindings stay as they were${refused}`);
    }
  }

  /**
   * Restarts the main thread's event-loop delay sampling in this tick, so that
   * a sampler started in the same tick with a multiple of its period (the
   * `/metrics` one) starts out waking the loop when this one does (monitoring.ts).
   * @internal for the server's `/metrics`; not part of the library's API.
   */
  sampleLoopDelayFromNow(): void {
    this.#monitor.sampleLoopDelayFromNow();
  }

  /**
   * Runs `fn` with this core's workers as the default pool of stage operators
   * (and of what `fn` starts): operators on this core's streams never use
   * another server's pool.
   */
  withPool<R>(fn: () => R): R {
    return withDefaultPool(this.pool, fn);
  }

  /**
   * Whether a new peer's offer would be admitted now (`/health`'s `ready`),
   * and if not why: the measured load (`--admission`), the session limits, or
   * a shutdown. What load balancers read to route publishers elsewhere.
   */
  readiness(): { ready: boolean; reasons: string[] } {
    const reasons = [...this.#gate.fullReasons()];
    const admission = this.#admission?.state();
    if (admission && !admission.ready) reasons.push(...admission.reasons);
    return { ready: reasons.length === 0, reasons };
  }

  /** Sessions refused so far, by error code (`EARSHOT_OVERLOADED`, `EARSHOT_SDP_INVALID`, …). */
  refusedBy(): Record<string, number> {
    return this.#monitor.refusedBy();
  }

  /**
   * Counts a WHIP offer refused before `publish` saw it (a bad name, media
   * type or size, a bad query), unless `publish` already did: an error it
   * threw is marked and counted there (or, for a load refusal the caller
   * counts itself, deliberately not).
   */
  countRefusal(error: unknown): void {
    if (typeof error === 'object' && error !== null && seenByPublish.has(error)) return;
    this.#monitor.refused((error as { code?: string }).code ?? 'EARSHOT_INTERNAL');
  }

  /**
   * The statistics every `intervalMs` (default 1000), as `{ server, peers }`
   * like `GET /stats`; cold: each subscriber gets its own timer. Completes when
   * the server closes (at once for a subscription after that).
   */
  stats$(intervalMs = 1000): Observable<{ server: ServerStats; peers: PeerStatsSnapshot[] }> {
    // An argument, not a member of an options object: the message names it as such.
    if (!(typeof intervalMs === 'number' && intervalMs >= 50 && intervalMs <= 2_147_483_647)) {
      throw errors.OPTION_INVALID('intervalMs', `must be a number from 50 to 2147483647 (ms), got ${describeValue(intervalMs)}`, 'stats$(intervalMs): intervalMs');
    }
    // Completes with the server, as streams$ and events$ do: its timer kept a program from exiting after close().
    if (this.#gate.closed) return EMPTY;
    const stats$ = interval(intervalMs).pipe(
      takeUntil(this.#closing$),
      map(() => ({ server: this.stats(), peers: this.peers.snapshots() })),
    );
    return this.#guard(stats$, { observable: 'stats$' });
  }

  hasSession(id: string): boolean {
    return this.peers.bySession(id) !== undefined;
  }

  /**
   * Answers a WHIP offer. A second publish for a peer that is already live
   * replaces the old session: it is ended and finalized first (a reconnecting
   * client must not be locked out until the media timeout).
   *
   * `client` says who the offer is from (the server gives the client's
   * address): at most `maxPendingSessionsPerClient` sessions from one client
   * may be pending. Without it the offer is counted only in the totals.
   *
   * A refusal is counted in `refusedBy`, except one for load (503) with
   * `countLoadRefusal: false`: the caller (the front of `--processes`) may
   * offer the session elsewhere, and counts the refusal the client gets.
   */
  async publish(room: string, peer: string, offer: string, options: { pipeline?: string; mayReplace?: boolean; client?: string; countLoadRefusal?: boolean } = {}): Promise<PeerSession> {
    let placing = false;
    try {
      // First: an offer that can never be accepted gets its 400 / 422, not a 503 with Retry-After at a limit.
      const prepared = PeerSession.prepareOffer(offer);
      this.#gate.beginPlacement(peer, options.client);
      placing = true;
      const existing = this.#gate.admit(peer, options.mayReplace ?? true, options.client);
      // Resolved once: this stream keeps this version even if the pipeline is edited meanwhile.
      const pipeline = this.pipelineFor(room, options.pipeline);
      await this.#checks.check(pipeline);
      await recordingPreflight(pipeline, this.store, { room, peer }); // `required` recording on an unusable directory: 507, no session
      const slot: SessionSlot = {};
      const session = await PeerSession.answer(room, peer, prepared, this.#sessionOptions(pipeline), this.#lifecycle.sessionEvents(slot, room, peer));
      this.#gate.answered(peer, session);
      await this.#lifecycle.start(slot, room, peer, session, pipeline, existing);
      if (!existing) this.#gate.admitted(() => session.state !== 'ended');
      return session;
    } catch (e) {
      const forLoad = (e as { statusCode?: number }).statusCode === 503;
      if (!(forLoad && options.countLoadRefusal === false)) this.#monitor.refused((e as { code?: string }).code ?? 'EARSHOT_INTERNAL');
      if (typeof e === 'object' && e !== null) seenByPublish.add(e);
      throw e;
    } finally {
      if (placing) this.#gate.endPlacement(peer);
    }
  }

  /**
   * A stream around a werift peer connection the caller negotiates itself
   * (`WebRTCHandler.createPeerConnection`); its first audio track is processed
   * with the server's pipeline like a WHIP publisher's.
   */
  adopt(room: string, peer: string, options: { pipeline?: string } = {}): PeerSession {
    // The names WHIP would take: they become recording file names and URLs (/stats/:peer, /whep/:peer).
    checkName('room', room);
    checkName('peer', peer);
    this.#gate.checkNotPlacing(peer);
    const existing = this.#gate.admit(peer, true);
    const pipeline = this.pipelineFor(room, options.pipeline);
    this.#checks.checkProcessors(pipeline);
    const slot: SessionSlot = {};
    const session = PeerSession.forPeerConnection(room, peer, this.#sessionOptions(pipeline), this.#lifecycle.sessionEvents(slot, room, peer));
    void this.#lifecycle.start(slot, room, peer, session, pipeline, existing);
    return session;
  }

  /**
   * Checks, before any peer uses it, that a pipeline can start here: every
   * `processor` sink names a registered processor and every stage builds in a
   * worker (custom stages' `create` accepts its options). Throws
   * `EARSHOT_PROCESSOR_NOT_FOUND` or `EARSHOT_PIPELINE_INVALID`.
   */
  checkPipeline(pipeline: Pipeline): Promise<void> {
    return this.#checks.check(pipeline);
  }

  /**
   * Attaches a registered processor to the streams in `scope` — those running
   * now and those that start later — until the returned function is called.
   */
  attachProcessor(name: string, scope: ProcessorScope = {}): () => void {
    return this.withPool(() => this.#attachments.attach(name, scope, this.peers.live()));
  }

  /** Sessions being answered or not yet connected. */
  pendingSessions(): number {
    return this.#gate.pendingSessions();
  }

  /** Ends a session by id (WHIP DELETE) and waits until its recordings are final. */
  async endSession(id: string, reason: SessionEndReason): Promise<{ peer: string; room: string; recordings: RecordingInfo[] }> {
    const entry = this.peers.bySession(id);
    if (!entry) throw errors.SESSION_NOT_FOUND(id);
    const recordings = await this.#lifecycle.end(entry, reason);
    return { peer: entry.peer, room: entry.room, recordings };
  }

  peer(peer: string): PeerEntry {
    const entry = this.peers.get(peer);
    if (!entry) throw errors.PEER_NOT_FOUND(peer);
    return entry;
  }

  stats(): ServerStats {
    const listeners = this.listeners.list().map(({ id: _secret, ...shown }) => shown);
    return this.#monitor.stats(this.pool, this.#admission?.state() ?? null, listeners);
  }

  peerStats(peer: string): PeerStatsSnapshot {
    const s = this.peers.snapshot(peer);
    if (!s) throw errors.PEER_NOT_FOUND(peer, 'known');
    return s;
  }

  /**
   * Refuses new sessions, ends every live one (draining in-flight frames),
   * lets the application's stage operators on the ended streams drain (up to
   * `processorDrainTimeoutMs`), stops the pool.
   */
  async shutdown(): Promise<void> {
    if (this.#gate.closed) return;
    this.#gate.close();
    this.#stopWatchingRooms?.();
    await this.listeners.closeAll();
    const live = this.peers.live();
    await Promise.all(live.map((e) => this.#lifecycle.end(e, 'shutdown')));
    // Websocket sinks and audio listeners get their end message out before the process goes (bounded: END_GRACE_MS).
    await Promise.all(live.map((e) => e.pipeline.socketsEnded()));
    // The streams still open are the application's operators (`s.audio$.pipe(denoise(), resample(…))`).
    // Each hop closes its worker stream only once the hop before it has drained; closing the pool now
    // would cut off every later hop and error its chain. So they drain first, bounded as a processor's
    // drain is: an operator on a source of its own that never completes is cut off after that.
    await this.pool.streamsClosed(this.#options.processorDrainTimeoutMs ?? DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS);
    await this.pool.close();
    this.#monitor.stop();
    this.#admission?.stop();
    this.#streams$.complete();
    this.#events$.complete();
    this.#sessions$.complete();
    this.#closing$.next();
    this.#closing$.complete();
    this.#options.pipelines.close();
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

  /**
   * `source` for the application's subscribers: one that throws is logged once
   * and published as a `subscriber-error` event instead of crashing the process.
   */
  guarded<T>(source: Observable<T>, observable: string): Observable<T> {
    return this.#guard(source, { observable });
  }

  #guard<T>(source: Observable<T>, label: Partial<StreamObservableLabel> & { observable: string }): Observable<T> {
    return guardSubscribers(source, (error, value, ended) => this.#subscriberFailed(label, error, value, ended === true));
  }

  /**
   * Once per subscriber: logged with its stack, and published on `events$` as
   * `subscriber-error` of processor `earshot` (the stream's ids where known).
   * `ended`: an operator of the subscriber's chain threw, which ended the chain.
   */
  #subscriberFailed(label: Partial<StreamObservableLabel> & { observable: string }, error: Error, value: unknown, ended: boolean): void {
    const about = streamIdsOf(value);
    const peer = label.peer ?? about.peer ?? '';
    // A value that names only its peer (a handler's processedAudio$): the live peer's room and session.
    const live = peer !== '' && (label.room ?? about.room) === undefined ? this.peers.get(peer) : undefined;
    const room = label.room ?? about.room ?? live?.room ?? '';
    const session = label.session ?? about.session ?? live?.session.id ?? '';
    this.#log.error(
      { observable: label.observable, peer, room, session, err: error },
      ended
        ? `an operator of a chain on ${label.observable} threw, which ended the chain (RxJS ends a chain on an error; catchError keeps it going)`
        : `a subscriber of ${label.observable} threw; it stays subscribed and further errors of it are not reported`,
    );
    if (this.#events$.closed) return;
    this.#events$.next({
      peerId: peer,
      roomId: room,
      sessionId: session,
      processor: 'earshot',
      event: 'subscriber-error',
      data: { observable: label.observable, message: error.message, ended },
      at: Date.now(),
    });
  }
}

/** The stream a delivered value belongs to, when it says (a StreamHandle, a ProcessorEvent, a SessionEvent). */
function streamIdsOf(value: unknown): { peer?: string; room?: string; session?: string } {
  if (typeof value !== 'object' || value === null) return {};
  const v = value as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
  return { peer: str(v.peerId) ?? str(v.peer), room: str(v.roomId) ?? str(v.room), session: str(v.sessionId) ?? str(v.session) };
}
