/**
 * Pipelines built in code: the same language as the JSON files, with the stage
 * operators as stages. `definePipeline()` assembles the document, validates it
 * exactly like a file (every problem at once, `EARSHOT_PIPELINE_INVALID`) and
 * returns the `Pipeline`; its `toJSON()` is the document, which builds the same
 * pipeline again.
 *
 *   definePipeline({
 *     name: 'voice-agent',
 *     branches: {
 *       archive: { sinks: [recordSink()] },
 *       asr: { stages: [denoise(), highpass({ frequency: 80 }), resample({ sampleRate: 16000 })], sinks: [statsSink(), processorSink('transcriber')] },
 *     },
 *   });
 */
import type { Static } from '@sinclair/typebox';
import { isStageOperator, stagesOf, type StageOperator } from './operators.js';
import { parsePipeline, validatePipeline, type Pipeline, type ValidateOptions } from './pipeline.js';
import type { PipelineDocument, ProcessorSinkSchema, ProcessorStageSchema, RecordSinkSchema, SinkDefinition, StageDefinition, StatsSinkSchema } from './schema.js';

/** A stage: a stage operator (`denoise()`, `inWorkers(…)`, `stage('dc-blocker', {…})`) or a stage object as in JSON. */
export type StageInput = StageOperator | StageDefinition | { type: string; [option: string]: unknown };

/** One branch: its stages (default none) and its sinks. */
export interface BranchDefinition {
  stages?: readonly StageInput[];
  sinks: readonly SinkDefinition[];
}

/** A pipeline in code: the members of the JSON document, with stage operators allowed as stages. */
export interface PipelineDefinition {
  /** Path or URL of pipeline.schema.json, for editors (as in a pipeline file; not part of the pipeline). */
  $schema?: string;
  /** Letters, digits, "_" and "-". */
  name: string;
  description?: string;
  /** Channels to decode to (default 1). */
  channels?: 1 | 2;
  /** Ask the sender for DTX, no packets during silence (default true). */
  dtx?: boolean;
  /** Single-chain form: stages (default none) … */
  stages?: readonly StageInput[];
  /** … and sinks. */
  sinks?: readonly SinkDefinition[];
  /** Or named branches sharing one decode (not with `stages`/`sinks`). */
  branches?: Readonly<Record<string, BranchDefinition>>;
}

/**
 * A pipeline as options take it (`createServer`'s and `WebRTCHandler`'s
 * `pipeline`): the name of one in the pipelines directory (or bundled), a
 * JSON file path (anything with a "/" or ending in ".json"), a pipeline
 * document or definition (stage operators allowed, as for `definePipeline`),
 * or a built `Pipeline`. A document kept in a variable before it is passed
 * needs its type (`const doc: PipelineDefinition = …`, or `satisfies`), or
 * TypeScript widens its `type` members to `string`; so does one imported from
 * a JSON file (`import doc from './p.json'`: `doc as PipelineDocument`).
 */
export type PipelineSource = string | Pipeline | PipelineDocument | PipelineDefinition;

/**
 * Whether a `pipeline` string names a pipeline (of the directory, or bundled) rather than a file:
 * no path separator and no `.json` ending. One rule for `createServer`, `WebRTCHandler` and `earshot pipelines`.
 */
export function isPipelineName(value: string): boolean {
  return !value.includes('/') && !value.includes('\\') && !value.endsWith('.json');
}

/** A `PipelineSource` that is not a name or path: a built `Pipeline`, or else a document or definition. */
export function isBuiltPipeline(p: Pipeline | PipelineDocument | PipelineDefinition): p is Pipeline {
  return Array.isArray((p as Pipeline).branches) && typeof (p as Pipeline).toJSON === 'function';
}

/**
 * A document or definition given as an option, for validation: its stage
 * operators replaced by their stage objects and nothing else changed, so that
 * validation reports everything it would in a file (`pipelineDocument` also
 * gives a pipeline without branches its empty `stages`).
 */
export function asPipelineDocument(p: PipelineDocument | PipelineDefinition): unknown {
  if (typeof p !== 'object' || p === null) return p;
  const out: Record<string, unknown> = { ...p };
  if (Array.isArray(p.stages)) out.stages = stageObjects(p.stages);
  if (typeof p.branches === 'object' && p.branches !== null) {
    out.branches = Object.fromEntries(
      Object.entries(p.branches).map(([name, b]) => [name, typeof b === 'object' && b !== null && Array.isArray(b.stages) ? { ...b, stages: stageObjects(b.stages) } : b]),
    );
  }
  return out;
}

export type RecordSink = Static<typeof RecordSinkSchema>;
export type RecordSinkOptions = Omit<RecordSink, 'type'>;
export type StatsSink = Static<typeof StatsSinkSchema>;
export type ProcessorSink = Static<typeof ProcessorSinkSchema>;
export type ProcessorStage = Static<typeof ProcessorStageSchema>;

/**
 * Validates the definition like a pipeline file and returns the pipeline.
 * Throws `EARSHOT_PIPELINE_INVALID` (422) listing every problem, with JSON
 * paths into the document `pipelineDocument(definition)` returns. Pass
 * `customStages` to accept stages of registered custom modules.
 */
export function definePipeline(definition: PipelineDefinition, options: ValidateOptions = {}): Pipeline {
  return parsePipeline(pipelineDocument(definition), typeof definition?.name === 'string' ? definition.name : 'pipeline', options);
}

/**
 * The JSON document of a definition, not validated: stage operators replaced by
 * their stage objects, a branch without `stages` given `"stages": []`, and
 * nothing else added (no defaults). Members a pipeline does not have are kept,
 * for validation to name (from JavaScript, a misspelt `sink` would otherwise
 * vanish, and the pipeline run without sinks).
 */
export function pipelineDocument(definition: PipelineDefinition): PipelineDocument {
  const d = definition as PipelineDefinition | null | undefined;
  if (typeof d !== 'object' || d === null) return d as unknown as PipelineDocument; // validation words what is wrong
  const doc: Record<string, unknown> = { name: d.name };
  if (d.description !== undefined) doc.description = d.description;
  if (d.channels !== undefined) doc.channels = d.channels;
  if (d.dtx !== undefined) doc.dtx = d.dtx;
  if (d.stages !== undefined || d.branches === undefined) doc.stages = stageObjects(d.stages ?? []);
  if (d.sinks !== undefined) doc.sinks = d.sinks;
  if (d.branches !== undefined) {
    doc.branches =
      typeof d.branches === 'object' && d.branches !== null
        ? Object.fromEntries(
            Object.entries(d.branches).map(([name, b]) => [
              name,
              typeof b === 'object' && b !== null ? { ...b, stages: stageObjects(b.stages ?? []) } : b,
            ]),
          )
        : d.branches;
  }
  // defineProperty: an own "__proto__" (JSON.parse makes one) must stay a member, for validation to name, not become the prototype.
  for (const [key, value] of Object.entries(d)) if (!DEFINITION_MEMBERS.has(key) && value !== undefined) Object.defineProperty(doc, key, { value, enumerable: true, writable: true, configurable: true });
  return doc as PipelineDocument;
}

/** The members `pipelineDocument` reads itself. */
const DEFINITION_MEMBERS = new Set(['name', 'description', 'channels', 'dtx', 'stages', 'sinks', 'branches']);

function stageObjects(stages: readonly StageInput[]): unknown {
  return Array.isArray(stages) ? stages.flatMap((s: StageInput) => (isStageOperator(s) ? stagesOf(s) : [s])) : stages;
}

/** A `record` sink; options as in JSON (`sampleFormat`, `directory`, `template`, `autoStart`, …), checked now. */
export function recordSink(options: RecordSinkOptions = {}): RecordSink {
  return checkedSink('recordSink', { type: 'record', ...options }) as RecordSink;
}

/** A `stats` sink: levels and voice activity into the peer statistics. */
export function statsSink(): StatsSink {
  return { type: 'stats' };
}

/** A `processor` sink handing the branch output to the processor registered as `name`, with its `options`. */
export function processorSink(name: string, options?: Record<string, unknown>): ProcessorSink {
  return checkedSink('processorSink', { type: 'processor', name, ...(options !== undefined ? { options } : {}) }) as ProcessorSink;
}

/**
 * A `processor` stage: the processor registered as `name` (with `{ stage: true
 * }`) runs on the main thread after the branch's worker stages, and its
 * output frames are the branch's audio. Put it after the worker stages.
 */
export function processorStage(name: string, options?: Record<string, unknown>): ProcessorStage {
  const stage = { type: 'processor' as const, name, ...(options !== undefined ? { options } : {}) };
  const { problems } = validatePipeline({ name: 'stage', stages: [stage], sinks: [{ type: 'stats' }] });
  if (problems.length > 0) {
    throw new TypeError(`processorStage(): ${problems.map((p) => `${p.path.replace(/^\/stages\/0\/?/, '') || 'options'}: ${p.message}`).join('; ')}`);
  }
  return stage;
}

/** Checks a sink like validation does (same wording), as a TypeError at composition, like the stage operators. */
function checkedSink(fn: string, sink: Record<string, unknown>): SinkDefinition {
  const { problems } = validatePipeline({ name: 'sink', sinks: [sink] });
  if (problems.length > 0) {
    throw new TypeError(`${fn}(): ${problems.map((p) => `${p.path.replace(/^\/sinks\/0\/?/, '') || 'options'}: ${p.message}`).join('; ')}`);
  }
  return sink as SinkDefinition;
}
