/**
 * `denoise`: RNNoise at 48 kHz, one state per channel (stereo channels are
 * denoised independently, so one channel's noise never gates the other).
 *
 * RNNoise works on 480-sample (10 ms) frames. A 20 ms Opus frame is exactly two
 * of them and passes straight through, denoised in place with no allocation.
 * Other chunk sizes are buffered: the stage emits only whole RNNoise frames,
 * keeps the remainder (at most 479 samples per channel, < 10 ms of added latency)
 * for the next call, and returns null while it has less than one frame. So the
 * output length of one call may differ from its input length, but the total is
 * preserved over time (minus whatever is still buffered).
 *
 * RNNoise itself delays the signal by one frame (480 samples, 10 ms; measured on
 * the speech fixture): the first 10 ms of output are its start-up, not input.
 * The stage does not compensate: positions stay sample-accurate in count, and a
 * constant 10 ms offset does not matter for recording or recognition.
 *
 * The output chunk's `vad` is the mean voice-activity probability RNNoise
 * reported for the frames it contains (over all channels).
 */
import { RNNOISE_FRAME_SAMPLES, RNNOISE_SAMPLE_RATE, RnnoiseState } from '../../wasm/rnnoise.js';
import { rejectUnknownOptions } from './options.js';
import type { AudioFormat, PcmChunk, Stage, StageSpec } from './types.js';

/**
 * Options of the `denoise` stage: none yet (RNNoise has no strength setting).
 * Any key other than `type` is rejected, so a misspelt option of a future
 * version fails loudly instead of being ignored.
 */
export interface DenoiseOptions extends StageSpec {
  type: 'denoise';
}

export function createDenoiseStage(spec: StageSpec, input: AudioFormat): Stage {
  rejectUnknownOptions(spec, []);
  if (input.sampleRate !== RNNOISE_SAMPLE_RATE) {
    throw new RangeError(`denoise needs ${RNNOISE_SAMPLE_RATE} Hz input, got ${input.sampleRate} Hz; put resample after denoise`);
  }
  if (!Number.isInteger(input.channels) || input.channels < 1) {
    throw new RangeError(`denoise: input channels must be a positive integer, got ${input.channels}`);
  }
  return new DenoiseStage(input);
}

class DenoiseStage implements Stage {
  readonly output: AudioFormat;
  readonly #channels: number;
  readonly #states: RnnoiseState[] = [];
  /** One channel of one RNNoise frame, de-interleaved for the WASM call. */
  readonly #frame = new Float32Array(RNNOISE_FRAME_SAMPLES);
  /** Interleaved samples of one RNNoise frame across all channels. */
  readonly #block: number;
  /** Input left over from the previous call (less than one block), preallocated. */
  readonly #pending: Float32Array;
  #pendingLength = 0;

  constructor(input: AudioFormat) {
    this.output = { sampleRate: input.sampleRate, channels: input.channels };
    this.#channels = input.channels;
    this.#block = RNNOISE_FRAME_SAMPLES * input.channels;
    this.#pending = new Float32Array(this.#block);
    try {
      for (let c = 0; c < input.channels; c++) this.#states.push(new RnnoiseState());
    } catch (e) {
      this.close();
      throw e;
    }
  }

  process(chunk: PcmChunk): PcmChunk | null {
    const input = chunk.data;
    const available = this.#pendingLength + input.length;
    const blocks = Math.floor(available / this.#block);
    if (blocks === 0) {
      this.#pending.set(input, this.#pendingLength);
      this.#pendingLength = available;
      return null;
    }
    const used = blocks * this.#block;
    let out: Float32Array;
    if (this.#pendingLength === 0 && used === input.length) {
      out = input; // the common case (960-sample Opus frames): in place, the chunk is ours to modify
    } else {
      out = new Float32Array(used);
      out.set(this.#pending.subarray(0, this.#pendingLength));
      const fromInput = used - this.#pendingLength;
      out.set(input.subarray(0, fromInput), this.#pendingLength);
      this.#pending.set(input.subarray(fromInput));
      this.#pendingLength = input.length - fromInput;
    }
    let vadSum = 0;
    const channels = this.#channels;
    const frame = this.#frame;
    for (let b = 0; b < blocks; b++) {
      const base = b * this.#block;
      for (let c = 0; c < channels; c++) {
        for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) frame[i] = out[base + i * channels + c];
        vadSum += this.#states[c].processFrame(frame);
        for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels + c] = frame[i];
      }
    }
    return { data: out, vad: vadSum / (blocks * channels) };
  }

  close(): void {
    for (const s of this.#states) s.close();
  }
}
