/**
 * `resample`: the Speex resampler (WASM, SIMD build). Output length follows the
 * rate ratio exactly over time (Speex emits its filter delay as leading output),
 * so media time is preserved.
 */
import { SpeexResampler } from '../../wasm/speex.js';
import { integerOption, rejectUnknownOptions } from './options.js';
import type { AudioFormat, PcmChunk, Stage, StageSpec } from './types.js';

export function createResampleStage(spec: StageSpec, input: AudioFormat): Stage {
  rejectUnknownOptions(spec, ['sampleRate', 'quality']);
  const sampleRate = integerOption(spec, 'sampleRate', 8000, 48000);
  const quality = integerOption(spec, 'quality', 0, 10, 5);
  const output = { sampleRate, channels: input.channels };
  if (sampleRate === input.sampleRate) return { output, process: (c) => c, close() {} };
  const resampler = new SpeexResampler(input.channels, input.sampleRate, sampleRate, quality);
  return {
    output,
    process(chunk: PcmChunk): PcmChunk | null {
      const data = resampler.process(chunk.data);
      return data.length > 0 ? { data, vad: chunk.vad } : null;
    },
    close() {
      resampler.close();
    },
  };
}
