/**
 * `gate`: a noise gate. It opens when the signal's envelope reaches
 * `thresholdDb`, stays open `holdMs` after the envelope falls below it (so
 * the gaps between words don't chatter), then closes to `floorDb`.
 *
 * The envelope is the RMS of the loudest channel over a short window (a
 * one-pole average of the square with a 5 ms time constant): fast enough to
 * open within a millisecond or two on a loud onset, smooth enough not to
 * flicker with the waveform. Channels are linked: one gain for all of them,
 * so the stereo image doesn't wander.
 *
 * The gain moves in dB at a constant rate, from `floorDb` to 0 dB in
 * `attackMs` and back in `releaseMs` (an exponential fade, the way a fader
 * sounds natural), sample by sample: no steps, so no clicks.
 */
import { Type } from '@sinclair/typebox';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';
import type { AudioFormat } from '../media/frames.js';

/** Options of the `gate` stage. */
export interface GateOptions extends StageSpec {
  type: 'gate';
  /**
   * Opening level in dBFS of the envelope (RMS over ~5 ms, loudest channel;
   * a full-scale sine reads −3), −100 to 0. Default −50.
   */
  thresholdDb?: number;
  /** Time for the gain to rise from `floorDb` to 0 dB when the gate opens, 0–100 ms (0 = at once). Default 1. */
  attackMs?: number;
  /** Time the gate stays open after the envelope falls below the threshold, 0–2000 ms. Default 50. */
  holdMs?: number;
  /** Time for the gain to fall from 0 dB to `floorDb` when the gate closes, 1–5000 ms. Default 100. */
  releaseMs?: number;
  /** Gain while closed, −120 to 0 dB (−80: practically silent; −20: only softens the noise). Default −80. */
  floorDb?: number;
}

/** The gate's settings once defaults are applied. */
type GateSettings = Required<Pick<GateOptions, 'thresholdDb' | 'attackMs' | 'holdMs' | 'releaseMs' | 'floorDb'>>;

export const GATE_DEFAULTS = { thresholdDb: -50, attackMs: 1, holdMs: 50, releaseMs: 100, floorDb: -80 } as const;

export const GateStageSchema = Type.Object(
  {
    type: Type.Literal('gate', { description: 'Noise gate: silence the audio while it stays below a threshold.' }),
    thresholdDb: Type.Optional(
      Type.Number({
        minimum: -100,
        maximum: 0,
        default: GATE_DEFAULTS.thresholdDb,
        description: 'Opening level, dBFS of the envelope (RMS over ~5 ms of the loudest channel; a full-scale sine reads −3), −100 to 0.',
      }),
    ),
    attackMs: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, default: GATE_DEFAULTS.attackMs, description: 'Time for the gain to rise from floorDb to 0 dB when the gate opens, 0–100 ms.' }),
    ),
    holdMs: Type.Optional(
      Type.Number({ minimum: 0, maximum: 2000, default: GATE_DEFAULTS.holdMs, description: 'Time the gate stays open after the envelope falls below the threshold, 0–2000 ms.' }),
    ),
    releaseMs: Type.Optional(
      Type.Number({ minimum: 1, maximum: 5000, default: GATE_DEFAULTS.releaseMs, description: 'Time for the gain to fall from 0 dB to floorDb when the gate closes, 1–5000 ms.' }),
    ),
    floorDb: Type.Optional(Type.Number({ minimum: -120, maximum: 0, default: GATE_DEFAULTS.floorDb, description: 'Gain while closed, −120 to 0 dB.' })),
  },
  { additionalProperties: false, description: 'Noise gate with hold and smooth (click-free) gain ramps; channels linked.' },
);

export const gateStage = defineStageType({
  schema: GateStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  build: (options, input, output) => new GateStage(input, output, options),
});

/** Time constant of the envelope follower. */
const ENVELOPE_MS = 5;

export function createGateStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(gateStage, spec, input) as ChunkStage;
}

class GateStage implements ChunkStage {
  readonly output: AudioFormat;
  readonly #channels: number;
  /** Threshold as a mean square (the envelope is kept squared: no sqrt per sample). */
  readonly #threshold: number;
  readonly #envelopeCoeff: number;
  readonly #holdSamples: number;
  readonly #floor: number;
  /** Per-sample gain factors while opening and closing (Infinity / 0 = jump at once). */
  readonly #up: number;
  readonly #down: number;
  #envelope = 0;
  #holdLeft = 0;
  /** Current gain, linear; starts closed, so a stream that starts with noise never lets a burst through. */
  #gain: number;

  constructor(input: AudioFormat, output: AudioFormat, o: GateSettings) {
    const rate = input.sampleRate;
    this.output = output;
    this.#channels = input.channels;
    this.#threshold = Math.pow(10, o.thresholdDb / 10);
    this.#envelopeCoeff = 1 - Math.exp(-1000 / (ENVELOPE_MS * rate));
    this.#holdSamples = Math.round((o.holdMs * rate) / 1000);
    this.#floor = Math.pow(10, o.floorDb / 20);
    // floorDb → 0 dB in attackMs: each sample multiplies by 10^(−floorDb / 20 / samples).
    const attackSamples = (o.attackMs * rate) / 1000;
    const releaseSamples = (o.releaseMs * rate) / 1000;
    this.#up = attackSamples > 0 ? Math.pow(10, -o.floorDb / 20 / attackSamples) : Infinity;
    this.#down = Math.pow(10, o.floorDb / 20 / releaseSamples);
    this.#gain = this.#floor;
  }

  process(chunk: PcmChunk): PcmChunk {
    const data = chunk.data;
    const channels = this.#channels;
    const threshold = this.#threshold;
    const k = this.#envelopeCoeff;
    const floor = this.#floor;
    const up = this.#up;
    const down = this.#down;
    const hold = this.#holdSamples + 1;
    let envelope = this.#envelope;
    let holdLeft = this.#holdLeft;
    let gain = this.#gain;
    for (let i = 0; i < data.length; i += channels) {
      let square = 0;
      for (let c = 0; c < channels; c++) {
        const v = data[i + c] * data[i + c];
        if (v > square) square = v;
      }
      envelope += k * (square - envelope);
      if (envelope >= threshold) holdLeft = hold;
      if (holdLeft > 0) {
        holdLeft--;
        if (gain < 1) gain = gain * up > 1 ? 1 : gain * up;
      } else if (gain > floor) {
        gain = gain * down < floor ? floor : gain * down;
      }
      if (gain !== 1) for (let c = 0; c < channels; c++) data[i + c] *= gain;
    }
    // A long silence decays the envelope into subnormal doubles, which are slow: flush it.
    this.#envelope = envelope < 1e-30 ? 0 : envelope;
    this.#holdLeft = holdLeft;
    this.#gain = gain;
    return chunk;
  }

  close(): void {}
}
