/**
 * Parsing and validation of pipeline documents into the normalized form the
 * rest of the server uses. Validation reports every problem at once, each with
 * its JSON path, what was found there, what is allowed (worded from the schema,
 * the single source of truth) and a hint when one is likely; a pipeline is
 * usable only once all checks pass. Validation never throws, whatever it is
 * given: values JSON cannot hold (functions, cycles, NaN, …) are problems too.
 *
 * This file holds the model (`Pipeline`, `Branch`) and the API; the walk over
 * the document, the wording of problems and the rules a schema cannot say are
 * in validation/.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Value } from '@sinclair/typebox/value';
import type { Schema } from '../dsp/schema-words.js';
import { errors } from '../errors.js';
import { followStages } from './branch-format.js';
import { parseJsonText } from './json-text.js';
import type { ProcessorNames } from './processor-stages.js';
import { PipelineSchema, type PipelineDocument, type SinkDefinition, type StageDefinition } from './schema.js';
import { checkValue, toJson } from './validation/json-walker.js';
import { MAX_PROBLEMS, report, type PipelineProblem, type Walk } from './validation/problems.js';
import { checkSemantics } from './validation/semantic-rules.js';
import { errorText, excerpt, foundValue } from './validation/wording.js';

export type { PipelineProblem } from './validation/problems.js';

export interface Branch {
  name: string;
  stages: StageDefinition[];
  sinks: SinkDefinition[];
  /**
   * Sample rate of the branch output, followed through the built-in stages'
   * definitions. A custom stage's output is only known in the workers: it is
   * assumed to keep the format here, and the worker reports the real one when
   * a stream starts (`PeerPipeline.branches`, recordings).
   */
  sampleRate: number;
  /** Channels of the branch output (the decode's, changed by `downmix`/`upmix`). */
  channels: 1 | 2;
  /** Sample encoding of the frames the branch delivers (`s16` after a `format` stage asking for it). */
  sampleFormat: 'f32' | 's16';
  /**
   * Whether `sampleRate`, `channels` and `sampleFormat` are known here: false after a custom
   * stage, whose output the workers report only when a stream starts (they are then assumed
   * unchanged from the stage on).
   */
  formatKnown: boolean;
}

export interface ValidateOptions {
  /**
   * Stage types provided by registered custom worker modules. Any other
   * non-built-in type is a problem (with the nearest known name as a hint).
   */
  customStages?: readonly string[];
  /**
   * The registered main-thread processors (a `ProcessorRegistry`). When
   * given, a `processor` stage naming one not registered as a stage is a
   * problem; without it, that is checked when a stream starts.
   */
  processors?: ProcessorNames;
}

/** A validated pipeline, normalized to named branches (a single chain is one branch, `main`). */
export interface Pipeline {
  name: string;
  description: string;
  channels: 1 | 2;
  /** The answer asks the sender for DTX (`usedtx=1`, RFC 7587). */
  dtx: boolean;
  branches: Branch[];
  /**
   * The document as given, as plain JSON: the same keys in the same order, no
   * defaults filled in (so a file read, validated and written back is
   * unchanged). `parsePipeline(p.toJSON())` builds an equal pipeline, and its
   * `toJSON()` is deep-equal to this one. A fresh copy on every call.
   */
  toJSON(): PipelineDocument;
}

export type ValidationResult = { pipeline: Pipeline; problems: [] } | { pipeline?: undefined; problems: PipelineProblem[] };

/** Validates a value (parsed JSON or an object built in code); returns the pipeline or every problem found. Never throws. */
export function validatePipeline(doc: unknown, options: ValidateOptions = {}): ValidationResult {
  const walk: Walk = { problems: [], omitted: 0, custom: options.customStages ?? [], processors: options.processors, skip: new Set() };
  let json: unknown;
  try {
    json = toJson(doc, '', walk, 0, new Set());
    checkValue(PipelineSchema as unknown as Schema, json, '', walk, { kind: 'pipeline', name: '' });
    checkSemantics(json, walk);
  } catch (e) {
    // A getter that throws, a proxy, …: still an answer, not an exception.
    report(walk, { path: '', message: `cannot be validated: ${errorText(e)}` });
  }
  if (walk.problems.length === 0 && !Value.Check(PipelineSchema, json)) {
    // The walk above words every rule of the schema; this catches a rule it missed, so nothing invalid gets through.
    for (const e of Value.Errors(PipelineSchema, json)) {
      report(walk, { path: e.path, message: `${excerpt(e.value)} is not allowed: ${e.message}`, found: foundValue(e.value) });
    }
  }
  if (walk.problems.length > 0) {
    const problems = walk.problems;
    if (walk.omitted > 0) problems.push({ path: '', message: `${walk.omitted} more problem${walk.omitted === 1 ? '' : 's'} not listed (the first ${MAX_PROBLEMS} are)` });
    return { problems };
  }
  return { problems: [], pipeline: buildPipeline(json as PipelineDocument) };
}

/** Parses and validates; throws `EARSHOT_PIPELINE_INVALID` (422) with every problem. */
export function parsePipeline(doc: unknown, label = 'pipeline', options: ValidateOptions = {}): Pipeline {
  const result = validatePipeline(doc, options);
  if (result.pipeline) return result.pipeline;
  let name = label;
  try {
    const given = (doc as { name?: unknown } | null)?.name;
    if (typeof given === 'string' && given.length <= 64) name = given;
  } catch {
    // a throwing getter: keep the label
  }
  throw errors.PIPELINE_INVALID(name, result.problems);
}

/** Reads, parses and validates a pipeline JSON file. */
export async function loadPipelineFile(file: string, options: ValidateOptions = {}): Promise<Pipeline> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw errors.PIPELINE_FILE_UNREADABLE(file, (e as Error).message);
  }
  return pipelineFromText(text, file, options);
}

/**
 * `loadPipelineFile`, synchronously: for constructors that must be usable at
 * once (`new WebRTCHandler()`), where a pipeline file is a few KiB read once.
 */
export function loadPipelineFileSync(file: string, options: ValidateOptions = {}): Pipeline {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw errors.PIPELINE_FILE_UNREADABLE(file, (e as Error).message);
  }
  return pipelineFromText(text, file, options);
}

function pipelineFromText(text: string, file: string, options: ValidateOptions): Pipeline {
  const parsed = parseJsonText(text);
  if ('notJson' in parsed) throw errors.PIPELINE_INVALID(file, [{ path: '', message: parsed.notJson }]);
  if (parsed.repeatedKeys.length === 0) return parsePipeline(parsed.value, file, options);
  // Keys given twice, and what else is wrong with the document: every problem at once.
  const repeated = parsed.repeatedKeys.map(({ path, message }) => ({ path, message }));
  throw errors.PIPELINE_INVALID(file, [...repeated, ...validatePipeline(parsed.value, options).problems]);
}

// ---------------------------------------------------------------------------
// The normalized pipeline
// ---------------------------------------------------------------------------

function buildPipeline(doc: PipelineDocument): Pipeline {
  const entries: Array<[string, { stages?: StageDefinition[]; sinks?: SinkDefinition[] }]> = doc.branches
    ? Object.entries(doc.branches)
    : [['main', { stages: doc.stages, sinks: doc.sinks }]];
  const branches = entries.map(([name, b]): Branch => {
    const stages = structuredClone(b.stages ?? []);
    const { format, known } = followStages(stages, doc.channels ?? 1);
    return { name, stages, sinks: structuredClone(b.sinks ?? []), sampleRate: format.sampleRate, channels: format.channels, sampleFormat: format.sampleFormat, formatKnown: known };
  });
  return {
    name: doc.name,
    description: doc.description ?? '',
    channels: doc.channels ?? 1,
    dtx: doc.dtx ?? true,
    branches,
    toJSON: () => structuredClone(doc),
  };
}
