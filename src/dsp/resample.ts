/**
 * `resample`: the Speex resampler (WASM, SIMD build; measured ~8 µs per
 * 20 ms for 48→16 kHz at quality 5; docs/performance.md).
 *
 * Media time is preserved: over a stream, Speex emits exactly input × ratio
 * samples (checked for 16, 44.1, 11.025 and 8 kHz: 960 in → 320, 882, 220/221,
 * 160 out). Its filter delay (40 output samples at q5) appears as leading
 * output rather than as missing samples, so counting output samples from the
 * stream's first position stays sample-accurate.
 */
import { Type } from '@sinclair/typebox';
import { SpeexResampler } from '../../wasm/speex.js';
import type { AudioFormat } from '../media/frames.js';
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
        description: 'Speex quality 0 (fastest) … 10 (best). Default 6, the lowest that keeps the passband within 1 dB up to 0.9 × the new Nyquist (5 is −1.9 dB there).',
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
   * for ~3 µs more than q5 per 20 ms (`npm run bench`).
   */
  quality?: number;
}

export const resampleStage = defineStageType({
  schema: ResampleStageSchema,
  outputFormat: ({ sampleRate }, input) => derivedFormat(input, { sampleRate }),
  build({ sampleRate, quality }, input, output): ChunkStage {
    if (sampleRate === input.sampleRate) return { output, process: (chunk) => chunk, close() {} };
    const resampler = new SpeexResampler(input.channels, input.sampleRate, sampleRate, quality);
    return {
      output,
      process(chunk: PcmChunk): PcmChunk | null {
        const data = resampler.process(chunk.data);
        if (data.length === 0) return null;
        return chunkWith(chunk, data);
      },
      close() {
        resampler.close();
      },
    };
  },
});

export function createResampleStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(resampleStage, spec, input) as ChunkStage;
}
