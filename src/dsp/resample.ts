/**
 * `resample`: the Speex resampler (WASM, SIMD build; measured ~8 µs per
 * 20 ms for 48→16 kHz at quality 5; docs/performance.md).
 *
 * Media time is preserved: over a stream, Speex emits exactly input × ratio
 * samples (checked for 16, 44.1, 11.025 and 8 kHz: 960 in → 320, 882, 220/221,
 * 160 out), its filter delay (48 output samples at q6) coming first as
 * leading output. The stage cuts that delay from the start and, at the end
 * of the stream (`flush`), feeds the filter zeros for the tail it still
 * holds: output sample n is input time n / rate, as in every other branch,
 * and the branch has as many samples as the media's duration at its rate.
 * Without the cut, a 16 kHz branch lagged a 48 kHz one by 3 ms and lost the
 * stream's last 3 ms.
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
        description: 'Speex quality 0 (fastest) … 10 (best). Default 6, the lowest that keeps the passband within 1 dB up to 0.9 × the new Nyquist (5 is −1.9 dB there). The filter\'s delay (in output samples 4 at 0, 24 at 3, 48 at 6, 128 at 10) is compensated: the output lines up sample for sample with the other branches, and the stream\'s end is flushed out.',
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
   * for ~3 µs more than q5 per 20 ms (`npm run bench`). The filter's delay
   * (in output samples 4 at 0, 24 at 3, 48 at 6, 128 at 10) is compensated:
   * the output lines up with the other branches sample for sample, and the
   * stream's last samples come out when it ends.
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
    /** Output samples (per channel) of the filter's delay still to cut from the start. */
    let trim = resampler.outputLatency;
    /** Input and output samples per channel so far (output after the cut). */
    let framesIn = 0;
    let framesOut = 0;
    /** Cuts what remains of the delay from the start of `data`, and counts what goes out. */
    const emit = (data: Float32Array): Float32Array => {
      if (trim > 0) {
        const cut = Math.min(trim, data.length / channels);
        trim -= cut;
        data = data.slice(cut * channels);
      }
      framesOut += data.length / channels;
      return data;
    };
    return {
      output,
      process(chunk: PcmChunk): PcmChunk | null {
        const frames = chunk.data.length / channels;
        framesIn += frames;
        if (quiet >= rest && frames % period === 0 && allZeros(chunk.data)) {
          quiet += frames;
          const data = emit(new Float32Array((frames / period) * periodOut * channels));
          return data.length === 0 ? null : chunkWith(chunk, data);
        }
        const data = emit(resampler.process(chunk.data));
        const tail = trailingZeroFrames(chunk.data, channels);
        quiet = tail === frames ? quiet + frames : tail;
        if (data.length === 0) return null;
        return chunkWith(chunk, data);
      },
      flush(): PcmChunk | null {
        // The media's duration at the output rate, less what went out: the tail the filter holds.
        const need = Math.round((framesIn * sampleRate) / input.sampleRate) - framesOut;
        if (need <= 0) return null;
        const parts: Float32Array[] = [];
        let have = 0;
        // Zeros push the tail out; a period more than the ratio says covers Speex's rounding.
        for (let round = 0; have < need && round < 4; round++) {
          const zeros = Math.ceil(((need - have + trim) * input.sampleRate) / sampleRate) + period;
          const data = emit(resampler.process(new Float32Array(zeros * channels)));
          parts.push(data);
          have += data.length / channels;
        }
        const out = new Float32Array(need * channels);
        let at = 0;
        for (const p of parts) {
          const take = Math.min(p.length, out.length - at);
          out.set(p.subarray(0, take), at);
          at += take;
        }
        return { data: out };
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
