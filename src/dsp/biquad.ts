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
import { Type, type Static } from '@sinclair/typebox';
import { createStageOf, defineStageType, derivedFormat, type StageInputProblem } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';
import type { AudioFormat } from '../media/frames.js';

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

const frequencyDescription = (what: string) => `${what} in Hz, above 0 and below half the stage input sample rate.`;
const passQ = () =>
  Type.Optional(
    Type.Number({
      minimum: BIQUAD_MIN_Q,
      maximum: BIQUAD_MAX_Q,
      default: BUTTERWORTH_Q,
      description: 'Resonance 0.1–20. Default 0.7071 (Butterworth, flat); higher peaks at the corner.',
    }),
  );

export const HighpassStageSchema = Type.Object(
  {
    type: Type.Literal('highpass', { description: 'Second-order high-pass filter (RBJ cookbook biquad), 12 dB/octave.' }),
    frequency: Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Corner frequency (−3 dB at the default q)') }),
    q: passQ(),
  },
  { additionalProperties: false, description: 'Remove rumble and hum below a frequency (e.g. 80 Hz for voice).' },
);

export const LowpassStageSchema = Type.Object(
  {
    type: Type.Literal('lowpass', { description: 'Second-order low-pass filter (RBJ cookbook biquad), 12 dB/octave.' }),
    frequency: Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Corner frequency (−3 dB at the default q)') }),
    q: passQ(),
  },
  { additionalProperties: false, description: 'Remove hiss and content above a frequency.' },
);

export const BandpassStageSchema = Type.Object(
  {
    type: Type.Literal('bandpass', {
      description:
        'Band-pass filter. Either "frequency" (and optionally "q"): one RBJ-cookbook biquad, 0 dB at the centre, 6 dB/octave skirts; or "lowFrequency" and "highFrequency": a Butterworth high-pass at the low edge then a Butterworth low-pass at the high edge, 12 dB/octave skirts, flat between (within 0.5 dB) and −3 dB at each edge when the edges are two octaves or more apart; closer edges overlap and cost level: an octave apart, −1.9 dB at the centre and −3.3 dB at the edges; 1000–1200 Hz, −4.6 and −4.7 dB (for a narrow band, use "frequency" and "q" = centre ÷ bandwidth). Not both forms.',
    }),
    frequency: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Centre frequency (0 dB there); with optional "q"') })),
    q: Type.Optional(
      Type.Number({
        minimum: BIQUAD_MIN_Q,
        maximum: BIQUAD_MAX_Q,
        default: BUTTERWORTH_Q,
        description: 'Centre frequency ÷ bandwidth between the −3 dB points, 0.1–20. Default 0.7071. Only with "frequency".',
      }),
    ),
    lowFrequency: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Lower edge in Hz (Butterworth high-pass there); with "highFrequency". Each edge is at −3 dB and the band flat between (within 0.5 dB) when the edges are two octaves or more apart; closer ones cost level (an octave apart: −1.9 dB at the centre, −3.3 dB at the edges). For a narrow band use "frequency" and "q".' })),
    highFrequency: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, description: 'Upper −3 dB edge in Hz, above "lowFrequency" and below half the stage input sample rate; with "lowFrequency".' }),
    ),
  },
  { additionalProperties: false, description: 'Keep a band of frequencies (e.g. 300–3400 Hz telephone band).' },
);

export const NotchStageSchema = Type.Object(
  {
    type: Type.Literal('notch', { description: 'Second-order notch filter (RBJ cookbook biquad).' }),
    frequency: Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Frequency removed (e.g. 50 or 60 for mains hum)') }),
    q: Type.Optional(
      Type.Number({ minimum: BIQUAD_MIN_Q, maximum: BIQUAD_MAX_Q, default: NOTCH_DEFAULT_Q, description: 'Centre frequency ÷ width between the −3 dB points, 0.1–20. Default 5.' }),
    ),
  },
  { additionalProperties: false, description: 'Remove one frequency (hum, a whine).' },
);

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
   * Lower edge in Hz; with `highFrequency`. The stage is a Butterworth
   * high-pass at this edge then a Butterworth low-pass at the high one
   * (12 dB/octave skirts): flat between (within 0.5 dB) and −3 dB at each
   * edge when they are two octaves or more apart. Closer edges overlap and
   * cost level: an octave apart, −1.9 dB at the centre and −3.3 dB at the
   * edges; 1000–1200 Hz, −4.6 and −4.7 dB. For a narrow band use `frequency`
   * and `q` (centre ÷ bandwidth) instead.
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

/** A frequency option at or above Nyquist: the bilinear design has no meaning there. */
function belowNyquist(options: Record<string, unknown>, key: string, rate: number): StageInputProblem[] {
  const v = options[key];
  const nyquist = rate / 2;
  if (typeof v !== 'number' || v < nyquist) return [];
  const allowed = `a number above 0 and below ${nyquist} (half the ${rate} Hz this stage gets)`;
  return [{ option: key, message: `${v} is not allowed; use ${allowed}`, found: v, allowed }];
}

function passFilter(kind: 'highpass' | 'lowpass', schema: typeof HighpassStageSchema | typeof LowpassStageSchema) {
  return defineStageType({
    schema,
    outputFormat: (_options, input) => derivedFormat(input),
    checkInput: (options, input) => belowNyquist(options, 'frequency', input.sampleRate),
    build: ({ frequency, q }, input, output) => new BiquadStage(input, output, biquadCoefficients(kind, frequency, q, input.sampleRate)),
  });
}

export const highpassStage = passFilter('highpass', HighpassStageSchema);
export const lowpassStage = passFilter('lowpass', LowpassStageSchema);

export const notchStage = defineStageType({
  schema: NotchStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  checkInput: (options, input) => belowNyquist(options, 'frequency', input.sampleRate),
  build: ({ frequency, q }, input, output) => new BiquadStage(input, output, biquadCoefficients('notch', frequency, q, input.sampleRate)),
});

type BandpassSettings = Omit<Static<typeof BandpassStageSchema>, 'q'> & { q: number };

export const bandpassStage = defineStageType<typeof BandpassStageSchema, BandpassSettings>({
  schema: BandpassStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  checkOptions(options, given): StageInputProblem[] {
    // `q` has a default, so only a `q` the pipeline gave counts toward the centre form. A value the
    // schema refused (a frequency of 0) is missing from `options` but was given, and has its own
    // problem already: it neither makes a form of its own nor leaves the stage with "neither".
    const centre = options.frequency !== undefined || given.q !== undefined;
    const edges = options.lowFrequency !== undefined || options.highFrequency !== undefined;
    const allowed = '"frequency" (and optionally "q"), or "lowFrequency" and "highFrequency"';
    const refusedOnly = !centre && !edges && ['frequency', 'lowFrequency', 'highFrequency'].some((k) => given[k] !== undefined);
    if (refusedOnly) return [];
    if (centre === edges) return [{ message: `"bandpass" needs either ${allowed}; it got ${centre ? 'both forms' : 'neither'}`, allowed, kind: 'type' }];
    if (centre && given.frequency === undefined) return [{ option: 'frequency', message: 'missing; "bandpass" with "q" needs "frequency" too', allowed: 'a number of Hz above 0', kind: 'type' }];
    if (centre) return [];
    const problems: StageInputProblem[] = [];
    for (const [key, other] of [['lowFrequency', 'highFrequency'], ['highFrequency', 'lowFrequency']] as const) {
      if (given[key] === undefined) {
        problems.push({ option: key, message: `missing; "bandpass" with "${other}" needs "${key}" too`, allowed: 'a number of Hz above 0', kind: 'type' });
      }
    }
    const { lowFrequency: low, highFrequency: high } = options;
    if (low !== undefined && high !== undefined && high <= low) {
      const allowed = `a number above "lowFrequency" (${low})`;
      problems.push({ option: 'highFrequency', message: `${high} is not allowed; use ${allowed}`, found: high, allowed, hint: 'swap the two edges' });
    }
    return problems;
  },
  // The form's frequencies below Nyquist (the form itself is checkOptions' rule).
  checkInput: (options, input) => ['frequency', 'lowFrequency', 'highFrequency'].flatMap((key) => belowNyquist(options, key, input.sampleRate)),
  build({ frequency, q, lowFrequency, highFrequency }, input, output): ChunkStage {
    if (frequency !== undefined) return new BiquadStage(input, output, biquadCoefficients('bandpass', frequency, q, input.sampleRate));
    // Band edges: a Butterworth high-pass at the low edge then a Butterworth low-pass at the high edge.
    // A single constant-gain biquad over such a wide band has 6 dB/octave skirts (only ~19 dB down at
    // 37 Hz for 300–3400 Hz); the cascade has 12 dB/octave on each side and a flat band between.
    return new BiquadCascade(input, output, bandEdgeSections(lowFrequency!, highFrequency!, input.sampleRate));
  },
});

export function createHighpassStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(highpassStage, spec, input) as ChunkStage;
}

export function createLowpassStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(lowpassStage, spec, input) as ChunkStage;
}

export function createNotchStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(notchStage, spec, input) as ChunkStage;
}

export function createBandpassStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(bandpassStage, spec, input) as ChunkStage;
}

/** The two sections of the band-edge form of `bandpass` (high-pass at `low`, low-pass at `high`, both Butterworth). */
export function bandEdgeSections(low: number, high: number, sampleRate: number): BiquadCoefficients[] {
  return [biquadCoefficients('highpass', low, BUTTERWORTH_Q, sampleRate), biquadCoefficients('lowpass', high, BUTTERWORTH_Q, sampleRate)];
}


/**
 * Below this a state value is flushed to 0: decaying into subnormal doubles makes every operation ~100× slower on x86.
 * A state that is not a finite number (a NaN or ±Infinity sample from a custom stage) is reset to 0 too: the
 * filter's feedback would otherwise carry it into every sample after, for the rest of the stream.
 */
const SUBNORMAL_GUARD = 1e-30;

class BiquadStage implements ChunkStage {
  readonly output: AudioFormat;
  readonly #c: BiquadCoefficients;
  readonly #channels: number;
  /** s1, s2 of each channel, interleaved. */
  readonly #state: Float64Array;

  constructor(input: AudioFormat, output: AudioFormat, coefficients: BiquadCoefficients) {
    this.output = output;
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
      // `>=` is false for NaN; ±Infinity fails the upper bound.
      state[2 * c] = Math.abs(s1) >= SUBNORMAL_GUARD && Math.abs(s1) < Infinity ? s1 : 0;
      state[2 * c + 1] = Math.abs(s2) >= SUBNORMAL_GUARD && Math.abs(s2) < Infinity ? s2 : 0;
    }
    return chunk;
  }

  /** Zeros in give zeros out and leave the state as it is only once the state is at rest (exactly 0, after the tail's flush). */
  skipSilence(): boolean {
    const state = this.#state;
    for (let i = 0; i < state.length; i++) if (state[i] !== 0) return false;
    return true;
  }

  close(): void {}
}

/** Biquad sections in series, each with its own state, in place. */
class BiquadCascade implements ChunkStage {
  readonly output: AudioFormat;
  readonly #sections: BiquadStage[];

  constructor(input: AudioFormat, output: AudioFormat, sections: BiquadCoefficients[]) {
    this.output = output;
    this.#sections = sections.map((c) => new BiquadStage(input, output, c));
  }

  process(chunk: PcmChunk): PcmChunk {
    for (const s of this.#sections) s.process(chunk);
    return chunk;
  }

  skipSilence(): boolean {
    for (const s of this.#sections) if (!s.skipSilence()) return false;
    return true;
  }

  close(): void {}
}
