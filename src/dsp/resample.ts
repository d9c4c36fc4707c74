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
import { SpeexResampler } from '../../wasm/speex.js';
import { chunkWith } from './chunk.js';
import { derivedFormat, integerOption, rejectUnknownOptions } from './options.js';
import type { AudioFormat, ChunkStage, PcmChunk, StageSpec } from './types.js';

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

export const RESAMPLE_MIN_RATE = 8000;
export const RESAMPLE_MAX_RATE = 48000;
export const RESAMPLE_DEFAULT_QUALITY = 6;

export function createResampleStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, ['sampleRate', 'quality']);
  const sampleRate = integerOption(spec, 'sampleRate', RESAMPLE_MIN_RATE, RESAMPLE_MAX_RATE);
  const quality = integerOption(spec, 'quality', 0, 10, RESAMPLE_DEFAULT_QUALITY);
  const output = derivedFormat(input, { sampleRate });
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
}
