/**
 * Parsing and validation of pipeline documents into the normalized form the
 * rest of the server uses. Validation reports every problem at once, each with
 * its JSON path, and a pipeline is usable only once all checks pass.
 */
import { readFile } from 'node:fs/promises';
import type { TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { errors } from '../errors.js';
import {
  BUILTIN_STAGE_TYPES,
  PipelineSchema,
  ProcessorSinkSchema,
  RecordSinkSchema,
  StatsSinkSchema,
  SINK_TYPES,
  type PipelineDocument,
  type SinkDefinition,
  type StageDefinition,
} from './schema.js';
import { BuiltinStageSchemas } from './stage-schemas.js';

export interface PipelineProblem {
  /** JSON Pointer to the offending value (`/branches/asr/stages/2/sampleRate`). */
  path: string;
  message: string;
}

export interface Branch {
  name: string;
  stages: StageDefinition[];
  sinks: SinkDefinition[];
  /** Sample rate of the branch output. */
  sampleRate: number;
  /** Channels of the branch output (the decode's, changed by `downmix`/`upmix`). */
  channels: 1 | 2;
  /** Sample encoding of the frames the branch delivers (`s16` after a `format` stage asking for it). */
  sampleFormat: 'f32' | 's16';
}

export interface ValidateOptions {
  /**
   * Stage types provided by registered custom worker modules. Any other
   * non-built-in type is a problem (with the nearest known name as a hint).
   */
  customStages?: readonly string[];
}

/** A validated pipeline, normalized to named branches. */
export interface Pipeline {
  name: string;
  description: string;
  channels: 1 | 2;
  branches: Branch[];
  /** The document as given, for `GET /pipelines/:name` and round trips. */
  toJSON(): PipelineDocument;
}

const DECODE_RATE = 48000;

/** Validates a parsed JSON value; returns the pipeline or every problem found. */
export function validatePipeline(
  doc: unknown,
  options: ValidateOptions = {},
): { pipeline: Pipeline; problems: [] } | { pipeline?: undefined; problems: PipelineProblem[] } {
  const custom = options.customStages ?? [];
  const known = [...BUILTIN_STAGE_TYPES, ...custom];
  const problems: PipelineProblem[] = [];
  if (!Value.Check(PipelineSchema, doc)) {
    problems.push(...schemaProblems(doc));
    // Custom-looking types pass the schema; report the unknown ones now too, so every problem comes at once.
    problems.push(...unknownStageTypes(doc, custom));
    return { problems: dedupe(problems) };
  }
  const d = doc as PipelineDocument;
  const single = d.stages !== undefined || d.sinks !== undefined;
  if (single && d.branches) {
    problems.push({ path: '/branches', message: 'use either "stages"/"sinks" (one chain) or "branches", not both' });
  }
  if (!single && !d.branches) {
    problems.push({ path: '', message: 'a pipeline needs "stages" and "sinks", or "branches"' });
  }
  const entries: Array<[string, string, { stages?: StageDefinition[]; sinks?: SinkDefinition[] }]> = d.branches
    ? Object.entries(d.branches).map(([name, b]) => [name, `/branches/${name}`, b])
    : [['main', '', { stages: d.stages, sinks: d.sinks }]];
  if (d.branches && entries.length === 0) problems.push({ path: '/branches', message: 'needs at least one branch' });
  const branches: Branch[] = [];
  for (const [name, base, b] of entries) {
    const stages = b.stages ?? [];
    const sinks = b.sinks ?? [];
    let rate = DECODE_RATE;
    let channels: 1 | 2 = d.channels ?? 1;
    let sampleFormat: 'f32' | 's16' = 'f32';
    stages.forEach((stage, i) => {
      const opts = stage as { type: string; sampleRate?: number; sampleFormat?: 'f32' | 's16' };
      const unknown = unknownTypeProblem(stage.type, `${base}/stages/${i}/type`, custom);
      if (unknown) problems.push(unknown);
      // Semantic check (not an automatic resample, so the cost stays visible in the pipeline).
      if (stage.type === 'denoise' && rate !== DECODE_RATE) {
        problems.push({
          path: `${base}/stages/${i}`,
          message: `denoise needs 48000 Hz audio but gets ${rate} Hz here; move "denoise" before the "resample" stage`,
        });
      }
      if (stage.type === 'resample' && opts.sampleRate !== undefined) rate = opts.sampleRate;
      if (stage.type === 'downmix') channels = 1;
      if (stage.type === 'upmix') channels = 2;
      if (stage.type === 'format' && opts.sampleFormat !== undefined) sampleFormat = opts.sampleFormat;
    });
    if (sinks.length === 0) problems.push({ path: `${base}/sinks`, message: 'a branch needs at least one sink ("record", "stats" or "processor")' });
    if (sinks.filter((s) => s.type === 'record').length > 1) {
      problems.push({ path: `${base}/sinks`, message: 'at most one "record" sink per branch' });
    }
    branches.push({ name, stages, sinks, sampleRate: rate, channels, sampleFormat });
  }
  if (problems.length > 0) return { problems };
  const frozen = structuredClone(d);
  return {
    problems: [],
    pipeline: {
      name: d.name,
      description: d.description ?? '',
      channels: d.channels ?? 1,
      branches,
      toJSON: () => structuredClone(frozen),
    },
  };
}

/** Parses and validates; throws `EARSHOT_PIPELINE_INVALID` (422) with every problem. */
export function parsePipeline(doc: unknown, label = 'pipeline', options: ValidateOptions = {}): Pipeline {
  const result = validatePipeline(doc, options);
  if (result.pipeline) return result.pipeline;
  const name = typeof doc === 'object' && doc !== null && typeof (doc as { name?: unknown }).name === 'string' ? (doc as { name: string }).name : label;
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
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw errors.PIPELINE_INVALID(file, [{ path: '', message: `not valid JSON: ${(e as Error).message}` }]);
  }
  return parsePipeline(doc, file, options);
}

function unknownTypeProblem(type: unknown, path: string, custom: readonly string[]): PipelineProblem | undefined {
  if (typeof type !== 'string' || (BUILTIN_STAGE_TYPES as readonly string[]).includes(type) || custom.includes(type)) return undefined;
  // Only custom-shaped names reach here from a failed schema check; others get the schema's message.
  if (!/^[a-z][a-z0-9-]*$/.test(type)) return undefined;
  const known = [...BUILTIN_STAGE_TYPES, ...custom];
  return {
    path,
    message: `"${type}" is not a stage type; use one of ${known.join(', ')}${nearest(type, known)}${custom.length === 0 ? ' (custom stages need their module registered first)' : ''}`,
  };
}

/** Unknown stage types anywhere in a document that failed the schema check. */
function unknownStageTypes(doc: unknown, custom: readonly string[]): PipelineProblem[] {
  if (typeof doc !== 'object' || doc === null) return [];
  const d = doc as { stages?: unknown; branches?: unknown };
  const chains: Array<[string, unknown]> = [['', d.stages]];
  if (typeof d.branches === 'object' && d.branches !== null) {
    for (const [name, b] of Object.entries(d.branches)) chains.push([`/branches/${name}`, (b as { stages?: unknown } | null)?.stages]);
  }
  const out: PipelineProblem[] = [];
  for (const [base, stages] of chains) {
    if (!Array.isArray(stages)) continue;
    stages.forEach((stage, i) => {
      const p = unknownTypeProblem((stage as { type?: unknown } | null)?.type, `${base}/stages/${i}/type`, custom);
      if (p) out.push(p);
    });
  }
  return out;
}

/** Turns TypeBox errors into readable problems; unions get a message naming the allowed types. */
function schemaProblems(doc: unknown): PipelineProblem[] {
  const out: PipelineProblem[] = [];
  for (const e of Value.Errors(PipelineSchema, doc)) {
    const path = e.path;
    const last = path.split('/').pop() ?? '';
    if (/\/(stages|sinks)\/\d+$/.test(path)) {
      // A union failed: say which member was meant instead of listing every branch of the union.
      const kind = /\/stages\/\d+$/.test(path) ? 'stage' : 'sink';
      const allowed: readonly string[] = kind === 'stage' ? BUILTIN_STAGE_TYPES : SINK_TYPES;
      const type = (e.value as { type?: unknown } | undefined)?.type;
      if (kind === 'stage' && typeof type === 'string' && !allowed.includes(type)) {
        // Matched no built-in and not the custom-stage shape: a malformed custom type name.
        out.push({ path: `${path}/type`, message: `${JSON.stringify(type)} is not a stage type; use one of ${allowed.join(', ')}${nearest(type, allowed)}, or a registered custom stage (lower-case letters, digits, "-")` });
      } else if (typeof type !== 'string' || !allowed.includes(type)) {
        out.push({ path: `${path}/type`, message: `${JSON.stringify(type)} is not a ${kind} type; use one of ${allowed.join(', ')}${nearest(type, allowed)}` });
      } else {
        out.push(...memberProblems(kind, type, e.value, path));
      }
      continue;
    }
    if (/\/(stages|sinks)\/\d+\//.test(path)) continue; // reported through the union above
    out.push({ path, message: `${describe(e.value)}: ${e.message}${last === 'name' ? ' (letters, digits, "_" and "-")' : ''}` });
  }
  return out;
}

const MEMBER_SCHEMAS: Record<'stage' | 'sink', Record<string, TObject>> = {
  stage: Object.fromEntries(BuiltinStageSchemas.map((schema) => [(schema.properties.type as { const: string }).const, schema as TObject])),
  sink: { record: RecordSinkSchema, stats: StatsSinkSchema, processor: ProcessorSinkSchema },
};

function memberProblems(kind: 'stage' | 'sink', type: string, value: unknown, base: string): PipelineProblem[] {
  const schema = MEMBER_SCHEMAS[kind][type];
  return [...Value.Errors(schema, value)].map((e) => {
    const key = e.path.slice(1);
    if (e.message === 'Unexpected property') {
      const known = Object.keys((schema as { properties: object }).properties);
      return { path: `${base}${e.path}`, message: `unknown option for ${kind} "${type}"; allowed: ${known.join(', ')}` };
    }
    const literals = (e.schema.anyOf as Array<{ const?: unknown }> | undefined)?.map((m) => m.const).filter((c) => c !== undefined);
    const hint = literals?.length ? `use one of ${literals.map((l) => JSON.stringify(l)).join(', ')}` : e.message;
    return { path: `${base}${e.path}`, message: `${describe(e.value)} is not allowed for "${key}"; ${hint}` };
  });
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function nearest(word: unknown, options: readonly string[]): string {
  if (typeof word !== 'string') return '';
  let best = '';
  let bestD = Infinity;
  for (const o of options) {
    const d = levenshtein(word.toLowerCase(), o);
    if (d < bestD) [best, bestD] = [o, d];
  }
  return bestD <= Math.max(2, Math.floor(best.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

function dedupe(problems: PipelineProblem[]): PipelineProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
