/**
 * `gain`: multiplies every sample by a fixed factor given in dB. No clipping:
 * samples are floats, and a `limiter` (or the s16 packing at the end of the
 * branch) decides what happens above full scale.
 */
import { Type } from '@sinclair/typebox';
import { scaleInPlace } from '../../wasm/gain-kernel.js';
import type { AudioFormat } from '../media/frames.js';
import { silenceStaysSilence } from './chunk.js';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';

export const GAIN_MAX_DB = 60;

export const GainStageSchema = Type.Object(
  {
    type: Type.Literal('gain', { description: 'Multiply by a fixed gain.' }),
    db: Type.Number({
      minimum: -GAIN_MAX_DB,
      maximum: GAIN_MAX_DB,
      description: 'Gain in dB, −60 to +60 (negative attenuates). No clipping: follow with a limiter when boosting.',
    }),
  },
  { additionalProperties: false, description: 'Fixed gain in dB.' },
);

/** Options of the `gain` stage. */
export interface GainOptions extends StageSpec {
  type: 'gain';
  /** Gain in dB, −60 to +60. Required. Negative attenuates; 0 passes chunks through untouched. */
  db: number;
}

export const gainStage = defineStageType({
  schema: GainStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  build({ db }, _input, output): ChunkStage {
    if (db === 0) return { output, process: (chunk: PcmChunk) => chunk, skipSilence: silenceStaysSilence, close() {} };
    const factor = Math.pow(10, db / 20);
    return {
      output,
      process(chunk: PcmChunk): PcmChunk {
        // In place (the chunk is this stage's to modify), with our SIMD WASM kernel:
        // `npm run bench` (d) measured it ≥ 2× faster than the TS loop, copies included.
        scaleInPlace(chunk.data, factor);
        return chunk;
      },
      skipSilence: silenceStaysSilence,
      close() {},
    };
  },
});

export function createGainStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(gainStage, spec, input) as ChunkStage;
}
