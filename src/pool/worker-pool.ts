/**
 * The DSP worker pool: a fixed Piscina pool, one affinity slot per thread, and
 * batching. Frames of all streams pinned to a slot are collected and sent as one
 * task per slot per tick, with at most one task in flight per slot, so task count
 * does not grow with stream count (invariant 3) and frames of a stream are
 * processed in order by one worker (invariant 1).
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { DecodeCounters, ProcessedFrame } from '../dsp/types.js';
import { errors } from '../errors.js';
import { createAffinityBalancer, type SlotQueueOptions } from './affinity-balancer.js';
import type { BatchItem, BatchResult, BatchTask, StreamInput, StreamSetup } from './protocol.js';
import { stageModuleUrl } from './stage-module.js';
import { LatencyHistogram } from '../sinks/latency-histogram.js';

export interface WorkerPoolOptions {
  /**
   * Worker threads. Default 2: on the 2-core reference machine two workers carried
   * the most streams (a third added nothing; `npm run bench` prints the figures).
   * Upper bound: available CPU cores.
   */
  threads?: number;
  /** Milliseconds between batch flushes. Default 5: adds 2.5 ms mean latency, ≤ 200 tasks/s per worker. */
  batchIntervalMs?: number;
  /**
   * Frames a stream may have waiting for its worker before the oldest are
   * dropped (counted in `dropped`). Default 100 (2 s of 20 ms frames).
   */
  maxQueuedFrames?: number;
}

export interface PoolStreamHandlers {
  /** Processed frames of one branch, in media order. */
  onFrames(branch: number, frames: ProcessedFrame[]): void;
  /** Decoder counters after each batch. */
  onCounters?(counters: DecodeCounters): void;
  /** The stream's stages failed in the worker; the stream has been closed there. */
  onError(message: string): void;
}

interface StreamEntry {
  id: string;
  slot: number;
  setup: StreamSetup;
  handlers: PoolStreamHandlers;
  queue: StreamInput[];
  needsSetup: boolean;
  closing: boolean;
  closed: boolean;
  onClosed?: () => void;
  dropped: number;
  workers: number[];
}

/** A stream's handle on the pool. */
export interface PoolStream {
  readonly id: string;
  /** Thread ids that have processed this stream, in order (one entry unless a worker died). */
  readonly workers: readonly number[];
  /** Frames dropped because the stream's worker queue was full. */
  readonly dropped: number;
  /** Queues a frame for the stream's worker: encoded Opus, or PCM for a stream opened with `setup.input`. */
  push(frame: StreamInput): void;
  /** Processes everything queued, frees the worker state, then resolves. */
  close(): Promise<void>;
}

export interface WorkerPoolStats {
  threads: number;
  /** Share of time the workers spent processing batches since the pool started, 0..1. */
  utilization: number;
  /** Milliseconds the workers spent processing batches, all threads. */
  busyMs: number;
  /** Frames waiting for a worker, all streams. */
  queuedFrames: number;
  tasksInFlight: number;
  tasksCompleted: number;
  tasksFailed: number;
  streams: number;
  /** Streams opened since the pool started (each one is a worker hop for its frames). */
  streamsOpened: number;
  /** Worker time per batch task, ms (p50, p99, max). */
  taskMs: { p50: number | null; p99: number | null; max: number | null };
  /** Per worker thread: streams pinned to it. */
  streamsPerThread: Record<string, number>;
}

let streamCounter = 0;

export class WorkerPool {
  readonly threads: number;
  readonly #batchIntervalMs: number;
  readonly #maxQueuedFrames: number;
  readonly #piscina: Piscina<BatchTask, BatchResult>;
  readonly #workerOf: (slot: number) => number | undefined;
  readonly #streams = new Map<string, StreamEntry>();
  readonly #slotStreams: Set<StreamEntry>[];
  readonly #inFlight: boolean[];
  /** Control tasks waiting for their slot's batch to finish. */
  readonly #slotIdle: Array<Array<() => void>>;
  #timer: NodeJS.Timeout | undefined;
  #tasksCompleted = 0;
  #busyMs = 0;
  #startedAt = 0;
  #tasksFailed = 0;
  #streamsOpened = 0;
  /** Worker time per batch task, ms. */
  readonly taskTimes = new LatencyHistogram();
  #closed = false;
  #started: Promise<void> | undefined;
  /** Stage module URLs every worker must have loaded (sent with every task). */
  readonly #modules: string[] = [];
  /** Stage types each registered module provides. */
  readonly #moduleTypes = new Map<string, string[]>();

  constructor(options: WorkerPoolOptions = {}) {
    const threads = options.threads ?? 2;
    if (!Number.isInteger(threads) || threads < 1 || threads > Math.max(1, availableParallelism()) * 4) {
      throw new RangeError(`options.threads must be an integer from 1 to ${availableParallelism() * 4}, got ${threads}`);
    }
    const interval = options.batchIntervalMs ?? 5;
    if (!(interval >= 1 && interval <= 100)) throw new RangeError(`options.batchIntervalMs must be 1–100, got ${interval}`);
    const maxQueued = options.maxQueuedFrames ?? 100;
    if (!Number.isInteger(maxQueued) || maxQueued < 1) throw new RangeError(`options.maxQueuedFrames must be a positive integer, got ${maxQueued}`);
    this.threads = threads;
    this.#batchIntervalMs = interval;
    this.#maxQueuedFrames = maxQueued;
    this.#slotStreams = Array.from({ length: threads }, () => new Set());
    this.#inFlight = Array.from({ length: threads }, () => false);
    this.#slotIdle = Array.from({ length: threads }, () => []);
    const { balancer, workerOf } = createAffinityBalancer();
    this.#workerOf = workerOf;
    this.#piscina = new Piscina<BatchTask, BatchResult>({
      ...workerEntry(),
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Infinity,
      loadBalancer: balancer,
      // Our own bound (one task per slot in flight) replaces maxQueue, which the balancer bypasses.
      concurrentTasksPerWorker: 1,
    });
    this.#piscina.on('error', () => {
      // A worker crashed; its task rejects and the affected streams are rebuilt (see #runSlot).
    });
  }

  /** The worker threads (e.g. to watch their resource use). */
  get workerThreads(): readonly import('node:worker_threads').Worker[] {
    return this.#piscina.threads;
  }

  /** Starts the tick and pre-warms every worker (the first task on a fresh worker takes ~80 ms). Idempotent. */
  async start(): Promise<void> {
    if (this.#started) return this.#started;
    this.#started = this.#warm();
    return this.#started;
  }

  async #warm(): Promise<void> {
    await Promise.all(this.#slotStreams.map((_, slot) => this.#run(slot, { items: [] })));
    this.#startedAt = performance.now();
    this.#timer = setInterval(() => this.#flush(), this.#batchIntervalMs);
    if (this.#streams.size === 0) this.#timer.unref();
  }

  openStream(setup: StreamSetup, handlers: PoolStreamHandlers): PoolStream {
    if (this.#closed) throw new Error('WorkerPool is closed');
    const slot = this.#leastLoadedSlot();
    this.#streamsOpened++;
    const entry: StreamEntry = {
      id: `s${++streamCounter}`,
      slot,
      setup,
      handlers,
      queue: [],
      needsSetup: true,
      closing: false,
      closed: false,
      dropped: 0,
      workers: [],
    };
    this.#streams.set(entry.id, entry);
    this.#slotStreams[slot].add(entry);
    // Open streams keep the process alive (a script awaiting an operator must not exit mid-drain);
    // an idle pool does not.
    this.#timer?.ref();
    const pool = this;
    return {
      id: entry.id,
      get workers() {
        return entry.workers;
      },
      get dropped() {
        return entry.dropped;
      },
      push(frame) {
        if (entry.closing) return;
        if (entry.queue.length >= pool.#maxQueuedFrames) {
          entry.queue.shift(); // drop oldest: the newest audio matters most for a live stream
          entry.dropped++;
        }
        entry.queue.push(frame);
      },
      close() {
        if (entry.closed) return Promise.resolve();
        entry.closing = true;
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
    if (this.#closed) throw new Error('WorkerPool is closed');
    const url = stageModuleUrl(pathOrUrl);
    const known = this.#moduleTypes.get(url);
    if (known) return known;
    const results = await Promise.all(this.#slotStreams.map((_, slot) => this.#runExclusive(slot, { items: [], modules: [...this.#modules, url] })));
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
    if (this.#closed) throw new Error('WorkerPool is closed');
    const result = await this.#runExclusive(0, { items: [], modules: [...this.#modules], checks: setups });
    return result.checks ?? setups.map(() => 'the worker did not check the setup');
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
      utilization: this.#startedAt > 0 ? Math.min(1, this.#busyMs / ((performance.now() - this.#startedAt) * this.threads)) : 0,
      busyMs: Math.round(this.#busyMs),
      queuedFrames: queued,
      tasksInFlight: this.#inFlight.filter(Boolean).length,
      tasksCompleted: this.#tasksCompleted,
      tasksFailed: this.#tasksFailed,
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

  /** Drains every stream (processes queued frames), then stops the workers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const pending = [...this.#streams.values()].map(
      (e) =>
        new Promise<void>((resolve) => {
          e.closing = true;
          const prev = e.onClosed;
          e.onClosed = () => {
            prev?.();
            resolve();
          };
        }),
    );
    this.#flush();
    await Promise.all(pending);
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#piscina.destroy();
  }

  #leastLoadedSlot(): number {
    let best = 0;
    for (let i = 1; i < this.#slotStreams.length; i++) if (this.#slotStreams[i].size < this.#slotStreams[best].size) best = i;
    return best;
  }

  #flush(): void {
    for (let slot = 0; slot < this.threads; slot++) {
      if (this.#inFlight[slot]) continue;
      const items: BatchItem[] = [];
      const entries: StreamEntry[] = [];
      for (const e of this.#slotStreams[slot]) {
        if (e.queue.length === 0 && !e.closing && !e.needsSetup) continue;
        items.push({
          streamId: e.id,
          ...(e.needsSetup ? { setup: e.setup } : {}),
          frames: e.queue,
          ...(e.closing ? { close: true } : {}),
        });
        e.needsSetup = false;
        e.queue = [];
        entries.push(e);
      }
      if (items.length > 0) this.#runSlot(slot, items, entries);
    }
  }

  #run(slot: number, task: BatchTask): Promise<BatchResult> {
    const queueOptions: SlotQueueOptions = { slot };
    if (this.#modules.length > 0 && !task.modules) task.modules = this.#modules;
    return this.#piscina.run(Object.assign(task, { [Piscina.queueOptionsSymbol]: queueOptions }));
  }

  /**
   * Runs a control task (module load, setup check) on a slot once its batch in
   * flight, if any, is done, and holds batches back meanwhile: one task per
   * worker at a time keeps a stream's frames in order.
   */
  async #runExclusive(slot: number, task: BatchTask): Promise<BatchResult> {
    while (this.#inFlight[slot]) await new Promise<void>((resolve) => this.#slotIdle[slot].push(resolve));
    this.#inFlight[slot] = true;
    try {
      return await this.#run(slot, task);
    } finally {
      this.#release(slot);
    }
  }

  #release(slot: number): void {
    this.#inFlight[slot] = false;
    const waiters = this.#slotIdle[slot].splice(0);
    for (const w of waiters) w();
  }

  #runSlot(slot: number, items: BatchItem[], entries: StreamEntry[]): void {
    this.#inFlight[slot] = true;
    this.#run(slot, { items }).then(
      (result) => {
        this.#release(slot);
        this.#tasksCompleted++;
        this.#busyMs += result.busyMs;
        this.taskTimes.add(result.busyMs);
        this.#deliver(result, items, entries);
      },
      () => {
        // The worker died with this batch: its frames are lost (recordings fill the
        // gap with silence by media position) and every stream of the slot is
        // rebuilt on the replacement worker.
        this.#release(slot);
        this.#tasksFailed++;
        for (const e of this.#slotStreams[slot]) e.needsSetup = true;
        for (const e of entries) if (e.closing) this.#finish(e);
      },
    );
  }

  #deliver(result: BatchResult, items: BatchItem[], entries: StreamEntry[]): void {
    result.items.forEach((r, i) => {
      const e = entries[i];
      if (r.streamId !== e.id) return; // results are returned in item order
      if (r.missing) {
        // The worker restarted between batches: resend these frames with the setup.
        e.needsSetup = true;
        e.queue = [...items[i].frames, ...e.queue];
        return;
      }
      if (e.workers[e.workers.length - 1] !== result.threadId) e.workers.push(result.threadId);
      if (r.counters) safeCall(() => e.handlers.onCounters?.(r.counters!));
      r.outputs.forEach((frames, branch) => {
        if (frames.length > 0) safeCall(() => e.handlers.onFrames(branch, frames));
      });
      if (r.error) {
        safeCall(() => e.handlers.onError(r.error!));
        this.#finish(e);
        return;
      }
      if (items[i].close) this.#finish(e);
    });
  }

  #finish(e: StreamEntry): void {
    if (e.closed) return;
    e.closed = true;
    e.closing = true;
    this.#streams.delete(e.id);
    this.#slotStreams[e.slot].delete(e);
    if (this.#streams.size === 0) this.#timer?.unref();
    e.onClosed?.();
  }
}

function round2(v: number | null): number | null {
  return v === null ? null : Math.round(v * 100) / 100;
}

/** A throwing handler must not break delivery to the other streams. */
function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    process.emitWarning(`earshot: a pool stream handler threw: ${(err as Error).message}`);
  }
}

/**
 * Worker file. Under the TypeScript sources (tests, `tsx`), workers start from a
 * bootstrap that registers tsx; from the build they load `worker.js` directly.
 */
function workerEntry(): { filename: string; execArgv?: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    return { filename: fileURLToPath(new URL('./worker-dev.mjs', import.meta.url)), execArgv: [] };
  }
  return { filename: fileURLToPath(new URL('./worker.js', import.meta.url)), execArgv: [] };
}
