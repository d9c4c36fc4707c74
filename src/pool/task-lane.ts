/**
 * A slot's own channel to its worker, for batches: a `MessagePort` pair, one
 * end held here, the other handed to the worker in a Piscina task. Each batch
 * is then one `postMessage` each way.
 *
 * Why not a Piscina task per batch: a task also creates an async resource,
 * adds an abort listener, asks the balancer, and wakes the worker a second
 * time through Atomics. On a 2-core VM a Piscina round trip cost ~3 times the
 * CPU of the same message on a bare port (`npm run bench -- --only handoff`),
 * and batches run 100–400 times a second per worker.
 * Piscina still owns the workers: it starts them, replaces the ones that die,
 * and runs the control tasks that set a lane up.
 *
 * A plain batch (frames only) goes as a number each way, its bytes in shared
 * memory the lane holds (`LaneMemory` in protocol.ts); anything else goes as
 * the task object, as before.
 *
 * A lane lives as long as its worker. When the worker exits (a crash, or the
 * watchdog terminating it), the batch in flight is rejected with Piscina's
 * words ("worker exited with code: N", or the uncaught error), the lane is
 * closed, and the slot's next task goes through Piscina again, which binds
 * the slot to another worker and opens a new lane there.
 */
import type { MessagePort, Worker } from 'node:worker_threads';
import { LANE_MEMORY_BYTES, LANE_META_SEQ, type BatchResult, type BatchTask, type LaneMemory } from './protocol.js';

/** What the worker answers on a lane: the result, or why the task failed with the worker alive. */
export type LaneReply = BatchResult | { failed: string };

interface Pending {
  resolve(result: BatchResult): void;
  reject(err: Error): void;
  /** The `seq` of a plain batch sent through the shared memory; undefined for a task sent as an object. */
  seq: number | undefined;
}

/** Task fields a plain batch may have (anything else, and it goes as an object). */
const PLAIN_FIELDS = new Set(['input', 'seq', 'spare', 'modules']);

export class TaskLane {
  readonly #port: MessagePort;
  readonly #worker: Worker;
  #pending: Pending | undefined;
  #closed = false;
  // A worker that exits closes its lane (a closed lane is never used again: the pool opens another).
  readonly #onError = (err: unknown) => this.close(err instanceof Error ? err.message : String(err));
  readonly #onExit = (code: number) => this.close(`worker exited with code: ${code}`);

  readonly #memory: LaneMemory | undefined;
  readonly #input: Uint8Array | undefined;
  readonly #busy: Float64Array | undefined;
  readonly #seqOf: Int32Array | undefined;
  /** How many stage modules the worker has imported through this lane (or the task that opened it). */
  #modulesKnown: number;

  /**
   * @param port this end of the channel (the other end is already in the worker)
   * @param worker the worker thread holding the other end
   * @param memory the lane's shared memory, already in the worker (absent: every task goes as an object)
   * @param modulesKnown stage modules the worker imported with the task that opened the lane
   */
  constructor(port: MessagePort, worker: Worker, memory?: LaneMemory, modulesKnown = 0) {
    this.#port = port;
    this.#worker = worker;
    this.#memory = memory;
    this.#input = memory ? new Uint8Array(memory.input) : undefined;
    this.#busy = memory ? new Float64Array(memory.meta, 0, 1) : undefined;
    this.#seqOf = memory ? new Int32Array(memory.meta) : undefined;
    this.#modulesKnown = modulesKnown;
    port.on('message', (reply: LaneReply | number) => this.#reply(reply));
    // Idle lanes must not keep the process alive (a flight refs the port while it waits).
    port.unref();
    // After Piscina's own listeners (added when it started the worker): by the time these run,
    // Piscina has removed the worker and announced it (workerDestroy).
    worker.on('error', this.#onError);
    worker.on('exit', this.#onExit);
  }

  /** The worker thread at the other end. */
  get worker(): Worker {
    return this.#worker;
  }

  get open(): boolean {
    return !this.#closed;
  }

  /** Sends one task; settles with the worker's result, or rejects if the task failed or the worker exited. One at a time. */
  run(task: BatchTask, transferList: ArrayBuffer[] | undefined): Promise<BatchResult> {
    if (this.#closed) return Promise.reject(new Error('the worker lane is closed'));
    if (this.#pending) return Promise.reject(new Error('a task is already in flight on this lane'));
    return new Promise<BatchResult>((resolve, reject) => {
      const seq = this.#plain(task) ? task.seq! : undefined;
      this.#pending = { resolve, reject, seq };
      this.#port.ref();
      if (seq !== undefined) {
        // The packed input is copied into the lane's memory; the task's own buffer is dropped here.
        this.#input!.set(new Uint8Array(task.input!));
        this.#port.postMessage(seq);
      } else {
        if (task.modules) this.#modulesKnown = task.modules.length;
        this.#port.postMessage(task, transferList);
      }
    });
  }

  /** Whether `task` can go through the shared memory: frames only, a seq, nothing the worker must import first. */
  #plain(task: BatchTask): boolean {
    if (!this.#memory || task.input === undefined || task.input.byteLength > LANE_MEMORY_BYTES || !(typeof task.seq === 'number' && task.seq > 0 && task.seq <= 0x7fffffff)) return false;
    if (task.modules && task.modules.length !== this.#modulesKnown) return false;
    for (const key in task) if (!PLAIN_FIELDS.has(key)) return false;
    return true;
  }

  /** Closes this end without touching the worker; a batch in flight is rejected with `why`. */
  close(why = 'the worker lane was closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.off('error', this.#onError);
    this.#worker.off('exit', this.#onExit);
    this.#port.close();
    const p = this.#pending;
    this.#pending = undefined;
    p?.reject(new Error(why));
  }

  #reply(reply: LaneReply | number): void {
    const p = this.#pending;
    this.#pending = undefined;
    this.#port.unref();
    if (!p) return;
    if (typeof reply === 'number') {
      // A plain batch's output, in the shared memory (see LaneMemory).
      if (p.seq === undefined || Atomics.load(this.#seqOf!, LANE_META_SEQ) !== p.seq) p.reject(new Error('the worker answered a task other than the one in flight'));
      else p.resolve({ threadId: this.#worker.threadId, busyMs: this.#busy![0], output: this.#memory!.output, outputBytes: reply });
    } else if ('failed' in reply) p.reject(new Error(reply.failed));
    else p.resolve(reply);
  }
}
