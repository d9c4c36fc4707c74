/**
 * `denoise`: RNNoise at 48 kHz. It works on 480-sample frames, so input that
 * does not divide into them is buffered (adding at most 10 ms of latency); each
 * channel has its own state. The output chunk carries the mean voice-activity
 * probability of the RNNoise frames it contains.
 */
import { RNNOISE_FRAME_SAMPLES, RnnoiseState } from '../../wasm/rnnoise.js';
import { rejectUnknownOptions } from './options.js';
import type { AudioFormat, PcmChunk, Stage, StageSpec } from './types.js';

export function createDenoiseStage(spec: StageSpec, input: AudioFormat): Stage {
  rejectUnknownOptions(spec, []);
  if (input.sampleRate !== 48000) {
    throw new RangeError(`denoise needs 48000 Hz input, got ${input.sampleRate} Hz; put "resample" after "denoise"`);
  }
  const channels = input.channels;
  const states = Array.from({ length: channels }, () => new RnnoiseState());
  const frame = new Float32Array(RNNOISE_FRAME_SAMPLES);
  // Pending input (interleaved), at most one RNNoise frame short of complete.
  let pending = new Float32Array(0);

  return {
    output: input,
    process(chunk: PcmChunk): PcmChunk | null {
      const data = pending.length > 0 ? concat(pending, chunk.data) : chunk.data;
      const perChannel = data.length / channels;
      const frames = Math.floor(perChannel / RNNOISE_FRAME_SAMPLES);
      const used = frames * RNNOISE_FRAME_SAMPLES * channels;
      pending = used < data.length ? data.slice(used) : new Float32Array(0);
      if (frames === 0) return null;
      const out = data === chunk.data ? (used === data.length ? data : data.slice(0, used)) : data.subarray(0, used);
      let vadSum = 0;
      for (let f = 0; f < frames; f++) {
        const base = f * RNNOISE_FRAME_SAMPLES * channels;
        for (let c = 0; c < channels; c++) {
          for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) frame[i] = out[base + i * channels + c];
          vadSum += states[c].processFrame(frame);
          for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels + c] = frame[i];
        }
      }
      return { data: out, vad: vadSum / (frames * channels) };
    },
    close() {
      for (const s of states) s.close();
    },
  };
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
