/**
 * `gain`: multiplies every sample by a fixed factor given in dB. No clipping:
 * samples are floats, and a `limiter` (or the s16 packing at the end of the
 * branch) decides what happens above full scale.
 */
import { scaleInPlace } from '../../wasm/gain-kernel.js';
import { checkInputFormat, derivedFormat, numberOption, rejectUnknownOptions } from './options.js';
import type { AudioFormat, ChunkStage, PcmChunk, StageSpec } from './types.js';

/** Options of the `gain` stage. */
export interface GainOptions extends StageSpec {
  type: 'gain';
  /** Gain in dB, −60 to +60. Required. Negative attenuates; 0 passes chunks through untouched. */
  db: number;
}

export const GAIN_MAX_DB = 60;

export function createGainStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, ['db']);
  const db = numberOption(spec, 'db', -GAIN_MAX_DB, GAIN_MAX_DB);
  checkInputFormat(spec.type, input);
  const output = derivedFormat(input);
  if (db === 0) return { output, process: (chunk: PcmChunk) => chunk, close() {} };
  const factor = Math.pow(10, db / 20);
  return {
    output,
    process(chunk: PcmChunk): PcmChunk {
      // In place (the chunk is this stage's to modify), with our SIMD WASM kernel:
      // `npm run bench` (d) measured it ≥ 2× faster than the TS loop, copies included.
      scaleInPlace(chunk.data, factor);
      return chunk;
    },
    close() {},
  };
}
