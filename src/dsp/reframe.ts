/**
 * `reframe`: cuts the stream into chunks of exactly `durationMs` (e.g. 20 ms
 * Opus frames into the 10 ms frames WebRTC VADs and some ASR engines want,
 * or into 30/60 ms frames). Samples are only regrouped: the concatenation of
 * the outputs equals the concatenation of the inputs. Less than one output
 * frame waits for the next input (at most `durationMs` of latency); at the end
 * of the stream it comes out as a last, shorter frame (`flush`).
 *
 * One input may complete several output frames (returned as a list, in
 * order) or none (null). Each output frame is a new array: it travels
 * downstream and to the branch's sinks, so it can't be a buffer the stage
 * reuses.
 */
import { Type } from '@sinclair/typebox';
import type { AudioFormat } from '../media/frames.js';
import { chunkWith } from './chunk.js';
import { choices } from './schema-words.js';
import { createStageOf, defineStageType, derivedFormat, type StageInputProblem } from './stage-type.js';
import type { PcmChunk, Stage, StageOutput, StageSpec } from './types.js';

export const REFRAME_DURATIONS_MS = [10, 20, 30, 40, 60] as const;
export type ReframeDurationMs = (typeof REFRAME_DURATIONS_MS)[number];

export const ReframeStageSchema = Type.Object(
  {
    type: Type.Literal('reframe', { description: 'Regroup the audio into frames of a fixed duration.' }),
    durationMs: Type.Union(
      REFRAME_DURATIONS_MS.map((ms) => Type.Literal(ms)),
      {
        description:
          'Frame length in ms: 10, 20, 30, 40 or 60. Must be a whole number of samples at the stage input rate (10 ms at 22050 Hz is not). Adds up to one frame of latency; the last frame of a stream is what remains, shorter.',
      },
    ),
  },
  { additionalProperties: false, description: 'Cut the stream into frames of exactly durationMs (e.g. 10 ms for a VAD).' },
);

/** Options of the `reframe` stage. */
export interface ReframeOptions extends StageSpec {
  type: 'reframe';
  /**
   * Length of every output chunk in ms: 10, 20, 30, 40 or 60. Required. It
   * must be a whole number of samples at the input rate (10 ms at 44.1 kHz is
   * 441 samples; 10 ms at 22.05 kHz, 220.5, is refused). An output chunk's
   * `vad`/`speech` are those of the latest input chunk that contributed to it.
   */
  durationMs: ReframeDurationMs;
}

export const reframeStage = defineStageType({
  schema: ReframeStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  checkInput({ durationMs }, input): StageInputProblem[] {
    const rate = input.sampleRate;
    const samples = (durationMs * rate) / 1000;
    if (Number.isInteger(samples)) return [];
    const whole = REFRAME_DURATIONS_MS.filter((d) => Number.isInteger((d * rate) / 1000));
    const allowed = whole.length > 0 ? choices(whole) : 'a rate like 16000 or 48000 first (resample)';
    return [
      {
        option: 'durationMs',
        message: `${durationMs} ms is ${samples} samples at the ${rate} Hz this stage gets, not a whole number; use ${allowed}`,
        found: durationMs,
        allowed,
      },
    ];
  },
  build: ({ durationMs }, input, output) => new ReframeStage(output, ((durationMs * input.sampleRate) / 1000) * input.channels),
});

export function createReframeStage(spec: StageSpec, input: AudioFormat): Stage {
  return createStageOf(reframeStage, spec, input);
}

class ReframeStage implements Stage {
  readonly output: AudioFormat;
  /** Interleaved samples per output chunk. */
  readonly #frame: number;
  /** The partial output frame, preallocated; `#filled` samples of it are valid. */
  readonly #pending: Float32Array;
  #filled = 0;
  /** The latest input, whose vad/speech the last frame carries. */
  #last: PcmChunk | undefined;

  constructor(output: AudioFormat, frame: number) {
    this.output = output;
    this.#frame = frame;
    this.#pending = new Float32Array(frame);
  }

  process(chunk: PcmChunk): StageOutput {
    const data = chunk.data;
    const frame = this.#frame;
    this.#last = chunk;
    // Fast path: nothing buffered and the chunk is already one frame (20 ms in, 20 ms out).
    if (this.#filled === 0 && data.length === frame) return chunk;
    // Every frame completed during this call holds samples of `chunk`, so its
    // vad/speech (the latest contributor's) go on each of them.
    const out: PcmChunk[] = [];
    let read = 0;
    if (this.#filled > 0) {
      const n = Math.min(frame - this.#filled, data.length);
      this.#pending.set(data.subarray(0, n), this.#filled);
      this.#filled += n;
      read = n;
      if (this.#filled < frame) return null;
      out.push(chunkWith(chunk, this.#pending.slice()));
      this.#filled = 0;
    }
    for (; read + frame <= data.length; read += frame) out.push(chunkWith(chunk, data.slice(read, read + frame)));
    if (read < data.length) {
      this.#pending.set(data.subarray(read));
      this.#filled = data.length - read;
    }
    if (out.length === 0) return null;
    return out.length === 1 ? out[0] : out;
  }

  /** The partial frame left at the end of the stream, as it is (shorter): the audio received, not padded. */
  flush(): StageOutput {
    if (this.#filled === 0 || this.#last === undefined) return null;
    const rest = chunkWith(this.#last, this.#pending.slice(0, this.#filled));
    this.#filled = 0;
    return rest;
  }

  close(): void {}
}
