/**
 * `resample`: the Speex resampler (WASM, SIMD build; measured ~8 µs per
 * 20 ms for 48→16 kHz at quality 5; docs/performance.md).
 *
 * Media time is preserved: over a stream, Speex emits exactly input × ratio
 * samples (checked for 16, 44.1, 11.025 and 8 kHz: 960 in → 320, 882, 220/221,
 * 160 out). Its filter delay (40 output samples at q5) appears as leading
 * output rather than as missing samples, so counting output samples from the
 * stream's first position stays sample-accurate.
 *
 * A pause costs no filtering. Once the filter's memory holds only zeros (the
 * input's last filter length of samples were zeros), a chunk of zeros whose
 * length is a whole number of the rate ratio's periods (`in / gcd` input
 * samples; a gap's 1 s pieces always are) yields exactly `length × out / in`
 * zeros and leaves the filter's memory and phase as they were: the stage
 * returns those zeros without calling Speex. A 10-minute pause through a
 * 16 kHz branch took 440–680 ms of a worker in its one batch, now 100–260 ms
 * (the zeros' arrays and the passes that find them zero).
 */
import { Type } from '@sinclair/typebox';
import { SpeexResampler } from '../../wasm/speex.js';
import type { AudioFormat } from '../media/frames.js';
import { allZeros } from '../media/shared-zeros.js';
import { chunkWith } from './chunk.js';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';

export const RESAMPLE_MIN_RATE = 8000;
export const RESAMPLE_MAX_RATE = 48000;
export const RESAMPLE_DEFAULT_QUALITY = 6;

export const ResampleStageSchema = Type.Object(
  {
    type: Type.Literal('resample', { description: 'Change the sample rate (Speex resampler).' }),
    sampleRate: Type.Integer({ minimum: RESAMPLE_MIN_RATE, maximum: RESAMPLE_MAX_RATE, description: 'Output sample rate in Hz, 8000–48000.' }),
    quality: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10,
        default: RESAMPLE_DEFAULT_QUALITY,
        description: 'Speex quality 0 (fastest) … 10 (best). Default 6, the lowest that keeps the passband within 1 dB up to 0.9 × the new Nyquist (5 is −1.9 dB there). The output lags the input by the filter\'s delay, in output samples 4 at 0, 24 at 3, 48 at 6, 128 at 10 (3 ms at 16 kHz by default): frame positions count from the first output sample, so to line a resampled branch up with another, shift it by that.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Resample to another rate.' },
);

/** Options of the `resample` stage. */
export interface ResampleOptions extends StageSpec {
  type: 'resample';
  /** Output rate in Hz: an integer from 8000 to 48000. Required. Equal to the input rate, the stage passes chunks through untouched. */
  sampleRate: number;
  /**
   * Speex quality, integer 0 (fastest) to 10 (best). Default 6: the lowest
   * quality whose passband stays within 1 dB up to 0.9 × the new Nyquist
   * (measured: q5 is −1.85 dB there, q6 −0.21 dB; test/dsp/resample-quality.test.ts),
   * for ~3 µs more than q5 per 20 ms (`npm run bench`). The output lags
   * the input by the filter's delay, in output samples 4 at 0, 24 at 3, 48
   * at 6, 128 at 10 (3 ms at 16 kHz by default); positions count from the
   * first output sample, so shift by it to line branches of two rates up.
   */
  quality?: number;
}

export const resampleStage = defineStageType({
  schema: ResampleStageSchema,
  outputFormat: ({ sampleRate }, input) => derivedFormat(input, { sampleRate }),
  build({ sampleRate, quality }, input, output): ChunkStage {
    if (sampleRate === input.sampleRate) return { output, process: (chunk) => chunk, close() {} };
    const resampler = new SpeexResampler(input.channels, input.sampleRate, sampleRate, quality);
    const channels = input.channels;
    const common = gcd(input.sampleRate, sampleRate);
    /** Input samples per channel after which the phase repeats, and output samples per channel made over them. */
    const period = input.sampleRate / common;
    const periodOut = sampleRate / common;
    /** Zeros at the end of the input so far that make the filter's memory all zeros (per channel). */
    const rest = 2 * resampler.inputLatency;
    /** Zeros (per channel) at the end of the input fed so far. */
    let quiet = 0;
    return {
      output,
      process(chunk: PcmChunk): PcmChunk | null {
        const frames = chunk.data.length / channels;
        if (quiet >= rest && frames % period === 0 && allZeros(chunk.data)) {
          quiet += frames;
          return chunkWith(chunk, new Float32Array((frames / period) * periodOut * channels));
        }
        const data = resampler.process(chunk.data);
        const tail = trailingZeroFrames(chunk.data, channels);
        quiet = tail === frames ? quiet + frames : tail;
        if (data.length === 0) return null;
        return chunkWith(chunk, data);
      },
      close() {
        resampler.close();
      },
    };
  },
});

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Sample frames of zeros at the end of interleaved `data`. */
function trailingZeroFrames(data: Float32Array, channels: number): number {
  let i = data.length;
  while (i > 0 && data[i - 1] === 0) i--;
  return Math.floor((data.length - i) / channels);
}

export function createResampleStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(resampleStage, spec, input) as ChunkStage;
}
