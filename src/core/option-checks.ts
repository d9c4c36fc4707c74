/**
 * Checks of the options `createServer`, `WebRTCHandler` and the core take,
 * made before anything starts. Each failure is `EARSHOT_OPTION_INVALID` with a
 * message that names the option, says what it must be and what it got
 * (`options.maxSessions must be an integer ≥ 1, got -3`). `undefined` always
 * passes (the default applies).
 */
import { isIP } from 'node:net';
import { errors } from '../errors.js';
import { describeRange, inRange, POOL_OPTION_RANGES, type OptionRange } from '../pool/pool-limits.js';

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

function fail(name: string, expected: string, value: unknown): never {
  throw errors.OPTION_INVALID(name, `must be ${expected}, got ${describeValue(value)}`);
}

export function checkInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`, value);
  }
}

export function checkNumber(name: string, value: unknown, min: number, max: number, unit = ''): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !(value >= min && value <= max)) fail(name, `a number from ${min} to ${max}${unit}`, value);
}

/** A timer length in ms: what Node's timers take (1 ms to 2^31 − 1). */
export function checkMilliseconds(name: string, value: unknown): void {
  checkNumber(name, value, 1, 2 ** 31 - 1, ' (ms)');
}

export function checkBoolean(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') fail(name, 'true or false', value);
}

export function checkNonEmptyString(name: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) fail(name, 'a non-empty string', value);
}

export function checkOneOf(name: string, value: unknown, allowed: readonly string[]): void {
  if (value !== undefined && (typeof value !== 'string' || !allowed.includes(value))) fail(name, `one of ${allowed.join(', ')}`, value);
}

export function checkStringArray(name: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) fail(name, 'an array of strings', value);
  value.forEach((v, i) => {
    if (typeof v !== 'string') fail(`${name}[${i}]`, 'a string', v);
  });
}

/** ICE host candidate addresses: IP addresses (announced as they are, so no names). */
export function checkIpAddresses(name: string, value: unknown): void {
  checkStringArray(name, value);
  (value as string[] | undefined)?.forEach((v, i) => {
    if (v !== '' && !isIP(v)) fail(`${name}[${i}]`, 'an IP address', v);
  });
}

/** A UDP port range `[min, max]`, 1–65535, min < max. */
export function checkPortRange(name: string, value: unknown): void {
  if (value === undefined) return;
  const ok = Array.isArray(value) && value.length === 2 && value.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) && value[0] < value[1];
  if (ok) return;
  const got = Array.isArray(value) ? `[${value.map(describeValue).join(', ')}]` : describeValue(value);
  throw errors.OPTION_INVALID(name, `must be two ports [min, max] from 1 to 65535 with min < max, got ${got}`);
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

/** pino's levels (`silent` turns logging off). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The worker pool's options as `createServer` names them (`stageTimeoutMs` is the pool's `taskTimeoutMs`). */
export function checkPoolOptions(options: { threads?: unknown; batchIntervalMs?: unknown; earlyOutputMs?: unknown; quietHoldMs?: unknown; stageTimeoutMs?: unknown; maxStreamCrashes?: unknown; maxQueuedFrames?: unknown }): void {
  checkRange('threads', options.threads, POOL_OPTION_RANGES.threads);
  checkRange('batchIntervalMs', options.batchIntervalMs, POOL_OPTION_RANGES.batchIntervalMs);
  checkRange('earlyOutputMs', options.earlyOutputMs, POOL_OPTION_RANGES.earlyOutputMs);
  checkRange('quietHoldMs', options.quietHoldMs, POOL_OPTION_RANGES.quietHoldMs);
  checkRange('stageTimeoutMs', options.stageTimeoutMs, POOL_OPTION_RANGES.taskTimeoutMs);
  checkRange('maxStreamCrashes', options.maxStreamCrashes, POOL_OPTION_RANGES.maxStreamCrashes);
  checkRange('maxQueuedFrames', options.maxQueuedFrames, POOL_OPTION_RANGES.maxQueuedFrames);
}

/** A value in one of the ranges the pool defines (pool-limits.ts), in the same words as `checkInteger` / `checkNumber`. */
export function checkRange(name: string, value: unknown, range: OptionRange): void {
  if (value !== undefined && !inRange(range, value)) fail(name, describeRange(range), value);
}

/** A pipeline option: a name or path, a pipeline document or a built Pipeline (its contents are checked when it is parsed). */
export function checkPipelineOption(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value === 'string' ? value.trim() === '' : typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw errors.OPTION_INVALID(name, `must be a pipeline name, a JSON file path, a pipeline document or a Pipeline, got ${describeValue(value)}`);
  }
}
