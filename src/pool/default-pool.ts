/**
 * The pool stage operators (`denoise()`, `inWorkers(…)`, `AudioFilter`, …) run
 * on when not given one.
 *
 * An operator on a server's stream uses that server's own pool, so two servers
 * in one process never share workers and closing one leaves the other's
 * operators running. The server runs its code (announcing a stream on
 * `streams$`, attaching a processor) and delivers its streams' frames inside
 * `withDefaultPool(pool, …)`; an operator takes the pool in scope when it is
 * subscribed or, failing that, when its first frame arrives. So an operator
 * subscribed after an `await` in a `streams$` subscriber still runs on its
 * server's workers, as long as its frames come from the server (or from a
 * stage operator, which delivers as its own pool) without an asynchronous hop
 * in between (`delay`, `observeOn`, a timer of your own). Anywhere else, the
 * process-wide default applies: the pool given to `setDefaultPool`, or one
 * created on first use (`closeDefaultPool()` closes it). Passing `{ pool }`
 * always wins.
 *
 * The scope covers synchronous calls only, on purpose: carrying it across
 * `await` would take AsyncLocalStorage, whose promise hooks cost every promise
 * in the process on Node 20 — werift's media path among them. Frames carry it
 * instead.
 */
import { WorkerPool } from './worker-pool.js';

/** The pool of the server whose code runs now (innermost `withDefaultPool`). */
let scoped: WorkerPool | undefined;
let processDefault: WorkerPool | undefined;
let createdHere = false;

/** Runs `fn` with `pool` as the default of the stage operators it subscribes (synchronously). */
export function withDefaultPool<R>(pool: WorkerPool, fn: () => R): R {
  const outer = scoped;
  scoped = pool;
  try {
    return fn();
  } finally {
    scoped = outer;
  }
}

/** The pool of the server (or stage operator) whose code runs now, if any: what an operator subscribed now takes. */
export function scopedPool(): WorkerPool | undefined {
  return scoped;
}

/**
 * `target.next(value)` as `pool`'s: an operator downstream that has no pool yet
 * takes this one. Per frame, so without a closure.
 */
export function nextInPool<T>(pool: WorkerPool, target: { next(value: T): void }, value: T): void {
  const outer = scoped;
  scoped = pool;
  try {
    target.next(value);
  } finally {
    scoped = outer;
  }
}

/** Sets the process-wide pool stage operators use outside a server's streams when not given one. */
export function setDefaultPool(pool: WorkerPool | undefined): void {
  processDefault = pool;
  createdHere = false;
}

/** True if a process-wide default pool is set or was created. */
export function hasDefaultPool(): boolean {
  return processDefault !== undefined;
}

/** The pool of the server whose stream this runs for; else the process-wide one, created (one thread per core) on first use. */
export function getDefaultPool(): WorkerPool {
  if (scoped) return scoped;
  if (!processDefault) {
    processDefault = new WorkerPool();
    createdHere = true;
  }
  return processDefault;
}

/** Closes the process-wide default pool if the operators created it (call before exiting a script that used them). */
export async function closeDefaultPool(): Promise<void> {
  const pool = processDefault;
  if (pool && createdHere) {
    processDefault = undefined;
    createdHere = false;
    await pool.close();
  }
}
