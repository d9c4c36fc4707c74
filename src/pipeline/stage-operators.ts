/**
 * One RxJS operator per built-in worker stage, typed from the stage
 * definitions' schemas (src/dsp, the single source of truth for options). Each
 * checks its options against the definition when called, so a mistake throws
 * a TypeError at composition time naming the option, in the words the stage
 * itself would use, not when audio flows.
 *
 *   frames$.pipe(inWorkers(denoise(), highpass({ frequency: 80 }), resample({ sampleRate: 16000 })))
 */
import type { Static, TObject } from '@sinclair/typebox';
import { stage, type StageOperator } from './operators.js';
import { BandpassStageSchema, HighpassStageSchema, LowpassStageSchema, NotchStageSchema } from '../dsp/biquad.js';
import { DenoiseStageSchema } from '../dsp/denoise.js';
import { GainStageSchema } from '../dsp/gain.js';
import { GateStageSchema } from '../dsp/gate.js';
import { LimiterStageSchema } from '../dsp/limiter.js';
import { NormalizeStageSchema } from '../dsp/normalize.js';
import { PassthroughStageSchema } from '../dsp/passthrough.js';
import { ReframeStageSchema } from '../dsp/reframe.js';
import { ResampleStageSchema } from '../dsp/resample.js';
import { DownmixStageSchema, FormatStageSchema, UpmixStageSchema } from '../dsp/transcode.js';

/** A stage's options: its schema's properties without `type`. */
type OptionsOf<S extends TObject> = Omit<Static<S>, 'type'>;

/** Options of `denoise()`: the `denoise` stage's members in a pipeline document, without `type`. */
export type DenoiseOptions = OptionsOf<typeof DenoiseStageSchema>;
/** Options of `resample()`: the `resample` stage's members in a pipeline document, without `type`. */
export type ResampleOptions = OptionsOf<typeof ResampleStageSchema>;
/** Options of `format()`: the `format` stage's members in a pipeline document, without `type`. */
export type FormatOptions = OptionsOf<typeof FormatStageSchema>;
/** Options of `reframe()`: the `reframe` stage's members in a pipeline document, without `type`. */
export type ReframeOptions = OptionsOf<typeof ReframeStageSchema>;
/** Options of `gain()`: the `gain` stage's members in a pipeline document, without `type`. */
export type GainOptions = OptionsOf<typeof GainStageSchema>;
/** Options of `highpass()`: the `highpass` stage's members in a pipeline document, without `type`. */
export type HighpassOptions = OptionsOf<typeof HighpassStageSchema>;
/** Options of `lowpass()`: the `lowpass` stage's members in a pipeline document, without `type`. */
export type LowpassOptions = OptionsOf<typeof LowpassStageSchema>;
/** Options of `notch()`: the `notch` stage's members in a pipeline document, without `type`. */
export type NotchOptions = OptionsOf<typeof NotchStageSchema>;
/** Options of `gate()`: the `gate` stage's members in a pipeline document, without `type`. */
export type GateOptions = OptionsOf<typeof GateStageSchema>;
/** Options of `limiter()`: the `limiter` stage's members in a pipeline document, without `type`. */
export type LimiterOptions = OptionsOf<typeof LimiterStageSchema>;
/** Options of `normalize()`: the `normalize` stage's members in a pipeline document, without `type`. */
export type NormalizeOptions = OptionsOf<typeof NormalizeStageSchema>;

function checked<S extends TObject>(schema: S, options: object): StageOperator {
  return stage((schema.properties.type as unknown as { const: string }).const, { ...options });
}

/** Frames unchanged (a placeholder or a benchmark baseline). */
export const passthrough = (): StageOperator => checked(PassthroughStageSchema, {});
/**
 * RNNoise noise suppression at 48 kHz; frames carry `vad` and `speech`. Delays
 * the audio by 10 ms (480 samples), uncompensated: the output keeps the
 * input's length and positions, so the input's last 10 ms never come out.
 */
export const denoise = (options: DenoiseOptions = {}): StageOperator => checked(DenoiseStageSchema, options);
/** Speex resampler to `sampleRate` (8000–48000), `quality` 0–10 (default 6). */
export const resample = (options: ResampleOptions): StageOperator => checked(ResampleStageSchema, options);
/** Stereo → mono (mean of the channels). */
export const downmix = (): StageOperator => checked(DownmixStageSchema, {});
/** Mono → stereo (the same samples on both). */
export const upmix = (): StageOperator => checked(UpmixStageSchema, {});
/** Sample encoding of the output frames: `s16` (Int16Array) or `f32`. */
export const format = (options: FormatOptions): StageOperator => checked(FormatStageSchema, options);
/** Re-chunks to frames of `durationMs` (10, 20, 30, 40, 60), losing and repeating no sample. */
export const reframe = (options: ReframeOptions): StageOperator => checked(ReframeStageSchema, options);
/** Fixed gain in dB. */
export const gain = (options: GainOptions): StageOperator => checked(GainStageSchema, options);
/** Biquad high-pass at `frequency` (Hz), `q` default 0.7071. */
export const highpass = (options: HighpassOptions): StageOperator => checked(HighpassStageSchema, options);
/** Biquad low-pass at `frequency` (Hz), `q` default 0.7071. */
export const lowpass = (options: LowpassOptions): StageOperator => checked(LowpassStageSchema, options);
/**
 * Options of `bandpass()` (and `AudioFilter`'s `bandpass`): its two forms, a
 * centre `{ frequency, q? }` or the band's edges `{ lowFrequency,
 * highFrequency }`, never both nor half of one. The schema types each option
 * alone; this says which go together, so a mix is a type error too.
 */
export type BandpassOptions =
  | { frequency: number; q?: number; lowFrequency?: never; highFrequency?: never }
  | { lowFrequency: number; highFrequency: number; frequency?: never; q?: never };
/** @deprecated The same as `BandpassOptions`, named as no other stage's options are. */
export type BandpassOperatorOptions = BandpassOptions;

/** Biquad band-pass: `{ lowFrequency, highFrequency }` or `{ frequency, q }`; the form is checked when called (a TypeError), as the options are. */
export const bandpass = (options: BandpassOptions): StageOperator => checked(BandpassStageSchema, options);
/** Biquad notch at `frequency` (Hz), `q` default 5. */
export const notch = (options: NotchOptions): StageOperator => checked(NotchStageSchema, options);
/** Noise gate. */
export const gate = (options: GateOptions = {}): StageOperator => checked(GateStageSchema, options);
/** Peak limiter (no sample above `ceilingDb`). */
export const limiter = (options: LimiterOptions = {}): StageOperator => checked(LimiterStageSchema, options);
/** Slow AGC towards `targetDb`. */
export const normalize = (options: NormalizeOptions = {}): StageOperator => checked(NormalizeStageSchema, options);
