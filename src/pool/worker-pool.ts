/**
 * The DSP worker pool: a fixed Piscina pool, one affinity slot per thread, and
 * batching. Frames of all streams pinned to a slot are collected and sent as one
 * task per slot per tick, with at most one task in flight per slot, so task count
 * does not grow with stream count and frames of a stream are processed in
 * order by one worker. Piscina starts and replaces the workers and carries each
 * slot's first task; the rest go through the slot's lane to its worker (a
 * MessagePort pair, task-lane.ts), a third of the cost of a Piscina task.
 *
 * Faults in worker stages never turn into silent loss. A watchdog replaces a
 * worker that makes no progress for `taskTimeoutMs` and ends the stream that
 * was running (the worker records the item and custom stage it is in, in a
 * SharedArrayBuffer the main thread reads); a worker death is blamed the same
 * way, and a stream blamed `maxStreamCrashes` times is quarantined. The other
 * streams of the worker are rebuilt on its replacement and their frames of the
 * lost batch re-sent. `health()` reports it all.
 *
 * What it promises its users (options, stream handles, statistics, health) is
 * pool-api.ts; the packed batches, batch-codec.ts and batch-output.ts; the
 * option ranges, pool-limits.ts. The rest stays here, longer than most files on
 * purpose: batching, the watchdog, the blame of a crash and the rebuild of
 * streams all read and write the same per-slot state (the batch in flight, its
 * streams, the marker); split apart, each piece would have to expose that
 * state to the others.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { AudioFrame, DecodeCounters, EncodedFrame } from '../media/frames.js';
import type { PcmInput } from '../dsp/stream-processor.js';
import { errors, type EarshotError } from '../errors.js';
import { createAffinityBalancer, type SlotQueueOptions, type SpawnQueueOptions } from './affinity-balancer.js';
import { defaultThreads, describeRange, inRange, POOL_OPTION_RANGES } from './pool-limits.js';
import { checkIndexOf, MARKER_IDLE, MARKER_LENGTH, MarkerField, sinceMark, stagePosition } from './protocol.js';
import type { BatchResult, BatchTask, StreamInput, StreamSetup } from './protocol.js';
import { ALL_BRANCHES, ItemFlag, ItemStatus, packInput, type InputItem } from './batch-codec.js';
import { OutputReader } from './batch-output.js';
import { SlotPlacement, streamCost } from './slot-placement.js';
import { stageModuleUrl } from './stage-module.js';
import { newQuietState, quietUpdate, type QuietState } from './quiet-hold.js';
import { TaskLane } from './task-lane.js';
import { threadRunnable, threadSchedMs } from './thread-cpu.js';
import { LatencyHistogram } from '../media/latency-histogram.js';
import type { PoolStream, PoolStreamHandlers, QuarantinedStream, WorkerPoolHealth, WorkerPoolOptions, WorkerPoolStats } from './pool-api.js';

// The pool's contract (options, stream handle and handlers, statistics, health) is in pool-api.ts.
export type { PoolStream, PoolStreamHandlers, QuarantinedStream, WorkerPoolHealth, WorkerPoolOptions, WorkerPoolStats } from './pool-api.js';

interface StreamEntry {
  id: string;
  /** Numeric key of the stream in its worker (the id is `s<key>`). */
  key: number;
  slot: number;
  setup: StreamSetup;
  handlers: PoolStreamHandlers;
  queue: StreamInput[];
  /** Frames the queue may hold before the oldest are dropped (Infinity: a lossless stream, see `openStream`). */
  maxQueued: number;
  needsSetup: boolean;
  closing: boolean;
  closed: boolean;
  /** Ended by the pool (its stages failed, or a worker fault quarantined it), not by its owner: what is pushed after is lost. */
  failed: boolean;
  onClosed?: () => void;
  dropped: number;
  /** Frames lost with failed batches (see `PoolStream.lost`). */
  lost: number;
  /** Its stages failed (threw, or could not be built), not its worker: what it loses from then on is `lostToFailedStage`. */
  stageFailed: boolean;
  /** Of `lost`, those lost to a failed stage (see `PoolStream.lostToFailedStage`). */
  lostToFailedStage: number;
  /** Worker deaths blamed on this stream. */
  crashes: number;
  workers: number[];
  /** The stream's decoder counters, updated in place from every batch. */
  counters: DecodeCounters;
  /**
   * The frames of the stream's item in the batch in flight (a slot has one
   * batch in flight, a stream one slot): kept to re-send them if the batch
   * fails. Given back as the next `queue` once delivered.
   */
  inflight: StreamInput[] | undefined;
  /** The item in flight closes the stream. */
  inflightClose: boolean;
  /** An empty frame list to take the place of `queue` at the next flush (no new array per batch). */
  spareQueue: StreamInput[] | undefined;
  /** The stream's item, rewritten at each flush. */
  readonly item: InputItem;
  /** Frames at the head of `queue` held back as quiet (`quietHoldMs`): they wait for the slot's next batch or the hold's end. */
  held: number;
  /** What the hold rule knows of the stream's last frame (quiet-hold.ts). */
  readonly quiet: QuietState;
  /** `performance.now()` when it was opened (slot placement counts it as unmeasured for a while). */
  readonly openedAt: number;
  /** Its estimated worker load (slot-placement.ts): a floor under the measured load for packing, and what slots are balanced by past it. */
  readonly cost: number;
}

/** What happened to a task whose worker died, was replaced, or failed it. */
interface Fault {
  /** `timeout`: no progress for taskTimeoutMs; `stalled`: never started; `crash`: the worker exited; `failed`: the task was rejected with the worker alive. */
  kind: 'timeout' | 'stalled' | 'crash' | 'failed';
  /** Marker `ITEM` when it happened: the batch item index, a check (`checkMarker`), or `MARKER_IDLE`. */
  item: number;
  /** Marker `STAGE`: position code of the custom stage, 0 if none. */
  stage: number;
  /** Why, in words (Piscina's error, e.g. "worker exited with code: 7"). */
  why: string;
}

/** A task that is in a worker, with what the watchdog needs. */
interface Flight {
  slot: number;
  seq: number;
  marker: Int32Array;
  controller: AbortController;
  dispatchedAt: number;
  /** Set by the watchdog just before it aborts the task (and so terminates the worker). */
  killed?: Fault;
  /** Set when Piscina removes the worker that runs the task (before it rejects the task). */
  workerGone?: boolean;
  /** The lane the task went through; absent when it went as a Piscina task. */
  lane?: TaskLane;
  /** A batch's streams, item by item (a batch sent by `#runSlot` on a lane). */
  entries?: StreamEntry[];
  /** The progress mark the watchdog last saw. */
  seenMark?: number;
  /**
   * Read on the second tick that saw that mark (none yet: undefined): the worker thread's CPU
   * and run-queue times in ms (undefined where the system does not tell), when, and the mark's age then.
   */
  baseline?: { sched: { cpu: number; waiting: number } | undefined; at: number; markAge: number };
  /** Ticks in a row past the limit on which the worker thread was not waiting for a CPU. */
  asleepTicks?: number;
}

/** The rejection of a task that met a fault. */
class WorkerFault extends Error {
  constructor(
    readonly fault: Fault,
    cause: unknown,
  ) {
    super(fault.why, { cause });
  }
}

/**
 * A task the worker has not started this long after dispatch is given up
 * (worker replaced). Generous: it covers a fresh worker's start (~0.1 s, some
 * seconds from the TypeScript sources on a busy machine) and stage module
 * imports; it exists so that an import that never settles cannot stall a
 * slot for good.
 */
const START_LIMIT_MS = 60_000;
/** How long close() lets a start in progress finish before it stops the workers anyway. */
const CLOSE_START_WAIT_MS = 10_000;
/** How soon after a worker's death the pool checks that Piscina replaced it (see #watchWorkerCount). */
const WORKER_CHECK_MS = 1000;
/**
 * Where the worker thread's scheduler times are known (Linux), a task
 * without progress for `taskTimeoutMs` is spared while its thread has had
 * less than the limit of CPU since its last progress and spent most of that
 * time waiting for a CPU (a loaded machine, not a stuck stage), up to this
 * many times the limit. A stage that spins uses the CPU; one that blocks
 * sleeps (no CPU, no waiting for one): both are killed.
 */
const STARVED_WALL_FACTOR = 10;
/** What an item holds between flushes. */
const NO_FRAMES: readonly EncodedFrame[] = Object.freeze([]);
/** Output buffers kept per slot for reuse (a batch that hands back early fills more than one). */
const SPARES = 4;
/** Faults remembered for `health()`. */
const FAULTS_KEPT = 20;

let streamCounter = 0;

export class WorkerPool {
  readonly threads: number;
  readonly #batchIntervalMs: number;
  readonly #earlyOutputMs: number;
  readonly #quietHoldMs: number;
  readonly #maxQueuedFrames: number;
  readonly #piscina: Piscina<BatchTask, BatchResult>;
  readonly #workerOf: (slot: number) => number | undefined;
  readonly #streams = new Map<string, StreamEntry>();
  readonly #slotStreams: Set<StreamEntry>[];
  /** Where new streams go: packed by load at light load, balanced by estimated cost past it (slot-placement.ts). */
  readonly #placement: SlotPlacement;
  /** The task each slot's worker is running (at most one, so a stream's frames stay in order). */
  readonly #flights: Array<Flight | undefined>;
  /** Per slot: the marker its worker writes (a fresh one for each worker, so a dying worker can't touch its successor's). */
  readonly #markers: Int32Array[];
  /** Per slot: reused for every task until the watchdog aborts with it. */
  readonly #controllers: AbortController[];
  /** Per slot: the lane to its worker once one was opened (task-lane.ts); batches go through it while it is open. */
  readonly #lanes: Array<TaskLane | undefined>;
  /** Per slot: its worker died and the replacement is not ready; nothing is sent to the slot meanwhile. */
  readonly #waiting: boolean[];
  /**
   * Slots that were busy at a tick with frames due: those frames have waited a
   * whole tick already, so the slot's next batch leaves when the one in flight
   * lands, not a tick later (at high load a worker then goes from batch to batch
   * instead of idling until the grid point while frames wait).
   */
  readonly #behind: boolean[];
  /** Thread ids of the workers Piscina has ready (started, not removed). */
  readonly #readyWorkers = new Set<number>();
  /** Per slot: consecutive failed batches no stream could be blamed for. */
  readonly #failStreak: number[];
  /** Per slot: output buffers delivered and done with, given back to the worker with the next task (at most SPARES). */
  readonly #spares: ArrayBuffer[][];
  /** Control tasks waiting for their slot's batch to finish. */
  readonly #slotIdle: Array<Array<() => void>>;
  readonly #taskTimeoutMs: number;
  readonly #maxStreamCrashes: number;
  readonly #healthWindowMs: number;
  readonly #watchdogMs: number;
  /** The watchdog's interval while tasks may be in flight; stopped when the pool is idle. */
  #watchdog: NodeJS.Timeout | undefined;
  /**
   * Each slot's batch tick: a one-shot timer armed only while frames, closes
   * or setups are due for that slot, so an idle pool has no timer firing.
   * A slot's ticks fall on a fixed grid of `batchIntervalMs` (as an interval
   * timer's would), so a frame waits half an interval on average, however
   * sparse the traffic. The slots' grids are staggered by an equal share of
   * the interval: workers loaded alike then take their batches in turn
   * rather than all at once, competing less for the cores with each other
   * and with the main thread.
   */
  readonly #timers: Array<NodeJS.Timeout | undefined>;
  readonly #armed: boolean[];
  /** Per slot: the timer that ends the hold of its streams' quiet frames (`quietHoldMs`), while some are held. */
  readonly #holdTimers: Array<NodeJS.Timeout | undefined>;
  readonly #onHoldEnds: Array<() => void>;
  /** Per slot: frames held now, all its streams. */
  readonly #heldFrames: number[];
  /** Each slot's tick callback, made once (a tick is armed up to 200 times a second per slot). */
  readonly #onTicks: Array<() => void>;
  /** The workers are warm and ticks may run. */
  #ticking = false;
  #seq = 0;
  #tasksCompleted = 0;
  #earlyResults = 0;
  #framesHeld = 0;
  #busyMs = 0;
  #startedAt = 0;
  #tasksFailed = 0;
  #tasksTimedOut = 0;
  #workerCrashes = 0;
  #workerRestarts = 0;
  #lastRestartAt: number | null = null;
  #streamsQuarantined = 0;
  #framesLost = 0;
  #streamsOpened = 0;
  /** Recent faults for `health()`, oldest first. */
  readonly #faults: Array<{ at: number; message: string }> = [];
  readonly #quarantined: QuarantinedStream[] = [];
  /** Worker time per batch task, ms. */
  readonly taskTimes = new LatencyHistogram();
  #closed = false;
  #started: Promise<void> | undefined;
  /**
   * close() was called while the workers started: streams may still be opened until they have,
   * by whoever was waiting for `start()` (an `inWorkers` operator holding its first frames).
   */
  #openWhileStarting = false;
  /** Stage module URLs every worker must have loaded (sent with every task). */
  readonly #modules: string[] = [];
  /** Stage types each registered module provides. */
  readonly #moduleTypes = new Map<string, string[]>();
  /** Modules being loaded, by URL. */
  readonly #moduleLoads = new Map<string, Promise<string[]>>();
  /** Workers the pool should have: one per slot, and the spare. */
  readonly #minWorkers: number;
  /** The pending check that the workers were replaced (#watchWorkerCount). */
  #workerCheck: NodeJS.Timeout | undefined;
  /** `close()` has begun (it drains first): no new stream or module is taken. */
  #closing: Promise<void> | undefined;
  /** Callers of `streamsClosed()` waiting for the last open stream to finish. */
  readonly #idleWaiters = new Set<() => void>();

  constructor(options: WorkerPoolOptions = {}) {
    // Ranges: pool-limits.ts, shared with createServer's checks and `earshot serve`.
    const check = <V>(name: keyof typeof POOL_OPTION_RANGES, value: V): V => {
      if (!inRange(POOL_OPTION_RANGES[name], value)) throw new RangeError(`options.${name} must be ${describeRange(POOL_OPTION_RANGES[name])}, got ${String(value)}`);
      return value;
    };
    const threads = check('threads', options.threads ?? defaultThreads());
    const interval = check('batchIntervalMs', options.batchIntervalMs ?? 5);
    const early = check('earlyOutputMs', options.earlyOutputMs ?? 4);
    const hold = check('quietHoldMs', options.quietHoldMs ?? 200);
    const maxQueued = check('maxQueuedFrames', options.maxQueuedFrames ?? 100);
    const taskTimeout = check('taskTimeoutMs', options.taskTimeoutMs ?? 500);
    const maxCrashes = check('maxStreamCrashes', options.maxStreamCrashes ?? 2);
    const spare = options.spareWorker ?? true;
    if (typeof spare !== 'boolean') throw new TypeError(`options.spareWorker must be a boolean, got ${typeof spare}`);
    const healthWindow = check('healthWindowMs', options.healthWindowMs ?? 30_000);
    this.threads = threads;
    this.#batchIntervalMs = interval;
    this.#earlyOutputMs = early;
    this.#quietHoldMs = hold;
    this.#maxQueuedFrames = maxQueued;
    this.#taskTimeoutMs = taskTimeout;
    this.#maxStreamCrashes = maxCrashes;
    this.#healthWindowMs = healthWindow;
    this.#slotStreams = Array.from({ length: threads }, () => new Set());
    this.#placement = new SlotPlacement(threads);
    this.#flights = Array.from({ length: threads }, () => undefined);
    this.#markers = Array.from({ length: threads }, newMarker);
    this.#controllers = Array.from({ length: threads }, () => new AbortController());
    this.#lanes = Array.from({ length: threads }, () => undefined);
    this.#waiting = Array.from({ length: threads }, () => false);
    this.#behind = Array.from({ length: threads }, () => false);
    this.#timers = Array.from({ length: threads }, () => undefined);
    this.#armed = Array.from({ length: threads }, () => false);
    this.#onTicks = Array.from({ length: threads }, (_, slot) => () => this.#tick(slot));
    this.#holdTimers = Array.from({ length: threads }, () => undefined);
    this.#heldFrames = Array.from({ length: threads }, () => 0);
    this.#onHoldEnds = Array.from({ length: threads }, (_, slot) => () => this.#holdEnded(slot));
    this.#failStreak = Array.from({ length: threads }, () => 0);
    this.#slotIdle = Array.from({ length: threads }, () => []);
    this.#spares = Array.from({ length: threads }, () => []);
    const { balancer, workerOf } = createAffinityBalancer();
    this.#workerOf = workerOf;
    this.#minWorkers = threads + (spare ? 1 : 0);
    this.#piscina = new Piscina<BatchTask, BatchResult>({
      ...workerEntry(),
      // Fixed: one worker per slot, plus the spare that no slot is bound to until a worker is lost.
      minThreads: threads + (spare ? 1 : 0),
      maxThreads: threads + (spare ? 1 : 0),
      idleTimeout: Infinity,
      loadBalancer: balancer,
      // Our own bound (one task per slot in flight) replaces maxQueue, which the balancer bypasses.
      concurrentTasksPerWorker: 1,
      // Task times are kept in `taskTimes`; Piscina's own histograms would cost two records per task.
      recordTiming: false,
      // Batches come through each slot's lane (task-lane.ts), whose messages the worker's event
      // loop must receive: Piscina's default makes an idle worker block in Atomics.wait instead.
      atomics: 'disabled',
    });
    this.#piscina.on('error', () => {
      // A worker crashed; its task rejects and the affected streams are rebuilt (see #batchFailed).
    });
    this.#piscina.on('workerDestroy', (worker: { id: number }) => this.#workerGone(worker.id));
    this.#piscina.on('workerCreate', (worker: { id: number }) => this.#workerReady(worker.id));
    // Every tenth of the limit (5–100 ms): a hang is caught at most 10 % (≤ 100 ms) late, and a
    // check is a few Atomics loads per slot.
    this.#watchdogMs = Math.min(100, Math.max(5, taskTimeout / 10));
  }

  /** The worker threads (e.g. to watch their resource use), the idle spare included. */
  get workerThreads(): readonly import('node:worker_threads').Worker[] {
    return this.#piscina.threads;
  }

  /**
   * Starts the tick and pre-warms every worker (the first task on a fresh worker takes ~80 ms). Idempotent.
   * Rejects with `EARSHOT_SHUTTING_DOWN` once `close()` was called on a pool not started.
   */
  start(): Promise<void> {
    if (this.#started) return this.#started;
    if (this.#closing || this.#closed) return Promise.reject(errors.SHUTTING_DOWN('the worker pool was closed before it started'));
    this.#started = this.#warm();
    return this.#started;
  }

  async #warm(): Promise<void> {
    await Promise.all(
      this.#slotStreams.map((_, slot) =>
        this.#run(slot, {}).catch((err: unknown) => {
          throw err instanceof WorkerFault ? errors.INTERNAL(`a DSP worker failed to start: ${err.fault.why}`) : err;
        }),
      ),
    );
    this.#startedAt = performance.now();
    this.#ticking = true;
    this.#schedule();
  }

  /** Arms every slot's tick that is not armed and has something due. */
  #schedule(): void {
    for (let slot = 0; slot < this.threads; slot++) this.#scheduleSlot(slot);
  }

  /** Arms the slot's batch tick for its next grid point if it is not armed and something is due (`due`: the caller knows it is). */
  #scheduleSlot(slot: number, due = false): void {
    if (this.#armed[slot] || !this.#ticking || this.#closed || !(due || this.#anythingDue(slot))) return;
    this.#armed[slot] = true;
    const interval = this.#batchIntervalMs;
    const since = (((performance.now() - this.#startedAt - (slot * interval) / this.threads) % interval) + interval) % interval;
    const timer = setTimeout(this.#onTicks[slot], Math.max(1, Math.round(interval - since)));
    // Open streams keep the process alive (a script awaiting an operator must not exit mid-drain);
    // an idle pool does not.
    if (this.#streams.size === 0) timer.unref();
    this.#timers[slot] = timer;
  }

  #tick(slot: number): void {
    this.#armed[slot] = false;
    if (this.#flushSlot(slot)) this.#scheduleSlot(slot, true);
  }

  /**
   * Frames, a setup or a close wait for the slot. Asked when a batch lands: a
   * tick armed then for nothing would wake the main thread for nothing, once
   * per batch (most batches of quiet streams).
   */
  #anythingDue(slot: number): boolean {
    for (const e of this.#slotStreams[slot]) if (due(e)) return true;
    return false;
  }

  /** Arms the slot's hold timer if it is not armed: quiet frames wait at most `quietHoldMs` for a batch to ride with. */
  #holdSlot(slot: number): void {
    if (this.#holdTimers[slot] !== undefined || this.#closed) return;
    const timer = setTimeout(this.#onHoldEnds[slot], this.#quietHoldMs);
    if (this.#streams.size === 0) timer.unref();
    this.#holdTimers[slot] = timer;
  }

  /**
   * Ends the hold of the stream's held frames: their latency is counted from
   * now, not from their arrival (the wait was chosen, not suffered). Copies
   * carry the new time: the frames themselves also went to whoever listens to
   * the stream's encoded frames. With no frame of the slot held any more, its
   * hold timer is cleared (one wake less). Nothing to do when nothing is held.
   */
  #release(e: StreamEntry, now?: number): void {
    if (e.held === 0) return;
    now ??= performance.now();
    for (let i = 0; i < e.held; i++) e.queue[i] = { ...(e.queue[i] as EncodedFrame), arrival: now };
    this.#heldFrames[e.slot] -= e.held;
    e.held = 0;
    if (this.#heldFrames[e.slot] === 0 && this.#holdTimers[e.slot] !== undefined) {
      clearTimeout(this.#holdTimers[e.slot]);
      this.#holdTimers[e.slot] = undefined;
    }
  }

  /**
   * The hold is over: the slot's held frames leave now, with anything else
   * due (not at the next grid tick: they have waited long enough, and this
   * timer is the wake a tick would have been).
   */
  #holdEnded(slot: number): void {
    this.#holdTimers[slot] = undefined;
    const now = performance.now();
    for (const e of this.#slotStreams[slot]) this.#release(e, now);
    if (!this.#ticking || this.#closed) return;
    if (this.#flushSlot(slot)) this.#scheduleSlot(slot, true);
  }

  /**
   * Opens a stream on a worker. `options.lossless`: never drop a queued frame
   * (for frames the caller already holds, such as a script's file: the queue
   * then waits in memory); otherwise a stream keeps at most `maxQueuedFrames`
   * waiting and drops the oldest (a live stream: the newest audio matters most).
   */
  openStream(setup: StreamSetup, handlers: PoolStreamHandlers, options: { lossless?: boolean } = {}): PoolStream {
    // Also while close() drains: a stream opened then would never be processed, nor its close() resolve.
    if (this.#closed || (this.#closing && !this.#openWhileStarting)) throw errors.SHUTTING_DOWN('WorkerPool is closed: no stream can be opened on it');
    const openedAt = performance.now();
    const cost = streamCost(setup);
    const slot = this.#placement.place(this.#slotStreams, cost, openedAt);
    this.#placement.opened(slot);
    this.#streamsOpened++;
    const key = ++streamCounter;
    const entry: StreamEntry = {
      id: `s${key}`,
      key,
      slot,
      setup,
      handlers,
      queue: [],
      maxQueued: options.lossless === true ? Infinity : this.#maxQueuedFrames,
      needsSetup: true,
      closing: false,
      closed: false,
      failed: false,
      dropped: 0,
      lost: 0,
      stageFailed: false,
      lostToFailedStage: 0,
      crashes: 0,
      workers: [],
      // Every counter from the start, so the object keeps one shape as batches fill it in.
      counters: { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0, framesSkippedSilent: 0 },
      inflight: undefined,
      inflightClose: false,
      spareQueue: undefined,
      item: { key, frames: NO_FRAMES, flags: 0, f32Mask: ALL_BRANCHES, pcm16Mask: 0, opusMask: 0 },
      held: 0,
      quiet: newQuietState(),
      openedAt,
      cost,
    };
    this.#streams.set(entry.id, entry);
    this.#slotStreams[slot].add(entry);
    const isPcm = setup.input !== undefined;
    for (let s = 0; s < this.threads; s++) if (this.#armed[s]) this.#timers[s]?.ref(); // see #scheduleSlot
    this.#scheduleSlot(slot, true);
    const pool = this;
    return {
      id: entry.id,
      get workers() {
        return entry.workers;
      },
      get dropped() {
        return entry.dropped;
      },
      get lost() {
        return entry.lost;
      },
      get lostToFailedStage() {
        return entry.lostToFailedStage;
      },
      push(frame) {
        if (entry.closing) {
          // A stream the pool ended loses what its owner still pushes, until the owner closes it too.
          if (entry.failed) pool.#lose(entry, 1);
          return;
        }
        if (entry.queue.length >= entry.maxQueued) {
          entry.queue.shift(); // drop oldest: the newest audio matters most for a live stream
          entry.dropped++;
          if (entry.held > 0) {
            entry.held--;
            pool.#heldFrames[entry.slot]--;
          }
        }
        // PCM input has no Opus to judge; with no hold, nothing is held.
        const quiet = pool.#quietHoldMs > 0 && !isPcm && quietUpdate(entry.quiet, frame as EncodedFrame);
        if (quiet && entry.held === entry.queue.length) {
          // Nothing else of the stream waits: this one may wait for a batch (of any stream of the slot) to ride with.
          entry.queue.push(frame);
          entry.held++;
          pool.#heldFrames[entry.slot]++;
          pool.#framesHeld++;
          pool.#holdSlot(entry.slot);
          return;
        }
        entry.queue.push(frame);
        pool.#release(entry);
        if (!pool.#armed[entry.slot]) pool.#scheduleSlot(entry.slot, true);
      },
      close() {
        if (entry.closed) return Promise.resolve();
        entry.closing = true;
        pool.#scheduleSlot(entry.slot, true);
        return new Promise<void>((resolve) => {
          const prev = entry.onClosed;
          entry.onClosed = () => {
            prev?.();
            resolve();
          };
        });
      },
    };
  }

  /**
   * Loads a custom stage module (file path or `file:` URL) in every worker and
   * returns the stage types it registered; from then on pipelines and
   * `inWorkers()` can use them by name, and workers that replace a dead one
   * load it too. Rejects with `EARSHOT_STAGE_MODULE_INVALID` if the module
   * fails to import, has the wrong shape or reuses a built-in name; the pool
   * and the workers stay as they were.
   */
  async registerStageModule(pathOrUrl: string | URL): Promise<string[]> {
    if (this.#closed || this.#closing) throw errors.SHUTTING_DOWN('WorkerPool is closed: no stage module can be registered on it');
    const url = stageModuleUrl(pathOrUrl);
    const known = this.#moduleTypes.get(url);
    if (known) return known;
    // The same module asked for again while it loads: one load, both callers get its outcome
    // (two loads would each find the other's types and call it a clash).
    let loading = this.#moduleLoads.get(url);
    if (!loading) {
      loading = this.#loadStageModule(url).finally(() => this.#moduleLoads.delete(url));
      this.#moduleLoads.set(url, loading);
    }
    return loading;
  }

  async #loadStageModule(url: string): Promise<string[]> {
    const results = await Promise.all(
      this.#slotStreams.map((_, slot) =>
        this.#runExclusive(slot, { modules: [...this.#modules, url] }).catch((err: unknown) => {
          if (!(err instanceof WorkerFault)) throw err;
          const why =
            err.fault.kind === 'stalled'
              ? `importing it did not finish within ${START_LIMIT_MS / 1000} s`
              : `importing it ${err.fault.kind === 'crash' ? 'crashed' : 'failed in'} the worker (${err.fault.why})`;
          // The file name only: health() is served publicly.
          this.#recordFault(`stage module ${url.slice(url.lastIndexOf('/') + 1)}: ${why}`);
          throw errors.STAGE_MODULE_INVALID(url, why);
        }),
      ),
    );
    let types: string[] = [];
    for (const r of results) {
      const mine = r.loaded?.find((l) => l.url === url);
      if (!mine) throw errors.INTERNAL(`worker ${r.threadId} did not report loading ${url}`);
      if (mine.error) throw errors.STAGE_MODULE_INVALID(url, mine.error);
      types = mine.types;
    }
    for (const [other, otherTypes] of this.#moduleTypes) {
      const clash = types.find((t) => otherTypes.includes(t));
      if (clash) throw errors.STAGE_MODULE_INVALID(url, `stage type "${clash}" is already provided by ${other}`);
    }
    this.#modules.push(url);
    this.#moduleTypes.set(url, types);
    return types;
  }

  /** Stage types provided by registered modules. */
  get customStageTypes(): string[] {
    return [...this.#moduleTypes.values()].flat();
  }

  /**
   * Builds each setup's stages in a worker and frees them at once: null for a
   * setup that can start, else the reason (e.g. a custom stage's `create`
   * rejected its options). Lets a pipeline fail before any peer uses it.
   */
  async checkSetups(setups: StreamSetup[]): Promise<Array<string | null>> {
    if (this.#closed) throw errors.SHUTTING_DOWN('WorkerPool is closed: no pipeline can be checked on it');
    if (setups.length === 0) return [];
    let result: BatchResult;
    try {
      result = await this.#runExclusive(0, { modules: [...this.#modules], checks: setups });
    } catch (err) {
      // A stage that hangs or kills the worker while being built: that setup can't start; check the others again.
      const index = err instanceof WorkerFault ? checkIndexOf(err.fault.item) : -1;
      if (!(err instanceof WorkerFault) || index < 0 || index >= setups.length) throw err;
      const { text } = describeStage(setups[index], err.fault.stage);
      const problem =
        err.fault.kind === 'timeout'
          ? `${text} was still being created after ${this.#taskTimeoutMs} ms (taskTimeoutMs); its worker was replaced`
          : `${text} crashed its worker while being created (${err.fault.why})`;
      this.#recordFault(`checking a pipeline: ${problem}`);
      const rest = await this.checkSetups(setups.filter((_, i) => i !== index));
      rest.splice(index, 0, problem);
      return rest;
    }
    return result.checks ?? setups.map(() => 'the worker did not check the setup');
  }

  /**
   * Whether the pool is serving normally. `degraded` while a replacement
   * worker starts and for `healthWindowMs` after a worker fault, with the
   * reasons; streams keep flowing either way.
   */
  health(): WorkerPoolHealth {
    const now = Date.now();
    const reasons: string[] = [];
    const restarting = this.#waiting.filter(Boolean).length;
    if (restarting > 0) {
      reasons.push(`${restarting} of ${this.threads} DSP worker${this.threads === 1 ? '' : 's'} restarting after a fault; their streams' frames wait in their queues`);
    }
    for (let i = this.#faults.length - 1; i >= 0; i--) {
      const f = this.#faults[i];
      if (now - f.at >= this.#healthWindowMs) break;
      reasons.push(`${((now - f.at) / 1000).toFixed(1)} s ago: ${f.message}`);
    }
    const quarantined: QuarantinedStream[] = [];
    for (let i = this.#quarantined.length - 1; i >= 0; i--) {
      const q = this.#quarantined[i];
      if (now - Date.parse(q.at) >= this.#healthWindowMs) break;
      quarantined.push({ ...q });
    }
    return {
      status: reasons.length > 0 ? 'degraded' : 'ok',
      reasons,
      workerRestarts: this.#workerRestarts,
      lastRestartAt: this.#lastRestartAt === null ? null : new Date(this.#lastRestartAt).toISOString(),
      quarantined,
    };
  }

  /**
   * Streams open on the pool now (what `stats().streams` reports, without building the rest).
   * @internal for admission; not part of the library's API.
   */
  get streamCount(): number {
    return this.#streams.size;
  }

  /**
   * Resolves true once no stream is open on the pool (each closed by its owner
   * and drained, or ended by the pool), or false after `timeoutMs`; streams
   * opened meanwhile count too. The pool goes on working as usual meanwhile.
   * Before `close()`, a caller that ended its own streams lets chains of
   * streams finish: an RxJS chain of stage operators (`denoise(), gain()`: one
   * stream each) closes each stream only once the one before it has drained,
   * and `close()` cuts off every stream its owner has not closed yet.
   */
  streamsClosed(timeoutMs: number): Promise<boolean> {
    if (this.#streams.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.#idleWaiters.delete(waiter);
        resolve(idle);
      };
      const waiter = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idleWaiters.add(waiter);
    });
  }

  stats(): WorkerPoolStats {
    let queued = 0;
    for (const s of this.#streams.values()) queued += s.queue.length;
    const perThread: Record<string, number> = {};
    this.#slotStreams.forEach((set, slot) => {
      perThread[String(this.#workerOf(slot) ?? `slot${slot}`)] = set.size;
    });
    return {
      threads: this.threads,
      batchIntervalMs: this.#batchIntervalMs,
      earlyOutputMs: this.#earlyOutputMs,
      quietHoldMs: this.#quietHoldMs,
      utilization: this.#startedAt > 0 ? Math.min(1, this.#busyMs / ((performance.now() - this.#startedAt) * this.threads)) : 0,
      busyMs: Math.round(this.#busyMs),
      queuedFrames: queued,
      tasksInFlight: this.#flights.filter((f) => f !== undefined).length,
      tasksCompleted: this.#tasksCompleted,
      earlyResults: this.#earlyResults,
      framesHeld: this.#framesHeld,
      tasksFailed: this.#tasksFailed,
      tasksTimedOut: this.#tasksTimedOut,
      workerCrashes: this.#workerCrashes,
      workerRestarts: this.#workerRestarts,
      streamsQuarantined: this.#streamsQuarantined,
      framesLost: this.#framesLost,
      streams: this.#streams.size,
      streamsOpened: this.#streamsOpened,
      taskMs: {
        p50: round2(this.taskTimes.quantile(0.5)),
        p99: round2(this.taskTimes.quantile(0.99)),
        max: this.taskTimes.count > 0 ? round2(this.taskTimes.max) : null,
      },
      streamsPerThread: perThread,
    };
  }

  /**
   * Drains every stream (processes queued frames), then stops the workers. Idempotent; streams
   * cannot be opened once it is called (`EARSHOT_SHUTTING_DOWN`), except while a start in progress
   * finishes (up to 10 s) and what waited for it runs: an operator holding its first frames.
   */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#openWhileStarting = this.#started !== undefined && !this.#ticking;
      this.#closing = this.#close();
    }
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#openWhileStarting) {
      // Closed while the workers started: let them finish, so that whoever waited for start()
      // (it did before this call, so it hears first) opens its stream and pushes what it holds,
      // which is then drained below; destroying the workers now failed start() and lost those
      // frames. A start that failed has opened nothing.
      // At most CLOSE_START_WAIT_MS: a worker that does not start (it is given a minute) must not hold a
      // shutdown that long; its start then fails as before, and what waited for it hears so.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#started!.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_START_WAIT_MS)))]);
      clearTimeout(timer);
      // Every promise chain waiting on start() runs before the next turn of the event loop.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.#openWhileStarting = false;
    }
    const pending = [...this.#streams.values()].map(
      (e) =>
        new Promise<void>((resolve) => {
          // A stream its owner had not closed: once what it pushed is out, it hears that nothing
          // more will be (its later pushes are dropped), rather than frames vanishing unsaid.
          const unasked = !e.closing;
          e.closing = true;
          const prev = e.onClosed;
          e.onClosed = () => {
            prev?.();
            if (unasked) {
              const why = 'the worker pool was closed; frames pushed after that are not processed';
              safeCall(() => e.handlers.onError(why, errors.SHUTTING_DOWN(why)));
            }
            resolve();
          };
        }),
    );
    this.#flush();
    this.#schedule();
    await Promise.all(pending);
    this.#closed = true;
    clearTimeout(this.#workerCheck);
    for (const t of this.#timers) clearTimeout(t);
    for (const t of this.#holdTimers) clearTimeout(t);
    clearInterval(this.#watchdog);
    for (const lane of this.#lanes) lane?.close('the pool is closing');
    await this.#piscina.destroy();
  }

  /** Sends each idle slot one task with everything due for its streams (a busy slot is marked behind). */
  #flush(): void {
    for (let slot = 0; slot < this.threads; slot++) this.#flushSlot(slot);
  }

  /**
   * Sends the slot one task with everything due for its streams, if it is idle.
   * Returns whether something due had to stay behind (the slot busy or
   * restarting); the slot is then marked behind, and its next batch leaves as
   * soon as the one in flight lands rather than at the next tick.
   */
  #flushSlot(slot: number): boolean {
    const busy = this.#flights[slot] !== undefined || this.#waiting[slot];
    let items: InputItem[] | undefined;
    let entries: StreamEntry[] | undefined;
    let setups: Record<number, StreamSetup> | undefined;
    let pcm: Record<number, PcmInput[]> | undefined;
    for (const e of this.#slotStreams[slot]) {
      if (!waits(e)) continue;
      if (busy) {
        // Held frames alone don't make the slot behind: they wait for a batch anyway.
        if (!due(e)) continue;
        this.#behind[slot] = true;
        return true;
      }
      this.#release(e);
      items ??= [];
      entries ??= [];
      const index = items.length;
      const frames = e.queue;
      // A lossless stream's backlog goes at most maxQueuedFrames a batch (the watchdog's limit is
      // for one stream's share of a batch); the rest follows as soon as this batch lands.
      const rest = frames.length > this.#maxQueuedFrames ? frames.splice(this.#maxQueuedFrames) : undefined;
      if (rest) this.#behind[slot] = true;
      const closing = e.closing && !rest;
      const isPcm = e.setup.input !== undefined;
      const item = e.item;
      item.frames = isPcm ? NO_FRAMES : (frames as EncodedFrame[]);
      item.flags = (closing ? ItemFlag.CLOSE : 0) | (isPcm ? ItemFlag.PCM : 0);
      item.f32Mask = maskOf(e, 'f32');
      item.pcm16Mask = maskOf(e, 'pcm16');
      item.opusMask = maskOf(e, 'opus');
      items.push(item);
      if (isPcm) (pcm ??= {})[index] = frames as PcmInput[];
      if (e.needsSetup) (setups ??= {})[index] = e.setup;
      e.inflight = frames;
      e.inflightClose = closing;
      entries.push(e);
      e.needsSetup = false;
      if (rest) e.queue = rest;
      else {
        e.queue = e.spareQueue ?? [];
        e.spareQueue = undefined;
      }
    }
    if (items && entries) {
      const task: BatchTask = { input: packInput(items) };
      for (const it of items) it.frames = NO_FRAMES; // the entry keeps them (inflight), not the item
      if (setups) task.setups = setups;
      if (pcm) task.pcm = pcm;
      if (this.#spares[slot].length > 0) task.spares = this.#spares[slot].splice(0);
      this.#runSlot(slot, task, entries);
    }
    return false;
  }

  /**
   * Sends a task to the slot's worker under the watchdog. Rejects with a
   * `WorkerFault` when the worker died, was replaced, or failed the task.
   */
  #run(slot: number, task: BatchTask): Promise<BatchResult> {
    const flight = this.#dispatch(slot, task);
    const buffers = transferListOf(task);
    const lane = this.#lanes[slot];
    if (lane?.open) flight.lane = lane;
    const sent = flight.lane ? flight.lane.run(task, buffers) : this.#viaPiscina(slot, flight, task, buffers);
    return sent.then(
      (result) => {
        this.#land(slot, flight);
        return result;
      },
      (err: unknown) => {
        throw this.#failed(flight, err);
      },
    );
  }

  /** A task leaves for the slot's worker: its flight, under the watchdog. */
  #dispatch(slot: number, task: BatchTask): Flight {
    const flight: Flight = { slot, seq: ++this.#seq, marker: this.#markers[slot], controller: this.#controllers[slot], dispatchedAt: performance.now() };
    this.#flights[slot] = flight;
    task.seq = flight.seq;
    if (this.#modules.length > 0 && !task.modules) task.modules = this.#modules;
    if (!this.#watchdog) {
      this.#watchdog = setInterval(() => this.#watch(), this.#watchdogMs);
      this.#watchdog.unref();
    }
    return flight;
  }

  /** A task that failed: counted, its slot free again, and the fault it met. */
  #failed(flight: Flight, err: unknown): WorkerFault {
    const fault = this.#faultOf(flight, err);
    if (fault.kind === 'timeout' || fault.kind === 'stalled') this.#tasksTimedOut++;
    else if (fault.kind === 'crash') this.#workerCrashes++;
    this.#land(flight.slot, flight);
    return new WorkerFault(fault, err);
  }

  /**
   * Sends a task as a Piscina task: the slot's first, and its first after its
   * worker was replaced. It carries the marker, and opens the slot's lane to
   * the worker that runs it.
   */
  #viaPiscina(slot: number, flight: Flight, task: BatchTask, buffers: ArrayBuffer[] | undefined): Promise<BatchResult> {
    task.marker = flight.marker;
    // port1 stays here as the lane; port2 goes to the worker (transferred).
    const channel = new MessageChannel();
    task.lane = channel.port2;
    const transferList = [...(buffers ?? []), channel.port2];
    const queueOptions: SlotQueueOptions = { slot };
    return this.#piscina.run(Object.assign(task, { [Piscina.queueOptionsSymbol]: queueOptions }), { signal: flight.controller.signal, transferList }).then(
      (result) => {
        const worker = this.#piscina.threads.find((t) => t.threadId === result.threadId);
        if (worker && !this.#closed && this.#readyWorkers.has(result.threadId)) {
          this.#lanes[slot]?.close();
          this.#lanes[slot] = new TaskLane(channel.port1, worker);
        } else channel.port1.close();
        return result;
      },
      (err: unknown) => {
        channel.port1.close();
        throw err;
      },
    );
  }

  #land(slot: number, flight: Flight): void {
    if (this.#flights[slot] === flight) this.#flights[slot] = undefined;
    if (this.#watchdog && !this.#flights.some((f) => f !== undefined)) {
      // Nothing left to watch: the watchdog stops until the next task leaves (#dispatch), so it
      // only ever fires for a batch that takes longer than its period.
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
    }
    this.#wake(slot);
  }

  /** What a rejected task met, and with whom: read from the marker its worker left. */
  #faultOf(flight: Flight, err: unknown): Fault {
    if (flight.killed) return flight.killed;
    const why = err instanceof Error ? err.message : String(err);
    // workerDestroy (#workerGone) fires before the dead worker's task is rejected (by Piscina, or by its lane).
    if (!flight.workerGone) return { kind: 'failed', item: MARKER_IDLE, stage: 0, why };
    const m = flight.marker;
    const started = Atomics.load(m, MarkerField.SEQ) === flight.seq;
    const item = started ? Atomics.load(m, MarkerField.ITEM) : MARKER_IDLE;
    const stage = item !== MARKER_IDLE ? Atomics.load(m, MarkerField.STAGE) : 0;
    return { kind: 'crash', item, stage, why };
  }

  /**
   * The watchdog: a task whose worker made no progress (see the marker) for
   * `taskTimeoutMs`, or never started it within START_LIMIT_MS, is aborted;
   * Piscina then terminates that worker and starts another.
   */
  #watch(): void {
    if (!this.#flights.some((f) => f !== undefined)) {
      // No task in flight (also stopped as the last one lands): nothing to watch until the next
      // one (#dispatch starts the interval again). Quiet streams send a batch now and then; a
      // timer between them would wake the main thread 20 times a second for nothing.
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
      return;
    }
    for (let slot = 0; slot < this.threads; slot++) {
      const f = this.#flights[slot];
      if (!f || f.killed) continue;
      const m = f.marker;
      if (Atomics.load(m, MarkerField.SEQ) !== f.seq) {
        if (performance.now() - f.dispatchedAt > START_LIMIT_MS) {
          this.#kill(slot, f, { kind: 'stalled', item: MARKER_IDLE, stage: 0, why: `the worker did not start the task within ${START_LIMIT_MS / 1000} s` });
        }
        continue;
      }
      // ITEM and STAGE before MARK: the worker writes MARK first, so an old MARK means they are still current.
      const item = Atomics.load(m, MarkerField.ITEM);
      if (item === MARKER_IDLE) continue; // between items only for an instant; done and the result on its way
      const stage = Atomics.load(m, MarkerField.STAGE);
      const mark = Atomics.load(m, MarkerField.MARK);
      const tid = Atomics.load(m, MarkerField.TID);
      const now = performance.now();
      if (f.seenMark !== mark) {
        f.seenMark = mark;
        f.baseline = undefined;
        f.asleepTicks = 0;
        continue;
      }
      const elapsed = sinceMark(mark);
      const base = f.baseline;
      if (!base) {
        // The same mark on a second tick: only now read the thread's times from /proc. A worker
        // that moves on between ticks, as a healthy one does, costs no read at all.
        f.baseline = { sched: threadSchedMs(tid), at: now, markAge: elapsed };
        continue;
      }
      if (elapsed < this.#taskTimeoutMs) continue;
      const sched = threadSchedMs(tid);
      // Since that read: CPU used (plus the mark's age then, as if it had all been on a CPU), and
      // time spent runnable but waiting for a CPU.
      const seen = base.sched;
      const used = sched && seen ? sched.cpu - seen.cpu + base.markAge : undefined;
      const waited = sched && seen ? sched.waiting - seen.waiting : 0;
      // Starved, not hung: it got less CPU than the limit, and waits for one (runnable now, or
      // run-queue time that grew: the kernel adds that only when the thread gets a CPU again).
      const waiting = waited >= 0.5 * (now - base.at) || threadRunnable(tid) === true;
      const starved = used !== undefined && used < this.#taskTimeoutMs && waiting && elapsed < this.#taskTimeoutMs * STARVED_WALL_FACTOR;
      // A thread seen asleep once may be between two slices: it is judged asleep on two ticks in a row.
      f.asleepTicks = starved ? 0 : (f.asleepTicks ?? 0) + 1;
      const spinning = used !== undefined && used >= this.#taskTimeoutMs;
      if (used === undefined || spinning || elapsed >= this.#taskTimeoutMs * STARVED_WALL_FACTOR || f.asleepTicks >= 2) {
        const spent = used === undefined ? '' : `, ~${Math.round(Math.min(used, elapsed))} ms of it on a CPU`;
        this.#kill(slot, f, { kind: 'timeout', item, stage, why: `no progress for ${elapsed} ms${spent} (taskTimeoutMs ${this.#taskTimeoutMs})` });
      }
    }
  }

  #kill(slot: number, flight: Flight, fault: Fault): void {
    flight.killed = fault;
    if (flight.lane) {
      // Piscina sees the worker exit, removes it and starts another; the lane then rejects the task.
      void flight.lane.worker.terminate();
      return;
    }
    this.#controllers[slot] = new AbortController();
    flight.controller.abort(new Error(`earshot watchdog: ${fault.why}`));
  }

  /** Piscina removed a worker (it died, or the watchdog had it terminated). */
  #workerGone(id: number): void {
    if (this.#closed) return; // destroy() at close
    this.#workerRestarts++;
    this.#lastRestartAt = Date.now();
    // A worker that exited by itself reports thread id −1 by now (Node clears it on exit):
    // then the lost one is the ready worker no longer among the running threads.
    const running = new Set(this.#piscina.threads.map((t) => t.threadId));
    const lost = id !== -1 ? [id] : [...this.#readyWorkers].filter((w) => !running.has(w));
    for (const worker of lost) this.#readyWorkers.delete(worker);
    let slots = 0;
    for (let slot = 0; slot < this.threads; slot++) {
      const bound = this.#workerOf(slot);
      if (bound === undefined || this.#waiting[slot] || !lost.includes(bound)) continue;
      slots++;
      const flight = this.#flights[slot];
      if (flight) flight.workerGone = true;
      this.#waiting[slot] = true;
      this.#markers[slot] = newMarker();
      // Their state died with the worker: rebuild it on the next one.
      for (const e of this.#slotStreams[slot]) e.needsSetup = true;
      if (!this.#flights[slot]) {
        const n = this.#slotStreams[slot].size;
        this.#recordFault(`worker thread ${bound} exited while idle; its ${n} stream${n === 1 ? '' : 's'} restart on another worker`);
      }
    }
    if (slots === 0) this.#recordFault(`an idle spare worker exited${id === -1 ? '' : ` (thread ${id})`}; another is starting`);
    // A microtask: Piscina removes the worker from its lists after this event.
    queueMicrotask(() => this.#resumeWaiting());
    this.#watchWorkerCount();
  }

  /**
   * Piscina replaces a worker that dies, unless one died while it was still
   * starting: from then on it replaces none (so as not to restart a worker
   * that cannot start, over and over), and the next crash would leave its
   * slot's streams waiting for ever, and `close()` with them. So while the
   * pool has fewer workers than it should, it asks Piscina for one a second:
   * a task only a free worker may run makes Piscina start one.
   */
  #watchWorkerCount(): void {
    if (this.#workerCheck !== undefined || this.#closed) return;
    this.#workerCheck = setTimeout(() => {
      this.#workerCheck = undefined;
      if (this.#closed) return;
      const missing = this.#minWorkers - this.#piscina.threads.length;
      if (missing <= 0) return;
      for (let i = 0; i < missing; i++) {
        const spawn: SpawnQueueOptions = { spawn: true };
        this.#piscina.run(Object.assign({}, { [Piscina.queueOptionsSymbol]: spawn }) as BatchTask).catch(() => {
          // It died too: counted by workerDestroy, and asked for again below.
        });
      }
      this.#recordFault(`${missing} DSP worker${missing === 1 ? ' was' : 's were'} not replaced; starting ${missing === 1 ? 'one' : missing}`);
      this.#watchWorkerCount();
    }, WORKER_CHECK_MS);
    this.#workerCheck.unref();
  }

  #workerReady(id: number): void {
    if (this.#closed) return;
    // Piscina emits this just before it lists the worker as ready: dispatch after, or the
    // balancer would not see it yet.
    queueMicrotask(() => {
      this.#readyWorkers.add(id);
      this.#resumeWaiting();
    });
  }

  /**
   * Lets slots that lost their worker send again, one per ready worker no slot
   * holds (the spare, or a new one); the balancer binds each to such a worker.
   */
  #resumeWaiting(): void {
    if (this.#closed || !this.#waiting.includes(true)) return;
    const held = new Set<number>();
    for (let slot = 0; slot < this.threads; slot++) {
      const bound = this.#workerOf(slot);
      if (!this.#waiting[slot] && bound !== undefined) held.add(bound);
    }
    let free = 0;
    for (const id of this.#readyWorkers) if (!held.has(id)) free++;
    for (let slot = 0; slot < this.threads && free > 0; slot++) {
      if (!this.#waiting[slot]) continue;
      free--;
      this.#waiting[slot] = false;
      this.#wake(slot);
    }
    this.#schedule();
  }

  /**
   * Runs a control task (module load, setup check) on a slot once its batch in
   * flight, if any, is done, and holds batches back meanwhile: one task per
   * worker at a time keeps a stream's frames in order.
   */
  async #runExclusive(slot: number, task: BatchTask): Promise<BatchResult> {
    while (this.#flights[slot] || this.#waiting[slot]) await new Promise<void>((resolve) => this.#slotIdle[slot].push(resolve));
    return this.#run(slot, task);
  }

  #wake(slot: number): void {
    if (this.#slotIdle[slot].length === 0) return; // the usual landing: no one waits (and no empty array)
    const waiters = this.#slotIdle[slot].splice(0);
    for (const w of waiters) w();
  }

  #runSlot(slot: number, task: BatchTask, entries: StreamEntry[]): void {
    const lane = this.#lanes[slot];
    if (lane?.open) {
      // The usual batch, on the slot's lane: no promise chain and no closures (batches run
      // 100–400 times a second per worker). The outcome is handled as #run's would be.
      const flight = this.#dispatch(slot, task);
      flight.lane = lane;
      flight.entries = entries;
      task.earlyOutputMs = this.#earlyOutputMs;
      lane.send(task, transferListOf(task), this.#laneDone, flight, this.#laneEarly);
      return;
    }
    this.#run(slot, task).then(
      (result) => this.#batchLanded(slot, result, entries),
      (err: unknown) => {
        this.#batchFailed(slot, entries, err);
        this.#schedule();
      },
    );
  }

  /** How a batch sent on a lane ended (see `#runSlot`). */
  readonly #laneDone = (flight: Flight, result: BatchResult | undefined, error: Error | undefined): void => {
    const entries = flight.entries!;
    flight.entries = undefined;
    if (error) {
      this.#batchFailed(flight.slot, entries, this.#failed(flight, error));
      this.#schedule();
      return;
    }
    this.#land(flight.slot, flight);
    this.#batchLanded(flight.slot, result!, entries);
  };

  /** Items a long batch finished early (`earlyOutputMs`): delivered now; the batch is still in flight. */
  readonly #laneEarly = (flight: Flight, partial: BatchResult): void => {
    this.#earlyResults++;
    const out = this.#deliver(partial, flight.entries!);
    if (out && this.#spares[flight.slot].length < SPARES && out.onlyCopies()) this.#spares[flight.slot].push(partial.output!);
  };

  #batchLanded(slot: number, result: BatchResult, entries: StreamEntry[]): void {
    this.#tasksCompleted++;
    this.#failStreak[slot] = 0;
    this.#busyMs += result.busyMs;
    this.#placement.busy(slot, result.busyMs);
    this.taskTimes.add(result.busyMs);
    const out = this.#deliver(result, entries);
    // Nothing of a copies-only batch outlives its delivery (see PoolStreamHandlers.onFrames): reuse its buffer.
    if (out && this.#spares[slot].length < SPARES && out.onlyCopies()) this.#spares[slot].push(result.output!);
    if (this.#behind[slot]) {
      this.#behind[slot] = false;
      if (!this.#closed) this.#flushSlot(slot);
    }
    // Only this slot's state changed: any other slot with something due is armed already (a push arms its slot).
    this.#scheduleSlot(slot);
  }

  /**
   * A batch that never came back. The stream the worker was in is blamed
   * (ended for a hang; for a crash, it loses the batch and is quarantined at
   * `maxStreamCrashes`); every other stream of the batch gets its frames back
   * at the head of its queue and is rebuilt on the replacement worker, so it
   * loses nothing. When nobody can be blamed, frames are re-sent once: a
   * second failure in a row loses them (counted) rather than loop forever.
   */
  #batchFailed(slot: number, entries: StreamEntry[], err: unknown): void {
    this.#tasksFailed++;
    const fault: Fault = err instanceof WorkerFault ? err.fault : { kind: 'failed', item: MARKER_IDLE, stage: 0, why: String(err) };
    const culprit = fault.item >= 0 ? entries[fault.item] : undefined;
    const resend = culprit !== undefined || this.#failStreak[slot] === 0;
    this.#failStreak[slot] = culprit !== undefined ? 0 : this.#failStreak[slot] + 1;
    const sent = entries.map((e) => {
      const frames = e.inflight ?? [];
      e.inflight = undefined;
      return frames;
    });
    entries.forEach((e, i) => {
      if (e === culprit || e.closed) return;
      e.needsSetup = true;
      if (resend) this.#requeue(e, sent[i]);
      else this.#lose(e, sent[i].length);
    });
    if (culprit && !culprit.closed) {
      this.#blame(culprit, fault, sent[fault.item].length);
    } else if (fault.kind !== 'failed' || !resend) {
      const what = fault.kind === 'timeout' || fault.kind === 'stalled' ? 'replaced by the watchdog' : fault.kind === 'crash' ? 'crashed' : 'failed a batch';
      this.#recordFault(`worker of slot ${slot} ${what} (${fault.why}) outside any stream's processing; ${entries.length} stream${entries.length === 1 ? '' : 's'} ${resend ? 'rebuilt, frames re-sent' : 'rebuilt, that batch lost'}`);
    }
  }

  /** Puts a failed batch's frames back at the head of the queue, within the queue bound (drop oldest). */
  #requeue(e: StreamEntry, frames: StreamInput[]): void {
    if (frames.length === 0) return;
    this.#release(e); // the held count is of the queue's head, which this replaces
    const queue = frames.concat(e.queue);
    const excess = queue.length - e.maxQueued;
    if (excess > 0) {
      queue.splice(0, excess);
      e.dropped += excess;
    }
    e.queue = queue;
  }

  /** A stream the pool ends: its queued frames are lost (counted), and the slot stops holding them. */
  #dropQueue(e: StreamEntry): void {
    e.failed = true;
    this.#lose(e, e.queue.length);
    this.#release(e); // the slot's count of held frames drops them too
    e.queue = [];
  }

  #lose(e: StreamEntry, frames: number): void {
    e.lost += frames;
    if (e.stageFailed) e.lostToFailedStage += frames;
    this.#framesLost += frames;
  }

  /** The stream the worker was in when it hung or died. */
  #blame(e: StreamEntry, fault: Fault, frames: number): void {
    const { text, type } = describeStage(e.setup, fault.stage);
    this.#lose(e, frames);
    if (fault.kind === 'timeout') {
      // What the watchdog measured, so that a stage killed on a starved machine can be told from a hung one.
      this.#quarantine(e, 'timeout', type, errors.STAGE_TIMEOUT(text, e.id, this.#taskTimeoutMs, fault.why));
      return;
    }
    e.crashes++;
    if (e.crashes >= this.#maxStreamCrashes) {
      this.#quarantine(e, 'crashes', type, errors.STAGE_CRASHED(text, e.id, e.crashes, fault.why));
      return;
    }
    e.needsSetup = true;
    this.#recordFault(
      `${text} of stream ${e.id} crashed its worker (${fault.why}): the stream lost that batch (${frames} frames) and restarts; ` +
        `quarantined at ${this.#maxStreamCrashes} crashes (maxStreamCrashes)`,
    );
  }

  /** Ends a stream for a worker fault: its handler hears why, its queued frames are dropped with it. */
  #quarantine(e: StreamEntry, reason: QuarantinedStream['reason'], stage: string | null, error: EarshotError): void {
    this.#streamsQuarantined++;
    this.#dropQueue(e);
    const message = `${error.code}: ${error.message}`;
    this.#quarantined.push({ stream: e.id, stage, reason, message, at: new Date().toISOString() });
    if (this.#quarantined.length > FAULTS_KEPT) this.#quarantined.shift();
    this.#recordFault(message);
    safeCall(() => e.handlers.onError(message, error));
    this.#finish(e);
  }

  #recordFault(message: string): void {
    this.#faults.push({ at: Date.now(), message });
    if (this.#faults.length > FAULTS_KEPT) this.#faults.shift();
  }

  /**
   * Hands each item's results to its stream; returns the reader of the
   * output, if any. A result covers the batch's items from `first`: to the
   * end, or for a partial one as many as it carries (the rest follow).
   */
  #deliver(result: BatchResult, entries: StreamEntry[]): OutputReader | undefined {
    const out = result.output ? new OutputReader(result.output) : undefined;
    const first = result.first ?? 0;
    const end = result.partial ? Math.min(entries.length, first + (out?.items ?? 0)) : entries.length;
    for (let i = first; i < end; i++) {
      const e = entries[i];
      const frames = e.inflight ?? [];
      e.inflight = undefined;
      // j: the item's place in this output (i: in the batch).
      const j = i - first;
      if (!out || j >= out.items || out.key(j) !== e.key) {
        // Never expected (results come back in item order): don't lose the frames.
        e.needsSetup = true;
        this.#release(e);
        e.queue = frames.concat(e.queue);
        if (out && j < out.items) out.skip(j);
        continue;
      }
      const status = out.status(j);
      if (status === ItemStatus.MISSING) {
        // The worker restarted between batches: resend these frames with the setup.
        e.needsSetup = true;
        this.#release(e);
        e.queue = frames.concat(e.queue);
        out.skip(j);
        continue;
      }
      if (e.workers[e.workers.length - 1] !== result.threadId) e.workers.push(result.threadId);
      const formats = result.formats?.[i];
      if (formats !== undefined) safeCall(() => e.handlers.onFormats?.(formats));
      if (status === ItemStatus.OK && out.hasCounters(j)) {
        // Called directly (no closure for safeCall): this runs for every stream in every batch.
        try {
          e.handlers.onCounters?.(out.counters(j, e.counters));
        } catch (err) {
          warnHandlerThrew(err);
        }
      }
      deliverFrames(out, j, e.handlers);
      // The failed item's frames that its stages had not finished when one threw are lost with it:
      // to the stage, not to a worker fault (the worker goes on).
      if (status === ItemStatus.ERROR) {
        e.stageFailed = true;
        this.#lose(e, Math.max(0, frames.length - (result.processed?.[i] ?? 0)));
      }
      // Delivered: the list becomes the stream's next queue (the frames themselves are let go).
      emptyKeepingCapacity(frames);
      e.spareQueue = frames;
      if (status === ItemStatus.ERROR) {
        const error = result.errors?.[i] ?? 'the stream failed in its worker';
        this.#dropQueue(e);
        safeCall(() => e.handlers.onError(error));
        this.#finish(e);
        continue;
      }
      if (e.inflightClose) this.#finish(e);
    }
    return out;
  }

  #finish(e: StreamEntry): void {
    if (e.closed) return;
    e.closed = true;
    e.closing = true;
    this.#streams.delete(e.id);
    this.#slotStreams[e.slot].delete(e);
    this.#placement.closed(e.slot, e.openedAt);
    if (this.#streams.size === 0) for (const t of this.#timers) t?.unref();
    e.onClosed?.();
    if (this.#streams.size === 0) for (const waiter of [...this.#idleWaiters]) waiter();
  }
}

function newMarker(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(MARKER_LENGTH * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Names the stage a marker's stage code points at, e.g. `stage "hang" (branch 0, stage 1)`;
 * without one (the worker was in a built-in stage or the decoder), the stream's stage types.
 */
function describeStage(setup: StreamSetup, code: number): { text: string; type: string | null } {
  const at = stagePosition(code);
  const spec = at ? setup.branches[at.branch]?.stages[at.stage] : undefined;
  if (at && spec) return { text: `stage "${spec.type}" (branch ${at.branch}, stage ${at.stage})`, type: spec.type };
  const types = [...new Set(setup.branches.flatMap((b) => b.stages.map((s) => s.type)))];
  return { text: types.length > 0 ? `a stage (one of: ${types.join(', ')})` : setup.input ? 'the PCM input' : 'the Opus decoder', type: null };
}

function round2(v: number | null): number | null {
  return v === null ? null : Math.round(v * 100) / 100;
}

/** A stream's branch mask for this batch (see `PoolStreamHandlers.f32Branches`). */
function maskOf(e: StreamEntry, kind: 'f32' | 'pcm16' | 'opus'): number {
  try {
    const h = e.handlers;
    const m = kind === 'f32' ? (h.f32Branches?.() ?? ALL_BRANCHES) : kind === 'pcm16' ? (h.pcm16Branches?.() ?? 0) : (h.opusBranches?.() ?? 0);
    return Number.isInteger(m) ? m & ALL_BRANCHES : kind === 'f32' ? ALL_BRANCHES : 0;
  } catch {
    return kind === 'f32' ? ALL_BRANCHES : 0; // a throwing handler gets everything, as before masks existed
  }
}

/** Hands item `i`'s frames to the stream's handlers: one `onFrame` call per frame, or one `onFrames` call per branch. */
function deliverFrames(out: OutputReader, i: number, handlers: PoolStreamHandlers): void {
  const count = out.frameCount(i);
  if (count === 0) return;
  if (handlers.onFrame) {
    for (let k = 0; k < count; k++) {
      out.next(handlers.sharedZeros === true);
      const { branch, frame, pcm16, complete } = out;
      if (frame!.data.length === 0) {
        // No samples: it only carries a stream's last Opus packets (see worker.ts, finishEncoders).
        if (out.opus) deliverOpus(out, handlers);
        continue;
      }
      try {
        handlers.onFrame(branch, frame!, pcm16, complete);
      } catch (err) {
        warnHandlerThrew(err);
      }
      if (out.opus) deliverOpus(out, handlers);
    }
    return;
  }
  let branch = -1;
  let frames: AudioFrame[] = [];
  let pcm16: Array<Int16Array | undefined> | undefined;
  let complete: boolean[] = [];
  const emit = () => {
    if (frames.length === 0) return;
    const b = branch;
    const f = frames;
    const p = pcm16;
    const c = complete;
    safeCall(() => handlers.onFrames(b, f, p, c));
  };
  for (let k = 0; k < count; k++) {
    out.next(handlers.sharedZeros === true);
    if (out.frame!.data.length === 0) {
      if (out.opus) deliverOpus(out, handlers); // a carrier of Opus packets only, as above
      continue;
    }
    if (out.branch !== branch) {
      emit();
      branch = out.branch;
      frames = [];
      pcm16 = undefined;
      complete = [];
    }
    if (out.pcm16) (pcm16 ??= new Array<Int16Array | undefined>(frames.length))[frames.length] = out.pcm16;
    else if (pcm16) pcm16[frames.length] = undefined;
    frames.push(out.frame!);
    complete.push(out.complete);
    if (out.opus) deliverOpus(out, handlers);
  }
  emit();
}

function deliverOpus(out: OutputReader, handlers: PoolStreamHandlers): void {
  const { branch, opusPosition, opus, opusRepeat, opusEnd } = out;
  if (handlers.onOpus) safeCall(() => handlers.onOpus!(branch, opusPosition, opus!, opusRepeat, opusEnd));
}

/** Whether the stream has something for its worker's next batch: frames (held ones too: they ride with it), its setup, or its close. */
function waits(e: StreamEntry): boolean {
  return e.queue.length > 0 || e.closing || e.needsSetup;
}

/** Whether the stream needs a batch soon: something waits that is not held. */
function due(e: StreamEntry): boolean {
  return e.queue.length > e.held || e.closing || e.needsSetup;
}

/** The buffers a task hands over (transferred, not copied: the main thread keeps the frame objects for re-sending). */
function transferListOf(task: BatchTask): ArrayBuffer[] | undefined {
  return task.input ? (task.spares ? [task.input, ...task.spares] : [task.input]) : undefined;
}

/** A throwing handler must not break delivery to the other streams. */
function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    warnHandlerThrew(err);
  }
}

function warnHandlerThrew(err: unknown): void {
  process.emitWarning(`earshot: a pool stream handler threw: ${(err as Error).message}`);
}

/**
 * Empties a list and keeps its backing store for the next pushes. V8 drops the
 * backing store of an array whose `length` is set to 0, so the first push after
 * it allocates a new one; popping keeps it (a stream's queue is emptied once per
 * batch, so this saves an allocation per stream and batch).
 */
function emptyKeepingCapacity(list: unknown[]): void {
  while (list.length > 0) list.pop();
}

/**
 * Worker file. Under the TypeScript sources (tests, `tsx`), workers start from a
 * bootstrap that registers tsx; from the build from `worker-entry.cjs`. Both
 * are CommonJS and load `worker` by `import()` (worker-entry.cts says why).
 */
function workerEntry(): { filename: string; execArgv?: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    return { filename: fileURLToPath(new URL('./worker-dev.cjs', import.meta.url)), execArgv: [] };
  }
  return { filename: fileURLToPath(new URL('./worker-entry.cjs', import.meta.url)), execArgv: [] };
}
