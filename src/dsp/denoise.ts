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
 * reported for the frames it contains (over all channels), and `speech` says
 * whether it reached `vadThreshold`.
 *
 * `mix` blends the original back in. Because RNNoise's output for a frame is
 * the input of the frame before, the original is delayed by the same 480
 * samples before mixing, so the two line up sample for sample (mixing the
 * undelayed original would comb-filter the result at 100 Hz spacing).
 */
import { RNNOISE_FRAME_SAMPLES, RNNOISE_SAMPLE_RATE, RnnoiseState } from '../../wasm/rnnoise.js';
import { derivedFormat, numberOption, rejectUnknownOptions } from './options.js';
import type { AudioFormat, ChunkStage, PcmChunk, StageSpec } from './types.js';

/** Options of the `denoise` stage. RNNoise itself has no strength setting; `mix` is the way to soften it. */
export interface DenoiseOptions extends StageSpec {
  type: 'denoise';
  /**
   * Fraction of the original signal mixed back, 0–1: out = (1 − mix)·denoised
   * + mix·original (the original delayed to line up with RNNoise's output).
   * Default 0 (fully denoised). 0.1–0.3 keeps some room tone, which many
   * listeners find less tiring than RNNoise's dead silence.
   */
  mix?: number;
  /** Voice-activity probability (0–1) from which a chunk is marked `speech: true`. Default 0.5. */
  vadThreshold?: number;
}

export const DENOISE_DEFAULTS = { mix: 0, vadThreshold: 0.5 } as const;

export function createDenoiseStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, ['mix', 'vadThreshold']);
  const mix = numberOption(spec, 'mix', 0, 1, DENOISE_DEFAULTS.mix);
  const vadThreshold = numberOption(spec, 'vadThreshold', 0, 1, DENOISE_DEFAULTS.vadThreshold);
  if (input.sampleRate !== RNNOISE_SAMPLE_RATE) {
    throw new RangeError(`denoise needs ${RNNOISE_SAMPLE_RATE} Hz input, got ${input.sampleRate} Hz; put resample after denoise`);
  }
  if (!Number.isInteger(input.channels) || input.channels < 1) {
    throw new RangeError(`denoise: input channels must be a positive integer, got ${input.channels}`);
  }
  return new DenoiseStage(input, mix, vadThreshold);
}

class DenoiseStage implements ChunkStage {
  readonly output: AudioFormat;
  readonly #channels: number;
  readonly #states: RnnoiseState[] = [];
  readonly #mix: number;
  readonly #vadThreshold: number;
  /** One channel of one RNNoise frame, de-interleaved for the WASM call. */
  readonly #frame = new Float32Array(RNNOISE_FRAME_SAMPLES);
  /**
   * With `mix`: the previous original frame of each channel (RNNoise's delay
   * line for the dry signal, zero before the first frame), and the current one
   * saved before RNNoise overwrites it. Absent when mix is 0.
   */
  readonly #dry: Float32Array[] = [];
  readonly #original = new Float32Array(RNNOISE_FRAME_SAMPLES);
  /** Interleaved samples of one RNNoise frame across all channels. */
  readonly #block: number;
  /** Input left over from the previous call (less than one block), preallocated. */
  readonly #pending: Float32Array;
  #pendingLength = 0;

  constructor(input: AudioFormat, mix: number, vadThreshold: number) {
    this.output = derivedFormat(input);
    this.#channels = input.channels;
    this.#mix = mix;
    this.#vadThreshold = vadThreshold;
    if (mix > 0) for (let c = 0; c < input.channels; c++) this.#dry.push(new Float32Array(RNNOISE_FRAME_SAMPLES));
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
    const mix = this.#mix;
    for (let b = 0; b < blocks; b++) {
      const base = b * this.#block;
      for (let c = 0; c < channels; c++) {
        for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) frame[i] = out[base + i * channels + c];
        if (mix > 0) this.#original.set(frame);
        vadSum += this.#states[c].processFrame(frame);
        if (mix > 0) {
          const dry = this.#dry[c];
          const wet = 1 - mix;
          for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels + c] = wet * frame[i] + mix * dry[i];
          dry.set(this.#original); // this frame's original lines up with the next frame's output
        } else {
          for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels + c] = frame[i];
        }
      }
    }
    const vad = vadSum / (blocks * channels);
    // The chunk object is ours too: reusing it keeps the fast path allocation-free.
    chunk.data = out;
    chunk.vad = vad;
    chunk.speech = vad >= this.#vadThreshold;
    return chunk;
  }

  close(): void {
    for (const s of this.#states) s.close();
  }
}
