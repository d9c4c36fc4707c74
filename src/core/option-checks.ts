/**
 * Checks of the options `createServer`, `WebRTCHandler` and the core take,
 * made before anything starts. Each failure is `EARSHOT_OPTION_INVALID` with a
 * message that names the option, says what it must be and what it got
 * (`options.maxSessions must be an integer ≥ 1, got -3`). `undefined` always
 * passes (the default applies). The checks any room makes (numbers, names,
 * unknown options) are in ../option-checks.ts, and re-exported here.
 */
import { isIP } from 'node:net';
import { errors } from '../errors.js';
import { checkStringArray, describeValue, failOption } from '../option-checks.js';
import { describeRange, inRange, POOL_OPTION_RANGES, type OptionRange } from '../pool/pool-limits.js';

export {
  checkBoolean,
  checkInteger,
  checkMilliseconds,
  checkNonEmptyString,
  checkNumber,
  checkOneOf,
  checkOptionNames,
  checkStringArray,
  describeValue,
} from '../option-checks.js';

/** The unspecified address, however written (0.0.0.0, ::, ::0, 0:0:0:0:0:0:0:0, ::ffff:0.0.0.0): every interface to a socket. */
export function isUnspecifiedAddress(address: string): boolean {
  const v = isIP(address);
  if (v === 4) return address === '0.0.0.0';
  if (v !== 6) return false;
  return /^[0:]*(:ffff:0\.0\.0\.0)?$/i.test(address);
}

/**
 * ICE host candidate addresses: IP addresses (announced as they are, so no names) a client can
 * send to. 0.0.0.0 and :: mean "every interface" to a socket, not to a client: announced, no
 * client could ever connect (an easy slip, copying `--host 0.0.0.0`).
 */
export function checkIpAddresses(name: string, value: unknown): void {
  checkStringArray(name, value);
  (value as string[] | undefined)?.forEach((v, i) => {
    if (v !== '' && !isIP(v)) failOption(`${name}[${i}]`, 'an IP address', v);
    if (isUnspecifiedAddress(v)) {
      failOption(`${name}[${i}]`, 'an address clients can reach, not the unspecified address (it means every interface when listening; to announce every interface\'s address, leave the ICE host addresses out)', v);
    }
  });
}

/**
 * An address to listen on: an IP address, or a host name (RFC 1123: labels of letters, digits and
 * hyphens). Dotted digits that are not an IPv4 address (`999.1.1.1`) would be looked up as a name.
 * Whether the machine has the address is known only when it listens (`EARSHOT_LISTEN_FAILED`).
 */
export function checkListenHost(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value === 'string' && isIP(value) !== 0) return;
  const label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
  const hostName = typeof value === 'string' && value.length <= 253 && new RegExp(`^${label}(?:\\.${label})*\\.?$`, 'i').test(value) && !/^[\d.]+$/.test(value);
  if (!hostName) failOption(name, 'an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost)', value);
}

/** A UDP port range `[min, max]`, 1–65535, min < max. */
export function checkPortRange(name: string, value: unknown): void {
  if (value === undefined) return;
  const ok = Array.isArray(value) && value.length === 2 && value.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) && value[0] < value[1];
  if (ok) return;
  const got = Array.isArray(value) ? `[${value.map(describeValue).join(', ')}]` : describeValue(value);
  throw errors.OPTION_INVALID(name, `must be two ports [min, max] from 1 to 65535 with min < max, got ${got}`);
}

/** pino's levels (`silent` turns logging off). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A level of the built-in logger (pino's, and `silent`). */
export type LogLevel = (typeof LOG_LEVELS)[number];

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
  if (value !== undefined && !inRange(range, value)) failOption(name, describeRange(range), value);
}

/** A pipeline option: a name or path, a pipeline document or a built Pipeline (its contents are checked when it is parsed). */
export function checkPipelineOption(name: string, value: unknown): void {
  if (value === undefined) return;
  if (typeof value === 'string' ? value.trim() === '' : typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw errors.OPTION_INVALID(name, `must be a pipeline name, a JSON file path, a pipeline document or a Pipeline, got ${describeValue(value)}`);
  }
}
