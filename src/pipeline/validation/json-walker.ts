/**
 * The walk over a pipeline document: a plain-JSON copy of what was given
 * (values JSON cannot hold are problems, never exceptions), then every value
 * checked against the schema, one problem per offending location, each
 * worded by wording.ts. Stages and sinks are checked against the member their
 * `type` names, so an unknown option is reported as such, with a hint.
 */
import { Value } from '@sinclair/typebox/value';
import type { Schema } from '../../dsp/schema-words.js';
import { BUILTIN_STAGE_TYPES, PROCESSOR_STAGE_TYPE, SINK_TYPES } from '../schema.js';
import { isObject, pointerKey, regex } from './json-values.js';
import { MAX_DEPTH, report, type Owner, type PipelineProblem, type Walk } from './problems.js';
import { allowedText, customPattern, foundText, foundValue, nearest, quote, stringFits, numberFits, stringText, unionKind } from './wording.js';

/**
 * A plain-JSON copy of `value`, reporting what JSON cannot hold (functions,
 * NaN, cycles, class instances, too deep). Such values become `null` in the
 * copy and their path is skipped by the schema walk.
 */
export function toJson(value: unknown, path: string, walk: Walk, depth: number, ancestors: Set<object>): unknown {
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
export function checkValue(schema: Schema, value: unknown, path: string, walk: Walk, owner: Owner): void {
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
  const builtins: readonly string[] = kind === 'stage' ? [...BUILTIN_STAGE_TYPES, PROCESSOR_STAGE_TYPE] : SINK_TYPES;
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
  const known = kind === 'stage' ? [...builtins, ...walk.custom] : [...SINK_TYPES];
  const allowed = `one of ${known.join(', ')}`;
  const hint = nearest(type, known);
  let note = '';
  if (kind === 'stage' && typeof type === 'string') {
    note = !regex(customPattern).test(type)
      ? ', or a registered custom stage (lower-case letters, digits, "-")'
      : walk.custom.length === 0
        ? '; custom stages need their module registered first (earshot serve --stage-module, earshot validate --stage-types; in code: the stageModules option, or customStages of validatePipeline)'
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
