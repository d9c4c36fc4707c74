/**
 * The worker stages by pipeline `type`: the built-ins, plus custom stages a
 * worker registered from a stage module (`registerStageFactory`). The registry
 * is per thread: every worker registers the same modules, so a stream's stages
 * build the same way on whichever worker it lands.
 */
import { createDenoiseStage } from './denoise.js';
import { createHighpassStage, createLowpassStage, createBandpassStage, createNotchStage } from './biquad.js';
import { createGateStage } from './gate.js';
import { createGainStage } from './gain.js';
import { createLimiterStage } from './limiter.js';
import { createNormalizeStage } from './normalize.js';
import { createPassthroughStage } from './passthrough.js';
import { createReframeStage } from './reframe.js';
import { createResampleStage } from './resample.js';
import { createDownmixStage, createFormatStage, createUpmixStage } from './transcode.js';
import type { AudioFormat, Stage, StageFactory, StageSpec } from './types.js';

export const builtinStages: ReadonlyMap<string, StageFactory> = new Map<string, StageFactory>([
  ['passthrough', createPassthroughStage],
  ['denoise', createDenoiseStage],
  ['resample', createResampleStage],
  ['downmix', createDownmixStage],
  ['upmix', createUpmixStage],
  ['format', createFormatStage],
  ['reframe', createReframeStage],
  ['gain', createGainStage],
  ['highpass', createHighpassStage],
  ['lowpass', createLowpassStage],
  ['bandpass', createBandpassStage],
  ['notch', createNotchStage],
  ['gate', createGateStage],
  ['limiter', createLimiterStage],
  ['normalize', createNormalizeStage],
]);

/** Stage types from custom modules, registered at runtime in this thread. */
const customStages = new Map<string, StageFactory>();

/** What a custom stage type may be called: the same rule the pipeline schema applies. */
const CUSTOM_TYPE = /^[a-z][a-z0-9-]*$/;

/**
 * Registers a custom stage factory under `type` for this thread. Registering
 * a type again replaces its factory (a reloaded module wins). Throws a
 * TypeError for a built-in name (a pipeline must never silently get a
 * different `denoise`), a name that is not lower-case letters, digits and "-"
 * starting with a letter, or a factory that is not a function.
 */
export function registerStageFactory(type: string, factory: StageFactory): void {
  if (typeof type !== 'string' || !CUSTOM_TYPE.test(type)) {
    throw new TypeError(`a custom stage type must be lower-case letters, digits and "-", starting with a letter (like "dc-blocker"), got ${JSON.stringify(type) ?? String(type)}`);
  }
  if (builtinStages.has(type)) throw new TypeError(`"${type}" is a built-in stage type; give the custom stage another name`);
  if (typeof factory !== 'function') throw new TypeError(`the factory of custom stage "${type}" must be a function (spec, inputFormat) => stage`);
  customStages.set(type, factory);
}

/** Removes a custom stage type; returns whether it was registered. Built-ins can't be removed. */
export function unregisterStageFactory(type: string): boolean {
  return customStages.delete(type);
}

/** Every stage type this thread can build: built-ins first, then custom types in registration order. */
export function stageTypes(): string[] {
  return [...builtinStages.keys(), ...customStages.keys()];
}

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
  if (typeof spec.type !== 'string') throw new TypeError(`a stage needs a string "type"; known types: ${stageTypes().join(', ')}`);
  const factory = builtinStages.get(spec.type) ?? customStages.get(spec.type);
  if (!factory) throw new TypeError(`unknown stage type "${spec.type}"; known types: ${stageTypes().join(', ')}`);
  return factory(spec, input);
}
