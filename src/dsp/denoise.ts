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
 *
 * Silence is (almost) free. A 10 ms frame of one channel whose peak is at most
 * one 16-bit step ({@link SILENCE_PEAK}, −90.3 dBFS) is digital silence: what a
 * DTX gap becomes (the decoder fills it with zeros), what a muted or silent
 * sender without DTX decodes to (Opus gives ±1 LSB, not exact zeros), and what
 * concealment of silence gives. Such frames are treated as exact zeros, and
 * RNNoise is not run on them once its state is *settled*; they come out as
 * zeros (plus the delayed original with `mix`), at their position and length,
 * with VAD 0, and are counted in the stage's `framesSkippedSilent`. A gap
 * the stream's input filled with zeros (DTX) is skipped whole, without even
 * the peak check (`skipSilence`).
 *
 * Settled means that running RNNoise on more zeros would change nothing but
 * float dust, so skipping them leaves exactly the state running them would.
 * After sound stops, RNNoise still holds 10 ms of it in its delay line, the
 * tail of its input high-pass filter, and a 1728-sample pitch history, and it
 * keeps updating its recurrent state until the tail falls below its own
 * silence threshold (then it returns VAD exactly 0). So the first silent
 * frames after sound are run (as zeros): at least {@link SETTLE_MIN_FRAMES}
 * (the delay line and the pitch history), and until RNNoise reports VAD 0 and
 * its output peak is below {@link SETTLED_PEAK} (measured: 23–28 frames after
 * speech, noise, tones and sweeps, of which the last ~15 are RNNoise's own
 * cheap silence mode). A fresh state is settled. Speech after a gap is therefore denoised as
 * it was when every frame ran (same output to float rounding, same position),
 * the last 10 ms before a gap are not lost, and a gap costs RNNoise only its
 * first ~250 ms.
 *
 * Concealed (PLC) frames are not skipped for being concealed: concealment
 * inside speech carries the extrapolated voice (skipping it would turn every
 * lost packet into a 20 ms dropout), the ingest conceals only a short run of
 * lost packets (10 by default; longer loss arrives as silence), and
 * concealment of silence is caught by the peak check like any other silence.
 */
import { RNNOISE_FRAME_SAMPLES, RNNOISE_SAMPLE_RATE, RnnoiseState } from '../../wasm/rnnoise.js';
import { Type } from '@sinclair/typebox';
import { createStageOf, defineStageType, derivedFormat, type StageInputProblem } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageOutput, StageSpec } from './types.js';
import type { AudioFormat } from '../media/frames.js';

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

/**
 * Largest peak (−1..1) of a 10 ms frame of one channel that counts as digital
 * silence: one 16-bit step, 1/32768 (−90.3 dBFS). Opus decodes encoded digital
 * silence to ±1 step; no microphone signal stays this quiet for 10 ms.
 */
export const SILENCE_PEAK = 1 / 32768;
/** Zero frames RNNoise runs after sound before frames may be skipped: its pitch history (1728 samples) spans 3.6 frames. */
export const SETTLE_MIN_FRAMES = 4;
/**
 * RNNoise output peak (−1..1) on a zero frame under which its delay lines count
 * as empty: 1e−12 (−240 dBFS). Not float rounding of the output (2⁻²⁴) but far
 * below it, because the dust left in RNNoise's pitch history steers its
 * (discrete) pitch choice on the next sound: measured on the fixtures, stopping
 * at 1e−8 changed the speech after a gap by up to 1e−3, at 1e−12 by ≤ 4e−9.
 */
export const SETTLED_PEAK = 1e-12;
/** Zero frames after which a state counts as settled whatever it reports (a safety net; measured settling takes 23–28). */
const SETTLE_MAX_FRAMES = 60;

export const DenoiseStageSchema = Type.Object(
  {
    type: Type.Literal('denoise', { description: 'RNNoise noise suppression at 48 kHz; reports a voice-activity probability per frame.' }),
    mix: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        default: DENOISE_DEFAULTS.mix,
        description:
          'Fraction of the original signal mixed back, 0–1: out = (1 − mix)·denoised + mix·original (the original delayed 10 ms to line up with RNNoise). 0 = fully denoised; 0.1–0.3 keeps some room tone.',
      }),
    ),
    vadThreshold: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1, default: DENOISE_DEFAULTS.vadThreshold, description: 'Voice-activity probability (0–1) from which a frame is marked as speech.' }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Remove background noise (RNNoise). Needs 48 kHz input. Delays the audio by 10 ms (480 samples): the output keeps the input\'s length and positions, so its first 10 ms are RNNoise starting up and the input\'s last 10 ms never come out (an impulse at sample 4800 comes out at 5280).',
  },
);

export const denoiseStage = defineStageType({
  schema: DenoiseStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  checkInput(_options, input): StageInputProblem[] {
    if (input.sampleRate === RNNOISE_SAMPLE_RATE) return [];
    // Never an automatic resample: the cost of every stage stays visible in the pipeline.
    const hint = 'move "denoise" before any "resample" stage';
    return [{ message: `denoise needs ${RNNOISE_SAMPLE_RATE} Hz audio but gets ${input.sampleRate} Hz here; ${hint}`, found: input.sampleRate, allowed: `${RNNOISE_SAMPLE_RATE} Hz input`, hint }];
  },
  build: ({ mix, vadThreshold }, input, output) => new DenoiseStage(input, output, mix, vadThreshold),
});

export function createDenoiseStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(denoiseStage, spec, input) as ChunkStage;
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
  /** Per channel: whether RNNoise's state is settled on silence, so silent frames may be skipped (a fresh state is). */
  readonly #settled: Uint8Array;
  /** Per channel: zero frames RNNoise ran since the last sound. */
  readonly #zeroRun: Uint32Array;
  #skipped = 0;

  constructor(input: AudioFormat, output: AudioFormat, mix: number, vadThreshold: number) {
    this.output = output;
    this.#channels = input.channels;
    this.#mix = mix;
    this.#vadThreshold = vadThreshold;
    if (mix > 0) for (let c = 0; c < input.channels; c++) this.#dry.push(new Float32Array(RNNOISE_FRAME_SAMPLES));
    this.#block = RNNOISE_FRAME_SAMPLES * input.channels;
    this.#pending = new Float32Array(this.#block);
    this.#settled = new Uint8Array(input.channels).fill(1);
    this.#zeroRun = new Uint32Array(input.channels);
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
        let peak = 0;
        for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) {
          const v = out[base + i * channels + c];
          frame[i] = v;
          const a = v < 0 ? -v : v;
          if (a > peak) peak = a;
        }
        const silent = peak <= SILENCE_PEAK;
        if (silent && this.#settled[c] === 1) {
          // RNNoise would output (float dust of) zeros and keep its state: skip it. VAD 0.
          this.#skipped++;
          if (mix > 0) {
            const dry = this.#dry[c];
            for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels + c] = mix * dry[i];
            dry.set(frame);
          } else {
            for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels + c] = 0;
          }
          continue;
        }
        if (mix > 0) this.#original.set(frame);
        if (silent) frame.fill(0);
        const vad = this.#states[c].processFrame(frame);
        vadSum += vad;
        if (silent) this.#settle(c, vad, frame);
        else {
          this.#settled[c] = 0;
          this.#zeroRun[c] = 0;
        }
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

  /**
   * At the end of the stream, the input left over that did not fill an
   * RNNoise frame (its length is not a multiple of 480 samples: PCM input
   * of other frame sizes, 2.5 ms Opus packets): zero-padded to a frame,
   * denoised, and cut back to its own length, so the branch outputs as many
   * samples as came in and a recording lasts as long as the media.
   */
  flush(): StageOutput {
    const length = this.#pendingLength;
    if (length === 0) return null;
    const block = new Float32Array(this.#block);
    block.set(this.#pending.subarray(0, length));
    this.#pendingLength = 0;
    const chunk = this.process({ data: block });
    if (chunk) chunk.data = chunk.data.subarray(0, length);
    return chunk;
  }

  /**
   * A gap's silence, skipped without a pass over it when `process` would skip
   * every frame of it anyway: no partial frame pending, whole frames only,
   * every channel's RNNoise at rest, no dry mix (whose 10 ms delay line would
   * still carry sound). Counted like the frames `process` skips; VAD 0.
   */
  skipSilence(chunk: PcmChunk): boolean {
    const n = chunk.data.length;
    if (this.#pendingLength !== 0 || this.#mix > 0 || n % this.#block !== 0) return false;
    for (let c = 0; c < this.#channels; c++) if (this.#settled[c] !== 1) return false;
    const blocks = n / this.#block;
    if (blocks === 0) return false;
    this.#skipped += blocks * this.#channels;
    chunk.vad = 0;
    chunk.speech = 0 >= this.#vadThreshold;
    return true;
  }

  /**
   * RNNoise frames (10 ms of one channel) skipped as silent since the stage was
   * created; StreamProcessor sums it into the stream's `framesSkippedSilent`.
   */
  get framesSkippedSilent(): number {
    return this.#skipped;
  }

  /** After RNNoise ran a zero frame on channel `c` (returning `vad` and `output`): is its state settled now? */
  #settle(c: number, vad: number, output: Float32Array): void {
    const run = ++this.#zeroRun[c];
    if (run >= SETTLE_MAX_FRAMES) {
      this.#settled[c] = 1;
      return;
    }
    if (run < SETTLE_MIN_FRAMES || vad !== 0) return;
    for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) if (output[i] > SETTLED_PEAK || output[i] < -SETTLED_PEAK) return;
    this.#settled[c] = 1;
  }

  close(): void {
    for (const s of this.#states) s.close();
  }
}
