/**
 * Whether a pipeline can start here, checked before any peer uses it: every
 * `processor` sink names a registered processor, every `processor` stage one
 * registered as a stage, and every worker stage builds in a worker (custom
 * stages' `create` accepts its options).
 */
import { errors } from '../errors.js';
import type { StageSpec } from '../dsp/types.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { processorStageProblems, workerStages } from '../pipeline/processor-stages.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import type { ProcessorRegistry } from '../sinks/processors.js';
import { resolveHeaders } from '../sinks/websocket-sink.js';

export class PipelineChecks {
  readonly #pool: WorkerPool;
  readonly #processors: ProcessorRegistry;
  /** Pipelines that passed, with how many stage modules were registered then. */
  readonly #passed = new WeakMap<Pipeline, number>();

  constructor(pool: WorkerPool, processors: ProcessorRegistry) {
    this.#pool = pool;
    this.#processors = processors;
  }

  /**
   * Throws `EARSHOT_PIPELINE_INVALID` for an unregistered processor or a stage
   * a worker refuses. A pipeline that passed is not checked again until
   * another stage module is registered.
   */
  async check(pipeline: Pipeline): Promise<void> {
    this.checkProcessors(pipeline);
    checkSinkEnvironment(pipeline);
    const modules = this.#pool.customStageTypes.length;
    if (this.#passed.get(pipeline) === modules) return;
    const [problem] = await this.#pool.checkSetups([setupOf(pipeline)]);
    if (problem) {
      const m = /^branch (\d+), stage (\d+)/.exec(problem);
      const branch = m ? pipeline.branches[Number(m[1])] : undefined;
      const path = branch && m ? `${pipeline.branches.length > 1 || branch.name !== 'main' ? `/branches/${branch.name}` : ''}/stages/${m[2]}` : '';
      throw errors.PIPELINE_INVALID(pipeline.name, [{ path, message: problem }]);
    }
    this.#passed.set(pipeline, modules);
  }

  /**
   * Every `processor` sink must name a registered processor, and every
   * `processor` stage one registered as a stage: `EARSHOT_PIPELINE_INVALID`
   * listing each one that does not.
   */
  checkProcessors(pipeline: Pipeline): void {
    const problems: Array<{ path: string; message: string }> = [];
    const single = pipeline.branches.length === 1 && pipeline.branches[0].name === 'main';
    for (const b of pipeline.branches) {
      problems.push(...processorStageProblems(b.stages, single ? '' : `/branches/${b.name}`, this.#processors));
      b.sinks.forEach((sink, i) => {
        if (sink.type !== 'processor' || this.#processors.has(sink.name)) return;
        const known = this.#processors.names();
        problems.push({
          path: `${single ? '' : `/branches/${b.name}`}/sinks/${i}/name`,
          message: `processor "${sink.name}" is not registered; ${known.length ? `registered: ${known.join(', ')}` : 'none are'} (registerProcessor(name, factory) before streams start)`,
        });
      });
    }
    if (problems.length > 0) throw errors.PIPELINE_INVALID(pipeline.name, problems);
  }
}

/**
 * Every environment variable a `websocket` sink's headers name is set:
 * `EARSHOT_SINK_ENV_MISSING` (naming the variable, never a value) before the
 * session is answered, rather than a stream whose sink cannot authenticate.
 */
export function checkSinkEnvironment(pipeline: Pipeline, env: NodeJS.ProcessEnv = process.env): void {
  const single = pipeline.branches.length === 1 && pipeline.branches[0].name === 'main';
  for (const b of pipeline.branches) {
    b.sinks.forEach((sink, i) => {
      if (sink.type === 'websocket') resolveHeaders(sink.headers, { pipeline: pipeline.name, path: `${single ? '' : `/branches/${b.name}`}/sinks/${i}` }, env);
    });
  }
}

function setupOf(pipeline: Pipeline): { channels: 1 | 2; branches: Array<{ stages: StageSpec[] }> } {
  return { channels: pipeline.channels, branches: pipeline.branches.map((b) => ({ stages: workerStages(b.stages) })) };
}
