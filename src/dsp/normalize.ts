/**
 * `normalize`: a slow automatic gain control that brings a stream toward a
 * target loudness, e.g. a quiet headset mic up to what a recognizer expects.
 *
 * The input is measured in blocks of 100 ms (RMS over all channels). After
 * each block, the gain moves toward `targetDb − blockLevel`, by at most
 * `rateDbPerSecond` per second, within −20 dB … +`maxGainDb`. The new gain is
 * reached by a linear ramp over the next block, so gain changes never step.
 * Because every block moves the gain by the same bounded amount, the gain
 * settles where half the speech blocks are louder than the target and half
 * quieter (the median), which is what keeps it steady through syllables.
 *
 * Blocks quieter than `silenceDb` (pauses, line noise) never raise the gain:
 * the AGC would otherwise pump up the room noise between sentences. If the
 * gain already won in speech would lift such a block above `silenceDb`, it is
 * lowered (at the same rate) until the pause stays below `silenceDb`.
 *
 * This is slow AGC, not a limiter: a sudden loud sound passes at the current
 * gain for the ~100 ms it takes to measure and longer to react. Pair it with
 * `limiter` after it when peaks matter (s16 output, playback).
 */
import { Type } from '@sinclair/typebox';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';
import type { AudioFormat } from '../media/frames.js';

/** Options of the `normalize` stage. */
export interface NormalizeOptions extends StageSpec {
  type: 'normalize';
  /** Target RMS level in dBFS over 100 ms blocks of speech, −40 to −3. Default −20. */
  targetDb?: number;
  /** Largest boost in dB, 0–40. Default 20. (Attenuation is limited to 20 dB.) */
  maxGainDb?: number;
  /** Fastest gain change in dB per second, 0.5–60. Default 6 (a 20 dB correction takes ~3 s). */
  rateDbPerSecond?: number;
  /** Blocks with an RMS below this (dBFS, −90 to −30) count as silence and never raise the gain. Default −60. */
  silenceDb?: number;
}

/** The AGC's settings once defaults are applied. */
type NormalizeSettings = Required<Pick<NormalizeOptions, 'targetDb' | 'maxGainDb' | 'rateDbPerSecond' | 'silenceDb'>>;

export const NORMALIZE_DEFAULTS = { targetDb: -20, maxGainDb: 20, rateDbPerSecond: 6, silenceDb: -60 } as const;
/** Attenuation limit: a stream far too loud is better fixed at the source, and more than 20 dB hides clipping. */
export const NORMALIZE_MAX_ATTENUATION_DB = 20;
/** Measurement block: long enough to span a syllable, short enough to follow a change of speaker. */
const BLOCK_MS = 100;

export const NormalizeStageSchema = Type.Object(
  {
    type: Type.Literal('normalize', { description: 'Slow automatic gain control toward a target loudness (not a limiter: pair it with "limiter").' }),
    targetDb: Type.Optional(
      Type.Number({ minimum: -40, maximum: -3, default: NORMALIZE_DEFAULTS.targetDb, description: 'Target RMS in dBFS over 100 ms blocks of speech, −40 to −3.' }),
    ),
    maxGainDb: Type.Optional(
      Type.Number({ minimum: 0, maximum: 40, default: NORMALIZE_DEFAULTS.maxGainDb, description: 'Largest boost in dB, 0–40 (attenuation is limited to 20 dB).' }),
    ),
    rateDbPerSecond: Type.Optional(
      Type.Number({ minimum: 0.5, maximum: 60, default: NORMALIZE_DEFAULTS.rateDbPerSecond, description: 'Fastest gain change in dB per second, 0.5–60.' }),
    ),
    silenceDb: Type.Optional(
      Type.Number({
        minimum: -90,
        maximum: -30,
        default: NORMALIZE_DEFAULTS.silenceDb,
        description: 'Blocks quieter than this (dBFS, −90 to −30) never raise the gain. A pause that the gain won in speech lifts above it has the gain lowered at rateDbPerSecond until it is below: the first second or so of a pause after loud gain can sit above this level (at the defaults, 6 dB a second: up to about 3 s for 20 dB of gain).',
      }),
    ),
  },
  { additionalProperties: false, description: 'Bring a stream slowly toward a target level.' },
);

export const normalizeStage = defineStageType({
  schema: NormalizeStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  build: (options, input, output) => new NormalizeStage(input, output, options),
});

export function createNormalizeStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(normalizeStage, spec, input) as ChunkStage;
}

class NormalizeStage implements ChunkStage {
  readonly output: AudioFormat;
  readonly #channels: number;
  readonly #o: NormalizeSettings;
  /** Sample frames per measurement block. */
  readonly #block: number;
  /** Largest gain change per block, dB. */
  readonly #maxStepDb: number;
  #blockFrames = 0;
  #blockSum = 0;
  /** Gain decided after the last block (dB), reached by the end of the ramp. */
  #gainDb = 0;
  /** Gain applied to the current sample, linear, and its per-sample increment toward `#target`. */
  #gain = 1;
  #target = 1;
  #step = 0;

  constructor(input: AudioFormat, output: AudioFormat, o: NormalizeSettings) {
    this.output = output;
    this.#channels = input.channels;
    this.#o = o;
    this.#block = Math.max(1, Math.round((input.sampleRate * BLOCK_MS) / 1000));
    this.#maxStepDb = (o.rateDbPerSecond * this.#block) / input.sampleRate;
  }

  process(chunk: PcmChunk): PcmChunk {
    const data = chunk.data;
    const channels = this.#channels;
    const block = this.#block;
    // Locals, not fields, in the per-sample loops (private field reads there are slow in V8).
    let gain = this.#gain;
    let target = this.#target;
    let step = this.#step;
    let sum = this.#blockSum;
    let frames = this.#blockFrames;
    let i = 0;
    while (i < data.length) {
      // Up to the end of the current measurement block or of the chunk, whichever comes first.
      const end = Math.min(data.length, i + (block - frames) * channels);
      frames += (end - i) / channels;
      if (gain === target) {
        // Steady gain (most of the time): one flat pass, no per-frame bookkeeping.
        for (; i < end; i++) {
          const x = data[i];
          sum += x * x; // measured before the gain: the AGC is feed-forward
          data[i] = x * gain;
        }
      } else {
        for (; i < end; i += channels) {
          for (let c = 0; c < channels; c++) {
            const x = data[i + c];
            sum += x * x;
            data[i + c] = x * gain;
          }
          if (gain !== target) {
            gain += step;
            if ((step > 0 && gain > target) || (step < 0 && gain < target)) gain = target;
          }
        }
      }
      if (frames === block) {
        this.#gain = gain;
        this.#endBlock(sum / (frames * channels));
        gain = this.#gain;
        target = this.#target;
        step = this.#step;
        sum = 0;
        frames = 0;
      }
    }
    this.#gain = gain;
    this.#blockSum = sum;
    this.#blockFrames = frames;
    return chunk;
  }

  /** Moves the gain after a block whose mean square was `meanSquare`, and starts the ramp to it. */
  #endBlock(meanSquare: number): void {
    const { targetDb, maxGainDb, silenceDb } = this.#o;
    const levelDb = meanSquare > 0 ? 10 * Math.log10(meanSquare) : -Infinity;
    let wanted: number;
    if (levelDb >= silenceDb) wanted = Math.min(maxGainDb, Math.max(-NORMALIZE_MAX_ATTENUATION_DB, targetDb - levelDb));
    else if (levelDb + this.#gainDb > silenceDb) wanted = silenceDb - levelDb; // a pause must not be lifted above silenceDb
    else return; // silence: hold the gain
    const change = Math.max(-this.#maxStepDb, Math.min(this.#maxStepDb, wanted - this.#gainDb));
    if (change === 0) return;
    this.#gainDb += change;
    this.#target = Math.pow(10, this.#gainDb / 20);
    this.#step = (this.#target - this.#gain) / this.#block;
  }

  close(): void {}
}
