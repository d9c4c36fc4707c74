/**
 * Processor stages in a branch's `stages`: main-thread processors whose output
 * is the branch's audio. Worker stages run in a worker, processors on the main
 * thread, so a branch is worker stages → processor stages → sinks: a processor
 * stage's output never goes back to a worker (that would be a second hop per
 * frame, and the main thread doing what a worker stage module does better).
 *
 * This file says which stages are which, and the rules about them that
 * validation (with JSON paths) and the check before a stream starts share.
 */
import type { StageSpec } from '../dsp/types.js';
import { PROCESSOR_STAGE_TYPE, type StageDefinition } from './schema.js';
import type { PipelineProblem } from './validation/problems.js';

/** A processor stage as a validated pipeline holds it. */
export interface ProcessorStageDefinition {
  type: typeof PROCESSOR_STAGE_TYPE;
  name: string;
  options?: Record<string, unknown>;
}

/** What the rules need to know about the registered processors (a `ProcessorRegistry` is one). */
export interface ProcessorNames {
  has(name: string): boolean;
  isStage(name: string): boolean;
  stageNames(): string[];
}

export function isProcessorStage(stage: unknown): stage is ProcessorStageDefinition {
  return typeof stage === 'object' && stage !== null && (stage as { type?: unknown }).type === PROCESSOR_STAGE_TYPE;
}

/** The stages a branch runs in its worker: all but the processor stages (which come last). */
export function workerStages(stages: readonly StageDefinition[]): StageSpec[] {
  return stages.filter((s) => !isProcessorStage(s)) as StageSpec[];
}

/** The processor stages of a branch, in order, with their index in `stages`. */
export function processorStages(stages: readonly StageDefinition[]): Array<{ index: number; stage: ProcessorStageDefinition }> {
  const out: Array<{ index: number; stage: ProcessorStageDefinition }> = [];
  stages.forEach((s, index) => {
    if (isProcessorStage(s)) out.push({ index, stage: s });
  });
  return out;
}

/**
 * Problems of the processor stages in one branch's `stages` (`base` is the
 * branch's JSON path): a worker stage after a processor stage, and, when the
 * registered processors are known, a name that is not registered or not as a
 * stage.
 */
export function processorStageProblems(stages: unknown, base: string, processors?: ProcessorNames): PipelineProblem[] {
  if (!Array.isArray(stages)) return [];
  const problems: PipelineProblem[] = [];
  let first: { index: number; name: unknown } | undefined;
  stages.forEach((stage, i) => {
    if (isProcessorStage(stage)) {
      first ??= { index: i, name: stage.name };
      if (processors && typeof stage.name === 'string') {
        const problem = nameProblem(stage.name, processors);
        if (problem) problems.push({ path: `${base}/stages/${i}/name`, ...problem });
      }
      return;
    }
    if (!first) return;
    const type = typeof stage === 'object' && stage !== null ? (stage as { type?: unknown }).type : undefined;
    const what = typeof type === 'string' ? `worker stage "${type}"` : 'a worker stage';
    problems.push({
      path: `${base}/stages/${i}`,
      message: `${what} cannot follow processor stage ${JSON.stringify(first.name)} (stages/${first.index}): processor stages run on the main thread after every worker stage of their branch; move it before the processor stages, or do this processing in a worker stage module`,
      found: typeof type === 'string' ? type : stage,
      allowed: 'worker stages first, then processor stages',
      hint: `move it before stages/${first.index}`,
    });
  });
  return problems;
}

function nameProblem(name: string, processors: ProcessorNames): Omit<PipelineProblem, 'path'> | undefined {
  if (processors.isStage(name)) return undefined;
  const stages = processors.stageNames();
  const known = stages.length > 0 ? `registered as stages: ${stages.join(', ')}` : 'none is registered as a stage';
  if (processors.has(name)) {
    return {
      message: `processor "${name}" is registered, but not as a stage (its output would not be audio); register it with registerProcessor(name, factory, { stage: true }), or use it as a "processor" sink; ${known}`,
      found: name,
      allowed: stages.length > 0 ? stages.join(', ') : 'a processor registered as a stage',
      hint: 'registerProcessor(name, factory, { stage: true })',
    };
  }
  return {
    message: `processor "${name}" is not registered; ${known} (registerProcessor(name, factory, { stage: true }) before streams start)`,
    found: name,
    allowed: stages.length > 0 ? stages.join(', ') : 'a processor registered as a stage',
  };
}

/**
 * Sinks a branch with processor stages cannot have: an "ogg-opus" recording is
 * the received packets or encoded in the worker, both before the processor
 * stages, so it could not hold their output.
 */
export function processorStageSinkProblems(stages: unknown, sinks: unknown, base: string): PipelineProblem[] {
  if (!Array.isArray(stages) || !Array.isArray(sinks)) return [];
  const first = stages.findIndex(isProcessorStage);
  if (first < 0) return [];
  const problems: PipelineProblem[] = [];
  sinks.forEach((sink, i) => {
    if (typeof sink !== 'object' || sink === null) return;
    const s = sink as { type?: unknown; format?: unknown };
    if (s.type !== 'record' || s.format !== 'ogg-opus') return;
    problems.push({
      path: `${base}/sinks/${i}/format`,
      message: `an "ogg-opus" recording is encoded before the processor stages (stages/${first}) run, so it cannot hold their output; record "wav" here, or "ogg-opus" on a branch without processor stages`,
      found: 'ogg-opus',
      allowed: '"wav" on a branch with processor stages',
      hint: 'use "format": "wav"',
    });
  });
  return problems;
}
