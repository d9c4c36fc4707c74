import type { StageSpec } from './types.js';

/** Stage options are checked up front, naming the option (like piscina's TypeError/RangeError). */
export function rejectUnknownOptions(spec: StageSpec, allowed: readonly string[]): void {
  for (const key of Object.keys(spec)) {
    if (key !== 'type' && !allowed.includes(key)) {
      throw new TypeError(`${spec.type}: unknown option "${key}"${allowed.length ? `; allowed: ${allowed.join(', ')}` : '; it takes no options'}`);
    }
  }
}

export function integerOption(spec: StageSpec, key: string, min: number, max: number, fallback?: number): number {
  const v = spec[key] ?? fallback;
  if (v === undefined) throw new TypeError(`${spec.type}: option "${key}" is required (integer ${min}–${max})`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${spec.type}: option "${key}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}
