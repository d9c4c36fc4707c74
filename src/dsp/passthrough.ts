/**
 * `passthrough`: hands every chunk on untouched. Useful as a placeholder in a
 * pipeline under construction and as the baseline in benchmarks (its cost is
 * the cost of a stage call).
 */
import { Type } from '@sinclair/typebox';
import type { AudioFormat } from '../media/frames.js';
import { silenceStaysSilence } from './chunk.js';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';

export const PassthroughStageSchema = Type.Object(
  { type: Type.Literal('passthrough', { description: 'Hand audio on unchanged (a placeholder, or a baseline in benchmarks).' }) },
  { additionalProperties: false, description: 'Do nothing.' },
);

/** Options of the `passthrough` stage: none. */
export interface PassthroughOptions extends StageSpec {
  type: 'passthrough';
}

export const passthroughStage = defineStageType({
  schema: PassthroughStageSchema,
  outputFormat: (_options, input) => derivedFormat(input),
  build: (_options, _input, output): ChunkStage => ({ output, process: (chunk: PcmChunk) => chunk, skipSilence: silenceStaysSilence, close() {} }),
});

export function createPassthroughStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(passthroughStage, spec, input) as ChunkStage;
}
