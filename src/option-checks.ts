/**
 * Checks of options every room may make, whatever it configures (the
 * server, the WHIP sender): each failure is `EARSHOT_OPTION_INVALID` with a
 * message that names the option, says what it must be and what it got
 * (`options.maxSessions must be an integer ≥ 1, got -3`), and an unknown
 * option name is refused with the nearest known one (`did you mean …?`).
 * `undefined` always passes (the default applies). The checks of the
 * server's own kinds of values are in core/option-checks.ts.
 */
import { errors } from './errors.js';

/** How a value looks in a message: numbers as written, strings quoted and cut, the rest by kind. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

/** Throws `EARSHOT_OPTION_INVALID`: `options.NAME must be EXPECTED, got VALUE`. */
export function failOption(name: string, expected: string, value: unknown): never {
  throw errors.OPTION_INVALID(name, `must be ${expected}, got ${describeValue(value)}`);
}

export function checkInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    failOption(name, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`, value);
  }
}

export function checkNumber(name: string, value: unknown, min: number, max: number, unit = ''): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !(value >= min && value <= max)) failOption(name, `a number from ${min} to ${max}${unit}`, value);
}

/** A timer length in ms: what Node's timers take (1 ms to 2^31 − 1). */
export function checkMilliseconds(name: string, value: unknown): void {
  checkNumber(name, value, 1, 2 ** 31 - 1, ' (ms)');
}

export function checkBoolean(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') failOption(name, 'true or false', value);
}

export function checkNonEmptyString(name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) failOption(name, 'a non-empty string', value);
}

export function checkOneOf(name: string, value: unknown, allowed: readonly string[]): void {
  if (value !== undefined && (typeof value !== 'string' || !allowed.includes(value))) failOption(name, `one of ${allowed.join(', ')}`, value);
}

/** A callback (or an object the option's doc names, checked by its caller). */
export function checkFunction(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') failOption(name, 'a function', value);
}

export function checkStringArray(name: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) failOption(name, 'an array of strings', value);
  value.forEach((v, i) => {
    if (typeof v !== 'string') failOption(`${name}[${i}]`, 'a string', v);
  });
}

/** An options object: a plain object (or undefined), with no key outside `known` (a misspelt option would silently do nothing). */
export function checkOptionNames(what: string, options: unknown, known: Readonly<Record<string, unknown>>, prefix = ''): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw errors.OPTION_INVALID(prefix.replace(/\.$/, ''), `must be an object (the options of ${what}), got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    const near = Object.keys(known).find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k, key) <= 2);
    throw errors.OPTION_INVALID(`${prefix}${key}`, `is not an option of ${what}${near ? ` (did you mean ${prefix}${near}?)` : ''}`);
  }
}

/** Levenshtein distance, for "did you mean" on a misspelt option name. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}
