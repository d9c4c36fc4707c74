/**
 * What a branch outputs, followed stage by stage from the decode: each
 * built-in stage's definition says its output format for its input. A custom
 * stage's output is not known on this thread (its module runs in the
 * workers): the format is assumed unchanged from there on and marked
 * unknown, so no rule that depends on the rate judges the stages after it;
 * the worker reports the real format of every branch when a stream starts.
 */
import type { TObject } from '@sinclair/typebox';
import { builtinStageDefinitions, type AnyStageTypeDefinition } from '../dsp/registry.js';
import { optionProblems, withDefaults } from '../dsp/stage-type.js';
import type { BranchFormat } from '../media/frames.js';

/** Opus always decodes at 48 kHz: every branch starts there. */
export const DECODE_RATE = 48000;

/** The format at one point of a branch, and whether it is known (no custom stage before it, none unreadable). */
export interface BranchFlow {
  format: BranchFormat & { channels: 1 | 2 };
  known: boolean;
}

/** The decoded stream every branch starts from. */
export function decodedFlow(channels: 1 | 2): BranchFlow {
  return { format: { sampleRate: DECODE_RATE, channels, sampleFormat: 'f32' }, known: true };
}

/**
 * The built-in stage `stage` declares (undefined for a custom or unreadable
 * one) and its options as far as they are usable: the ones that break the
 * schema left out, so their defaults stand in. Undefined options when a
 * required one is unusable (the stage can't be judged at all).
 */
export function usableStage(stage: unknown): { definition: AnyStageTypeDefinition; options: Record<string, unknown> | undefined; unusable: ReadonlySet<string> } | undefined {
  if (typeof stage !== 'object' || stage === null || Array.isArray(stage)) return undefined;
  const spec = stage as Record<string, unknown>;
  const definition = typeof spec.type === 'string' ? builtinStageDefinitions.get(spec.type) : undefined;
  if (!definition) return undefined;
  const schema: TObject = definition.schema;
  const required = new Set(schema.required ?? []);
  const problems = optionProblems(schema, spec);
  const bad = new Set(problems.map((p) => p.option));
  if (problems.some((p) => p.kind !== 'unknown' && required.has(p.option))) return { definition, options: undefined, unusable: bad };
  const usable: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(spec)) if (!bad.has(key)) usable[key] = value;
  return { definition, options: withDefaults(schema, usable), unusable: bad };
}

/** The flow after `stage`. */
export function nextFlow(flow: BranchFlow, stage: unknown): BranchFlow {
  const found = usableStage(stage);
  if (!found?.options) return { format: flow.format, known: false };
  const out = found.definition.outputFormat(found.options, flow.format);
  return {
    format: { sampleRate: out.sampleRate, channels: out.channels === 2 ? 2 : 1, sampleFormat: out.sampleFormat ?? 'f32' },
    known: flow.known,
  };
}

/** The flow at the end of a chain of stages. */
export function followStages(stages: readonly unknown[], channels: 1 | 2): BranchFlow {
  let flow = decodedFlow(channels);
  for (const s of stages) flow = nextFlow(flow, s);
  return flow;
}
