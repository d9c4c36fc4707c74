/**
 * Option checks shared by the built-in stages. Options are checked when the
 * stage is created, never while audio flows, and each error names the stage and
 * the option (piscina's convention): TypeError for a missing or mistyped option
 * or an unknown key, RangeError for a value of the right type out of range.
 */
import type { StageSpec } from './types.js';

/**
 * Rejects keys a stage does not know. A misspelt option (`samplerate`) would
 * otherwise be ignored silently and the stage would run with its default.
 */
export function rejectUnknownOptions(spec: StageSpec, allowed: readonly string[]): void {
  for (const key of Object.keys(spec)) {
    if (key !== 'type' && !allowed.includes(key)) {
      throw new TypeError(`${spec.type}: unknown option "${key}"${allowed.length ? `; allowed: ${allowed.join(', ')}` : '; it takes no options'}`);
    }
  }
}

/** Reads an integer option in [min, max]; required when `fallback` is undefined. */
export function integerOption(spec: StageSpec, key: string, min: number, max: number, fallback?: number): number {
  const v = spec[key] ?? fallback;
  if (v === undefined) throw new TypeError(`${spec.type}: option "${key}" is required (integer ${min}–${max})`);
  if (typeof v !== 'number') {
    throw new TypeError(`${spec.type}: option "${key}" must be an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${spec.type}: option "${key}" must be an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v); // JSON.stringify would print NaN and Infinity as null
  return `${JSON.stringify(v) ?? String(v)} (${typeof v})`;
}
