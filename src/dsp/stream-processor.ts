/**
 * One stream's processing inside a worker: decode once, run each branch's stage
 * chain in the same hop (one task per worker per tick, however many streams),
 * and measure the output levels there so the main thread never touches samples.
 *
 * Output positions are counted in output samples from the stream's first input
 * position converted to the branch's rate. A stream rebuilt on another worker
 * after a restart starts from a later first position, so it continues at the
 * right media time instead of restarting at 0.
 *
 * A stream takes either Opus packets (`process`, WebRTC peers) or, when its
 * spec has `input`, PCM frames (`processPcm`, the RxJS operator that runs
 * stages in the pool); the other method throws.
 *
 * A stage may turn one chunk into several (`reframe`); each then flows
 * through the rest of the chain in order, and becomes its own output frame.
 * A branch whose final format is 's16' gets its frames packed to Int16Array
 * here, after the levels were measured on the floats.
 *
 * Silence the input filled a gap with (DTX, long loss) skips every stage
 * that declares it can (`Stage.skipSilence`: denoise once RNNoise is at rest,
 * gain, format, passthrough, filters at rest), and then the level pass and
 * the quantizer: a silent talker costs its decoding, not a pass per stage
 * over 48 000 zeros a second.
 */
import { loadOpus } from '../../wasm/opus.js';
import { loadRnnoise } from '../../wasm/rnnoise.js';
import { loadSpeex } from '../../wasm/speex.js';
import { measureLevels, type Levels } from './levels.js';
import { OpusStreamDecoder } from './opus-decode.js';
import { PcmStreamInput, type PcmInput, type PcmInputFormat, type PlacedChunk } from './pcm-input.js';
import { builtinStages, createStage } from './registry.js';
import type { PcmChunk, Stage, StageOutput, StageSpec } from './types.js';
import type { AudioFormat, AudioFrame, DecodeCounters, EncodedFrame } from '../media/frames.js';
import { quantizeS16 } from '../media/pcm16.js';
import { sharedZerosF32, sharedZerosS16 } from '../media/shared-zeros.js';

export type { PcmInput, PcmInputFormat } from './pcm-input.js';

/** The rate Opus always decodes at, and the unit of `EncodedFrame.position`. */
const OPUS_RATE = 48000;

/** One branch of a stream: a chain of stages fed from the shared decode. */
export interface BranchSpec {
  /** Stages in order; each gets the previous one's output format. Empty = decoded 48 kHz PCM as is. */
  stages: StageSpec[];
}

/** What a worker needs to build one stream's state. */
export interface StreamSpec {
  /**
   * Channels to decode Opus to: 1 or 2 (libopus downmixes or upmixes the
   * coded stream). Required for Opus input; ignored with `input`.
   */
  channels?: 1 | 2;
  /** Output branches; `process()`/`processPcm()` return one frame list per branch, in this order. */
  branches: BranchSpec[];
  /**
   * PCM input instead of Opus: the format of the frames `processPcm()` takes
   * (rate 8000–48000 Hz, 1 or 2 channels). Branch stages start from this
   * format; no decoder is built.
   */
  input?: PcmInputFormat;
}

/** Lowest and highest PCM input rate: the range every built-in stage is specified for. */
const PCM_MIN_RATE = 8000;
const PCM_MAX_RATE = 48000;

/**
 * Loads and compiles libopus, RNNoise and Speex for this thread (once; later
 * calls return at once). Await it before constructing a StreamProcessor.
 */
export async function loadDspModules(): Promise<void> {
  loadOpus();
  await Promise.all([loadRnnoise(), loadSpeex()]);
}

interface BranchChain {
  readonly stages: Stage[];
  /** What each stage is called in an error: `branch 0, stage 1 (my-gain)`. */
  readonly names: string[];
  /** Per stage: its output is checked chunk by chunk (a custom stage's: earshot's own keep their contract). */
  readonly checked: boolean[];
  readonly output: AudioFormat;
  /** Position (at the output rate) of the branch's next output sample; set by the first chunk fed in. */
  next: number | undefined;
}

/**
 * A stage threw part-way through a `process`/`processPcm` call: its error's
 * message, with what the call had produced before it, so that the frames
 * already processed are delivered ahead of the failure rather than lost with it.
 */
export class StageFailure extends Error {
  /** What each branch produced before the failure (index = branch): whole frames, in order. */
  readonly outputs: AudioFrame[][];
  /** Input frames of the call every branch had finished (with the gap's silence placed before each): the input after them is lost. */
  readonly processed: number;

  constructor(cause: unknown, outputs: AudioFrame[][], processed: number) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'StageFailure';
    this.outputs = outputs;
    this.processed = processed;
  }
}

export class StreamProcessor {
  /** Exactly one of the two inputs exists, fixed by the spec. */
  readonly #decoder: OpusStreamDecoder | undefined;
  readonly #pcm: PcmStreamInput | undefined;
  /** Rate of the input positions: 48 kHz for Opus, the input rate for PCM. */
  readonly #inputRate: number;
  readonly #branches: BranchChain[] = [];
  /** Reused between calls: the input appends to it, so a batch allocates no list. */
  readonly #chunks: PlacedChunk[] = [];
  /** Reused between calls: `#chunks.length` after each input frame was placed (a failure counts the input frames it lost by them). */
  readonly #ends: number[] = [];
  /** Reused by runChain for the chunks one input produced at a branch's end. */
  readonly #produced: PcmChunk[] = [];
  /** The stages that count frames skipped on silence (`Stage.framesSkippedSilent`). */
  readonly #skipping: Stage[] = [];
  #closed = false;
  /** Arrival of the latest input frame: the frames `drain` emits carry it (their latency is the stream's end). */
  #lastArrival = 0;

  /**
   * Builds the input (decoder or PCM placement) and every branch's stages.
   * Throws (having freed whatever it built) a TypeError or RangeError that
   * names the branch, the stage index and type, and the problem, e.g.
   * `branch 0, stage 1 (denoise): denoise needs 48000 Hz input, got 16000 Hz; …`.
   */
  constructor(spec: StreamSpec) {
    checkSpec(spec);
    let format: AudioFormat;
    if (spec.input) {
      const { sampleRate, channels, sampleFormat } = spec.input;
      this.#pcm = new PcmStreamInput({ sampleRate, channels, ...(sampleFormat ? { sampleFormat } : {}) });
      this.#inputRate = sampleRate;
      // Stages work on floats whatever the input encoding; an s16 input stays s16 at the branch end unless a stage changes it.
      format = { sampleRate, channels, ...(sampleFormat ? { sampleFormat } : {}) };
    } else {
      this.#decoder = new OpusStreamDecoder(spec.channels!);
      this.#inputRate = OPUS_RATE;
      format = { sampleRate: OPUS_RATE, channels: spec.channels! };
    }
    try {
      spec.branches.forEach((branch, bi) => this.#branches.push(buildChain(branch, bi, format)));
    } catch (e) {
      this.close();
      throw e;
    }
    for (const b of this.#branches) for (const s of b.stages) if (typeof s.framesSkippedSilent === 'number') this.#skipping.push(s);
    this.counters.framesSkippedSilent = 0;
  }

  /** Output format of each branch (index = branch). */
  get outputs(): AudioFormat[] {
    return this.#branches.map((b) => ({ ...b.output }));
  }

  /** True for a stream fed PCM (`spec.input`, use `processPcm`), false for Opus (`process`). */
  get pcmInput(): boolean {
    return this.#pcm !== undefined;
  }

  /** The input's live counters (copy them to keep a snapshot), with `framesSkippedSilent` from the stages. */
  get counters(): DecodeCounters {
    return (this.#decoder ?? this.#pcm)!.counters;
  }

  /**
   * Decodes `frames` (one stream, media order) and runs every branch on the
   * result. Returns the frames each branch produced (outer index = branch); a
   * branch may return fewer frames than went in while a stage buffers, or
   * more when a stage cuts frames shorter.
   */
  process(frames: readonly EncodedFrame[]): AudioFrame[][] {
    if (this.#closed) throw new Error('StreamProcessor is closed');
    if (!this.#decoder) throw new Error('StreamProcessor: this stream takes PCM input (spec.input is set); use processPcm()');
    this.#clearInput();
    this.#decoder.decode(frames, this.#chunks, this.#ends);
    return this.#run();
  }

  /**
   * Places PCM `frames` (one stream, media order, positions at the input
   * rate) at media time and runs every branch on them: gaps become silence,
   * late or overlapping frames are dropped and counted in `counters.late`,
   * Int16 data becomes floats. Returns one frame list per branch.
   */
  processPcm(frames: readonly PcmInput[]): AudioFrame[][] {
    if (this.#closed) throw new Error('StreamProcessor is closed');
    if (!this.#pcm) throw new Error('StreamProcessor: this stream decodes Opus (spec.input is not set); use process()');
    this.#clearInput();
    this.#pcm.place(frames, this.#chunks, this.#ends);
    return this.#run();
  }

  /** Forgets the placed input: at the end of a call, and at the start of one (an input that threw left some). */
  #clearInput(): void {
    this.#chunks.length = 0;
    this.#ends.length = 0;
  }

  /**
   * Runs every branch on the chunks the input placed, then lets go of them.
   * A stage that throws ends the call with a `StageFailure` carrying what the
   * branches produced before it.
   */
  #run(): AudioFrame[][] {
    const chunks = this.#chunks;
    const produced = this.#produced;
    const last = this.#branches.length - 1;
    const result: AudioFrame[][] = [];
    if (chunks.length > 0) this.#lastArrival = chunks[chunks.length - 1].arrival;
    // Where a stage threw: the branch, and the chunk (the branch's frames before it are complete).
    let b = 0;
    let k = 0;
    let out: AudioFrame[] = [];
    try {
      for (b = 0; b <= last; b++) {
        const branch = this.#branches[b];
        out = [];
        for (k = 0; k < chunks.length; k++) {
          const chunk = chunks[k];
          branch.next ??= Math.round((chunk.position * branch.output.sampleRate) / this.#inputRate);
          // Stages may work in place (denoise does), and a branch's output array is
          // handed to its sinks, so no two branches may share one. The input's array
          // goes to the last branch, which runs after the others took copies.
          // A gap's silence is a view of shared zeros (read only): passed on as it is while
          // stages skip it, copied for the first stage that doesn't.
          const silent = chunk.silent === true;
          const first: PcmChunk = { data: b === last || silent ? chunk.data : chunk.data.slice() };
          if (chunk.vad !== undefined) first.vad = chunk.vad;
          if (chunk.speech !== undefined) first.speech = chunk.speech;
          produced.length = 0;
          // A gap's silence goes past every stage that can skip it; from the first that can't, it is processed as usual.
          const from = silent ? skippedStages(branch, first) : 0;
          if (silent && from === branch.stages.length) {
            out.push(frameOf(branch, first, chunk.arrival, true));
            continue;
          }
          if (silent) first.data = new Float32Array(first.data.length);
          runChain(branch, from, first, produced);
          for (const p of produced) out.push(frameOf(branch, p, chunk.arrival, false));
        }
        result.push(out);
      }
    } catch (e) {
      // The frames made before the failure are good audio: they go out ahead of the error
      // (an RxJS user sees each frame processed before a stage failed, then the error).
      // `out` holds chunks 0..k-1 of the failing branch: chunk k's frames are added only once its chain returned.
      result.push(out);
      while (result.length < this.#branches.length) result.push([]);
      // Branches run one after the other: those after the failing one processed none of this call.
      // Input frame i is done when its last chunk is (ends[i] ≤ k): a gap's silence counts with the frame after it.
      let inputs = 0;
      if (b === last) while (inputs < this.#ends.length && this.#ends[inputs] <= k) inputs++;
      throw new StageFailure(e, result, inputs);
    } finally {
      this.#clearInput(); // don't keep the batch's PCM alive until the next call
      produced.length = 0;
      if (this.#skipping.length > 0) {
        let skipped = 0;
        for (const s of this.#skipping) skipped += s.framesSkippedSilent ?? 0;
        this.counters.framesSkippedSilent = skipped;
      }
    }
    return result;
  }

  /**
   * At the end of the stream: what stages still hold (`Stage.flush`, e.g. a
   * `reframe` stage's partial frame), each run through the stages after it.
   * One frame list per branch, to follow the last `process` call's.
   */
  drain(): AudioFrame[][] {
    if (this.#closed) return this.#branches.map(() => []);
    const produced = this.#produced;
    return this.#branches.map((branch) => {
      const out: AudioFrame[] = [];
      for (let i = 0; i < branch.stages.length; i++) {
        let held: StageOutput | undefined;
        try {
          held = branch.stages[i].flush?.();
          if (held && branch.checked[i]) checkOutput(held, branch.stages[i].output.channels, 'flush()');
        } catch (e) {
          throw named(e, branch.names[i]);
        }
        if (!held) continue;
        for (const chunk of isChunkList(held) ? held : [held]) {
          produced.length = 0;
          runChain(branch, i + 1, chunk, produced);
          for (const p of produced) out.push(frameOf(branch, p, this.#lastArrival, false));
        }
      }
      produced.length = 0;
      return out;
    });
  }

  /** Frees every stage and the decoder. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    let failure: unknown;
    // Free everything even if one close throws: each holds WASM heap memory.
    for (const b of this.#branches) {
      for (const s of b.stages) {
        try {
          s.close();
        } catch (e) {
          failure ??= e;
        }
      }
    }
    this.#decoder?.close(); // undefined for PCM input, or if the constructor failed before creating it
    if (failure !== undefined) throw failure;
  }
}

function checkSpec(spec: StreamSpec): void {
  if (typeof spec !== 'object' || spec === null) throw new TypeError('StreamProcessor: spec must be an object { channels, branches }');
  if (spec.input !== undefined) checkInput(spec.input);
  else if (spec.channels !== 1 && spec.channels !== 2) throw new RangeError(`StreamProcessor: "channels" must be 1 or 2, got ${JSON.stringify(spec.channels) ?? String(spec.channels)}`);
  if (!Array.isArray(spec.branches)) throw new TypeError('StreamProcessor: "branches" must be an array of { stages: [...] }');
  spec.branches.forEach((b, bi) => {
    if (typeof b !== 'object' || b === null || !Array.isArray(b.stages)) throw new TypeError(`branch ${bi}: "stages" must be an array (use [] for decoded audio as is)`);
  });
}

function checkInput(input: PcmInputFormat): void {
  if (typeof input !== 'object' || input === null) throw new TypeError('StreamProcessor: "input" must be an object { sampleRate, channels, sampleFormat? }');
  const { sampleRate, channels, sampleFormat } = input;
  if (!Number.isInteger(sampleRate) || sampleRate < PCM_MIN_RATE || sampleRate > PCM_MAX_RATE) {
    throw new RangeError(`StreamProcessor: "input.sampleRate" must be an integer from ${PCM_MIN_RATE} to ${PCM_MAX_RATE}, got ${JSON.stringify(sampleRate) ?? String(sampleRate)}`);
  }
  if (channels !== 1 && channels !== 2) throw new RangeError(`StreamProcessor: "input.channels" must be 1 or 2, got ${JSON.stringify(channels) ?? String(channels)}`);
  if (sampleFormat !== undefined && sampleFormat !== 'f32' && sampleFormat !== 's16') {
    throw new RangeError(`StreamProcessor: "input.sampleFormat" must be "f32" or "s16", got ${JSON.stringify(sampleFormat) ?? String(sampleFormat)}`);
  }
}

/** Creates a branch's stages in order, feeding each the previous one's output format. */
function buildChain(branch: BranchSpec, bi: number, input: AudioFormat): BranchChain {
  const stages: Stage[] = [];
  const names: string[] = [];
  const checked: boolean[] = [];
  let format = input;
  try {
    branch.stages.forEach((spec, si) => {
      let stage: Stage;
      const name = `branch ${bi}, stage ${si} (${describeType(spec)})`;
      try {
        stage = createStage(spec, format);
      } catch (e) {
        throw withContext(e, name);
      }
      stages.push(stage);
      names.push(name);
      checked.push(!builtinStages.has(describeType(spec)));
      format = stage.output;
    });
  } catch (e) {
    for (const s of stages) s.close(); // the processor's close() only sees complete branches
    throw e;
  }
  return { stages, names, checked, output: format, next: undefined };
}

/** Same error class (TypeError/RangeError callers may branch on), message prefixed with where it happened. */
function withContext(e: unknown, where: string): Error {
  const message = `${where}: ${e instanceof Error ? e.message : String(e)}`;
  if (e instanceof RangeError) return new RangeError(message, { cause: e });
  if (e instanceof TypeError) return new TypeError(message, { cause: e });
  return new Error(message, { cause: e });
}

function describeType(spec: unknown): string {
  const type = typeof spec === 'object' && spec !== null ? (spec as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : 'no type';
}

/** A stage's result as a list, without allocating one for the usual single chunk. */
function isChunkList(r: Exclude<StageOutput, null>): r is readonly PcmChunk[] {
  return Array.isArray(r);
}

/**
 * Offers a chunk of digital silence to each stage's `skipSilence` in order;
 * returns how many skipped it (all of them: the branch's output is the chunk
 * as it is, zeros).
 */
function skippedStages(branch: BranchChain, chunk: PcmChunk): number {
  const stages = branch.stages;
  let i = 0;
  try {
    for (; i < stages.length; i++) if (stages[i].skipSilence?.(chunk) !== true) return i;
  } catch (e) {
    throw named(e, branch.names[i]);
  }
  return stages.length;
}

/**
 * Runs `chunk` through `stages` from index `from` and appends what comes out
 * of the last stage to `out`. When a stage returns several chunks, each runs
 * through the remaining stages before the next one, so order is kept.
 */
function runChain(branch: BranchChain, from: number, chunk: PcmChunk, out: PcmChunk[]): void {
  const stages = branch.stages;
  let current = chunk;
  let i = from;
  try {
    for (; i < stages.length; i++) {
      const result = stages[i].process(current);
      if (result === null) return;
      if (branch.checked[i]) checkOutput(result, stages[i].output.channels, 'process()');
      if (isChunkList(result)) {
        for (const c of result) runChain(branch, i + 1, c, out);
        return;
      }
      current = result;
    }
  } catch (e) {
    // Named once, by the stage that threw or returned what it must not (the chain after a
    // stage that returned several chunks rethrows it as it is).
    throw i < stages.length ? named(e, branch.names[i]) : e;
  }
  out.push(current);
}

/** Errors already prefixed with the stage they came from. */
const NAMED = new WeakSet<Error>();

/** `e` prefixed with the stage it came from (`branch 0, stage 1 (my-gain): …`), once. */
function named(e: unknown, name: string): unknown {
  if (e instanceof Error && NAMED.has(e)) return e;
  const error = withContext(e, name);
  NAMED.add(error);
  return error;
}

/**
 * A custom stage's result, checked before the next stage or a sink reads it:
 * a stage that forgot to return its chunk, returned 16-bit samples, or a
 * length that is not whole frames would otherwise fail somewhere else with a
 * message about something else, or corrupt the audio without a word (an odd
 * length of stereo swaps left and right from one chunk to the next).
 */
function checkOutput(result: Exclude<StageOutput, null> | undefined, channels: number, what: 'process()' | 'flush()'): void {
  if (result === undefined) throw new TypeError(`${what} returned undefined: return the chunk (changed in place or new), an array of chunks, or null for no output yet`);
  if (isChunkList(result)) {
    for (const c of result) checkChunk(c, channels, what);
  } else {
    checkChunk(result, channels, what);
  }
}

function checkChunk(chunk: PcmChunk, channels: number, what: string): void {
  const data = (chunk as Partial<PcmChunk> | null)?.data;
  if (!(data instanceof Float32Array)) {
    const got = data === undefined || data === null ? String(data) : (data as object).constructor?.name ?? typeof data;
    throw new TypeError(`${what} must return chunks whose data is a Float32Array (samples from -1 to 1, channels interleaved), got data ${got}`);
  }
  if (data.length % channels !== 0) {
    throw new RangeError(`${what} returned ${data.length} samples, not whole frames of ${channels} channels (its declared output): interleaved samples come in groups of ${channels}`);
  }
}

/**
 * The output frame of `chunk`; `silent`: its data is known to be all zeros, so
 * levels and 16-bit packing need no pass over it. A frame of zeros (peak 0,
 * known or measured) carries a view of the thread's shared zeros rather than
 * an array of its own: the batch packs it by length (pool/batch-output.ts),
 * and a long gap's seconds of silence then hold no memory while its batch is
 * built, even where a stage that cannot skip silence made new arrays for it.
 */
function frameOf(branch: BranchChain, chunk: PcmChunk, arrival: number, silent: boolean): AudioFrame {
  const { rms, peak, clipped } = silent ? SILENT_LEVELS : measureLevels(chunk.data);
  const { sampleRate, channels } = branch.output;
  const position = branch.next!;
  const length = chunk.data.length;
  branch.next = position + length / channels;
  const s16 = branch.output.sampleFormat === 's16';
  let data: Float32Array | Int16Array;
  if (peak === 0) data = s16 ? sharedZerosS16(length) : sharedZerosF32(length);
  else data = s16 ? packS16(chunk.data) : chunk.data;
  const frame: AudioFrame = {
    position,
    sampleRate,
    channels,
    sampleFormat: s16 ? 's16' : 'f32',
    data,
    rms,
    peak,
    arrival,
  };
  if (chunk.vad !== undefined) frame.vad = chunk.vad;
  if (chunk.speech !== undefined) frame.speech = chunk.speech;
  if (clipped > 0) frame.clipped = clipped;
  return frame;
}

const SILENT_LEVELS: Levels = { rms: 0, peak: 0, clipped: 0 };

/** Floats to 16-bit with the project's one quantizer (the grid `format` quantizes to). */
function packS16(data: Float32Array): Int16Array {
  const out = new Int16Array(data.length);
  quantizeS16(data, out);
  return out;
}
