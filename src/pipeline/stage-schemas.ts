/**
 * JSON schemas of the built-in worker stages, one TypeBox object per stage
 * type, mirroring the options each factory in src/dsp checks when a stream
 * starts. The schema catches what JSON alone can tell (types, ranges, unknown
 * keys) when a pipeline is validated; rules that depend on the audio format
 * (a biquad frequency below half the sample rate, `reframe` durations that
 * are whole samples, denoise at 48 kHz) are checked by the stages themselves.
 */
import { Type } from '@sinclair/typebox';

export const PassthroughStageSchema = Type.Object(
  { type: Type.Literal('passthrough', { description: 'Hand audio on unchanged (a placeholder, or a baseline in benchmarks).' }) },
  { additionalProperties: false, description: 'Do nothing.' },
);

export const DenoiseStageSchema = Type.Object(
  {
    type: Type.Literal('denoise', { description: 'RNNoise noise suppression at 48 kHz; reports a voice-activity probability per frame.' }),
    mix: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        default: 0,
        description:
          'Fraction of the original signal mixed back, 0–1: out = (1 − mix)·denoised + mix·original (the original delayed 10 ms to line up with RNNoise). 0 = fully denoised; 0.1–0.3 keeps some room tone.',
      }),
    ),
    vadThreshold: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: 'Voice-activity probability (0–1) from which a frame is marked as speech.' }),
    ),
  },
  { additionalProperties: false, description: 'Remove background noise (RNNoise). Needs 48 kHz input.' },
);

export const ResampleStageSchema = Type.Object(
  {
    type: Type.Literal('resample', { description: 'Change the sample rate (Speex resampler).' }),
    sampleRate: Type.Integer({ minimum: 8000, maximum: 48000, description: 'Output sample rate in Hz, 8000–48000.' }),
    quality: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10,
        default: 6,
        description: 'Speex quality 0 (fastest) … 10 (best). Default 6, the lowest that keeps the passband within 1 dB up to 0.9 × the new Nyquist (5 is −1.9 dB there).',
      }),
    ),
  },
  { additionalProperties: false, description: 'Resample to another rate.' },
);

export const DownmixStageSchema = Type.Object(
  { type: Type.Literal('downmix', { description: 'Stereo to mono: the mean of left and right. Mono input passes through unchanged.' }) },
  { additionalProperties: false, description: 'Mix down to mono.' },
);

export const UpmixStageSchema = Type.Object(
  { type: Type.Literal('upmix', { description: 'Mono to stereo: the same samples on left and right. Stereo input passes through unchanged.' }) },
  { additionalProperties: false, description: 'Duplicate mono into stereo.' },
);

export const FormatStageSchema = Type.Object(
  {
    type: Type.Literal('format', { description: 'Choose the sample encoding the branch delivers.' }),
    sampleFormat: Type.Union([Type.Literal('f32'), Type.Literal('s16')], {
      description:
        '"s16": quantize to 16-bit (stages after this see the quantized floats) and deliver Int16Array frames; "f32": deliver Float32Array frames.',
    }),
  },
  { additionalProperties: false, description: 'Convert between 32-bit float and 16-bit integer samples.' },
);

export const ReframeStageSchema = Type.Object(
  {
    type: Type.Literal('reframe', { description: 'Regroup the audio into frames of a fixed duration.' }),
    durationMs: Type.Union([Type.Literal(10), Type.Literal(20), Type.Literal(30), Type.Literal(40), Type.Literal(60)], {
      description:
        'Frame length in ms: 10, 20, 30, 40 or 60. Must be a whole number of samples at the stage input rate (10 ms at 22050 Hz is not). Adds up to one frame of latency.',
    }),
  },
  { additionalProperties: false, description: 'Cut the stream into frames of exactly durationMs (e.g. 10 ms for a VAD).' },
);

export const GainStageSchema = Type.Object(
  {
    type: Type.Literal('gain', { description: 'Multiply by a fixed gain.' }),
    db: Type.Number({ minimum: -60, maximum: 60, description: 'Gain in dB, −60 to +60 (negative attenuates). No clipping: follow with a limiter when boosting.' }),
  },
  { additionalProperties: false, description: 'Fixed gain in dB.' },
);

const frequencyDescription = (what: string) => `${what} in Hz, above 0 and below half the stage input sample rate.`;

export const HighpassStageSchema = Type.Object(
  {
    type: Type.Literal('highpass', { description: 'Second-order high-pass filter (RBJ cookbook biquad), 12 dB/octave.' }),
    frequency: Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Corner frequency (−3 dB at the default q)') }),
    q: Type.Optional(Type.Number({ minimum: 0.1, maximum: 20, default: 0.7071, description: 'Resonance 0.1–20. Default 0.7071 (Butterworth, flat); higher peaks at the corner.' })),
  },
  { additionalProperties: false, description: 'Remove rumble and hum below a frequency (e.g. 80 Hz for voice).' },
);

export const LowpassStageSchema = Type.Object(
  {
    type: Type.Literal('lowpass', { description: 'Second-order low-pass filter (RBJ cookbook biquad), 12 dB/octave.' }),
    frequency: Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Corner frequency (−3 dB at the default q)') }),
    q: Type.Optional(Type.Number({ minimum: 0.1, maximum: 20, default: 0.7071, description: 'Resonance 0.1–20. Default 0.7071 (Butterworth, flat); higher peaks at the corner.' })),
  },
  { additionalProperties: false, description: 'Remove hiss and content above a frequency.' },
);

export const BandpassStageSchema = Type.Object(
  {
    type: Type.Literal('bandpass', {
      description:
        'Band-pass filter. Either "frequency" (and optionally "q"): one RBJ-cookbook biquad, 0 dB at the centre, 6 dB/octave skirts; or "lowFrequency" and "highFrequency": a Butterworth high-pass at the low edge then a Butterworth low-pass at the high edge, flat between, −3 dB at each edge, 12 dB/octave skirts. Not both forms.',
    }),
    frequency: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: frequencyDescription('Centre frequency (0 dB there); with optional "q"') })),
    q: Type.Optional(
      Type.Number({ minimum: 0.1, maximum: 20, default: 0.7071, description: 'Centre frequency ÷ bandwidth between the −3 dB points, 0.1–20. Default 0.7071. Only with "frequency".' }),
    ),
    lowFrequency: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Lower −3 dB edge in Hz (Butterworth high-pass there); with "highFrequency".',
      }),
    ),
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
    q: Type.Optional(Type.Number({ minimum: 0.1, maximum: 20, default: 5, description: 'Centre frequency ÷ width between the −3 dB points, 0.1–20. Default 5.' })),
  },
  { additionalProperties: false, description: 'Remove one frequency (hum, a whine).' },
);

export const GateStageSchema = Type.Object(
  {
    type: Type.Literal('gate', { description: 'Noise gate: silence the audio while it stays below a threshold.' }),
    thresholdDb: Type.Optional(
      Type.Number({ minimum: -100, maximum: 0, default: -50, description: 'Opening level, dBFS of the envelope (RMS over ~5 ms of the loudest channel; a full-scale sine reads −3), −100 to 0.' }),
    ),
    attackMs: Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: 1, description: 'Time for the gain to rise from floorDb to 0 dB when the gate opens, 0–100 ms.' })),
    holdMs: Type.Optional(Type.Number({ minimum: 0, maximum: 2000, default: 50, description: 'Time the gate stays open after the envelope falls below the threshold, 0–2000 ms.' })),
    releaseMs: Type.Optional(Type.Number({ minimum: 1, maximum: 5000, default: 100, description: 'Time for the gain to fall from 0 dB to floorDb when the gate closes, 1–5000 ms.' })),
    floorDb: Type.Optional(Type.Number({ minimum: -120, maximum: 0, default: -80, description: 'Gain while closed, −120 to 0 dB.' })),
  },
  { additionalProperties: false, description: 'Noise gate with hold and smooth (click-free) gain ramps; channels linked.' },
);

export const LimiterStageSchema = Type.Object(
  {
    type: Type.Literal('limiter', { description: 'Peak limiter with instant attack: no output sample exceeds the ceiling.' }),
    ceilingDb: Type.Optional(Type.Number({ minimum: -30, maximum: 0, default: -1, description: 'Highest output peak in dBFS, −30 to 0.' })),
    releaseMs: Type.Optional(Type.Number({ minimum: 1, maximum: 2000, default: 50, description: 'Time constant of the gain recovery after a peak, 1–2000 ms.' })),
  },
  { additionalProperties: false, description: 'Keep peaks below a ceiling (after gain or normalize, before s16).' },
);

export const NormalizeStageSchema = Type.Object(
  {
    type: Type.Literal('normalize', { description: 'Slow automatic gain control toward a target loudness (not a limiter: pair it with "limiter").' }),
    targetDb: Type.Optional(Type.Number({ minimum: -40, maximum: -3, default: -20, description: 'Target RMS in dBFS over 100 ms blocks of speech, −40 to −3.' })),
    maxGainDb: Type.Optional(Type.Number({ minimum: 0, maximum: 40, default: 20, description: 'Largest boost in dB, 0–40 (attenuation is limited to 20 dB).' })),
    rateDbPerSecond: Type.Optional(Type.Number({ minimum: 0.5, maximum: 60, default: 6, description: 'Fastest gain change in dB per second, 0.5–60.' })),
    silenceDb: Type.Optional(
      Type.Number({ minimum: -90, maximum: -30, default: -60, description: 'Blocks quieter than this (dBFS, −90 to −30) never raise the gain, and pauses are kept below it.' }),
    ),
  },
  { additionalProperties: false, description: 'Bring a stream slowly toward a target level.' },
);

/** Every built-in stage schema, in the order of BUILTIN_STAGE_TYPES. */
export const BuiltinStageSchemas = [
  PassthroughStageSchema,
  DenoiseStageSchema,
  ResampleStageSchema,
  DownmixStageSchema,
  UpmixStageSchema,
  FormatStageSchema,
  ReframeStageSchema,
  GainStageSchema,
  HighpassStageSchema,
  LowpassStageSchema,
  BandpassStageSchema,
  NotchStageSchema,
  GateStageSchema,
  LimiterStageSchema,
  NormalizeStageSchema,
];

/** The built-in stage types (the same set and order as src/dsp/registry.ts's builtinStages). */
export const BUILTIN_STAGE_TYPES = [
  'passthrough',
  'denoise',
  'resample',
  'downmix',
  'upmix',
  'format',
  'reframe',
  'gain',
  'highpass',
  'lowpass',
  'bandpass',
  'notch',
  'gate',
  'limiter',
  'normalize',
] as const;
export type BuiltinStageType = (typeof BUILTIN_STAGE_TYPES)[number];
