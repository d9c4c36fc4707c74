/**
 * What a JSON schema accepts, in words: `an integer from 8000 to 48000`,
 * `one of 10, 20, 30, 40, 60`, `"f32" or "s16"`. One wording for every
 * place that explains a stage option: the stages' own checks, the RxJS
 * operators and pipeline validation (which adds its own words for the
 * pipeline-level schemas on top).
 */

/** The subset of JSON Schema the pipeline and stage schemas use (TypeBox objects are JSON Schema). */
export interface Schema {
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
  default?: unknown;
}

/** `"a"`, `"a" or "b"`, `one of "a", "b", "c"`. */
export function choices(values: readonly unknown[]): string {
  const texts = values.map((v) => JSON.stringify(v));
  return texts.length === 1 ? texts[0] : texts.length === 2 ? `${texts[0]} or ${texts[1]}` : `one of ${texts.join(', ')}`;
}

/** `an integer from 8000 to 48000`, `a number above 0`, `a number of at most 0`. */
export function rangeText(s: Schema): string {
  const noun = s.type === 'integer' ? 'an integer' : 'a number';
  const low = s.minimum !== undefined ? { n: s.minimum, open: false } : s.exclusiveMinimum !== undefined ? { n: s.exclusiveMinimum, open: true } : undefined;
  const high = s.maximum !== undefined ? { n: s.maximum, open: false } : s.exclusiveMaximum !== undefined ? { n: s.exclusiveMaximum, open: true } : undefined;
  if (low && high && !low.open && !high.open) return `${noun} from ${low.n} to ${high.n}`;
  const parts = [low && (low.open ? `above ${low.n}` : `of at least ${low.n}`), high && (high.open ? `below ${high.n}` : `of at most ${high.n}`)].filter(Boolean);
  return parts.length ? `${noun} ${parts.join(' and ')}` : noun;
}

/** What a stage option's schema accepts, in words (numbers, choices, strings, booleans). */
export function optionWords(s: Schema): string {
  if (s.anyOf) {
    if (s.anyOf.every((m) => 'const' in m)) return choices(s.anyOf.map((m) => m.const));
    return s.anyOf.map(optionWords).join(' or ');
  }
  if ('const' in s) return JSON.stringify(s.const);
  switch (s.type) {
    case 'integer':
    case 'number':
      return rangeText(s);
    case 'boolean':
      return 'true or false';
    case 'string':
      return 'a string';
    default:
      return 'a JSON value';
  }
}

/** The JSON type of a value: `null`, `array`, or its `typeof`. */
export function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** The JSON types a schema accepts; undefined when any. */
export function typesOf(s: Schema): Set<string> | undefined {
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
