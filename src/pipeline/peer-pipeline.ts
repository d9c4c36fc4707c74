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
 * An "ogg-opus" record sink on a branch without stages takes the encoded
 * packets on this thread as they are pushed, before the worker: it records
 * what was received, and the worker sends its branch nothing for it. On a
 * branch with stages the worker encodes the stages' output to Opus (one
 * encoder per branch, only while something reads its packets: that
 * recording, or listeners of `encodedAudio$`).
 *
 * A branch with processor stages (main-thread processors whose output is the
 * audio, see processor-stage-chain.ts) gets its frames from the worker as
 * floats and runs them through those stages; its sinks, listeners and
 * subscribers get what the last stage emits, in its format (the worker's
 * report, changed by what the stages declare).
 *
 * The worker reports the format of every branch when the stream starts
 * (what its stages really output, custom ones included): recordings are
 * written in it and `branches` describe it from then on.
 *
 * Audio dropped on the way (worker queue full, late packets, a worker that
 * restarted) is counted into the recordings it cost, and reported once per
 * episode through `onEvent`: when drops start after a quiet spell, and a
 * summary when they stop. A recording that fails is reported there too.
 *
 * Why this file is long (~650 lines): it is the one place where a branch's
 * outputs meet — what the worker must send for each (the masks), who gets
 * each frame in which order, and how each ends — and splitting the class
 * would spread that one decision over files. What stands alone lives beside
 * it: loss accounting, processor contexts, processor stages, websocket sinks.
 */
import { performance } from 'node:perf_hooks';
import { Subject, type Observable, type Subscription } from 'rxjs';
import { ENCODED_FRAME_SAMPLES_48K, opusEncodable } from '../dsp/opus-encode.js';
import { errors } from '../errors.js';
import type { AudioFrame, BranchFormat, EncodedFrame } from '../media/frames.js';
import { isSharedZeros } from '../media/shared-zeros.js';
import { nextInPool } from '../pool/default-pool.js';
import type { WorkerPool, PoolStream } from '../pool/worker-pool.js';
import { PeerAudioStats } from '../sinks/peer-stats.js';
import { SpeakingTracker, type SpeakingState } from '../sinks/speaking.js';
import type { LatencyHistogram } from '../media/latency-histogram.js';
import { RecordSink } from '../sinks/record-sink.js';
import type { WebSocketSink, WebSocketSinkStats } from '../sinks/websocket-sink.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import { recordingBaseName } from '../sinks/recording-names.js';
import type { RecordingsStore } from '../sinks/recordings-store.js';
import { runProcessor, type ProcessorClientLink, type ProcessorEvent, type ProcessorRegistry } from '../sinks/processors.js';
import { LossAccounting, type DropCounts, type PeerPipelineEvent } from './loss-accounting.js';
import type { Pipeline } from './pipeline.js';
import { processorContext } from './processor-context.js';
import { DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS, ProcessorStageChain, type ProcessorStageCutOff, type ProcessorStageStats } from './processor-stage-chain.js';
import { processorStages, workerStages, type ProcessorStageDefinition } from './processor-stages.js';
import { openWebSocketSinks } from './websocket-sinks.js';

export interface PeerPipelineOptions {
  pool: WorkerPool;
  store: RecordingsStore;
  pipeline: Pipeline;
  room: string;
  peer: string;
  session: string;
  /** Where the pipeline's `processor` sinks and stages find their factories. */
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
   * A processor stage (a `processor` in a branch's `stages`) failed and was
   * detached: the branch goes on without it. `stage` is its index in the
   * branch's stages. Logged by the caller, once per stage.
   */
  onProcessorStageError(processor: string, branch: string, stage: number, error: Error): void;
  /**
   * Things an operator must hear about that don't stop the stream: a recording
   * that could not start or whose writes failed, and episodes of dropped
   * audio. The caller logs and publishes them.
   */
  onEvent?(event: PeerPipelineEvent): void;
  /**
   * A recording started, stopped or failed (the client's data channel
   * reports it). Failures also go to `onEvent`.
   */
  onRecording?(change: RecordingChange): void;
  /** The client's data channel, for processors (`context.messages$`, `context.send`); none: they see no messages and cannot send. */
  client?: ProcessorClientLink;
  /**
   * How long `close()` waits for each processor stage (operator form) that
   * still holds frames to complete; one that has not by then is cut off, and
   * what it held is counted and reported (`processor-stage-cut-off`). Default
   * `DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS` (2000 ms).
   */
  processorDrainTimeoutMs?: number;
}

/** A recording's state changed (see `PeerPipelineOptions.onRecording`). */
export interface RecordingChange {
  state: 'started' | 'stopped' | 'failed';
  branch: string;
  recording: RecordingInfo;
}

/** A processor attached to one of this peer's branches. */
export interface AttachedProcessor {
  name: string;
  branch: string;
  /** `failed` after it threw or errored (see `sinkErrors`), `detached` after `detach()`, `completed` once it finished with the stream. */
  state: 'running' | 'detached' | 'failed' | 'completed';
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
  /** The record sink writes the received Opus packets (ogg-opus, no stages): fed from `push`, it needs nothing from the worker. */
  recordEncoded: boolean;
  /** The record sink writes Opus packets the worker encodes from the stages' output (ogg-opus after stages). */
  recordCoded: boolean;
  /** Packets the worker encodes for listeners (`encodedAudio$`); created on first use, fed while observed. */
  opus?: Subject<EncodedFrame>;
  /** The stats sink reads this branch (until it throws). */
  measured: boolean;
  /** The record sink is attached (until it throws). */
  recording: boolean;
  /** The branch's processor stages (main thread, after its worker stages), with their index in `stages`. */
  processorStages: Array<{ index: number; stage: ProcessorStageDefinition }>;
  /** Runs them: built when the worker reports the format they get. */
  chain?: ProcessorStageChain;
  /** Websocket sinks and `GET /peers/:peer/audio` sockets of this branch: they take its PCM on this thread. */
  listeners: PcmListener[];
  /** The branch's debounced speaking verdict (frames with voice activity only), for a listener that joins mid-stream. */
  speaking: SpeakingTracker;
}

/**
 * Something that takes a branch's frames as PCM on this thread (a websocket
 * sink, a socket of `GET /peers/:peer/audio`): the worker then sends the
 * branch a 16-bit copy (s16) or its floats (f32), only while it listens.
 */
export interface PcmListener {
  readonly sampleFormat: 's16' | 'f32';
  /** One frame; `pcm16` its 16-bit copy if the worker made one; `complete` false when its floats were left out. Copy what you keep. */
  write(frame: AudioFrame, pcm16: Int16Array | undefined, complete: boolean): void;
  /** The stream ended (the session's end reason). A returned promise settles when the listener is done; only server shutdown waits for it. */
  end(reason: string): void | Promise<void>;
}

export class PeerPipeline {
  readonly stats = new PeerAudioStats();
  readonly branches: BranchOutput[];
  sinkErrors = 0;
  /** Processors that failed and were detached. */
  processorErrors = 0;
  readonly #processors: Array<AttachedProcessor & { sub?: Subscription }> = [];
  readonly #websockets: WebSocketSink[] = [];
  /** Settles when every socket listener has sent its end and closed (or was cut after its grace); set by `close`. */
  #socketsEnded: Promise<unknown> = Promise.resolve();
  readonly #runtime: BranchRuntime[];
  readonly #stream: PoolStream;
  readonly #options: PeerPipelineOptions;
  /** Settles with each branch's format: the worker's report, or the pipeline's expectation if the stream ends without one. */
  readonly #formats: Promise<readonly BranchFormat[]>;
  #settleFormats: ((formats: readonly BranchFormat[]) => void) | undefined;
  #closed: Promise<RecordingInfo[]> | undefined;
  /** Audio lost on the way: counted into the recordings it cost, and reported in episodes. */
  readonly #loss: LossAccounting;
  /**
   * Media position (48 kHz samples) just past the last packet pushed: where
   * the recordings end, even when a worker fault cost the frames before it.
   */
  #mediaEnd = 0;

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
        listeners: [],
        speaking: new SpeakingTracker(),
        recording: true,
        recordF32: recordFormat === 'f32' && container === 'wav',
        // Validation refuses ogg-opus with processor stages: what the worker encodes is the worker stages' output.
        recordEncoded: container === 'ogg-opus' && workerStages(b.stages).length === 0,
        recordCoded: container === 'ogg-opus' && workerStages(b.stages).length > 0,
        processorStages: processorStages(b.stages),
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
        coded: runtime.recordCoded,
        onFailed: (error, info) => this.#recordingFailed(b.name, error, info),
        onStarted: (info) => this.#recordingChanged('started', b.name, info),
        onStopped: (info) => this.#recordingChanged('stopped', b.name, info),
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
    // Websocket sinks connect now; their frames wait in their queues until the connection opens.
    for (const { branch, sink } of openWebSocketSinks(pipeline, options, (event) => this.#emit(event), (name, error) => this.#sinkFailed(name, error))) {
      this.#websockets.push(sink);
      this.#runtime[branch].listeners.push(sink);
    }

    this.#stream = options.pool.openStream(
      { channels: pipeline.channels, branches: pipeline.branches.map((b) => ({ stages: workerStages(b.stages) })) },
      {
        onFrames: (branch, frames, copies, complete) => {
          for (let i = 0; i < frames.length; i++) this.#deliver(branch, frames[i], copies?.[i], complete?.[i] !== false);
        },
        onFrame: (branch, frame, copy, complete) => this.#deliver(branch, frame, copy, complete),
        // A pause's floats are read by the sinks as shared zeros; subscribers and processor stages get their own (#ownData).
        sharedZeros: true,
        onFormats: (formats) => this.#formatsReported(formats),
        onCounters: (c) => {
          this.stats.setCounters(c, this.#stream.workers.length);
          this.#loss.counters(c, this.#stream.dropped, this.#stream, this.#stream.workers.length);
        },
        onError: (message) => options.onPipelineError(message),
        f32Branches: () => this.#floatBranches(),
        pcm16Branches: () => this.#pcm16Branches(),
        opusBranches: () => this.#opusBranches(),
        onOpus: (branch, position, packets, repeat, end) => this.#deliverOpus(branch, position, packets, repeat, end),
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
    const end = frame.position + frame.samples;
    if (end > this.#mediaEnd) this.#mediaEnd = end;
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
   * branch if none has: those of them not recording already (a branch that
   * records every stream goes on with its file), or only `branch`.
   * `EARSHOT_RECORDING_ACTIVE` when every one asked for is recording. `path`
   * (programmatic API) records the first target to that file, wherever it is.
   */
  async startRecording(name?: string, path?: string, branch?: string): Promise<RecordingInfo[]> {
    const all = this.#recordTargets();
    if (path !== undefined) return [await all[0].record!.start(undefined, false, path)];
    const chosen = branch === undefined ? all : [this.#recordTarget(branch, all)];
    // Not those recording, nor those armed to record every stream (no audio yet): the POST is for the
    // others. Only when there is none of those does it open the armed ones' files at once.
    const idle = chosen.filter((r) => !r.record!.running && !r.record!.armed);
    const targets = idle.length > 0 ? idle : chosen.filter((r) => !r.record!.running);
    // Every one asked for records already: the sink says so (with its file's name).
    if (targets.length === 0) await chosen[0].record!.checkStart();
    // A branch's file is named after it wherever the pipeline records more than one branch, started together or not.
    const names = targets.map((r) => (name !== undefined && all.length > 1 ? `${name.replace(/\.(wav|opus)$/i, '')}-${r.name}` : name));
    // A name taken or not valid for any branch refuses them all, before any starts.
    for (const [i, r] of targets.entries()) await r.record!.checkStart(names[i]);
    // Then every branch's recording starts at once: each keeps the frames that arrive while its
    // file opens, so all begin at the same frame (one after the other, a branch began a frame or
    // two after the one whose file opened first).
    const results = await Promise.allSettled(targets.map((r, i) => r.record!.start(names[i])));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // One that could not start (its directory, a race with an automatic start) stops the others: the
      // caller is told it failed, so nothing may go on recording (their short files are finalized).
      await Promise.all(targets.map((r, i) => (results[i].status === 'fulfilled' ? r.record!.stop().catch(() => undefined) : undefined)));
      throw failed.reason;
    }
    return results.map((r) => (r as PromiseFulfilledResult<RecordingInfo>).value);
  }

  /**
   * Stops the running recordings, or only `branch`'s. Armed ones that have no
   * file yet (no audio arrived) are cancelled too, so none starts later; if
   * that is all there was, it is still "not recording"
   * (`EARSHOT_RECORDING_NOT_ACTIVE`).
   */
  async stopRecording(branch?: string): Promise<RecordingInfo[]> {
    const chosen = branch === undefined ? this.#runtime : [this.#recordTarget(branch, this.#recordTargets())];
    for (const r of chosen) r.record?.disarm();
    const active = chosen.filter((r) => r.record?.active);
    if (active.length === 0) {
      // Let the sink produce the typed "not recording" error.
      await (branch === undefined ? this.#recordTargets()[0] : chosen[0]).record!.stop();
    }
    return Promise.all(active.map((r) => r.record!.stop()));
  }

  /** The recording target named `branch`: `EARSHOT_BRANCH_NOT_FOUND` for a branch the pipeline lacks, or one that cannot record. */
  #recordTarget(branch: string, targets: BranchRuntime[]): BranchRuntime {
    const found = targets.find((r) => r.name === branch);
    if (!found) {
      if (this.#runtime.some((r) => r.name === branch)) throw errors.BODY_INVALID(`Branch "${branch}" of peer "${this.#options.peer}" has no record sink; the branches that record: ${targets.map((r) => r.name).join(', ')}.`);
      throw this.#unknownBranch(branch);
    }
    return found;
  }

  recordings(): RecordingInfo[] {
    return this.#runtime.map((r) => r.record?.info()).filter((i): i is RecordingInfo => i !== undefined);
  }

  /**
   * Drains the worker (every frame received is processed), completes the
   * branch streams and finalizes every recording. Idempotent. Resolves to
   * every recording file the stream made, in order per branch, and a
   * recording that failed before its file existed (state `failed`, 0 bytes).
   */
  close(reason = 'closed'): Promise<RecordingInfo[]> {
    this.#closed ??= (async () => {
      await this.#stream.close();
      // A stream that ended before its worker built it (it failed, or never started): recordings waiting for the format get the expected one.
      if (this.#settleFormats) this.#formatsReported(this.#options.pipeline.branches);
      // What processor stages still hold reaches the sinks before the recordings are finalized.
      for (const r of this.#runtime) await r.chain?.complete();
      for (const r of this.#runtime) {
        r.subject.complete();
        r.opus?.complete();
      }
      this.#endProcessors();
      // Loss after the stream's last batch (a fault in it; a stream the pool ended, with its queue).
      this.#loss.settle(this.#stream.dropped, this.#stream);
      this.#loss.end();
      // Sockets get their end message; they finish on their own (bounded), never holding up the recordings.
      const ending: unknown[] = [];
      for (const r of this.#runtime) {
        for (const l of r.listeners.splice(0)) {
          try {
            ending.push(l.end(reason));
          } catch {
            // a listener that fails at the end has nothing more to lose
          }
        }
      }
      this.#socketsEnded = Promise.allSettled(ending);
      // Every recording reaches the media's end: frames lost at the end leave silence, not a short file.
      const last = await Promise.all(this.#runtime.map((r) => r.record?.finalize(this.#mediaEnd)));
      // Every file the session made, those stopped before the end (recording stopped and started again) included,
      // and a branch's recording that failed before its file existed (its reason is worth telling; it has no file).
      return this.#runtime.flatMap((r, i) => {
        const made = r.record?.made() ?? [];
        const final = last[i];
        return final && !made.includes(final) ? [...made, final] : made;
      });
    })();
    return this.#closed;
  }

  /** `EARSHOT_BRANCH_NOT_FOUND` (404), naming the branches there are. */
  #unknownBranch(branch: string): Error {
    return errors.BRANCH_NOT_FOUND(this.#options.peer, branch, this.#runtime.map((r) => r.name));
  }

  /**
   * The stream ended and the processors' `audio$` completed: a processor
   * whose output has not completed `processorDrainTimeoutMs` later (a timer
   * merged in, a socket it keeps) is unsubscribed, so nothing of it outlives
   * its stream or keeps the process alive. In the background: the session's
   * end and its recordings do not wait for it.
   */
  #endProcessors(): void {
    const open = this.#processors.filter((p) => p.sub !== undefined && !p.sub.closed);
    if (open.length === 0) return;
    const cut = () => {
      clearTimeout(timer);
      for (const p of open) p.sub!.unsubscribe();
    };
    const timer = setTimeout(cut, this.#options.processorDrainTimeoutMs ?? DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS);
    timer.unref();
    let left = open.length;
    // Completed (or failed) by themselves: no need to wait for the timer.
    for (const p of open) p.sub!.add(() => --left === 0 && clearTimeout(timer));
  }

  /**
   * Attaches a registered main-thread processor to a branch (default: the
   * first). Returns a function that detaches it. An unknown name throws
   * `EARSHOT_PROCESSOR_NOT_FOUND`; a processor that fails later is detached and
   * counted instead (see the module comment of sinks/processors.ts).
   */
  attachProcessor(name: string, options: Record<string, unknown> = {}, branch?: string): () => void {
    const factory = this.#options.processors.get(name);
    const r = this.#branchRuntime(branch);
    const entry: AttachedProcessor & { sub?: Subscription } = { name, branch: r.name, state: 'running' };
    this.#processors.push(entry);
    const failed = (error: Error) => {
      if (entry.state !== 'running') return;
      entry.state = 'failed';
      entry.sub?.unsubscribe();
      this.processorErrors++;
      this.#sinkFailed(`processor:${name}`, error);
    };
    const context = processorContext(this.#options, name, r.name, Object.freeze({ ...options }), { running: () => entry.state === 'running', failed });
    entry.sub = runProcessor(r.subject, factory, context, failed, () => {
      if (entry.state === 'running') entry.state = 'completed';
    });
    if (entry.state === 'failed') entry.sub?.unsubscribe();
    return () => {
      if (entry.state === 'running') entry.state = 'detached';
      entry.sub?.unsubscribe();
    };
  }

  /** A branch by name (default: the first); an unknown one throws `EARSHOT_BRANCH_NOT_FOUND`. */
  #branchRuntime(branch: string | undefined): BranchRuntime {
    const r = branch === undefined ? this.#runtime[0] : this.#runtime.find((x) => x.name === branch);
    if (!r) throw this.#unknownBranch(branch!);
    return r;
  }

  /**
   * Where the branch's debounced speaking verdict stands (from the voice
   * activity of its frames so far; `speaking: null` on a branch without
   * any), for a listener that joins mid-stream. An unknown branch throws
   * `EARSHOT_BRANCH_NOT_FOUND`.
   */
  speakingState(branch?: string): SpeakingState {
    return this.#branchRuntime(branch).speaking.state();
  }

  /**
   * Sends a branch's PCM (default: the first branch) to `listener` from the
   * next batch on, in its sample format; returns a function that detaches it
   * (its `end` is then not called). An unknown branch throws `EARSHOT_BRANCH_NOT_FOUND`; a
   * stream that already ended gets `end('ended')` at once.
   */
  addListener(listener: PcmListener, branch?: string): () => void {
    const r = this.#branchRuntime(branch);
    if (this.#closed) {
      listener.end('ended');
      return () => undefined;
    }
    r.listeners.push(listener);
    return () => {
      const k = r.listeners.indexOf(listener);
      if (k >= 0) r.listeners.splice(k, 1);
    };
  }

  /**
   * Settles when the socket listeners ended by `close` have sent their end
   * message and closed, or were cut after their grace (5 s). Server shutdown
   * waits for it; a session's end does not.
   */
  socketsEnded(): Promise<void> {
    return this.#socketsEnded.then(() => undefined);
  }

  /** The pipeline's websocket sinks: state and counters. */
  websocketSinks(): WebSocketSinkStats[] {
    return this.#websockets.map((w) => w.stats());
  }

  /** Processors attached to this peer, with their state. */
  processors(): AttachedProcessor[] {
    return this.#processors.map(({ name, branch, state }) => ({ name, branch, state }));
  }

  /** The processor stages of this peer's branches, with their state, frames and main-thread time (none before the stream started). */
  processorStages(): ProcessorStageStats[] {
    return this.#runtime.flatMap((r) => r.chain?.stats() ?? []);
  }

  /** Main-thread seconds this peer's processor stages spent. */
  get processorStageSeconds(): number {
    return this.#runtime.reduce((n, r) => n + (r.chain?.cpuSeconds ?? 0), 0);
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
      if (r.recordF32 || r.subject.observed || r.processorStages.length > 0 || hasListenerIn(r, 'f32')) mask |= bit(i);
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
      // A branch with processor stages records and sends their output: its own 16-bit copy would be of the audio before them.
      if (r.processorStages.length > 0) continue;
      if (!r.recordF32 && !r.recordEncoded && !r.recordCoded && r.recording && r.record?.active) mask |= bit(i);
      // A 16-bit socket (websocket sink, GET /peers/:peer/audio) takes the worker's copy as it is.
      if (hasListenerIn(r, 's16')) mask |= bit(i);
    }
    return mask;
  }

  /** Branches whose Opus packets someone reads: an ogg-opus recording after stages, or listeners. */
  #opusBranches(): number {
    let mask = 0;
    for (let i = 0; i < this.#runtime.length; i++) {
      const r = this.#runtime[i];
      if ((r.recordCoded && r.recording && r.record?.active) || r.opus?.observed) mask |= bit(i);
    }
    return mask;
  }

  /** Packets the worker encoded for a branch (views into its batch: the recording and listeners copy what they keep). */
  #deliverOpus(branch: number, position: number, packets: readonly Uint8Array[], repeat: readonly boolean[] | undefined, end: number | undefined): void {
    const r = this.#runtime[branch];
    if (!r) return;
    const arrival = performance.now();
    packets.forEach((payload, i) => {
      const frame: EncodedFrame = { position: position + i * ENCODED_FRAME_SAMPLES_48K, payload, samples: ENCODED_FRAME_SAMPLES_48K, arrival, repeat: repeat?.[i] === true };
      if (end !== undefined && i === packets.length - 1) frame.end = end;
      if (r.recordCoded && r.recording) {
        try {
          r.record!.writeEncoded(frame);
        } catch (e) {
          r.recording = false;
          this.#sinkFailed(`record:${r.name}`, e as Error);
        }
      }
      if (r.opus?.observed) r.opus.next(frame);
    });
  }

  /**
   * A branch's audio encoded to Opus in the worker, for listeners (e.g.
   * WHEP): 20 ms packets at their media position (48 kHz samples), hot and
   * shared, one encoder per branch however many subscribe; the worker encodes
   * only while someone does. Payloads are valid during the call only: copy
   * what you keep. Every 20 ms comes, pauses included; a settled pause's
   * packets are marked `repeat` (skip them to send as a DTX sender does).
   * Throws `EARSHOT_BRANCH_NOT_ENCODABLE` for a branch Opus
   * cannot code (a rate other than 8, 12, 16, 24 or 48 kHz) and
   * `EARSHOT_BRANCH_NOT_FOUND` for an unknown branch.
   */
  encodedAudio$(branch?: string): Observable<EncodedFrame> {
    const i = branch === undefined ? 0 : this.#runtime.findIndex((r) => r.name === branch);
    const r = this.#runtime[i];
    if (!r) throw this.#unknownBranch(branch!);
    // The worker encodes what its stages output; processor stages run after it, on this thread.
    const refused = r.processorStages.length > 0 ? 'its processor stages run on the main thread, after the worker that would encode it' : opusEncodable(this.branches[i]);
    if (refused) throw errors.BRANCH_NOT_ENCODABLE(r.name, refused);
    r.opus ??= new Subject<EncodedFrame>();
    return r.opus.asObservable();
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
      // One figure per frame of the first branch; the bucket is searched once for both histograms.
      const ms = now - f.arrival;
      const bucket = this.stats.addLatency(ms);
      const global = this.#options.latency;
      if (global !== undefined) {
        if (global.bounds === this.stats.latency.bounds) global.addToBucket(bucket, ms);
        else global.add(ms);
      }
    }
    if (r.chain) {
      // Its sinks get what the processor stages make of the frame (always sent with its floats, see #floatBranches).
      r.chain.push(ownData(f));
      return;
    }
    this.#toSinks(r, f, pcm16, complete, now);
  }

  /** A frame of the branch's audio to its sinks (stats, then the recording), its listeners, then its subscribers. */
  #toSinks(r: BranchRuntime, f: AudioFrame, pcm16: Int16Array | undefined, complete: boolean, now: number): void {
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
    if (f.speech !== undefined || f.vad !== undefined) r.speaking.update(f.speech ?? (f.vad ?? 0) >= 0.5);
    for (let k = 0; k < r.listeners.length; k++) {
      const l = r.listeners[k];
      try {
        l.write(f, pcm16, complete);
      } catch (e) {
        r.listeners.splice(k--, 1);
        this.#sinkFailed(`websocket:${r.name}`, e as Error);
      }
    }
    // As this pipeline's pool's: a stage operator on the branch without a pool of its own runs on it (default-pool.ts).
    if (complete && r.subject.observed) nextInPool(this.#options.pool, r.subject, ownData(f));
  }

  /** The branches' formats from the worker: what recordings are written in, and what `branches` say from now on. */
  #formatsReported(reported: readonly BranchFormat[]): void {
    const formats = reported.map((f, i) => this.#afterProcessorStages(i, f));
    this.branches.forEach((b, i) => {
      const f = formats[i];
      if (!f) return;
      b.sampleRate = f.sampleRate;
      b.channels = f.channels;
    });
    this.#settleFormats?.(formats);
    this.#settleFormats = undefined;
  }

  /**
   * A branch's format after its processor stages, building them the first
   * time the worker reports the format they get (before its first frame); a
   * later report (a restarted worker) reuses them.
   */
  #afterProcessorStages(branch: number, format: BranchFormat): BranchFormat {
    const r = this.#runtime[branch];
    if (!format || !r || r.processorStages.length === 0) return format;
    if (!r.chain) {
      r.chain = new ProcessorStageChain({
        branch: r.name,
        stages: r.processorStages,
        processors: this.#options.processors,
        input: { sampleRate: format.sampleRate, channels: format.channels, sampleFormat: format.sampleFormat ?? 'f32' },
        contextFor: (name, options, stage) => processorContext(this.#options, name, r.name, options, stage),
        deliver: (frame) => this.#toSinks(r, frame, undefined, true, performance.now()),
        onFailed: (name, error, stage) => {
          // Counted as every detached processor is (sinkErrors holds them all), reported as the stage it is.
          this.processorErrors++;
          this.sinkErrors++;
          this.#options.onProcessorStageError(name, r.name, stage, error);
        },
        completeTimeoutMs: this.#options.processorDrainTimeoutMs,
        onCutOff: (cut) => this.#processorStageCutOff(r, cut),
      });
    }
    return r.chain.output;
  }

  /**
   * A processor stage still held audio when the wait at the end ran out: its
   * media time went on as silence (the chain did that); here the recording
   * counts it as dropped and as a gap, and the operator hears of it.
   */
  #processorStageCutOff(r: BranchRuntime, cut: ProcessorStageCutOff): void {
    r.record?.noteLoss({ processorStage: cut.frames }, Math.round(cut.seconds * DECODE_RATE));
    this.#emit({
      type: 'processor-stage-cut-off',
      level: 'warn',
      message: 'a processor stage still held audio when the stream ended and did not complete within the drain timeout; what it held was cut off (silence in its place)',
      data: { branch: cut.branch, stage: cut.stage, processor: cut.name, frames: cut.frames, seconds: Math.round(cut.seconds * 1000) / 1000, timeoutMs: cut.timeoutMs, recording: r.record?.active ?? false },
    });
  }

  #sinkFailed(sink: string, error: Error): void {
    this.sinkErrors++;
    this.#options.onSinkError(sink, error);
  }

  #recordingChanged(state: RecordingChange['state'], branch: string, recording: RecordingInfo): void {
    try {
      this.#options.onRecording?.({ state, branch, recording });
    } catch {
      // a listener's failure must not break the stream
    }
  }

  #recordingFailed(branch: string, error: Error & { code?: string }, info: RecordingInfo): void {
    this.#recordingChanged('failed', branch, info);
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

/** The unit of the silence `RecordSink.noteLoss` is told about: samples of the decoded stream. */
const DECODE_RATE = 48000;

function bit(branch: number): number {
  return branch < 30 ? 1 << branch : 0;
}

/** The frame with samples of its own for code that may keep or change them: a pause's shared zeros copied (see `sharedZeros` above). */
function ownData(f: AudioFrame): AudioFrame {
  if (isSharedZeros(f.data)) f.data = f.data instanceof Int16Array ? new Int16Array(f.data.length) : new Float32Array(f.data.length);
  return f;
}

export { DROP_QUIET_MS, type PeerPipelineEvent } from './loss-accounting.js';

// Moved to sinks/recording-names.ts (shared with pipeline validation); re-exported for existing importers.
export { DEFAULT_RECORD_TEMPLATE, recordingBaseName } from '../sinks/recording-names.js';

/** Whether a listener of the branch takes samples in `format` (a loop, not `some`: asked for every stream in every batch). */
function hasListenerIn(r: BranchRuntime, format: 'f32' | 's16'): boolean {
  for (let k = 0; k < r.listeners.length; k++) if (r.listeners[k].sampleFormat === format) return true;
  return false;
}
