/** The built-in worker stages, by pipeline `type`. */
import { createDenoiseStage } from './denoise.js';
import { createResampleStage } from './resample.js';
import type { AudioFormat, Stage, StageFactory, StageSpec } from './types.js';

export const builtinStages: ReadonlyMap<string, StageFactory> = new Map<string, StageFactory>([
  ['denoise', createDenoiseStage],
  ['resample', createResampleStage],
]);

/**
 * Creates the stage `spec.type` names for input of the given format. Throws a
 * TypeError listing the known types for an unknown one, and whatever the
 * stage's factory throws for bad options or an input it can't take.
 */
export function createStage(spec: StageSpec, input: AudioFormat): Stage {
  // Specs may come from JSON a worker received, so the shape is checked, not assumed.
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new TypeError(`a stage must be an object like { "type": "denoise" }, got ${JSON.stringify(spec) ?? String(spec)}`);
  }
  const known = [...builtinStages.keys()].join(', ');
  if (typeof spec.type !== 'string') throw new TypeError(`a stage needs a string "type"; known types: ${known}`);
  const factory = builtinStages.get(spec.type);
  if (!factory) throw new TypeError(`unknown stage type "${spec.type}"; known types: ${known}`);
  return factory(spec, input);
}
