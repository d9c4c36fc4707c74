/** The built-in worker stages, by pipeline `type`. */
import { createDenoiseStage } from './denoise.js';
import { createResampleStage } from './resample.js';
import type { AudioFormat, Stage, StageFactory, StageSpec } from './types.js';

export const builtinStages: ReadonlyMap<string, StageFactory> = new Map([
  ['denoise', createDenoiseStage],
  ['resample', createResampleStage],
]);

export function createStage(spec: StageSpec, input: AudioFormat): Stage {
  const factory = builtinStages.get(spec.type);
  if (!factory) throw new TypeError(`unknown stage type "${spec.type}"; known types: ${[...builtinStages.keys()].join(', ')}`);
  return factory(spec, input);
}
