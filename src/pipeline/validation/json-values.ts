/**
 * Small helpers on JSON values shared by the walker and the rules.
 */

const regexes = new Map<string, RegExp>();

/** A schema pattern, compiled once. */
export function regex(pattern: string): RegExp {
  let r = regexes.get(pattern);
  if (!r) regexes.set(pattern, (r = new RegExp(pattern)));
  return r;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A key as a JSON Pointer segment (RFC 6901). */
export function pointerKey(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
