/**
 * The pool stage operators (`denoise()`, `inWorkers(…)`, `AudioFilter`, …) run
 * on when not given one.
 *
 * An operator subscribed while a server announces a stream or attaches a
 * processor to it — in a `streams$` subscriber, in a processor — uses that
 * server's own pool: the server runs that code inside `withDefaultPool(pool, …)`,
 * so two servers in one process never share workers and closing one leaves
 * the other's operators running. Anywhere else, the process-wide default
 * applies: the pool given to `setDefaultPool`, or one created on first use
 * (`closeDefaultPool()` closes it).
 *
 * The scope covers the synchronous call only, on purpose: carrying it across
 * `await` would take AsyncLocalStorage, whose promise hooks cost every promise
 * in the process on Node 20 — werift's media path among them.
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
