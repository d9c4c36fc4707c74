/**
 * `limiter`: a peak limiter with instant attack, so that no output sample's
 * magnitude exceeds `ceilingDb`. Put it last in a branch that boosts (gain,
 * normalize) or before an s16 `format`, where overs would otherwise clip hard.
 *
 * Per sample frame, the gain needed to bring the loudest channel down to the
 * ceiling is applied at once (no look-ahead, so no added latency); when the
 * signal gets quieter the gain recovers toward 1 with a `releaseMs` time
 * constant. Channels are linked: one gain for all, so the stereo image holds.
 * The instant attack distorts the very peak it catches a little, which is
 * the price of zero latency; the release keeps the gain from pumping on
 * every cycle of a loud tone.
 *
 * The output is finally clipped at the ceiling as float32 (rounding a gain
 * product to float32 could land half an ulp above it): the guarantee is exact.
 */
import { Type } from '@sinclair/typebox';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';
import type { AudioFormat } from '../media/frames.js';

/** Options of the `limiter` stage. */
export interface LimiterOptions extends StageSpec {
  type: 'limiter';
  /** Highest output peak in dBFS, −30 to 0. Default −1 (headroom for later lossy encoding). */
  ceilingDb?: number;
  /** Time constant of the gain's recovery after a peak, 1–2000 ms. Default 50. */
  releaseMs?: number;
}

export const LIMITER_DEFAULTS = { ceilingDb: -1, releaseMs: 50 } as const;

export const LimiterStageSchema = Type.Object(
  {
    type: Type.Literal('limiter', { description: 'Peak limiter with instant attack: no output sample exceeds the ceiling.' }),
    ceilingDb: Type.Optional(Type.Number({ minimum: -30, maximum: 0, default: LIMITER_DEFAULTS.ceilingDb, description: 'Highest output peak in dBFS, −30 to 0.' })),
    releaseMs: Type.Optional(
      Type.Number({ minimum: 1, maximum: 2000, default: LIMITER_DEFAULTS.releaseMs, description: 'Time constant of the gain recovery after a peak, 1–2000 ms.' }),
    ),
  },
  { additionalProperties: false, description: 'Keep peaks below a ceiling (after gain or normalize, before s16).' },
);

/** Once the gain is this close to 1 with nothing to limit, it snaps to 1, so quiet audio passes bit for bit. */
const UNITY_SNAP = 1e-6;

/** The largest float32 not above `x`: the ceiling a Float32Array can hold without exceeding it. */
function float32AtMost(x: number): number {
  const f = Math.fround(x);
  if (f <= x) return f;
  // Step down one float32 ulp: reinterpret the bits (x > 0 here).
  const bits = new Float32Array([f]);
  const int = new Uint32Array(bits.buffer);
  int[0]--;
  return bits[0];
}

export const limiterStage = defineStageType({
  schema: LimiterStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  build: ({ ceilingDb, releaseMs }, input, output) =>
    new LimiterStage(input, output, float32AtMost(Math.pow(10, ceilingDb / 20)), Math.exp(-1000 / (releaseMs * input.sampleRate))),
});

export function createLimiterStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(limiterStage, spec, input) as ChunkStage;
}

class LimiterStage implements ChunkStage {
  readonly output: AudioFormat;
  readonly #channels: number;
  readonly #ceiling: number;
  /** Per-sample retention of the distance to the wanted gain (one-pole release). */
  readonly #release: number;
  #gain = 1;

  constructor(input: AudioFormat, output: AudioFormat, ceiling: number, release: number) {
    this.output = output;
    this.#channels = input.channels;
    this.#ceiling = ceiling;
    this.#release = release;
  }

  process(chunk: PcmChunk): PcmChunk {
    const data = chunk.data;
    const channels = this.#channels;
    const ceiling = this.#ceiling;
    const release = this.#release;
    let gain = this.#gain;
    for (let i = 0; i < data.length; i += channels) {
      let peak = 0;
      for (let c = 0; c < channels; c++) {
        const a = Math.abs(data[i + c]);
        if (a > peak) peak = a;
      }
      if (peak > ceiling) {
        const wanted = ceiling / peak;
        gain = wanted < gain ? wanted : wanted - (wanted - gain) * release;
      } else if (gain !== 1) {
        gain = 1 - (1 - gain) * release;
        if (gain > 1 - UNITY_SNAP) gain = 1;
      } else {
        continue; // below the ceiling and nothing to undo: the common case, untouched
      }
      for (let c = 0; c < channels; c++) {
        const y = data[i + c] * gain;
        data[i + c] = y > ceiling ? ceiling : y < -ceiling ? -ceiling : y;
      }
    }
    this.#gain = gain;
    return chunk;
  }

  close(): void {}
}
