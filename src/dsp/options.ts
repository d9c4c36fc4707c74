/**
 * Option checks shared by the built-in stages. Options are checked when the
 * stage is created, never while audio flows, and each error names the stage and
 * the option (piscina's convention): TypeError for a missing or mistyped option
 * or an unknown key, RangeError for a value of the right type out of range.
 */
import type { AudioFormat, StageSpec } from './types.js';

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

/** Reads a finite number option in [min, max]; required when `fallback` is undefined. */
export function numberOption(spec: StageSpec, key: string, min: number, max: number, fallback?: number): number {
  const v = spec[key] ?? fallback;
  if (v === undefined) throw new TypeError(`${spec.type}: option "${key}" is required (number ${min}–${max})`);
  if (typeof v !== 'number') {
    throw new TypeError(`${spec.type}: option "${key}" must be a number from ${min} to ${max}, got ${describe(v)}`);
  }
  // NaN fails both comparisons, so it is tested explicitly; Infinity fails the range.
  if (Number.isNaN(v) || v < min || v > max) {
    throw new RangeError(`${spec.type}: option "${key}" must be a number from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

/**
 * Reads an option that must be one of `values` (strings or numbers);
 * required when `fallback` is undefined. A value of the wrong type is a
 * TypeError, a value of the right type not in the list a RangeError.
 */
export function choiceOption<T extends string | number>(spec: StageSpec, key: string, values: readonly T[], fallback?: T): T {
  const v = spec[key] ?? fallback;
  const list = values.map((x) => JSON.stringify(x)).join(', ');
  if (v === undefined) throw new TypeError(`${spec.type}: option "${key}" is required (one of ${list})`);
  if (typeof v !== typeof values[0]) throw new TypeError(`${spec.type}: option "${key}" must be one of ${list}, got ${describe(v)}`);
  if (!values.includes(v as T)) throw new RangeError(`${spec.type}: option "${key}" must be one of ${list}, got ${describe(v)}`);
  return v as T;
}

/**
 * Checks the input format a factory received: a positive integer sample rate
 * and channel count. Formats come from the previous stage or the stream spec,
 * so a bad one is a bug upstream, reported here before any audio flows.
 */
export function checkInputFormat(type: string, input: AudioFormat): void {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${type}: input format must be an object { sampleRate, channels }`);
  if (!Number.isInteger(input.sampleRate) || input.sampleRate < 1) {
    throw new RangeError(`${type}: input sample rate must be a positive integer, got ${describe(input.sampleRate)}`);
  }
  if (!Number.isInteger(input.channels) || input.channels < 1) {
    throw new RangeError(`${type}: input channels must be a positive integer, got ${describe(input.channels)}`);
  }
}

/** The input format with the given fields changed; `sampleFormat` carries over unless changed. */
export function derivedFormat(input: AudioFormat, changes: Partial<AudioFormat> = {}): AudioFormat {
  const out: AudioFormat = { sampleRate: input.sampleRate, channels: input.channels };
  const sampleFormat = changes.sampleFormat ?? input.sampleFormat;
  if (changes.sampleRate !== undefined) out.sampleRate = changes.sampleRate;
  if (changes.channels !== undefined) out.channels = changes.channels;
  // Left out when absent (= 'f32'), so formats compare equal to plain { sampleRate, channels }.
  if (sampleFormat !== undefined) out.sampleFormat = sampleFormat;
  return out;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v); // JSON.stringify would print NaN and Infinity as null
  return `${JSON.stringify(v) ?? String(v)} (${typeof v})`;
}
