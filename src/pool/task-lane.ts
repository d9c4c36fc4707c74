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
 * A lane lives as long as its worker. When the worker exits (a crash, or the
 * watchdog terminating it), the batch in flight is rejected with Piscina's
 * words ("worker exited with code: N", or the uncaught error), the lane is
 * closed, and the slot's next task goes through Piscina again, which binds
 * the slot to another worker and opens a new lane there.
 */
import type { MessagePort, Worker } from 'node:worker_threads';
import type { BatchResult, BatchTask } from './protocol.js';

/** What the worker answers on a lane: the result, or why the task failed with the worker alive. */
export type LaneReply = BatchResult | { failed: string };

/**
 * Hears how a task sent with `send` ended: its result, or why it failed (the
 * task failed with the worker alive, the worker exited, or the lane was
 * closed). `token` is what was sent with the task.
 */
export type LaneDone<T> = (token: T, result: BatchResult | undefined, error: Error | undefined) => void;

/** Hears a partial result of the task in flight (`BatchResult.partial`); the task goes on. */
export type LaneEarly<T> = (token: T, partial: BatchResult) => void;

export class TaskLane {
  readonly #port: MessagePort;
  readonly #worker: Worker;
  // The task in flight: who hears how it ended, and the token it came with (no object per task).
  #done: LaneDone<unknown> | undefined;
  #early: LaneEarly<unknown> | undefined;
  #token: unknown;
  #closed = false;
  // A worker that exits closes its lane (a closed lane is never used again: the pool opens another).
  readonly #onError = (err: unknown) => this.close(err instanceof Error ? err.message : String(err));
  readonly #onExit = (code: number) => this.close(`worker exited with code: ${code}`);

  /**
   * @param port this end of the channel (the other end is already in the worker)
   * @param worker the worker thread holding the other end
   */
  constructor(port: MessagePort, worker: Worker) {
    this.#port = port;
    this.#worker = worker;
    port.on('message', (reply: LaneReply) => this.#reply(reply));
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
    return new Promise<BatchResult>((resolve, reject) => {
      this.send(task, transferList, (_token, result, error) => (error ? reject(error) : resolve(result!)), undefined);
    });
  }

  /**
   * Sends one task, as `run` does, without a promise: `done` hears the result
   * at once, in the reply's message event; a failure reaches it a microtask
   * later, as a rejection would (the worker's exit has been handled by then).
   * `early` hears the task's partial results, if it asked for them
   * (`earlyOutputMs`), before `done`. One at a time.
   */
  send<T>(task: BatchTask, transferList: ArrayBuffer[] | undefined, done: LaneDone<T>, token: T, early?: LaneEarly<T>): void {
    if (this.#closed || this.#done) {
      const error = new Error(this.#closed ? 'the worker lane is closed' : 'a task is already in flight on this lane');
      queueMicrotask(() => done(token, undefined, error));
      return;
    }
    this.#done = done as LaneDone<unknown>;
    this.#early = early as LaneEarly<unknown> | undefined;
    this.#token = token;
    this.#port.ref();
    this.#port.postMessage(task, transferList);
  }

  /** Closes this end without touching the worker; a batch in flight is rejected with `why`. */
  close(why = 'the worker lane was closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.off('error', this.#onError);
    this.#worker.off('exit', this.#onExit);
    this.#port.close();
    this.#settle(undefined, new Error(why));
  }

  #reply(reply: LaneReply): void {
    if ('partial' in reply && reply.partial) {
      // The task goes on: the lane stays referenced and the task in flight.
      if (this.#done) this.#early?.(this.#token, reply);
      return;
    }
    this.#port.unref();
    if ('failed' in reply) this.#settle(undefined, new Error(reply.failed));
    else this.#settle(reply, undefined);
  }

  #settle(result: BatchResult | undefined, error: Error | undefined): void {
    const done = this.#done;
    const token = this.#token;
    this.#done = undefined;
    this.#early = undefined;
    this.#token = undefined;
    if (!done) return;
    if (error) queueMicrotask(() => done(token, undefined, error));
    else done(token, result, undefined);
  }
}
