/**
 * `passthrough`: hands every chunk on untouched. Useful as a placeholder in a
 * pipeline under construction and as the baseline in benchmarks (its cost is
 * the cost of a stage call).
 */
import { checkInputFormat, derivedFormat, rejectUnknownOptions } from './options.js';
import type { AudioFormat, ChunkStage, PcmChunk, StageSpec } from './types.js';

/** Options of the `passthrough` stage: none. */
export interface PassthroughOptions extends StageSpec {
  type: 'passthrough';
}

export function createPassthroughStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  rejectUnknownOptions(spec, []);
  checkInputFormat(spec.type, input);
  return { output: derivedFormat(input), process: (chunk: PcmChunk) => chunk, close() {} };
}
