/**
 * What a stage operator's chain refuses for the frames it gets, judged on the
 * main thread when its first frame comes, before any worker stream opens: a
 * stage type that is neither built in nor registered on the pool, a filter
 * frequency at or above half the rate, `denoise` after a `resample`, a frame
 * duration that is not whole samples. The same definitions the workers build
 * from say it (dsp/), so the two cannot disagree; here it becomes
 * `EARSHOT_OPTION_INVALID` naming the stage's option (`highpass.frequency`),
 * as every other option check, rather than the worker's plain error once the
 * stream had started. A custom stage's output format is known in the workers
 * only: the stages after one are left to them.
 */
import { builtinStageDefinitions } from '../dsp/registry.js';
import { formatText, withDefaults } from '../dsp/stage-type.js';
import type { AudioFormat } from '../media/frames.js';
import type { StageSpec } from '../dsp/types.js';
import { errors } from '../errors.js';

/**
 * Throws `EARSHOT_OPTION_INVALID` for the first stage of `stages` that cannot
 * run on `input` (through the stages before it). `customTypes`: the stage
 * types the pool's modules provide. `extensions.option` is `TYPE.OPTION`, or
 * the stage type for a problem of the stage as a whole.
 */
export function checkStageChain(stages: readonly StageSpec[], input: AudioFormat, customTypes: readonly string[]): void {
  let format = input;
  for (const [i, spec] of stages.entries()) {
    const definition = builtinStageDefinitions.get(spec.type);
    // A chain of one is an operator on its own (`denoise()`), which the caller did not write as inWorkers(…).
    const where = stages.length === 1 ? `the stage "${spec.type}"` : `stage ${i} (${spec.type}) of inWorkers(${stages.map((s) => s.type).join(', ')})`;
    if (!definition) {
      if (customTypes.includes(spec.type)) return;
      const known = [...builtinStageDefinitions.keys(), ...customTypes].join(', ');
      // About the stage as the caller wrote it (stage('x')), not an "options.x" the caller never wrote.
      throw errors.OPTION_INVALID(spec.type, `is not a stage type: ${where} is neither built in nor from a module registered on its pool (registerStageModule); known types: ${known}`, `"${spec.type}"`);
    }
    // The schema was checked when the operator was made (stage()); these depend on the format too.
    const options = withDefaults(definition.schema, spec);
    const [problem] = [...(definition.checkOptions?.(options, spec) ?? []), ...(definition.checkInput?.(options, format, spec) ?? [])];
    if (problem) {
      const option = problem.option !== undefined ? `${spec.type}.${problem.option}` : spec.type;
      const subject = problem.option !== undefined ? `The option ${problem.option} of ${where}` : `${where[0].toUpperCase()}${where.slice(1)}`;
      throw errors.OPTION_INVALID(option, `is refused for the ${formatText(format)} audio it gets: ${problem.message}`, subject);
    }
    format = definition.outputFormat(options, format);
  }
}
