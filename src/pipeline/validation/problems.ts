/**
 * A pipeline problem, and the collection of them during one validation:
 * listed up to a limit, then counted.
 */

import type { ProcessorNames } from '../processor-stages.js';

export interface PipelineProblem {
  /** JSON Pointer (RFC 6901) to the offending value, e.g. `/branches/asr/stages/2/sampleRate`; `""` is the whole document. */
  path: string;
  /** The whole sentence: what was found, what is allowed, and the hint if there is one. */
  message: string;
  /** The offending value (a shortened JSON text of it when large); absent when the value is missing. */
  found?: unknown;
  /** What is accepted there, in words: `an integer from 8000 to 48000`, `"s16" or "f32"`. */
  allowed?: string;
  /** A likely fix: `did you mean "sampleRate"?`. */
  hint?: string;
}

/** Deeper than any sensible document (processor options included); bounds the work and the recursion. */
export const MAX_DEPTH = 64;
/** Problems listed in full; the rest are counted in one last problem. */
export const MAX_PROBLEMS = 100;

export interface Walk {
  problems: PipelineProblem[];
  /** Problems beyond MAX_PROBLEMS, counted only. */
  omitted: number;
  custom: readonly string[];
  /** The registered processors, when known: processor stages must name one registered as a stage. */
  processors?: ProcessorNames;
  /** Paths already reported as not JSON (their placeholder must not be reported again). */
  skip: Set<string>;
}

/** Whose member a value is: words the "unknown key" and "missing" messages. */
export interface Owner {
  kind: 'pipeline' | 'branches' | 'branch' | 'stage' | 'sink' | 'value';
  name: string;
}

export function report(walk: Walk, problem: PipelineProblem): void {
  if (walk.problems.length < MAX_PROBLEMS) walk.problems.push(problem);
  else walk.omitted++;
}

