/**
 * One peer's running pipeline: encoded frames go to the peer's pinned worker,
 * processed frames of each branch come back to the branch's built-in sinks
 * (stats, recording), called directly, and to a shared RxJS stream for
 * subscribers and processors, fed only while someone listens. A sink that
 * throws is detached and counted; the stream and the other sinks go on.
 *
 * The worker sends each branch only what this thread reads: float samples
 * while there are subscribers or a float recording, a 16-bit copy for an s16
 * recording (quantized there, so the WAV writer only copies bytes).
 *
 * An "ogg-opus" record sink takes the encoded packets on this thread as
 * they are pushed, before the worker: it records what was received, and the
 * worker sends its branch nothing for it.
 *
 * The worker reports the format of every branch when the stream starts
 * (what its stages really output, custom ones included): recordings are
 * written in it and `branches` describe it from then on.
 *
 * Audio dropped on the way (worker queue full, late packets, a worker that
 * restarted) is counted into the recordings it cost, and reported once per
 * episode through `onEvent`: when drops start after a quiet spell, and a
 * summary when they stop. A recording that fails is reported there too.
 */
import { performance } from 'node:perf_hooks';
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { StageSpec } from '../dsp/types.js';
import type { AudioFrame, BranchFormat, EncodedFrame } from '../media/frames.js';
import type { WorkerPool, PoolStream } from '../pool/worker-pool.js';
import { PeerAudioStats } from '../sinks/peer-stats.js';
import type { LatencyHistogram } from '../media/latency-histogram.js';
import { RecordSink } from '../sinks/record-sink.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import { recordingBaseName } from '../sinks/recording-names.js';
import type { RecordingsStore } from '../sinks/recordings-store.js';
import { runProcessor, type ProcessorEvent, type ProcessorRegistry } from '../sinks/processors.js';
import { LossAccounting, type DropCounts, type PeerPipelineEvent } from './loss-accounting.js';
import type { Pipeline } from './pipeline.js';

export interface PeerPipelineOptions {
  pool: WorkerPool;
  store: RecordingsStore;
  pipeline: Pipeline;
  room: string;
  peer: string;
  session: string;
  /** Where the pipeline's `processor` sinks find their factories. */
  processors: ProcessorRegistry;
  /** A server-wide latency histogram that every frame's latency is added to as well. */
  latency?: LatencyHistogram;
  /** Events emitted by processors (`context.emit`). */
  onProcessorEvent(event: ProcessorEvent): void;
  /** Called once when the worker reports that the stages failed. */
  onPipelineError(message: string): void;
  /** Sink and processor failures (logged by the caller, once per sink); recording failures go to `onEvent` when given. */
  onSinkError(sink: string, error: Error): void;
  /**
   * Things an operator must hear about that don't stop the stream: a recording
   * that could not start or whose writes failed, and episodes of dropped
   * audio. The caller logs and publishes them.
   */
  onEvent?(event: PeerPipelineEvent): void;
}

/** A processor attached to one of this peer's branches. */
export interface AttachedProcessor {
  name: string;
  branch: string;
  /** `detached` after it threw or errored (see `sinkErrors`), or after `detach()`. */
  state: 'running' | 'detached' | 'failed';
}

export interface BranchOutput {
  name: string;
  /** Rate of the branch's frames: the pipeline's expectation until the worker reports the real one when the stream starts. */
  sampleRate: number;
  /** Channels of the branch's frames, like `sampleRate`. */
  channels: number;
  /** Processed frames of this branch, hot and shared; completes when the stream ends. */
  audio$: Observable<AudioFrame>;
}

interface BranchRuntime {
  name: string;
  /** Frames for subscribers and processors; fed only while observed. */
  subject: Subject<AudioFrame>;
  record?: RecordSink;
  /** The record sink writes float WAV (it needs the float samples). */
  recordF32: boolean;
  /** The record sink writes the received Opus packets (ogg-opus): fed from `push`, it needs nothing from the worker. */
  recordEncoded: boolean;
  /** The stats sink reads this branch (until it throws). */
  measured: boolean;
  /** The record sink is attached (until it throws). */
  recording: boolean;
}

export class PeerPipeline {
  readonly stats = new PeerAudioStats();
  readonly branches: BranchOutput[];
  sinkErrors = 0;
  /** Processors that failed and were detached. */
  processorErrors = 0;
  readonly #processors: Array<AttachedProcessor & { sub?: Subscription }> = [];
  readonly #runtime: BranchRuntime[];
  readonly #stream: PoolStream;
  readonly #options: PeerPipelineOptions;
  /** Settles with each branch's format: the worker's report, or the pipeline's expectation if the stream ends without one. */
  readonly #formats: Promise<readonly BranchFormat[]>;
  #settleFormats: ((formats: readonly BranchFormat[]) => void) | undefined;
  #closed: Promise<RecordingInfo[]> | undefined;
  /** Audio lost on the way: counted into the recordings it cost, and reported in episodes. */
  readonly #loss: LossAccounting;

  constructor(options: PeerPipelineOptions) {
    this.#options = options;
    const { pipeline } = options;
    this.#loss = new LossAccounting({
      noteLoss: (counts, workerSilence) => {
        for (const r of this.#runtime) r.record?.noteLoss(counts, workerSilence);
      },
      recording: () => this.#runtime.some((r) => r.record?.active),
      emit: (event) => this.#emit(event),
    });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const vars = { room: options.room, peer: options.peer, date: stamp, time: stamp.slice(9), session: options.session.slice(0, 8), pipeline: pipeline.name };
    const statsBranch = pipeline.branches.findIndex((b) => b.sinks.some((s) => s.type === 'stats'));
    this.#formats = new Promise((settle) => (this.#settleFormats = settle));
    this.#runtime = pipeline.branches.map((b, i) => {
      const rec = b.sinks.find((s) => s.type === 'record');
      const recordFormat = rec?.type === 'record' ? (rec.sampleFormat ?? 's16') : 's16';
      const container = rec?.type === 'record' ? (rec.format ?? 'wav') : 'wav';
      const runtime: BranchRuntime = {
        name: b.name,
        subject: new Subject<AudioFrame>(),
        measured: i === statsBranch,
        recording: true,
        recordF32: recordFormat === 'f32' && container === 'wav',
        recordEncoded: container === 'ogg-opus',
      };
      // Every branch can be recorded on request; one with a record sink follows its settings.
      runtime.record = new RecordSink({
        store: options.store,
        peer: options.peer,
        baseName: recordingBaseName(rec?.type === 'record' ? rec : undefined, { ...vars, branch: b.name }, pipeline.branches.length > 1),
        sampleRate: b.sampleRate,
        channels: b.channels,
        reportedFormat: this.#formats.then((formats) => formats[i] ?? b),
        sampleFormat: recordFormat,
        format: container,
        onFailed: (error, info) => this.#recordingFailed(b.name, error, info),
      });
      return runtime;
    });
    this.branches = this.#runtime.map((r, i) => ({
      name: r.name,
      sampleRate: pipeline.branches[i].sampleRate,
      channels: pipeline.branches[i].channels,
      audio$: r.subject.asObservable(),
    }));
    // Processor sinks: every name was checked to be registered before the session started.
    pipeline.branches.forEach((b) => {
      for (const sink of b.sinks) {
        if (sink.type === 'processor') this.attachProcessor(sink.name, sink.options ?? {}, b.name);
      }
    });

    this.#stream = options.pool.openStream(
      { channels: pipeline.channels, branches: pipeline.branches.map((b) => ({ stages: b.stages as StageSpec[] })) },
      {
        onFrames: (branch, frames, copies, complete) => {
          for (let i = 0; i < frames.length; i++) this.#deliver(branch, frames[i], copies?.[i], complete?.[i] !== false);
        },
        onFrame: (branch, frame, copy, complete) => this.#deliver(branch, frame, copy, complete),
        onFormats: (formats) => this.#formatsReported(formats),
        onCounters: (c) => {
          this.stats.setCounters(c);
          this.#loss.counters(c, this.#stream.dropped, this.#stream.workers.length);
        },
        onError: (message) => options.onPipelineError(message),
        f32Branches: () => this.#floatBranches(),
        pcm16Branches: () => this.#pcm16Branches(),
      },
    );

    // Auto-started recordings are armed: the file is created by the first frame (a session
    // that never carries audio leaves none), and placed at media position 0 of the stream.
    pipeline.branches.forEach((b, i) => {
      const rec = b.sinks.find((s) => s.type === 'record');
      if (rec?.type === 'record' && rec.autoStart !== false) this.#runtime[i].record!.arm(true);
    });
  }

  /** Frames dropped over the session, by cause. */
  get droppedBy(): DropCounts {
    return this.#loss.droppedBy;
  }

  /** Thread id of the worker this peer's stream is pinned to. */
  get worker(): number | undefined {
    const w = this.#stream.workers;
    return w[w.length - 1];
  }

  get workers(): readonly number[] {
    return this.#stream.workers;
  }

  get droppedFrames(): number {
    return this.#stream.dropped;
  }

  push(frame: EncodedFrame): void {
    this.#stream.push(frame);
    // Pass-through recordings take the packets here, before the worker (and its queue) sees them.
    for (const r of this.#runtime) {
      if (!r.recordEncoded || !r.recording) continue;
      try {
        r.record!.writeEncoded(frame);
      } catch (e) {
        r.recording = false;
        this.#sinkFailed(`record:${r.name}`, e as Error);
      }
    }
  }

  /**
   * Starts recording on the branches that have a record sink, or on the first
   * branch if none has. `path` (programmatic API) records the first target to
   * that file, wherever it is.
   */
  async startRecording(name?: string, path?: string): Promise<RecordingInfo[]> {
    const targets = this.#recordTargets();
    if (path !== undefined) return [await targets[0].record!.start(undefined, false, path)];
    const started: RecordingInfo[] = [];
    for (const r of targets) {
      const branchName = name !== undefined && targets.length > 1 ? `${name.replace(/\.(wav|opus)$/i, '')}-${r.name}` : name;
      started.push(await r.record!.start(branchName));
    }
    return started;
  }

  /**
   * Stops the running recordings. Armed ones that have no file yet (no audio
   * arrived) are cancelled too, so none starts later; if that is all there
   * was, it is still "not recording" (`EARSHOT_RECORDING_NOT_ACTIVE`).
   */
  async stopRecording(): Promise<RecordingInfo[]> {
    for (const r of this.#runtime) r.record?.disarm();
    const active = this.#runtime.filter((r) => r.record?.active);
    if (active.length === 0) {
      // Let the sink produce the typed "not recording" error.
      await this.#recordTargets()[0].record!.stop();
    }
    return Promise.all(active.map((r) => r.record!.stop()));
  }

  recordings(): RecordingInfo[] {
    return this.#runtime.map((r) => r.record?.info()).filter((i): i is RecordingInfo => i !== undefined);
  }

  /**
   * Drains the worker (every frame received is processed), completes the
   * branch streams and finalizes every recording. Idempotent.
   */
  close(): Promise<RecordingInfo[]> {
    this.#closed ??= (async () => {
      await this.#stream.close();
      // A stream that ended before its worker built it (it failed, or never started): recordings waiting for the format get the expected one.
      if (this.#settleFormats) this.#formatsReported(this.#options.pipeline.branches);
      for (const r of this.#runtime) r.subject.complete();
      this.#loss.end();
      const infos = await Promise.all(this.#runtime.map((r) => r.record?.finalize()));
      return infos.filter((i): i is RecordingInfo => i !== undefined);
    })();
    return this.#closed;
  }

  /**
   * Attaches a registered main-thread processor to a branch (default: the
   * first). Returns a function that detaches it. An unknown name throws
   * `EARSHOT_PROCESSOR_NOT_FOUND`; a processor that fails later is detached and
   * counted instead (see the module comment of sinks/processors.ts).
   */
  attachProcessor(name: string, options: Record<string, unknown> = {}, branch?: string): () => void {
    const factory = this.#options.processors.get(name);
    const r = branch === undefined ? this.#runtime[0] : this.#runtime.find((x) => x.name === branch);
    if (!r) throw new RangeError(`pipeline "${this.#options.pipeline.name}" has no branch "${branch}"`);
    const entry: AttachedProcessor & { sub?: Subscription } = { name, branch: r.name, state: 'running' };
    this.#processors.push(entry);
    const { peer, room, session } = this.#options;
    entry.sub = runProcessor(
      r.subject,
      factory,
      {
        peerId: peer,
        roomId: room,
        sessionId: session,
        branch: r.name,
        options: Object.freeze({ ...options }),
        emit: (event, data) => {
          try {
            this.#options.onProcessorEvent({ peerId: peer, roomId: room, sessionId: session, processor: name, event: String(event), data, at: Date.now() });
          } catch {
            // an event listener's failure is not the processor's
          }
        },
      },
      (error) => {
        entry.state = 'failed';
        entry.sub?.unsubscribe();
        this.processorErrors++;
        this.#sinkFailed(`processor:${name}`, error);
      },
    );
    if (entry.state === 'failed') entry.sub?.unsubscribe();
    return () => {
      if (entry.state === 'running') entry.state = 'detached';
      entry.sub?.unsubscribe();
    };
  }

  /** Processors attached to this peer, with their state. */
  processors(): AttachedProcessor[] {
    return this.#processors.map(({ name, branch, state }) => ({ name, branch, state }));
  }

  #recordTargets(): BranchRuntime[] {
    const withSink = this.#runtime.filter((_, i) => this.#options.pipeline.branches[i].sinks.some((s) => s.type === 'record'));
    return withSink.length > 0 ? withSink : [this.#runtime[0]];
  }

  /**
   * Branches whose float samples someone on this thread reads: subscribers
   * and processors (the branch's Subject is observed) and float recordings.
   * The others' frames come without them (the stats need only the levels the
   * worker measured, an s16 recording only the 16-bit copy).
   */
  #floatBranches(): number {
    let mask = 0;
    for (let i = 0; i < this.#runtime.length; i++) {
      const r = this.#runtime[i];
      if (r.recordF32 || r.subject.observed) mask |= bit(i);
    }
    return mask;
  }

  /**
   * Branches whose s16 recording is armed, opening or running: their samples
   * are quantized in the worker and the WAV writer only copies them. (A batch
   * that left before a recording started brings floats, which the writer
   * quantizes with the same quantizer: the file is the same either way.)
   */
  #pcm16Branches(): number {
    let mask = 0;
    for (let i = 0; i < this.#runtime.length; i++) {
      const r = this.#runtime[i];
      if (!r.recordF32 && !r.recordEncoded && r.recording && r.record?.active) mask |= bit(i);
    }
    return mask;
  }

  /**
   * One frame of a branch: latency and loss accounting, then the sinks,
   * called directly (stats, then the recording), then the branch's
   * subscribers. A sink that throws is detached and counted. A frame sent
   * without its float samples (nobody read them when its batch left) is not
   * given to subscribers that came since: to them the stream starts a batch
   * later.
   */
  #deliver(branch: number, f: AudioFrame, pcm16: Int16Array | undefined, complete: boolean): void {
    const r = this.#runtime[branch];
    if (!r) return;
    const now = performance.now();
    if (branch === 0) {
      // Within one worker stream positions are contiguous (the worker fills every gap with
      // silence); a jump means frames died with a worker before they were processed.
      this.#loss.frame(f.position, f.data.length / f.channels);
      // One figure per frame of the first branch; the bucket is searched once for both histograms.
      const ms = now - f.arrival;
      const bucket = this.stats.addLatency(ms);
      const global = this.#options.latency;
      if (global !== undefined) {
        if (global.bounds === this.stats.latency.bounds) global.addToBucket(bucket, ms);
        else global.add(ms);
      }
    }
    if (r.measured) {
      try {
        this.stats.addFrame(f, now);
      } catch (e) {
        r.measured = false;
        this.#sinkFailed(`stats:${r.name}`, e as Error);
      }
    }
    if (r.recording) {
      try {
        r.record!.write(f, pcm16);
      } catch (e) {
        r.recording = false;
        this.#sinkFailed(`record:${r.name}`, e as Error);
      }
    }
    if (complete && r.subject.observed) r.subject.next(f);
  }

  /** The branches' formats from the worker: what recordings are written in, and what `branches` say from now on. */
  #formatsReported(formats: readonly BranchFormat[]): void {
    this.branches.forEach((b, i) => {
      const f = formats[i];
      if (!f) return;
      b.sampleRate = f.sampleRate;
      b.channels = f.channels;
    });
    this.#settleFormats?.(formats);
    this.#settleFormats = undefined;
  }

  #sinkFailed(sink: string, error: Error): void {
    this.sinkErrors++;
    this.#options.onSinkError(sink, error);
  }

  #recordingFailed(branch: string, error: Error & { code?: string }, info: RecordingInfo): void {
    if (!this.#options.onEvent) return this.#sinkFailed(`record:${branch}`, error);
    this.sinkErrors++;
    this.#emit({
      type: 'recording-failed',
      level: 'error',
      message: 'recording failed; the stream goes on without it',
      data: { branch, recording: info.name, code: error.code, error: error.message, seconds: info.seconds, bytes: info.bytes },
    });
  }

  #emit(event: PeerPipelineEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // a listener's failure must not break the stream
    }
  }
}

function bit(branch: number): number {
  return branch < 30 ? 1 << branch : 0;
}

export { DROP_QUIET_MS, type PeerPipelineEvent } from './loss-accounting.js';

// Moved to sinks/recording-names.ts (shared with pipeline validation); re-exported for existing importers.
export { DEFAULT_RECORD_TEMPLATE, recordingBaseName } from '../sinks/recording-names.js';
