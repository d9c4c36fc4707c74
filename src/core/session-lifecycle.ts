/**
 * A session's life in the core once it is admitted: its `PeerPipeline` is
 * built and its frames go straight into it, it is registered, announced
 * (`streams$`, `sessions$`) and given the attached processors; when it ends,
 * its pipeline drains, its recordings are finalized and it is retired.
 */
import { Observable, Subject } from 'rxjs';
import type { AudioFrame, EncodedFrame } from '../media/frames.js';
import { errors } from '../errors.js';
import { PeerPipeline } from '../pipeline/peer-pipeline.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import type { PeerSession, PeerSessionEvents, SessionEndReason } from '../rtc/peer-session.js';
import type { LatencyHistogram } from '../media/latency-histogram.js';
import type { ProcessorEvent, ProcessorRegistry } from '../sinks/processors.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import type { RecordingsStore } from '../sinks/recordings-store.js';
import type { PeerEntry, PeerRegistry, PeerStatsSnapshot } from './peer-registry.js';
import type { ProcessorAttachments } from './processor-attachment.js';
import { ClientFeed } from './client-feed.js';
import { guardSubscribers } from './subscriber-guard.js';
import type { CoreLogger } from './logger.js';
import { sessionEndFigures } from './session-end-figures.js';

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
  audio$: Observable<AudioFrame>;
  /** Processed audio of every branch by name. */
  branches: Readonly<Record<string, Observable<AudioFrame>>>;
  /**
   * Encoded Opus frames as they leave the RTP ingest (reordered, with media
   * positions; `payload` null for a lost packet), before any worker: hot;
   * completes when the stream ends.
   */
  encoded$: Observable<EncodedFrame>;
  /** The peer's statistics now (same shape as `GET /stats/:peer`). */
  stats(): PeerStatsSnapshot;
  /**
   * Attaches a registered processor to this stream (to `branch`, default the
   * first); returns a detach function. Throws `EARSHOT_PROCESSOR_NOT_FOUND`
   * for a name not registered, `EARSHOT_BRANCH_NOT_FOUND` for a branch the
   * pipeline does not have.
   */
  attachProcessor(name: string, options?: Record<string, unknown>, branch?: string): () => void;
}

/** @deprecated renamed; kept for the slice's early users. */
export type StreamInfo = StreamHandle;

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

/** A session's place in the core: its entry once the pipeline exists, and where its frames go. */
export interface SessionSlot {
  entry?: PeerEntry;
  /** The pipeline's push, or that and `encoded$` while it has subscribers; unset until the pipeline exists. */
  onFrame?: (frame: EncodedFrame) => void;
  /** What the client hears on its data channel and where what it says goes (client-feed.ts). */
  feed?: ClientFeed;
}

/** Which stream an observable handed to the application belongs to, and its name in reports. */
export interface StreamObservableLabel {
  observable: string;
  peer: string;
  room: string;
  session: string;
}

export interface SessionLifecycleOptions {
  pool: WorkerPool;
  store: RecordingsStore;
  processors: ProcessorRegistry;
  peers: PeerRegistry;
  attachments: ProcessorAttachments;
  latency: LatencyHistogram;
  log: CoreLogger;
  streams$: Subject<StreamHandle>;
  events$: Subject<ProcessorEvent>;
  sessions$: Subject<SessionEvent>;
  /** The observable as handed to the application: a throwing subscriber is reported, not fatal. */
  guard<T>(source: Observable<T>, label: StreamObservableLabel): Observable<T>;
  /** Runs code that may subscribe stage operators with this core's workers as their default pool. */
  withPool<R>(fn: () => R): R;
  /** See `EarshotCoreOptions.processorDrainTimeoutMs`. */
  processorDrainTimeoutMs?: number;
}

export class SessionLifecycle {
  readonly #o: SessionLifecycleOptions;

  constructor(options: SessionLifecycleOptions) {
    this.#o = options;
  }

  /** The callbacks a new `PeerSession` reports to. */
  sessionEvents(slot: SessionSlot, room: string, peer: string): PeerSessionEvents {
    const log = this.#o.log.child({ room, peer });
    return {
      // Straight into the stream's pipeline once it exists (see start); nothing before.
      onFrame: (f) => slot.onFrame?.(f),
      onConnected: () => log.info({ session: slot.entry?.session.id }, 'peer connected'),
      onClientMessage: (data) => slot.feed?.received(data),
      onChannelOpen: () => slot.feed?.opened(),
      onEnd: (reason) => {
        slot.feed?.close();
        if (slot.entry) void this.finish(slot.entry, reason);
      },
    };
  }

  /**
   * Builds the session's pipeline, registers it (ending the session it
   * replaces, if any) and announces it.
   */
  async start(slot: SessionSlot, room: string, peer: string, session: PeerSession, pipeline: Pipeline, existing: PeerEntry | undefined): Promise<void> {
    const o = this.#o;
    const log = o.log.child({ room, peer, session: session.id });
    const encoded$ = new Subject<EncodedFrame>();
    const feed = new ClientFeed({
      session,
      peer,
      room,
      pipeline: pipeline.name,
      events$: o.events$,
      // A processor whose message handler throws is detached, like one whose frame handler does.
      guard: (source, onError) => guardSubscribers(source, (error) => onError(error)),
    });
    slot.feed = feed;
    // Processor sinks attach while the pipeline is built: their stage operators run on this core's workers.
    const peerPipeline = o.withPool(() => new PeerPipeline({
      pool: o.pool,
      store: o.store,
      pipeline,
      room,
      peer,
      session: session.id,
      processors: o.processors,
      latency: o.latency,
      processorDrainTimeoutMs: o.processorDrainTimeoutMs,
      onProcessorEvent: (e) => {
        o.events$.next(e);
        feed.processorEvent(e);
      },
      onRecording: (change) => feed.recording(change),
      client: feed,
      onPipelineError: (message) => {
        log.error({ err: message }, 'pipeline failed; ending session');
        void session.close('pipeline-error');
      },
      onSinkError: (sink, err) => log.error({ sink, err: err.message }, 'sink failed and was detached'),
      onProcessorStageError: (processor, branch, stage, err) =>
        log.error({ processorStage: processor, branch, stage, err: err.message }, `processor stage "${processor}" (stage ${stage} of branch "${branch}") failed and was detached; the branch goes on without it`),
      // Recording failures and dropped-audio episodes: logged, and published like processor events (processor "earshot").
      onEvent: (e) => {
        log[e.level](e.data, e.message);
        o.events$.next({ peerId: peer, roomId: room, sessionId: session.id, processor: 'earshot', event: e.type, data: e.data, at: Date.now() });
      },
    }));
    feed.attach(peerPipeline);
    const entry: PeerEntry = { peer, room, pipelineName: pipeline.name, session, encoded$, pipeline: peerPipeline };
    slot.entry = entry;
    // Frames go straight to the pipeline; through encoded$ as well only while someone listens.
    const direct = (f: EncodedFrame) => peerPipeline.push(f);
    const tee = (f: EncodedFrame) => {
      peerPipeline.push(f);
      encoded$.next(f);
    };
    slot.onFrame = direct;
    const encodedFrames = new Observable<EncodedFrame>((subscriber) => {
      const sub = encoded$.subscribe(subscriber);
      slot.onFrame = tee;
      return () => {
        sub.unsubscribe();
        if (!encoded$.observed) slot.onFrame = direct;
      };
    });
    o.peers.add(entry);
    // Registered first, so packets of the new session are not lost while the old one drains.
    if (existing) await this.end(existing, 'replaced');
    log.info({ pipeline: pipeline.name, replaced: existing?.session.id }, 'session started');
    const label = (observable: string): StreamObservableLabel => ({ observable, peer, room, session: session.id });
    const branches = Object.fromEntries(peerPipeline.branches.map((b) => [b.name, o.guard(b.audio$, label(`branches.${b.name}`))]));
    o.withPool(() => {
      o.attachments.applyTo(entry);
      o.sessions$.next({ type: 'started', peer, room, session: session.id, pipeline: pipeline.name, at: Date.now() });
      o.streams$.next({
        peerId: peer,
        roomId: room,
        sessionId: session.id,
        pipeline: pipeline.name,
        audio$: o.guard(peerPipeline.branches[0].audio$, label('audio$')),
        branches,
        encoded$: o.guard(encodedFrames, label('encoded$')),
        stats: () => o.peers.snapshot(peer) ?? peerNotFound(peer),
        attachProcessor: (name, options, branch) => o.withPool(() => peerPipeline.attachProcessor(name, options, branch)),
      });
    });
  }

  /** Ends a session and waits until its recordings are final. */
  async end(entry: PeerEntry, reason: SessionEndReason): Promise<RecordingInfo[]> {
    await entry.session.close(reason); // calls onEnd → finish once
    return this.finish(entry, reason);
  }

  /** Drains the pipeline, finalizes the recordings and retires the peer; once per session. */
  finish(entry: PeerEntry, reason: SessionEndReason): Promise<RecordingInfo[]> {
    entry.ended ??= (async () => {
      const recordings = await entry.pipeline.close(reason);
      // The files: not a recording that failed before its file existed (0 bytes), which the DELETE answer still tells of.
      const files = recordings.filter((r) => !(r.state === 'failed' && r.bytes === 0)).map((r) => r.name);
      entry.encoded$?.complete();
      this.#o.peers.retire(entry);
      const rtp = entry.session.rtpStats();
      this.#o.log.info(
        {
          room: entry.room,
          peer: entry.peer,
          session: entry.session.id,
          pipeline: entry.pipelineName,
          reason,
          ...sessionEndFigures(entry.session.createdAt, Date.now(), rtp),
          recordings: files,
        },
        'session ended',
      );
      this.#o.sessions$.next({
        type: 'ended',
        peer: entry.peer,
        room: entry.room,
        session: entry.session.id,
        pipeline: entry.pipelineName,
        reason,
        recordings: files,
        at: Date.now(),
      });
      return recordings;
    })();
    return entry.ended;
  }
}

function peerNotFound(peer: string): never {
  throw errors.PEER_NOT_FOUND(peer);
}
