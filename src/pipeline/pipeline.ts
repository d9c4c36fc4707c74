/**
 * Parsing and validation of pipeline documents into the normalized form the
 * rest of the server uses. Validation reports every problem at once, each with
 * its JSON path, what was found there, what is allowed (worded from the schema,
 * the single source of truth) and a hint when one is likely; a pipeline is
 * usable only once all checks pass. Validation never throws, whatever it is
 * given: values JSON cannot hold (functions, cycles, NaN, …) are problems too.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Value } from '@sinclair/typebox/value';
import { errors } from '../errors.js';
import {
  BUILTIN_STAGE_TYPES,
  BranchSchema,
  CustomStageSchema,
  PipelineSchema,
  RECORD_PLACEHOLDERS,
  RecordSinkSchema,
  SINK_TYPES,
  type PipelineDocument,
  type SinkDefinition,
  type StageDefinition,
} from './schema.js';
import { ReframeStageSchema, ResampleStageSchema } from './stage-schemas.js';
import { fillRecordingName, recordingNameProblem, sampleRecordingVars } from '../sinks/recording-names.js';

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

const DECODE_RATE = 48000;
/** Deeper than any sensible document (processor options included); bounds the work and the recursion. */
const MAX_DEPTH = 64;
/** Problems listed in full; the rest are counted in one last problem. */
const MAX_PROBLEMS = 100;

/** Validates a value (parsed JSON or an object built in code); returns the pipeline or every problem found. Never throws. */
export function validatePipeline(doc: unknown, options: ValidateOptions = {}): ValidationResult {
  const walk: Walk = { problems: [], omitted: 0, custom: options.customStages ?? [], skip: new Set() };
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
  if ('error' in parsed) throw errors.PIPELINE_INVALID(file, [{ path: '', message: parsed.error }]);
  return parsePipeline(parsed.value, file, options);
}

/** `JSON.parse` with the error worded for people: `not valid JSON: … (line 3, column 5)`. */
export function parseJsonText(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const message = (e as Error).message;
    const at = /at position (\d+)/.exec(message);
    if (!at) return { error: `not valid JSON: ${message}` };
    const before = text.slice(0, Number(at[1]));
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    return { error: `not valid JSON: ${message.replace(/ in JSON at position \d+.*$/s, '')} (line ${line}, column ${column})` };
  }
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
    const flow = followStages(stages, doc.channels ?? 1);
    return { name, stages, sinks: structuredClone(b.sinks ?? []), sampleRate: flow.rate, channels: flow.channels, sampleFormat: flow.sampleFormat };
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

/** The output format of a chain of (valid) stages. */
function followStages(stages: readonly unknown[], channels: 1 | 2): { rate: number; channels: 1 | 2; sampleFormat: 'f32' | 's16' } {
  const flow = { rate: DECODE_RATE, channels, sampleFormat: 'f32' as 'f32' | 's16' };
  for (const s of stages) step(flow, s);
  return flow;
}

function step(flow: { rate: number; channels: 1 | 2; sampleFormat: 'f32' | 's16' }, stage: unknown): void {
  if (!isObject(stage)) return;
  if (stage.type === 'resample' && Value.Check(ResampleStageSchema.properties.sampleRate, stage.sampleRate)) flow.rate = stage.sampleRate as number;
  if (stage.type === 'downmix') flow.channels = 1;
  if (stage.type === 'upmix') flow.channels = 2;
  if (stage.type === 'format' && (stage.sampleFormat === 's16' || stage.sampleFormat === 'f32')) flow.sampleFormat = stage.sampleFormat;
}

// ---------------------------------------------------------------------------
// Walking the document
// ---------------------------------------------------------------------------

/** The subset of JSON Schema the pipeline schemas use (TypeBox objects are JSON Schema). */
interface Schema {
  type?: string;
  const?: unknown;
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  patternProperties?: Record<string, Schema>;
  items?: Schema;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  description?: string;
}

interface Walk {
  problems: PipelineProblem[];
  /** Problems beyond MAX_PROBLEMS, counted only. */
  omitted: number;
  custom: readonly string[];
  /** Paths already reported as not JSON (their placeholder must not be reported again). */
  skip: Set<string>;
}

/** Whose member a value is: words the "unknown key" and "missing" messages. */
interface Owner {
  kind: 'pipeline' | 'branches' | 'branch' | 'stage' | 'sink' | 'value';
  name: string;
}

function report(walk: Walk, problem: PipelineProblem): void {
  if (walk.problems.length < MAX_PROBLEMS) walk.problems.push(problem);
  else walk.omitted++;
}

/**
 * A plain-JSON copy of `value`, reporting what JSON cannot hold (functions,
 * NaN, cycles, class instances, too deep). Such values become `null` in the
 * copy and their path is skipped by the schema walk.
 */
function toJson(value: unknown, path: string, walk: Walk, depth: number, ancestors: Set<object>): unknown {
  const notJson = (what: string, message = `${what} is not a JSON value; use a string, number, boolean, null, array or object`) => {
    report(walk, { path, message, found: what });
    walk.skip.add(path);
    return null;
  };
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : notJson(String(value), `${value} is not a JSON number; use a finite number`);
    case 'undefined':
      return undefined;
    case 'bigint':
      return notJson(`${value}n (a bigint)`, `${value}n (a bigint) is not a JSON number; use a number`);
    case 'function':
      return notJson('a function');
    case 'symbol':
      return notJson('a symbol');
  }
  if (value === null) return null;
  const obj = value as object;
  if (ancestors.has(obj)) return notJson('a circular reference', 'a circular reference (the value contains itself) is not JSON');
  if (depth >= MAX_DEPTH) return notJson('a value nested too deep', `nested more than ${MAX_DEPTH} levels deep; flatten it`);
  ancestors.add(obj);
  try {
    if (Array.isArray(obj)) {
      const out: unknown[] = [];
      for (let i = 0; i < obj.length; i++) {
        const item = toJson(obj[i], `${path}/${i}`, walk, depth + 1, ancestors);
        out.push(item === undefined ? notJsonAt(walk, `${path}/${i}`) : item);
      }
      return out;
    }
    const proto = Object.getPrototypeOf(obj) as object | null;
    if (proto !== Object.prototype && proto !== null) {
      const ctor = (obj as { constructor?: { name?: unknown } }).constructor?.name;
      return notJson(`a ${typeof ctor === 'string' && ctor ? ctor : 'class instance'}`, `a ${typeof ctor === 'string' && ctor ? ctor : 'class instance'} is not a plain JSON object; use { … } with JSON values`);
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(obj)) {
      const item = toJson((obj as Record<string, unknown>)[key], `${path}/${pointerKey(key)}`, walk, depth + 1, ancestors);
      if (item === undefined) continue; // like JSON.stringify: an undefined member is an absent one
      // defineProperty, not assignment: a "__proto__" key from JSON.parse stays an ordinary key.
      Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
    }
    return out;
  } finally {
    ancestors.delete(obj);
  }
}

function notJsonAt(walk: Walk, path: string): null {
  report(walk, { path, message: 'undefined is not a JSON value; remove the item or use null', found: 'undefined' });
  walk.skip.add(path);
  return null;
}

/** Checks `value` against `schema`, one problem per offending location. */
function checkValue(schema: Schema, value: unknown, path: string, walk: Walk, owner: Owner): void {
  if (walk.skip.has(path)) return;
  if (schema.anyOf) {
    const kind = unionKind(schema);
    if (kind) return checkTyped(kind, schema, value, path, walk);
    if (schema.anyOf.some((member) => Value.Check(member as never, value))) return;
    return reportValue(walk, schema, value, path);
  }
  if ('const' in schema) {
    if (value !== schema.const) reportValue(walk, schema, value, path);
    return;
  }
  switch (schema.type) {
    case 'object':
      if (!isObject(value)) return reportValue(walk, schema, value, path);
      return checkObject(schema, value, path, walk, owner);
    case 'array':
      if (!Array.isArray(value)) return reportValue(walk, schema, value, path);
      if (schema.items) value.forEach((item, i) => checkValue(schema.items!, item, `${path}/${i}`, walk, { kind: 'value', name: String(i) }));
      return;
    case 'string':
      if (typeof value !== 'string' || !stringFits(schema, value)) reportValue(walk, schema, value, path);
      return;
    case 'number':
    case 'integer':
      if (typeof value !== 'number' || !numberFits(schema, value)) reportValue(walk, schema, value, path);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') reportValue(walk, schema, value, path);
      return;
    case 'null':
      if (value !== null) reportValue(walk, schema, value, path);
      return;
    default:
      return; // no constraint (e.g. a processor's options values)
  }
}

function checkObject(schema: Schema, value: Record<string, unknown>, path: string, walk: Walk, owner: Owner): void {
  const properties = schema.properties ?? {};
  const patterns = Object.entries(schema.patternProperties ?? {});
  for (const key of Object.keys(value)) {
    const at = `${path}/${pointerKey(key)}`;
    if (Object.hasOwn(properties, key)) {
      checkValue(properties[key], value[key], at, walk, { kind: key === 'branches' && owner.kind === 'pipeline' ? 'branches' : 'value', name: key });
      continue;
    }
    const pattern = patterns.find(([p]) => regex(p).test(key));
    if (pattern) {
      checkValue(pattern[1], value[key], at, walk, { kind: owner.kind === 'branches' ? 'branch' : 'value', name: key });
      continue;
    }
    if (schema.additionalProperties === true || schema.additionalProperties === undefined) continue;
    if (typeof schema.additionalProperties === 'object') {
      checkValue(schema.additionalProperties, value[key], at, walk, { kind: 'value', name: key });
      continue;
    }
    if (patterns.length > 0) {
      // A keyed collection (the branches): the key itself is what is wrong.
      const words = patterns.map(([p]) => stringText({ type: 'string', pattern: p })).join(' or ');
      const noun = owner.kind === 'branches' ? 'a branch name' : 'a key';
      report(walk, { path: at, message: `${quote(key)} is not allowed as ${noun}; use ${words}`, found: key, allowed: words });
      // Still check what it holds, so fixing the name does not reveal a second round of problems.
      checkValue(patterns[0][1], value[key], at, walk, { kind: owner.kind === 'branches' ? 'branch' : 'value', name: key });
      continue;
    }
    report(walk, unknownKey(owner, key, Object.keys(properties), at));
  }
  for (const key of schema.required ?? []) {
    if (value[key] !== undefined) continue;
    const allowed = allowedText(properties[key]);
    const who = owner.kind === 'pipeline' ? 'a pipeline' : owner.kind === 'branch' ? `branch ${quote(owner.name)}` : owner.kind === 'value' ? 'it' : quote(owner.name);
    report(walk, { path: `${path}/${pointerKey(key)}`, message: `missing; ${who} needs ${quote(key)} (${allowed})`, allowed });
  }
}

function unknownKey(owner: Owner, key: string, known: string[], path: string): PipelineProblem {
  const options = owner.kind === 'stage' || owner.kind === 'sink' ? known.filter((k) => k !== 'type') : known;
  const hint = nearest(key, options);
  const what =
    owner.kind === 'stage' || owner.kind === 'sink'
      ? `unknown option ${quote(key)} for ${owner.kind} ${quote(owner.name)}`
      : `unknown property ${quote(key)} of ${owner.kind === 'pipeline' ? 'a pipeline' : owner.kind === 'branch' ? `branch ${quote(owner.name)}` : quote(owner.name)}`;
  if (options.length === 0) return { path, message: `${what}, which takes no options`, found: key, allowed: 'no options' };
  const allowed = options.join(', ');
  return { path, message: `${what}; allowed: ${allowed}${hint ? ` (${hint})` : ''}`, found: key, allowed, ...(hint ? { hint } : {}) };
}

/** A stage or sink: pick the member by its `type`, then check its options against that member only. */
function checkTyped(kind: 'stage' | 'sink', schema: Schema, value: unknown, path: string, walk: Walk): void {
  if (!isObject(value)) return reportValue(walk, schema, value, path);
  const members = schema.anyOf!;
  const builtins: readonly string[] = kind === 'stage' ? BUILTIN_STAGE_TYPES : SINK_TYPES;
  const type = value.type;
  const typePath = `${path}/type`;
  if (walk.skip.has(typePath)) return;
  if (type === undefined) {
    const allowed = `one of ${builtins.join(', ')}`;
    report(walk, { path: typePath, message: `missing; a ${kind} needs "type" (${allowed})`, allowed });
    return;
  }
  const member = members.find((m) => m.properties?.type?.const === type);
  if (member) return checkValue(member, value, path, walk, { kind, name: type as string });
  if (kind === 'stage' && typeof type === 'string' && walk.custom.includes(type) && regex(customPattern).test(type)) return; // options are the module's to check
  const known = kind === 'stage' ? [...BUILTIN_STAGE_TYPES, ...walk.custom] : [...SINK_TYPES];
  const allowed = `one of ${known.join(', ')}`;
  const hint = nearest(type, known);
  let note = '';
  if (kind === 'stage' && typeof type === 'string') {
    note = !regex(customPattern).test(type)
      ? ', or a registered custom stage (lower-case letters, digits, "-")'
      : walk.custom.length === 0
        ? '; custom stages need their module registered first'
        : '';
  }
  const found = typeof type === 'string' ? quote(type) : foundText(type, { type: 'string' });
  report(walk, {
    path: typePath,
    message: `${found} is not a ${kind} type; use ${allowed}${hint ? ` (${hint})` : ''}${note}`,
    found: foundValue(type),
    allowed,
    ...(hint ? { hint } : {}),
  });
}

function reportValue(walk: Walk, schema: Schema, value: unknown, path: string): void {
  const allowed = allowedText(schema);
  const consts = (schema.anyOf ?? []).map((m) => m.const).filter((c): c is string => typeof c === 'string');
  const hint = consts.length > 0 ? nearest(value, consts) : '';
  report(walk, {
    path,
    message: `${foundText(value, schema)} is not allowed; use ${allowed}${hint ? ` (${hint})` : ''}`,
    found: foundValue(value),
    allowed,
    ...(hint ? { hint } : {}),
  });
}

/** Rules the schema cannot say: the chain form, sink counts, denoise at 48 kHz. Checked wherever the structure allows. */
function checkSemantics(doc: unknown, walk: Walk): void {
  if (!isObject(doc)) return;
  const single = doc.stages !== undefined || doc.sinks !== undefined;
  if (single && doc.branches !== undefined) {
    report(walk, { path: '/branches', message: 'use either "stages"/"sinks" (one chain) or "branches", not both', hint: 'move the chain into a branch' });
  }
  if (!single && doc.branches === undefined) {
    report(walk, { path: '', message: 'a pipeline needs "stages" and "sinks", or "branches"', allowed: '"stages" and "sinks", or "branches"' });
  }
  const channels = doc.channels === 2 ? 2 : 1;
  const pipelineName = typeof doc.name === 'string' ? doc.name : 'pipeline';
  if (isObject(doc.branches)) {
    const names = Object.keys(doc.branches);
    if (names.length === 0 && !single) report(walk, { path: '/branches', message: 'needs at least one branch', allowed: 'an object of one or more named branches' });
    for (const name of names) {
      const b = doc.branches[name];
      if (isObject(b)) checkBranch(b.stages, b.sinks, `/branches/${pointerKey(name)}`, channels, walk, { pipeline: pipelineName, branch: name, multiple: names.length > 1 });
    }
  } else if (single) {
    // absent sinks: the "at least one" rule words it
    checkBranch(doc.stages, doc.sinks ?? [], '', channels, walk, { pipeline: pipelineName, branch: 'main', multiple: false });
  }
}

function checkBranch(stages: unknown, sinks: unknown, base: string, channels: 1 | 2, walk: Walk, names: RecordNameContext): void {
  if (Array.isArray(stages)) {
    const flow = { rate: DECODE_RATE, channels, sampleFormat: 'f32' as 'f32' | 's16' };
    stages.forEach((stage, i) => {
      // Not an automatic resample: the cost of every stage stays visible in the pipeline.
      if (isObject(stage) && stage.type === 'denoise' && flow.rate !== DECODE_RATE) {
        const hint = 'move "denoise" before the "resample" stage';
        report(walk, {
          path: `${base}/stages/${i}`,
          message: `denoise needs 48000 Hz audio but gets ${flow.rate} Hz here; ${hint}`,
          found: flow.rate,
          allowed: '48000 Hz input',
          hint,
        });
      }
      if (isObject(stage)) checkAtRate(stage, `${base}/stages/${i}`, flow.rate, walk);
      step(flow, stage);
    });
  }
  if (Array.isArray(sinks)) {
    if (sinks.length === 0) {
      report(walk, { path: `${base}/sinks`, message: 'a branch needs at least one sink ("record", "stats" or "processor")', found: [], allowed: 'one or more sinks' });
    }
    sinks.forEach((sink, i) => {
      if (!isObject(sink) || sink.type !== 'record') return;
      for (const key of ['directory', 'template'] as const) {
        const text = sink[key];
        if (typeof text !== 'string') continue;
        for (const [, name] of text.matchAll(/\{([^}]*)\}/g)) {
          if ((RECORD_PLACEHOLDERS as readonly string[]).includes(name)) continue;
          const allowed = RECORD_PLACEHOLDERS.map((p) => `{${p}}`).join(', ');
          report(walk, {
            path: `${base}/sinks/${i}/${key}`,
            message: `{${name}} is not a placeholder; use ${allowed}${nearest(name, RECORD_PLACEHOLDERS) ? ` (${nearest(name, RECORD_PLACEHOLDERS)})` : ''}`,
            found: `{${name}}`,
            allowed,
          });
        }
      }
      checkRecordNames(sink, `${base}/sinks/${i}`, names, walk);
    });
    const records = sinks.filter((s) => isObject(s) && s.type === 'record').length;
    if (records > 1) {
      report(walk, {
        path: `${base}/sinks`,
        message: 'at most one "record" sink per branch; add a branch for a second recording',
        found: `${records} record sinks`,
        allowed: 'at most one "record" sink',
        hint: 'add a branch for a second recording',
      });
    }
  }
}

interface RecordNameContext {
  pipeline: string;
  branch: string;
  /** Several branches: generated names get "-{branch}" appended. */
  multiple: boolean;
}

const RECORD_NAME_RULE = 'names whose every directory and file name starts with a letter, digit, "_" or "-", has at most 128 characters, and at most 4 subdirectory levels';

/**
 * A record sink's `directory` and `template` must make names the recordings
 * store accepts (the very rule it applies: `recordingNameProblem`), or every
 * session would start without a recording. Filled with values that stand for
 * any session; only checked once both pass the schema, so a problem is
 * reported once.
 */
function checkRecordNames(sink: Record<string, unknown>, path: string, names: RecordNameContext, walk: Walk): void {
  const parts: { directory?: string; template?: string } = {};
  for (const key of ['directory', 'template'] as const) {
    const text = sink[key];
    if (text === undefined) continue;
    const schema = RecordSinkSchema.properties[key];
    if (typeof text !== 'string' || !Value.Check(schema, text)) return;
    // An unknown placeholder was reported above; filling around it would only repeat that.
    if ([...text.matchAll(/\{([^}]*)\}/g)].some(([, n]) => !(RECORD_PLACEHOLDERS as readonly string[]).includes(n))) return;
    parts[key] = text;
  }
  const sample = `${fillRecordingName(parts, sampleRecordingVars(names.pipeline, names.branch), names.multiple)}.wav`;
  const problem = recordingNameProblem(sample);
  if (!problem) return;
  const directorySegments = sample.split('/').length - 1;
  const key = problem.segment === -1 || problem.segment < directorySegments ? 'directory' : 'template';
  const text = parts[key];
  report(walk, {
    path: `${path}/${key}`,
    message: `${text === undefined ? `the default ${key}` : excerpt(text)} makes recording names like "${sample}" that can never be used: ${problem.message}`,
    ...(text === undefined ? {} : { found: text }),
    allowed: RECORD_NAME_RULE,
  });
}

/**
 * What a stage factory would refuse when the stream starts, given the rate the
 * stage gets: a filter frequency at or above Nyquist, a frame duration that is
 * not whole samples, the two forms of "bandpass". Reported now, with the rest.
 */
function checkAtRate(stage: Record<string, unknown>, path: string, rate: number, walk: Walk): void {
  const nyquist = rate / 2;
  const belowNyquist = (key: string) => {
    const v = stage[key];
    if (typeof v !== 'number' || !(v > 0) || v < nyquist) return;
    const allowed = `a number above 0 and below ${nyquist} (half the ${rate} Hz this stage gets)`;
    report(walk, { path: `${path}/${key}`, message: `${v} is not allowed; use ${allowed}`, found: v, allowed });
  };
  switch (stage.type) {
    case 'highpass':
    case 'lowpass':
    case 'notch':
      return belowNyquist('frequency');
    case 'bandpass': {
      const centre = stage.frequency !== undefined || stage.q !== undefined;
      const edges = stage.lowFrequency !== undefined || stage.highFrequency !== undefined;
      const allowed = '"frequency" (and optionally "q"), or "lowFrequency" and "highFrequency"';
      if (centre === edges) {
        report(walk, { path, message: `"bandpass" needs either ${allowed}; it got ${centre ? 'both forms' : 'neither'}`, allowed });
        return;
      }
      if (centre) return belowNyquist('frequency');
      for (const [key, other] of [['lowFrequency', 'highFrequency'], ['highFrequency', 'lowFrequency']] as const) {
        if (stage[key] === undefined) {
          report(walk, { path: `${path}/${key}`, message: `missing; "bandpass" with "${other}" needs "${key}" too`, allowed: 'a number of Hz above 0' });
        }
      }
      belowNyquist('lowFrequency');
      belowNyquist('highFrequency');
      const { lowFrequency: low, highFrequency: high } = stage;
      if (typeof low === 'number' && typeof high === 'number' && low > 0 && high > 0 && high <= low) {
        const allowed = `a number above "lowFrequency" (${low})`;
        report(walk, { path: `${path}/highFrequency`, message: `${high} is not allowed; use ${allowed}`, found: high, allowed, hint: 'swap the two edges' });
      }
      return;
    }
    case 'reframe': {
      const ms = stage.durationMs;
      if (typeof ms !== 'number' || !REFRAME_DURATIONS.includes(ms)) return;
      const samples = (ms * rate) / 1000;
      if (Number.isInteger(samples)) return;
      const whole = REFRAME_DURATIONS.filter((d) => Number.isInteger((d * rate) / 1000));
      const allowed = whole.length > 0 ? choices(whole) : 'a rate like 16000 or 48000 first (resample)';
      report(walk, {
        path: `${path}/durationMs`,
        message: `${ms} ms is ${samples} samples at the ${rate} Hz this stage gets, not a whole number; use ${allowed}`,
        found: ms,
        allowed,
      });
      return;
    }
  }
}

const REFRAME_DURATIONS = (ReframeStageSchema.properties.durationMs as unknown as Schema).anyOf!.map((m) => m.const as number);

// ---------------------------------------------------------------------------
// Words: what is allowed, what was found
// ---------------------------------------------------------------------------

const customPattern = (CustomStageSchema.properties.type as unknown as Schema).pattern!;

/** How the patterns of the schema read in a message (the patterns stay in the schema; only their wording is here). */
const PATTERN_WORDS = new Map<string, string>([
  [(PipelineSchema.properties.name as unknown as Schema).pattern!, 'letters, digits, "_" and "-", starting with a letter or digit'],
  [customPattern, 'lower-case letters, digits and "-", starting with a letter, not a built-in type'],
  [(RecordSinkSchema.properties.directory as unknown as Schema).pattern!, 'a relative path of letters, digits, "_", "-", ".", "/" and {placeholders}, without a leading "/" or "." and ".." segments'],
  [(RecordSinkSchema.properties.template as unknown as Schema).pattern!, 'letters, digits, "_", "-", "." and {placeholders}'],
]);

function unionKind(schema: Schema): 'stage' | 'sink' | undefined {
  const types = (schema.anyOf ?? []).map((m) => m.properties?.type?.const);
  if (types.includes('denoise')) return 'stage';
  if (types.includes('record')) return 'sink';
  return undefined;
}

/** What `schema` accepts, in words. */
function allowedText(schema: Schema | undefined): string {
  if (!schema) return 'nothing';
  if (schema.anyOf) {
    const kind = unionKind(schema);
    if (kind === 'stage') return 'a stage object such as { "type": "denoise" }';
    if (kind === 'sink') return 'a sink object such as { "type": "stats" }';
    if (schema.anyOf.every((m) => 'const' in m)) return choices(schema.anyOf.map((m) => m.const));
    return schema.anyOf.map(allowedText).join(' or ');
  }
  if ('const' in schema) return JSON.stringify(schema.const);
  switch (schema.type) {
    case 'integer':
    case 'number':
      return rangeText(schema);
    case 'string':
      return stringText(schema);
    case 'boolean':
      return 'true or false';
    case 'null':
      return 'null';
    case 'array': {
      const kind = schema.items ? unionKind(schema.items) : undefined;
      return kind ? `a list of ${kind}s, e.g. [{ "type": "${kind === 'stage' ? 'denoise' : 'stats'}" }]` : 'a list';
    }
    case 'object':
      if (schema === (PipelineSchema as unknown)) return 'a pipeline object: { "name": …, "stages": […], "sinks": […] } or { "name": …, "branches": { … } }';
      if (schema === (BranchSchema as unknown)) return 'a branch object: { "stages": […], "sinks": […] }';
      if (Object.values(schema.patternProperties ?? {}).includes(BranchSchema as unknown as Schema)) return 'an object of named branches';
      return 'an object';
    default:
      return 'any JSON value';
  }
}

function choices(values: unknown[]): string {
  const texts = values.map((v) => JSON.stringify(v));
  return texts.length === 1 ? texts[0] : texts.length === 2 ? `${texts[0]} or ${texts[1]}` : `one of ${texts.join(', ')}`;
}

function rangeText(s: Schema): string {
  const noun = s.type === 'integer' ? 'an integer' : 'a number';
  const low = s.minimum !== undefined ? { n: s.minimum, open: false } : s.exclusiveMinimum !== undefined ? { n: s.exclusiveMinimum, open: true } : undefined;
  const high = s.maximum !== undefined ? { n: s.maximum, open: false } : s.exclusiveMaximum !== undefined ? { n: s.exclusiveMaximum, open: true } : undefined;
  if (low && high && !low.open && !high.open) return `${noun} from ${low.n} to ${high.n}`;
  const parts = [low && (low.open ? `above ${low.n}` : `of at least ${low.n}`), high && (high.open ? `below ${high.n}` : `of at most ${high.n}`)].filter(Boolean);
  return parts.length ? `${noun} ${parts.join(' and ')}` : noun;
}

function stringText(s: Schema): string {
  const min = s.minLength ?? 0;
  const length =
    s.maxLength !== undefined ? (min > 0 ? ` of ${min}–${s.maxLength} characters` : ` of at most ${s.maxLength} characters`) : min > 1 ? ` of at least ${min} characters` : min === 1 ? ' (not empty)' : '';
  if (s.pattern === undefined) return `a string${length}`;
  const words = PATTERN_WORDS.get(s.pattern) ?? `matching /${s.pattern}/`;
  return `a string${length}: ${words}`;
}

function stringFits(s: Schema, v: string): boolean {
  if (s.minLength !== undefined && v.length < s.minLength) return false;
  if (s.maxLength !== undefined && v.length > s.maxLength) return false;
  return s.pattern === undefined || regex(s.pattern).test(v);
}

function numberFits(s: Schema, v: number): boolean {
  if (!Number.isFinite(v)) return false;
  if (s.type === 'integer' && !Number.isInteger(v)) return false;
  if (s.minimum !== undefined && v < s.minimum) return false;
  if (s.maximum !== undefined && v > s.maximum) return false;
  if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) return false;
  if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum) return false;
  return true;
}

/** The JSON types a schema accepts; undefined when any. */
function typesOf(s: Schema): Set<string> | undefined {
  if (s.anyOf) {
    const all = new Set<string>();
    for (const m of s.anyOf) {
      const t = typesOf(m);
      if (!t) return undefined;
      t.forEach((x) => all.add(x));
    }
    return all;
  }
  if ('const' in s) return new Set([jsonType(s.const)]);
  if (s.type === 'integer') return new Set(['number']);
  return s.type ? new Set([s.type]) : undefined;
}

function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

const ARTICLE: Record<string, string> = { string: 'a string', number: 'a number', boolean: 'a boolean', array: 'an array', object: 'an object' };

/** The found value for a message: short JSON, with its type when that is what is wrong. */
function foundText(v: unknown, s: Schema): string {
  if (v === undefined) return 'undefined';
  const type = jsonType(v);
  if (typeof v === 'string' && v.length > 40) return `${excerpt(v)} (a string of ${v.length} characters)`;
  const expected = typesOf(s);
  const wrongType = expected !== undefined && !expected.has(type) && type !== 'null';
  return wrongType ? `${excerpt(v)} (${ARTICLE[type] ?? type})` : excerpt(v);
}

/** The `found` member: the value itself when small, else a shortened JSON text of it. */
function foundValue(v: unknown): unknown {
  if (typeof v === 'string') return v.length <= 200 ? v : `${v.slice(0, 199)}…`;
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    return excerpt(v, 200);
  }
  return text === undefined || text.length <= 200 ? v : `${text.slice(0, 199)}…`;
}

function excerpt(v: unknown, max = 40): string {
  if (typeof v === 'string' && v.length > max - 2) return JSON.stringify(`${v.slice(0, max - 3)}…`);
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = Object.prototype.toString.call(v);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 59)}…` : s);
}

function errorText(e: unknown): string {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return 'unknown error';
  }
}

/** `did you mean "…"?` for the closest name within a few edits, or ''. */
function nearest(word: unknown, options: readonly string[]): string {
  if (typeof word !== 'string' || word.length > 64) return ''; // a huge string is no typo, and Levenshtein is quadratic
  let best = '';
  let bestD = Infinity;
  for (const o of options) {
    const d = levenshtein(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best && bestD <= Math.max(2, Math.floor(best.length / 3)) ? `did you mean ${quote(best)}?` : '';
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

const regexes = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let r = regexes.get(pattern);
  if (!r) regexes.set(pattern, (r = new RegExp(pattern)));
  return r;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A key as a JSON Pointer segment (RFC 6901). */
function pointerKey(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
