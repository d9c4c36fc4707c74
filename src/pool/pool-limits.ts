/**
 * The ranges of the worker pool's options, defined once: the pool's own
 * constructor (a `RangeError`), `createServer` / `WebRTCHandler` (an
 * `EARSHOT_OPTION_INVALID`, src/core/option-checks.ts) and `earshot serve
 * --threads` all check against these, so a value one accepts the others do too.
 */
import { usableCpus } from './cpu-quota.js';

export interface OptionRange {
  readonly min: number;
  readonly max: number;
  /** Whole numbers only. */
  readonly integer: boolean;
  /** Unit named in messages, e.g. `ms`. */
  readonly unit?: string;
}

/** Worker threads by default: one per CPU this process may use (its affinity, or a container's CPU limit: cpu-quota.ts). */
export function defaultThreads(): number {
  return usableCpus();
}

export const POOL_OPTION_RANGES = {
  /** Up to four per core: more only adds switching, and a typo of 400 should not start 400 threads. */
  threads: { min: 1, max: defaultThreads() * 4, integer: true },
  batchIntervalMs: { min: 1, max: 100, integer: false, unit: 'ms' },
  earlyOutputMs: { min: 0, max: 600_000, integer: false, unit: 'ms' },
  /** Longer holds would make a recording or a live listener trail by seconds for no further saving. */
  quietHoldMs: { min: 0, max: 2000, integer: false, unit: 'ms' },
  /** Below 50 ms a GC pause in a worker could pass for a hang. */
  taskTimeoutMs: { min: 50, max: 600_000, integer: false, unit: 'ms' },
  maxStreamCrashes: { min: 1, max: 100, integer: true },
  maxQueuedFrames: { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true },
  healthWindowMs: { min: 0, max: 86_400_000, integer: false, unit: 'ms' },
} as const satisfies Record<string, OptionRange>;

export function inRange(range: OptionRange, value: unknown): value is number {
  return typeof value === 'number' && (range.integer ? Number.isInteger(value) : !Number.isNaN(value)) && value >= range.min && value <= range.max;
}

/** What a value must be, in the words every option check uses: `an integer from 1 to 100`, `a number from 1 to 100 (ms)`, `an integer ≥ 1`. */
export function describeRange(range: OptionRange): string {
  const kind = range.integer ? 'an integer' : 'a number';
  const span = range.max === Number.MAX_SAFE_INTEGER ? `${kind} ≥ ${range.min}` : `${kind} from ${range.min} to ${range.max}`;
  return range.unit ? `${span} (${range.unit})` : span;
}
