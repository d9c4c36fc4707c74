/**
 * The wording of pipeline problems: what a schema allows, in words (`an
 * integer from 8000 to 48000`, `a stage object such as { "type": "denoise" }`),
 * what was found (`"16000" (a string)`), and the nearest known name as a
 * hint. The schemas stay the single source of the rules; only their wording
 * is here (number ranges and choices are worded as the stages word them, see
 * dsp/schema-words.ts).
 */
import { choices, jsonType, rangeText, typesOf, type Schema } from '../../dsp/schema-words.js';
import { BranchSchema, CustomStageSchema, PipelineSchema, RecordSinkSchema } from '../schema.js';
import { regex } from './json-values.js';

export { choices } from '../../dsp/schema-words.js';

export const customPattern = (CustomStageSchema.properties.type as unknown as Schema).pattern!;

/** How the patterns of the schema read in a message (the patterns stay in the schema; only their wording is here). */
const PATTERN_WORDS = new Map<string, string>([
  [(PipelineSchema.properties.name as unknown as Schema).pattern!, 'letters, digits, "_" and "-", starting with a letter or digit'],
  [customPattern, 'lower-case letters, digits and "-", starting with a letter, not a built-in type'],
  [(RecordSinkSchema.properties.directory as unknown as Schema).pattern!, 'a relative path of letters, digits, "_", "-", ".", "/" and {placeholders}, without a leading "/" or "." and ".." segments'],
  [(RecordSinkSchema.properties.template as unknown as Schema).pattern!, 'letters, digits, "_", "-", "." and {placeholders}'],
]);

export function unionKind(schema: Schema): 'stage' | 'sink' | undefined {
  const types = (schema.anyOf ?? []).map((m) => m.properties?.type?.const);
  if (types.includes('denoise')) return 'stage';
  if (types.includes('record')) return 'sink';
  return undefined;
}

/** What `schema` accepts, in words. */
export function allowedText(schema: Schema | undefined): string {
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

export function stringText(s: Schema): string {
  const min = s.minLength ?? 0;
  const length =
    s.maxLength !== undefined ? (min > 0 ? ` of ${min}–${s.maxLength} characters` : ` of at most ${s.maxLength} characters`) : min > 1 ? ` of at least ${min} characters` : min === 1 ? ' (not empty)' : '';
  if (s.pattern === undefined) return `a string${length}`;
  const words = PATTERN_WORDS.get(s.pattern) ?? `matching /${s.pattern}/`;
  return `a string${length}: ${words}`;
}

export function stringFits(s: Schema, v: string): boolean {
  if (s.minLength !== undefined && v.length < s.minLength) return false;
  if (s.maxLength !== undefined && v.length > s.maxLength) return false;
  return s.pattern === undefined || regex(s.pattern).test(v);
}

export function numberFits(s: Schema, v: number): boolean {
  if (!Number.isFinite(v)) return false;
  if (s.type === 'integer' && !Number.isInteger(v)) return false;
  if (s.minimum !== undefined && v < s.minimum) return false;
  if (s.maximum !== undefined && v > s.maximum) return false;
  if (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) return false;
  if (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum) return false;
  return true;
}

const ARTICLE: Record<string, string> = { string: 'a string', number: 'a number', boolean: 'a boolean', array: 'an array', object: 'an object' };

/** The found value for a message: short JSON, with its type when that is what is wrong. */
export function foundText(v: unknown, s: Schema): string {
  if (v === undefined) return 'undefined';
  const type = jsonType(v);
  if (typeof v === 'string' && v.length > 40) return `${excerpt(v)} (a string of ${v.length} characters)`;
  const expected = typesOf(s);
  const wrongType = expected !== undefined && !expected.has(type) && type !== 'null';
  return wrongType ? `${excerpt(v)} (${ARTICLE[type] ?? type})` : excerpt(v);
}

/** The `found` member: the value itself when small, else a shortened JSON text of it. */
export function foundValue(v: unknown): unknown {
  if (typeof v === 'string') return v.length <= 200 ? v : `${v.slice(0, 199)}…`;
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    return excerpt(v, 200);
  }
  return text === undefined || text.length <= 200 ? v : `${text.slice(0, 199)}…`;
}

export function excerpt(v: unknown, max = 40): string {
  if (typeof v === 'string' && v.length > max - 2) return JSON.stringify(`${v.slice(0, max - 3)}…`);
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = Object.prototype.toString.call(v);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 59)}…` : s);
}

export function errorText(e: unknown): string {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return 'unknown error';
  }
}

/** `did you mean "…"?` for the closest name within a few edits, or ''. */
export function nearest(word: unknown, options: readonly string[]): string {
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
