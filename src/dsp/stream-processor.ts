/**
 * One stream's processing inside a worker: decode once, run each branch's stage
 * chain in the same hop (DESIGN.md invariant 3), and measure the output levels
 * there so the main thread never touches samples (invariant 2).
 *
 * Output positions are counted in output samples from the stream's first input
 * position converted to the branch's rate. A stream rebuilt on another worker
 * after a restart starts from a later first position, so it continues at the
 * right media time instead of restarting at 0.
 */
import { loadOpus } from '../../wasm/opus.js';
import { loadRnnoise } from '../../wasm/rnnoise.js';
import { loadSpeex } from '../../wasm/speex.js';
import { measureLevels } from './levels.js';
import { OpusStreamDecoder, type DecodedChunk } from './opus-decode.js';
import { createStage } from './registry.js';
import type { AudioFormat, DecodeCounters, EncodedInput, PcmChunk, ProcessedFrame, Stage, StageSpec } from './types.js';

/** The rate Opus always decodes at, and the unit of `EncodedInput.position`. */
const OPUS_RATE = 48000;

/** One branch of a stream: a chain of stages fed from the shared decode. */
export interface BranchSpec {
  /** Stages in order; each gets the previous one's output format. Empty = decoded 48 kHz PCM as is. */
  stages: StageSpec[];
}

/** What a worker needs to build one stream's state. */
export interface StreamSpec {
  /** Channels to decode to: 1 or 2 (libopus downmixes or upmixes the coded stream). */
  channels: 1 | 2;
  /** Output branches; `process()` returns one frame list per branch, in this order. */
  branches: BranchSpec[];
}

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
  readonly output: AudioFormat;
  /** Position (at the output rate) of the branch's next output sample; set by the first chunk fed in. */
  next: number | undefined;
}

export class StreamProcessor {
  readonly #decoder: OpusStreamDecoder;
  readonly #branches: BranchChain[] = [];
  /** Reused between calls: the decoder appends to it, so a batch allocates no list. */
  readonly #chunks: DecodedChunk[] = [];
  #closed = false;

  /**
   * Builds the decoder and every branch's stages. Throws (having freed whatever
   * it built) a TypeError or RangeError that names the branch, the stage index
   * and type, and the problem, e.g.
   * `branch 0, stage 1 (denoise): denoise needs 48000 Hz input, got 16000 Hz; …`.
   */
  constructor(spec: StreamSpec) {
    checkSpec(spec);
    this.#decoder = new OpusStreamDecoder(spec.channels);
    try {
      spec.branches.forEach((branch, bi) => this.#branches.push(buildChain(branch, bi, { sampleRate: OPUS_RATE, channels: spec.channels })));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Output format of each branch (index = branch). */
  get outputs(): AudioFormat[] {
    return this.#branches.map((b) => ({ ...b.output }));
  }

  /** The decoder's live counters (copy them to keep a snapshot). */
  get counters(): DecodeCounters {
    return this.#decoder.counters;
  }

  /**
   * Decodes `frames` (one stream, media order) and runs every branch on the
   * result. Returns the frames each branch produced (outer index = branch); a
   * branch may return fewer frames than went in while a stage buffers.
   */
  process(frames: readonly EncodedInput[]): ProcessedFrame[][] {
    if (this.#closed) throw new Error('StreamProcessor is closed');
    const chunks = this.#chunks;
    chunks.length = 0;
    this.#decoder.decode(frames, chunks);
    const last = this.#branches.length - 1;
    const result: ProcessedFrame[][] = [];
    for (let b = 0; b <= last; b++) {
      const branch = this.#branches[b];
      const out: ProcessedFrame[] = [];
      for (const chunk of chunks) {
        branch.next ??= Math.round((chunk.position * branch.output.sampleRate) / OPUS_RATE);
        // Stages may work in place (denoise does), and a branch's output array is
        // handed to its sinks, so no two branches may share one. The decoder's
        // array goes to the last branch, which runs after the others took copies.
        const data = b === last ? chunk.data : chunk.data.slice();
        const produced = runChain(branch.stages, data);
        if (produced) out.push(frameOf(branch, produced, chunk.arrival));
      }
      result.push(out);
    }
    chunks.length = 0; // don't keep the batch's PCM alive until the next call
    return result;
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
    this.#decoder?.close(); // undefined only if the constructor failed before creating it
    if (failure !== undefined) throw failure;
  }
}

function checkSpec(spec: StreamSpec): void {
  if (typeof spec !== 'object' || spec === null) throw new TypeError('StreamProcessor: spec must be an object { channels, branches }');
  if (spec.channels !== 1 && spec.channels !== 2) throw new RangeError(`StreamProcessor: "channels" must be 1 or 2, got ${JSON.stringify(spec.channels) ?? String(spec.channels)}`);
  if (!Array.isArray(spec.branches)) throw new TypeError('StreamProcessor: "branches" must be an array of { stages: [...] }');
  spec.branches.forEach((b, bi) => {
    if (typeof b !== 'object' || b === null || !Array.isArray(b.stages)) throw new TypeError(`branch ${bi}: "stages" must be an array (use [] for decoded audio as is)`);
  });
}

/** Creates a branch's stages in order, feeding each the previous one's output format. */
function buildChain(branch: BranchSpec, bi: number, input: AudioFormat): BranchChain {
  const stages: Stage[] = [];
  let format = input;
  try {
    branch.stages.forEach((spec, si) => {
      let stage: Stage;
      try {
        stage = createStage(spec, format);
      } catch (e) {
        throw withContext(e, `branch ${bi}, stage ${si} (${describeType(spec)})`);
      }
      stages.push(stage);
      format = stage.output;
    });
  } catch (e) {
    for (const s of stages) s.close(); // the processor's close() only sees complete branches
    throw e;
  }
  return { stages, output: format, next: undefined };
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

function runChain(stages: Stage[], data: Float32Array): PcmChunk | null {
  let chunk: PcmChunk | null = { data };
  for (const stage of stages) {
    chunk = stage.process(chunk);
    if (!chunk) return null;
  }
  return chunk;
}

function frameOf(branch: BranchChain, chunk: PcmChunk, arrival: number): ProcessedFrame {
  const { rms, peak } = measureLevels(chunk.data);
  const { sampleRate, channels } = branch.output;
  const position = branch.next!;
  branch.next = position + chunk.data.length / channels;
  const frame: ProcessedFrame = { position, sampleRate, channels, data: chunk.data, rms, peak, arrival };
  if (chunk.vad !== undefined) frame.vad = chunk.vad;
  return frame;
}
