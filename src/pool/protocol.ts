/**
 * Messages between the main thread and pool workers. One task carries the due
 * frames of every stream pinned to that worker (task count does not grow with
 * stream count); encoded
 * Opus packets (or, for streams built with the RxJS operators, PCM frames) go
 * in, PCM frames come out. Frames travel packed in one transferred
 * ArrayBuffer each way (batch-codec.ts), not as cloned objects.
 */
import type { MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import type { StageSpec } from '../dsp/types.js';
import type { AudioFormat, BranchFormat, EncodedFrame } from '../media/frames.js';
import type { PcmInput } from '../dsp/stream-processor.js';

/** What a worker needs to create a stream's state: its input and each branch's stages. */
export interface StreamSetup {
  /** Channels to decode Opus to (ignored for PCM input, which brings its own). */
  channels: 1 | 2;
  branches: Array<{ stages: StageSpec[] }>;
  /** PCM input instead of Opus: the format of the frames pushed. */
  input?: AudioFormat & { channels: 1 | 2 };
}

/** A frame as pushed to a stream: encoded Opus, or PCM for PCM-input streams. */
export type StreamInput = EncodedFrame | PcmInput;

export interface BatchTask {
  /**
   * The items (one per stream with something due) and their Opus frames,
   * packed (batch-codec.ts: `packInput`) and transferred, not cloned. Absent
   * for control tasks (module loads, setup checks, warm-up).
   */
  input?: ArrayBuffer;
  /**
   * Setups by item index, for the items whose worker must (re)create the
   * stream's state: its first batch, or after a worker restart.
   */
  setups?: Record<number, StreamSetup>;
  /** PCM frames by item index, for PCM-input streams (cloned; the RxJS operators' path). */
  pcm?: Record<number, PcmInput[]>;
  /**
   * Output buffers of earlier batches that the main thread is done with
   * (transferred back): the worker keeps a few and packs its outputs into
   * one that is large enough, so steady streams allocate no buffer per batch
   * (nor per partial result of a long batch).
   */
  spares?: ArrayBuffer[];
  /**
   * Stage modules (file URLs) every worker must have imported before it runs
   * the items. Sent with every task, so a worker that replaced a dead one loads
   * them before its first batch; a worker imports each URL once.
   */
  modules?: string[];
  /** Stream setups to build and free at once, reporting whether they can start (no frames). */
  checks?: StreamSetup[];
  /**
   * The slot's watchdog marker: an Int32Array over a SharedArrayBuffer (it stays
   * shared when posted), `MARKER_LENGTH` long, where the worker records what it
   * is running (see `MarkerField`). Lets the main thread tell a hung or crashed
   * worker's culprit from the streams it merely shared the worker with.
   */
  marker?: Int32Array;
  /** Sequence number of the task, stored in the marker once the worker starts running it (after module imports). */
  seq?: number;
  /**
   * For a batch sent on a lane: once the batch has run this long (ms), the
   * worker posts the items it has finished as a partial result, and again
   * each time this long has passed since, so the first streams of a long
   * batch need not wait for the last. Absent: one result at the end.
   */
  earlyOutputMs?: number;
  /**
   * The worker's end of a new lane for the slot (task-lane.ts, transferred):
   * the slot's later tasks come through it instead of Piscina. Sent in a
   * Piscina task, when the slot has no lane to its current worker.
   */
  lane?: MessagePort;
}

export interface ModuleLoadResult {
  url: string;
  /** Stage types the module registered. */
  types: string[];
  /** Why the module could not be used (it registered nothing). */
  error?: string;
}

export interface BatchResult {
  /** Thread id of the worker that ran the batch (for affinity checks and stats). */
  threadId: number;
  /**
   * Every item's status, counters and output frames, in item order, packed
   * (batch-codec.ts: `packOutput`) and transferred back. Absent for control tasks.
   */
  output?: ArrayBuffer;
  /** Why an item failed (its stages could not be created or threw), by item index; the stream is ended. */
  errors?: Record<number, string>;
  /**
   * Of a failed item whose stage threw part-way: how many of its input frames
   * every branch had finished (their output is in `output`, delivered before
   * the error); the item's other frames are lost. Absent: none.
   */
  processed?: Record<number, number>;
  /**
   * The format each branch of a stream delivers, by item index, for the
   * items whose setup the worker built in this batch (a stream's start, or
   * its rebuild after a worker restart): what the stages it built output,
   * custom ones included, so the main thread never has to guess.
   */
  formats?: Record<number, BranchFormat[]>;
  /**
   * Index of the batch item that `output`'s first item is (0 when absent).
   * `errors` and `formats` are indexed by batch item all the same.
   */
  first?: number;
  /**
   * More results of this batch follow (see `BatchTask.earlyOutputMs`): this
   * one carries the items from `first` that were finished when it was posted.
   */
  partial?: boolean;
  /** Milliseconds the worker spent in the batch (in the final result; 0 in a partial one). */
  busyMs: number;
  /** Modules imported for this task (only those imported now, not earlier). */
  loaded?: ModuleLoadResult[];
  /** One entry per `checks` setup: null if it builds, else the error message. */
  checks?: Array<string | null>;
}

/**
 * Fields of the watchdog marker. The worker writes `MARK` before `ITEM` or
 * `STAGE` (Atomics, so in that order for the reader too): a `MARK` older than
 * the limit read after `ITEM` and `STAGE` means no progress since they were set,
 * so the blame lands on the item and stage that were running.
 */
export const MarkerField = {
  /** `seq` of the task the worker is running (or last ran). */
  SEQ: 0,
  /** Index of the batch item being processed; `MARKER_IDLE` outside items; `checkMarker(i)` while checking setup i. */
  ITEM: 1,
  /** Position code (`stageCode`) of the custom stage running now, 0 when none (built-ins are not tracked). */
  STAGE: 2,
  /** `markerClock()` when the worker last made progress: a task, an item, or a custom stage call started. */
  MARK: 3,
  /** Linux thread id of the worker (its CPU time is in /proc/self/task/<tid>/schedstat); 0 when unknown. */
  TID: 4,
} as const;
export const MARKER_LENGTH = 5;
/** `ITEM` value while no item runs (before the first, after the last). */
export const MARKER_IDLE = -1;

/** `ITEM` value while the worker builds the i-th setup of a `checks` task: −2, −3, … */
export function checkMarker(index: number): number {
  return -2 - index;
}

/** The check index an `ITEM` value stands for, or −1 if it is not a check. */
export function checkIndexOf(item: number): number {
  return item <= -2 ? -2 - item : -1;
}

/** Code of the stage at `stages[stage]` of `branches[branch]`: 1 + branch · 65536 + stage (0 means none). */
export function stageCode(branch: number, stage: number): number {
  return 1 + branch * 65536 + stage;
}

/** Branch and stage index of a `stageCode`, or null for 0. */
export function stagePosition(code: number): { branch: number; stage: number } | null {
  if (code <= 0) return null;
  return { branch: Math.floor((code - 1) / 65536), stage: (code - 1) % 65536 };
}

const CLOCK_MASK = 0x3fffffff;
// Per thread: each thread's origin is the wall clock when it started, and
// origin + now() then runs on the shared monotonic clock, so the sum agrees
// across threads (within a millisecond, checked) and, unlike Date.now(),
// never jumps when the system clock is set.
const ORIGIN = performance.timeOrigin;

/** Milliseconds on a clock every thread of the process shares, modulo 2^30 (fits an Int32 field). */
export function markerClock(): number {
  return (ORIGIN + performance.now()) & CLOCK_MASK;
}

/** Milliseconds from `mark` (a `markerClock()` value) to now. */
export function sinceMark(mark: number): number {
  return (markerClock() - mark) & CLOCK_MASK;
}
