/**
 * `highpass`, `lowpass`, `bandpass` and `notch`: second-order IIR filters
 * designed with the formulas of Robert Bristow-Johnson's "Audio EQ Cookbook"
 * (bilinear transform of the analog prototypes, frequency pre-warped at f0),
 * 12 dB/octave slopes.
 *
 * Run as transposed direct form II with the state in Float64 per channel:
 * float32 state lets a low-frequency highpass (80 Hz at 48 kHz puts the poles
 * within 1 % of the unit circle) drift and hum; doubles cost nothing extra in
 * JS, where arithmetic is double anyway.
 */
import { checkInputFormat, derivedFormat, numberOption, rejectUnknownOptions } from './options.js';
import type { AudioFormat, ChunkStage, PcmChunk, StageSpec } from './types.js';

export type BiquadKind = 'highpass' | 'lowpass' | 'bandpass' | 'notch';

/** Coefficients normalized so that a0 = 1: y[n] = b0·x[n] + b1·x[n−1] + b2·x[n−2] − a1·y[n−1] − a2·y[n−2]. */
export interface BiquadCoefficients {
  b0: number;
  b1: number;
  b2: number;
  a1: number;
  a2: number;
}

export const BIQUAD_MIN_Q = 0.1;
export const BIQUAD_MAX_Q = 20;
/** Butterworth Q: maximally flat passband, −3 dB at `frequency`. */
export const BUTTERWORTH_Q = Math.SQRT1_2;
/** A notch 1/5 of its centre frequency wide (−3 dB points), narrow enough to leave the neighbourhood of a hum alone. */
export const NOTCH_DEFAULT_Q = 5;

/** Options of the `highpass` and `lowpass` stages. */
export interface PassFilterOptions extends StageSpec {
  type: 'highpass' | 'lowpass';
  /** Corner frequency in Hz, above 0 and below half the input sample rate. Required. */
  frequency: number;
  /** Resonance, 0.1–20. Default 0.7071 (Butterworth: flat, −3 dB at `frequency`); higher peaks at the corner. */
  q?: number;
}

/** Options of the `notch` stage. */
export interface NotchOptions extends StageSpec {
  type: 'notch';
  /** Frequency removed, in Hz, above 0 and below half the input sample rate. Required (e.g. 50 or 60 for mains hum). */
  frequency: number;
  /** Quality, 0.1–20: centre frequency ÷ width between the −3 dB points. Default 5. */
  q?: number;
}

/**
 * Options of the `bandpass` stage (RBJ "constant 0 dB peak gain"): give
 * either `frequency` (+ optional `q`), or `lowFrequency` + `highFrequency`,
 * not both forms.
 */
export interface BandpassOptions extends StageSpec {
  type: 'bandpass';
  /** Centre frequency in Hz (0 dB there), above 0 and below half the input sample rate. */
  frequency?: number;
  /** Centre frequency ÷ bandwidth between the −3 dB points, 0.1–20. Default 0.7071. Only with `frequency`. */
  q?: number;
  /**
   * Lower −3 dB edge in Hz; with `highFrequency`. The filter is centred at
   * f0 = √(low·high) with Q = f0 / (high − low), which puts the analog
   * prototype's −3 dB points exactly at the two edges (the bilinear transform
   * moves them slightly toward f0 near Nyquist). A band wider than ~3 octaves
   * gives a very gentle single-biquad slope: prefer highpass + lowpass there.
   */
  lowFrequency?: number;
  /** Upper −3 dB edge in Hz, above `lowFrequency` and below half the input sample rate; with `lowFrequency`. */
  highFrequency?: number;
}

/** RBJ cookbook coefficients for `kind` at centre/corner `frequency` (Hz), quality `q`, `sampleRate` (Hz). */
export function biquadCoefficients(kind: BiquadKind, frequency: number, q: number, sampleRate: number): BiquadCoefficients {
  const w0 = (2 * Math.PI * frequency) / sampleRate;
  const cos = Math.cos(w0);
  const alpha = Math.sin(w0) / (2 * q);
  const a0 = 1 + alpha;
  let b0: number;
  let b1: number;
  let b2: number;
  switch (kind) {
    case 'lowpass':
      b0 = b2 = (1 - cos) / 2;
      b1 = 1 - cos;
      break;
    case 'highpass':
      b0 = b2 = (1 + cos) / 2;
      b1 = -(1 + cos);
      break;
    case 'bandpass':
      b0 = alpha;
      b1 = 0;
      b2 = -alpha;
      break;
    case 'notch':
      b0 = b2 = 1;
      b1 = -2 * cos;
      break;
  }
  return { b0: b0 / a0, b1: b1 / a0, b2: b2 / a0, a1: (-2 * cos) / a0, a2: (1 - alpha) / a0 };
}

/** |H(e^jω)| of the design in dB at `frequency` Hz (−Infinity at a notch's exact centre). */
export function biquadMagnitudeDb(c: BiquadCoefficients, frequency: number, sampleRate: number): number {
  const w = (2 * Math.PI * frequency) / sampleRate;
  const c1 = Math.cos(w);
  const s1 = Math.sin(w);
  const c2 = Math.cos(2 * w);
  const s2 = Math.sin(2 * w);
  // Numerator and denominator at z = e^{jω}: Σ k·e^{−jωn}.
  const nr = c.b0 + c.b1 * c1 + c.b2 * c2;
  const ni = -(c.b1 * s1 + c.b2 * s2);
  const dr = 1 + c.a1 * c1 + c.a2 * c2;
  const di = -(c.a1 * s1 + c.a2 * s2);
  return 10 * Math.log10((nr * nr + ni * ni) / (dr * dr + di * di));
}

export function createHighpassStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createPassFilter('highpass', spec, input);
}

export function createLowpassStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createPassFilter('lowpass', spec, input);
}

export function createNotchStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, ['frequency', 'q']);
  checkInputFormat(spec.type, input);
  const frequency = frequencyOption(spec, 'frequency', input.sampleRate);
  const q = numberOption(spec, 'q', BIQUAD_MIN_Q, BIQUAD_MAX_Q, NOTCH_DEFAULT_Q);
  return new BiquadStage(input, biquadCoefficients('notch', frequency, q, input.sampleRate));
}

export function createBandpassStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, ['frequency', 'q', 'lowFrequency', 'highFrequency']);
  checkInputFormat(spec.type, input);
  const centre = spec.frequency !== undefined || spec.q !== undefined;
  const edges = spec.lowFrequency !== undefined || spec.highFrequency !== undefined;
  if (centre === edges) {
    throw new TypeError(
      `bandpass: give either "frequency" (and optionally "q") or both "lowFrequency" and "highFrequency", ${centre ? 'not both forms' : 'got neither'}`,
    );
  }
  if (centre) {
    const frequency = frequencyOption(spec, 'frequency', input.sampleRate);
    const q = numberOption(spec, 'q', BIQUAD_MIN_Q, BIQUAD_MAX_Q, BUTTERWORTH_Q);
    return new BiquadStage(input, biquadCoefficients('bandpass', frequency, q, input.sampleRate));
  }
  const low = frequencyOption(spec, 'lowFrequency', input.sampleRate);
  const high = frequencyOption(spec, 'highFrequency', input.sampleRate);
  if (high <= low) throw new RangeError(`bandpass: option "highFrequency" must be above "lowFrequency" (${low} Hz), got ${high}`);
  // Band edges: a Butterworth high-pass at the low edge then a Butterworth low-pass at the high edge.
  // A single constant-gain biquad over such a wide band has 6 dB/octave skirts (only ~19 dB down at
  // 37 Hz for 300–3400 Hz); the cascade has 12 dB/octave on each side and a flat band between.
  return new BiquadCascade(input, bandEdgeSections(low, high, input.sampleRate));
}

/** The two sections of the band-edge form of `bandpass` (high-pass at `low`, low-pass at `high`, both Butterworth). */
export function bandEdgeSections(low: number, high: number, sampleRate: number): BiquadCoefficients[] {
  return [biquadCoefficients('highpass', low, BUTTERWORTH_Q, sampleRate), biquadCoefficients('lowpass', high, BUTTERWORTH_Q, sampleRate)];
}

function createPassFilter(kind: 'highpass' | 'lowpass', spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, ['frequency', 'q']);
  checkInputFormat(spec.type, input);
  const frequency = frequencyOption(spec, 'frequency', input.sampleRate);
  const q = numberOption(spec, 'q', BIQUAD_MIN_Q, BIQUAD_MAX_Q, BUTTERWORTH_Q);
  return new BiquadStage(input, biquadCoefficients(kind, frequency, q, input.sampleRate));
}

/** A frequency option in (0, sampleRate/2): the bilinear design has no meaning at or above Nyquist. */
function frequencyOption(spec: StageSpec, key: string, sampleRate: number): number {
  const nyquist = sampleRate / 2;
  const v = spec[key];
  const what = `a number of Hz above 0 and below half the sample rate (${nyquist} Hz at ${sampleRate} Hz)`;
  if (v === undefined) throw new TypeError(`${spec.type}: option "${key}" is required (${what})`);
  if (typeof v !== 'number') throw new TypeError(`${spec.type}: option "${key}" must be ${what}, got ${JSON.stringify(v) ?? String(v)} (${typeof v})`);
  if (!(v > 0 && v < nyquist)) throw new RangeError(`${spec.type}: option "${key}" must be ${what}, got ${v}`);
  return v;
}

/** Below this a state value is flushed to 0: decaying into subnormal doubles makes every operation ~100× slower on x86. */
const SUBNORMAL_GUARD = 1e-30;

class BiquadStage implements ChunkStage {
  readonly output: AudioFormat;
  readonly #c: BiquadCoefficients;
  readonly #channels: number;
  /** s1, s2 of each channel, interleaved. */
  readonly #state: Float64Array;

  constructor(input: AudioFormat, coefficients: BiquadCoefficients) {
    this.output = derivedFormat(input);
    this.#c = coefficients;
    this.#channels = input.channels;
    this.#state = new Float64Array(2 * input.channels);
  }

  process(chunk: PcmChunk): PcmChunk {
    const data = chunk.data;
    const { b0, b1, b2, a1, a2 } = this.#c;
    const channels = this.#channels;
    const state = this.#state;
    for (let c = 0; c < channels; c++) {
      let s1 = state[2 * c];
      let s2 = state[2 * c + 1];
      for (let i = c; i < data.length; i += channels) {
        const x = data[i];
        const y = b0 * x + s1;
        s1 = b1 * x - a1 * y + s2;
        s2 = b2 * x - a2 * y;
        data[i] = y;
      }
      state[2 * c] = Math.abs(s1) < SUBNORMAL_GUARD ? 0 : s1;
      state[2 * c + 1] = Math.abs(s2) < SUBNORMAL_GUARD ? 0 : s2;
    }
    return chunk;
  }

  close(): void {}
}

/** Biquad sections in series, each with its own state, in place. */
class BiquadCascade implements ChunkStage {
  readonly output: AudioFormat;
  readonly #sections: BiquadStage[];

  constructor(input: AudioFormat, sections: BiquadCoefficients[]) {
    this.output = derivedFormat(input);
    this.#sections = sections.map((c) => new BiquadStage(input, c));
  }

  process(chunk: PcmChunk): PcmChunk {
    for (const s of this.#sections) s.process(chunk);
    return chunk;
  }

  close(): void {}
}
