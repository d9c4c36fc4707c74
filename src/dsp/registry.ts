/**
 * The worker stages by pipeline `type`: the built-ins (one definition each,
 * see stage-type.ts), plus custom stages a worker registered from a stage
 * module (`registerStageFactory`). The custom registry is per thread: every
 * worker registers the same modules, so a stream's stages build the same way
 * on whichever worker it lands.
 */
import type { Static, TObject } from '@sinclair/typebox';
import type { AudioFormat } from '../media/frames.js';
import { bandpassStage, highpassStage, lowpassStage, notchStage } from './biquad.js';
import { denoiseStage } from './denoise.js';
import { gainStage } from './gain.js';
import { gateStage } from './gate.js';
import { limiterStage } from './limiter.js';
import { normalizeStage } from './normalize.js';
import { passthroughStage } from './passthrough.js';
import { reframeStage } from './reframe.js';
import { resampleStage } from './resample.js';
import { createStageOf, type StageTypeDefinition } from './stage-type.js';
import { downmixStage, formatStage, upmixStage } from './transcode.js';
import type { Stage, StageFactory, StageSpec } from './types.js';

/**
 * The built-in stage definitions, in the order the documentation lists
 * them. Their options are typed per stage; here each is seen through its
 * schema only, which is all a caller of the registry needs.
 */
export const BUILTIN_STAGE_DEFINITIONS = [
  passthroughStage,
  denoiseStage,
  resampleStage,
  downmixStage,
  upmixStage,
  formatStage,
  reframeStage,
  gainStage,
  highpassStage,
  lowpassStage,
  bandpassStage,
  notchStage,
  gateStage,
  limiterStage,
  normalizeStage,
] as const;

/** A built-in stage definition, options seen as plain JSON (the schema is what types them). */
export type AnyStageTypeDefinition = StageTypeDefinition<TObject, Record<string, unknown>>;

/** A built-in stage type: the literal `type` of a definition's schema. */
export type BuiltinStageType = Static<(typeof BUILTIN_STAGE_DEFINITIONS)[number]['schema']>['type'];

/** The built-in stage types, in documentation order: the definitions' own, so the list is written once. */
export const BUILTIN_STAGE_TYPES: readonly BuiltinStageType[] = BUILTIN_STAGE_DEFINITIONS.map((d) => d.type as BuiltinStageType);

/** Built-in definitions by type. */
export const builtinStageDefinitions: ReadonlyMap<string, AnyStageTypeDefinition> = new Map(
  BUILTIN_STAGE_DEFINITIONS.map((d): [string, AnyStageTypeDefinition] => [d.type, d]),
);

/** Built-in stage factories by type (each checks its options against its definition). */
export const builtinStages: ReadonlyMap<string, StageFactory> = new Map(
  [...builtinStageDefinitions].map(([type, d]) => [type, (spec: StageSpec, input: AudioFormat) => createStageOf(d, spec, input)]),
);

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
