/**
 * The processor stages of one branch, running on the main thread: the frames
 * the worker delivers for the branch go through them in order, and what the
 * last one emits is the branch's audio (stats, recording, processor sinks,
 * subscribers).
 *
 * Each stage is isolated like a sink: a stage whose factory or operator
 * throws or errors, or that emits a frame that is not in its declared format,
 * is detached and reported once, and the branch goes on without it: with the
 * audio the stage got, or (a stage that changes the format) with silence in
 * its output format at the same media positions, so a recording keeps its
 * header and its duration stays media time.
 *
 * The main-thread time each stage spends (its synchronous work, not the
 * stages and sinks after it) is counted: it competes with WebRTC for the
 * main thread, and the peer's statistics show it.
 *
 * When the stream ends, an operator stage's input completes and the chain
 * waits for what it still holds, up to `completeTimeoutMs`. An operator that
 * has not completed by then is cut off: what it still held is counted
 * (`framesCutOff`, estimated from the media time its output is short of its
 * input) and reported through `onCutOff`, and the media time it covered goes
 * on as silence in the stage's output format, so the recording's duration
 * stays the media duration and the loss is never silent.
 */
import { performance } from 'node:perf_hooks';
import { Observable, Subject, type Subscription } from 'rxjs';
import { CLIP_LEVEL, measureLevels } from '../dsp/levels.js';
import { isSharedZeros, sharedZerosF32, sharedZerosS16 } from '../media/shared-zeros.js';
import type { AudioFrame, BranchFormat } from '../media/frames.js';
import type { ProcessorContext, ProcessorRegistry, ProcessorStageContext, ProcessorStageFormat, ProcessorStageInstance } from '../sinks/processors.js';
import type { ProcessorStageDefinition } from './processor-stages.js';

/** A processor stage of a peer's branch, as the peer's statistics show it. */
export interface ProcessorStageStats {
  /** Registered processor name. */
  name: string;
  branch: string;
  /** Index of the stage in the branch's `stages`. */
  stage: number;
  /**
   * `failed` after it threw, errored or emitted a frame of the wrong format: the branch goes on without it.
   * `completed` once the stream ended and the stage finished: it emitted what it held, or the wait
   * for it ran out (`framesCutOff`).
   */
  state: 'running' | 'failed' | 'completed';
  /** Frames it was given. */
  framesIn: number;
  /** Frames it emitted (that passed to the next stage or the sinks). */
  framesOut: number;
  /** Main-thread seconds spent in it (its synchronous work per frame). */
  cpuSeconds: number;
  /**
   * Frames it still held when the stream ended and the wait for it ran out
   * (`processorDrainTimeoutMs`): estimated from the media time its output was
   * short of its input, in frames of the size it was given. Their media time
   * went on as silence. 0 while it keeps up.
   */
  framesCutOff: number;
  /** Why it failed. */
  error?: string;
}

export interface ProcessorStageChainOptions {
  branch: string;
  stages: ReadonlyArray<{ index: number; stage: ProcessorStageDefinition }>;
  /** Where the stages' factories are (every name was checked before the stream started). */
  processors: ProcessorRegistry;
  /**
   * The context a processor sink named `name` would get on this branch (the
   * stream's ids, `emit`, the client's messages); `stage` says whether the
   * stage still runs and reports a failure of its own (a message handler
   * that throws).
   */
  contextFor(name: string, options: Readonly<Record<string, unknown>>, stage: { running(): boolean; failed(error: Error): void }): ProcessorContext;
  /** The format of the frames the worker delivers for the branch. */
  input: BranchFormat;
  /** The branch's audio after the last stage. */
  deliver(frame: AudioFrame): void;
  /** A stage failed and was detached (called once per stage): its processor's name and its index in the branch's stages. */
  onFailed(name: string, error: Error, stage: number): void;
  /**
   * How long `complete()` waits for each operator stage that still holds
   * frames to complete, ms. Default `DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS`.
   */
  completeTimeoutMs?: number;
  /** An operator stage was cut off at the end (see the module comment); called once per stage, after its silence went on. */
  onCutOff?(cut: ProcessorStageCutOff): void;
}

/** What a processor stage still held when the wait for it at the end of the stream ran out. */
export interface ProcessorStageCutOff {
  name: string;
  branch: string;
  /** Index of the stage in the branch's `stages`. */
  stage: number;
  /** Frames cut off (see `ProcessorStageStats.framesCutOff`). */
  frames: number;
  /** Media seconds they held, now silence. */
  seconds: number;
  /** The wait that ran out, ms. */
  timeoutMs: number;
}

/**
 * How long closing waits by default for an operator holding frames to
 * complete: long enough for an operator that batches a second or so of audio
 * (a model call) to emit it, short enough that a stuck one does not hold up
 * the session's end for long.
 */
export const DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS = 2000;

/** Time spent downstream of the stage being timed (shared by a chain's stages, see `StageRunner.#emit`). */
interface Clock {
  downstreamMs: number;
}

export class ProcessorStageChain {
  /** The format of the chain's output: the last stage's output format. */
  readonly output: BranchFormat;
  readonly #runners: StageRunner[] = [];
  readonly #first: (frame: AudioFrame) => void;
  readonly #completeTimeoutMs: number;
  readonly #onCutOff: ((cut: ProcessorStageCutOff) => void) | undefined;

  constructor(options: ProcessorStageChainOptions) {
    this.#completeTimeoutMs = options.completeTimeoutMs ?? DEFAULT_PROCESSOR_DRAIN_TIMEOUT_MS;
    this.#onCutOff = options.onCutOff;
    const clock: Clock = { downstreamMs: 0 };
    let format = options.input;
    const specs = options.stages.map(({ index, stage }) => {
      const declared = outputFormatOf(options.processors, stage, format);
      const spec = { index, stage, input: format, output: declared.format, problem: declared.problem };
      format = declared.format;
      return spec;
    });
    this.output = format;
    // Built from the last stage back, so each one knows where its frames go.
    let next = (frame: AudioFrame) => options.deliver(withLevels(frame));
    for (let i = specs.length - 1; i >= 0; i--) {
      const runner = new StageRunner(specs[i], options, clock, next);
      this.#runners.unshift(runner);
      next = (frame) => runner.push(frame);
    }
    this.#first = next;
  }

  /** Runs a frame of the branch through the stages. */
  push(frame: AudioFrame): void {
    this.#first(frame);
  }

  /**
   * Ends the input; settles when every stage has emitted what it holds, or
   * was cut off after `completeTimeoutMs`. In order: a stage cut off passes
   * its silence on before the next stage's input completes.
   */
  async complete(): Promise<void> {
    for (const r of this.#runners) {
      const cut = await r.complete(this.#completeTimeoutMs);
      if (r.stats.state === 'running') r.stats.state = 'completed';
      if (!cut) continue;
      try {
        this.#onCutOff?.(cut);
      } catch {
        // a listener's failure must not keep the other stages from completing
      }
    }
  }

  stats(): ProcessorStageStats[] {
    return this.#runners.map((r) => ({ ...r.stats, cpuSeconds: Math.round(r.stats.cpuSeconds * 1e6) / 1e6 }));
  }

  /** Main-thread seconds spent in the stages. */
  get cpuSeconds(): number {
    return this.#runners.reduce((n, r) => n + r.stats.cpuSeconds, 0);
  }
}

class StageRunner {
  readonly stats: ProcessorStageStats;
  readonly #input: BranchFormat;
  readonly #output: BranchFormat;
  readonly #clock: Clock;
  readonly #next: (frame: AudioFrame) => void;
  readonly #onFailed: (error: Error) => void;
  #map: ((frame: AudioFrame) => AudioFrame) | undefined;
  #subject: Subject<AudioFrame> | undefined;
  #sub: Subscription | undefined;
  /** Settles when the operator completed, errored or was detached. */
  #done: Promise<void> = Promise.resolve();
  #settle: (() => void) | undefined;
  /** Next output position of the silence a failed format-changing stage leaves. */
  #silenceAt: number | undefined;
  /** Media span of the input so far (samples at the input rate), and the size of its last frame: what a cut-off stage owed. */
  #inStart: number | undefined;
  #inEnd = 0;
  #inFrameSamples = 0;
  /** End of the media its output covers so far (samples at the output rate). */
  #outEnd: number | undefined;

  constructor(
    spec: { index: number; stage: ProcessorStageDefinition; input: BranchFormat; output: BranchFormat; problem: string | undefined },
    options: ProcessorStageChainOptions,
    clock: Clock,
    next: (frame: AudioFrame) => void,
  ) {
    const { name } = spec.stage;
    this.stats = { name, branch: options.branch, stage: spec.index, state: 'running', framesIn: 0, framesOut: 0, cpuSeconds: 0, framesCutOff: 0 };
    this.#input = spec.input;
    this.#output = spec.output;
    this.#clock = clock;
    this.#next = next;
    this.#onFailed = (error) => options.onFailed(name, error, spec.index);
    if (spec.problem) {
      this.#fail(new TypeError(spec.problem));
      return;
    }
    const t0 = performance.now();
    try {
      this.#start(spec.stage, options);
    } catch (e) {
      this.#fail(e);
    } finally {
      this.stats.cpuSeconds += (performance.now() - t0) / 1000;
    }
  }

  #start(stage: ProcessorStageDefinition, options: ProcessorStageChainOptions): void {
    const base = options.contextFor(stage.name, Object.freeze({ ...(stage.options ?? {}) }), {
      running: () => this.stats.state === 'running',
      failed: (e) => this.#fail(e),
    });
    const context: ProcessorStageContext = { ...base, branch: options.branch, input: Object.freeze({ ...this.#input }), output: Object.freeze({ ...this.#output }) };
    const instance: ProcessorStageInstance = options.processors.get(stage.name)(context) as unknown as ProcessorStageInstance;
    if (typeof instance === 'function') {
      const subject = new Subject<AudioFrame>();
      const out: unknown = instance(subject.asObservable());
      if (!(out instanceof Observable)) throw new TypeError('the operator did not return an Observable (a frame map must be returned as { map(frame) { … } })');
      this.#subject = subject;
      this.#done = new Promise((settle) => (this.#settle = settle));
      this.#sub = (out as Observable<AudioFrame>).subscribe({
        next: (frame) => this.#emitChecked(frame),
        error: (e) => this.#fail(e),
        complete: () => this.#settle?.(),
      });
      return;
    }
    if (typeof instance === 'object' && instance !== null && typeof instance.map === 'function') {
      this.#map = (frame) => instance.map(frame);
      return;
    }
    throw new TypeError('the factory of a processor stage returned neither an RxJS operator nor { map(frame) }');
  }

  push(frame: AudioFrame): void {
    this.stats.framesIn++;
    // User code may write to what it is given: never to the shared zeros (a cut-off stage's silence).
    if (isSharedZeros(frame.data)) frame = { ...frame, data: frame.data instanceof Int16Array ? new Int16Array(frame.data.length) : new Float32Array(frame.data.length) };
    const samples = frame.data.length / Math.max(1, frame.channels);
    this.#inStart ??= frame.position;
    this.#inEnd = Math.max(this.#inEnd, frame.position + samples);
    if (samples > 0) this.#inFrameSamples = samples;
    if (this.stats.state === 'failed') return this.#bypass(frame);
    const t0 = performance.now();
    const downstream0 = this.#clock.downstreamMs;
    try {
      if (this.#map) {
        let out: AudioFrame;
        try {
          out = this.#map(frame);
        } catch (e) {
          this.#fail(e);
          return this.#bypass(frame);
        }
        this.#emitChecked(out, frame);
      } else {
        this.#subject?.next(frame);
        // The operator failed on this frame: it goes on as it came (a copy it emitted first is trimmed by the recording as an overlap).
        if ((this.stats.state as ProcessorStageStats['state']) === 'failed') this.#bypass(frame);
      }
    } finally {
      this.stats.cpuSeconds += (performance.now() - t0 - (this.#clock.downstreamMs - downstream0)) / 1000;
    }
  }

  /**
   * Completes an operator's input and waits for it to complete, up to
   * `timeoutMs`. If it has not by then, it is cut off: unsubscribed (what it
   * emits later goes nowhere), the media time its output is short of its
   * input goes on as silence, and what that was is returned.
   */
  async complete(timeoutMs: number): Promise<ProcessorStageCutOff | undefined> {
    if (!this.#subject) return undefined;
    this.#subject.complete();
    let timer: NodeJS.Timeout | undefined;
    let completed = false;
    const bound = new Promise<void>((settle) => {
      timer = setTimeout(settle, timeoutMs);
      timer.unref?.();
    });
    try {
      await Promise.race([this.#done.then(() => (completed = true)), bound]);
    } finally {
      clearTimeout(timer);
      this.#sub?.unsubscribe();
    }
    if (completed || this.stats.state === 'failed') return undefined;
    return this.#cutOff(timeoutMs);
  }

  /** The media time the output is short of the input, as silence in the output format; what it stood for. */
  #cutOff(timeoutMs: number): ProcessorStageCutOff | undefined {
    if (this.#inStart === undefined) return undefined;
    const ratio = this.#output.sampleRate / this.#input.sampleRate;
    const start = Math.max(this.#outEnd ?? 0, Math.round(this.#inStart * ratio));
    const end = Math.round(this.#inEnd * ratio);
    if (end <= start) return undefined;
    const owed = end - start;
    const frames = Math.ceil(owed / ratio / Math.max(1, this.#inFrameSamples));
    this.stats.framesCutOff += frames;
    this.#subject = undefined;
    // In pieces of at most a second, views of the shared zeros: a stage that owed an hour costs no hour of memory.
    const piece = this.#output.sampleRate;
    for (let at = start; at < end; at += piece) this.#emitSilence(at, Math.min(end, at + piece), undefined, true);
    return { name: this.stats.name, branch: this.stats.branch, stage: this.stats.stage, frames, seconds: owed / this.#output.sampleRate, timeoutMs };
  }

  /** An emitted frame: checked against the declared format, then passed on. `input`: the frame a map got (passed on instead if the output is refused). */
  #emitChecked(frame: AudioFrame, input?: AudioFrame): void {
    if (this.stats.state === 'failed') return;
    const problem = frameProblem(frame, this.#output);
    if (problem) {
      this.#fail(new TypeError(problem));
      if (input) this.#bypass(input);
      return;
    }
    this.stats.framesOut++;
    this.#emit(frame);
  }

  /**
   * Passes a frame on, timing what the stages and sinks after this one take:
   * the clock is set (not added to) so that what nested stages recorded while
   * this call ran is counted once, in this call's duration.
   */
  #emit(frame: AudioFrame): void {
    this.#outEnd = Math.max(this.#outEnd ?? 0, frame.position + frame.data.length / Math.max(1, frame.channels));
    const before = this.#clock.downstreamMs;
    const t = performance.now();
    try {
      this.#next(frame);
    } finally {
      this.#clock.downstreamMs = before + (performance.now() - t);
    }
  }

  /** The branch without this stage: the input as it is, or silence in the stage's output format at the same media time. */
  #bypass(frame: AudioFrame): void {
    if (frame.sampleRate === this.#output.sampleRate && frame.channels === this.#output.channels) return this.#emit(frame);
    const ratio = this.#output.sampleRate / frame.sampleRate;
    const samples = frame.data.length / Math.max(1, frame.channels);
    const start = Math.max(this.#silenceAt ?? 0, Math.round(frame.position * ratio));
    const end = Math.round((frame.position + samples) * ratio);
    if (end <= start) return;
    this.#silenceAt = end;
    this.#emitSilence(start, end, frame.arrival);
  }

  /** Silence in the output format over output positions [start, end); `shared`: a view of the shared zeros (the next stage copies it, the sinks only read it). */
  #emitSilence(start: number, end: number, arrival: number | undefined, shared = false): void {
    const length = (end - start) * this.#output.channels;
    // In the branch's sample format: an s16 branch's sinks get Int16Array frames throughout.
    const s16 = this.#output.sampleFormat === 's16';
    this.#emit({
      position: start,
      sampleRate: this.#output.sampleRate,
      channels: this.#output.channels,
      sampleFormat: s16 ? 's16' : 'f32',
      data: s16 ? (shared ? sharedZerosS16(length) : new Int16Array(length)) : shared ? sharedZerosF32(length) : new Float32Array(length),
      rms: 0,
      peak: 0,
      clipped: 0,
      arrival: arrival ?? performance.now(),
    });
  }

  #fail(e: unknown): void {
    if (this.stats.state === 'failed') return;
    const error = e instanceof Error ? e : new Error(String(e));
    this.stats.state = 'failed';
    this.stats.error = error.message;
    this.#sub?.unsubscribe();
    this.#subject = undefined;
    this.#map = undefined;
    this.#settle?.();
    this.#onFailed(error);
  }
}

/** The stage's output format: its registration's `outputFormat` for `input`, or the input's; a problem when that declaration is unusable. */
function outputFormatOf(processors: ProcessorRegistry, stage: ProcessorStageDefinition, input: BranchFormat): { format: BranchFormat; problem?: string } {
  const declare = processors.stageOptions(stage.name)?.outputFormat;
  if (!declare) return { format: input };
  let declared: { sampleRate?: unknown; channels?: unknown } | undefined;
  try {
    declared = declare(Object.freeze({ ...input }) as ProcessorStageFormat, Object.freeze({ ...(stage.options ?? {}) }));
  } catch (e) {
    return { format: input, problem: `outputFormat() threw: ${(e as Error).message ?? String(e)}` };
  }
  const sampleRate = declared?.sampleRate ?? input.sampleRate;
  const channels = declared?.channels ?? input.channels;
  if (typeof sampleRate !== 'number' || !Number.isInteger(sampleRate) || sampleRate < 1000 || sampleRate > 384000 || (channels !== 1 && channels !== 2)) {
    return { format: input, problem: `outputFormat() returned ${JSON.stringify(declared)}; use { sampleRate?: an integer from 1000 to 384000, channels?: 1 or 2 }` };
  }
  return { format: { sampleRate, channels, sampleFormat: input.sampleFormat } };
}

/** Why an emitted value is not a frame of `format`, or undefined. */
function frameProblem(frame: unknown, format: BranchFormat): string | undefined {
  if (typeof frame !== 'object' || frame === null) return `emitted ${frame === null ? 'null' : typeof frame} instead of an AudioFrame`;
  const f = frame as Partial<AudioFrame>;
  if (!(f.data instanceof Float32Array) && !(f.data instanceof Int16Array)) return 'emitted a frame whose data is neither a Float32Array nor an Int16Array';
  // The array type is the sample format: a Float32Array of s16-scale values (a map written for f32 frames,
  // given an s16 branch's Int16Array) would be read as −1..1 and recorded as a full-scale square wave.
  const emitted = f.data instanceof Int16Array ? 's16' : 'f32';
  if (emitted !== format.sampleFormat) {
    return format.sampleFormat === 's16'
      ? 'emitted a Float32Array frame on an s16 branch; its frames are Int16Array (−32768..32767): return the array type it was given (e.g. Int16Array.from(frame.data, …)), or put the stage before the format stage'
      : 'emitted an Int16Array frame on an f32 branch; its frames are Float32Array (−1..1): return the array type it was given';
  }
  if (typeof f.position !== 'number' || !Number.isFinite(f.position)) return 'emitted a frame without a finite media position';
  if (f.sampleRate !== format.sampleRate || f.channels !== format.channels) {
    return `emitted a ${f.sampleRate} Hz, ${f.channels}-channel frame; its output is ${format.sampleRate} Hz, ${format.channels} channel${format.channels === 1 ? '' : 's'} (declare another with registerProcessor(name, factory, { stage: { outputFormat } }))`;
  }
  if (f.data.length % format.channels !== 0) return `emitted a frame of ${f.data.length} samples, not a whole number of ${format.channels}-channel sample frames`;
  return undefined;
}

/** The frame with its levels measured on what it now holds (the worker measured the audio before the processors). */
function withLevels(frame: AudioFrame): AudioFrame {
  const data = frame.data;
  let rms: number;
  let peak: number;
  let clipped: number;
  if (data instanceof Float32Array) ({ rms, peak, clipped } = measureLevels(data));
  else {
    let sum = 0;
    peak = 0;
    clipped = 0;
    for (let i = 0; i < data.length; i++) {
      const v = data[i] / 32768;
      sum += v * v;
      const a = v < 0 ? -v : v;
      if (a > peak) peak = a;
      if (a >= CLIP_LEVEL) clipped++;
    }
    rms = data.length > 0 ? Math.sqrt(sum / data.length) : 0;
  }
  return { ...frame, sampleFormat: data instanceof Int16Array ? 's16' : 'f32', rms, peak, clipped };
}
