/**
 * The file Piscina starts each DSP worker with (from the build; under the
 * TypeScript sources, worker-dev.mjs does the same after registering tsx).
 *
 * Piscina loads a worker file with `require()` first and falls back to
 * `import()` when that throws. Since Node 20.19, `require()` loads ES
 * modules, but not a graph with top-level await (the WASM loaders have it):
 * it throws, and Piscina imports the file instead. Piscina asks for the file
 * twice at a worker's start (a preload, and its first task), so the second
 * `require()` could meet the first `import()` still loading the same graph,
 * which Node 20 answers with a fatal error that ends the whole process
 * ("v8::Module::IsGraphAsync must be used on an instantiated module"). This
 * file has no top-level await, so `require()` takes it at once, and the real
 * entry is only ever loaded by `import()`.
 */
import type { BatchTask } from './protocol.js';

const loading = import('./worker.js');
// A failed load rejects every task (the pool reports the worker as failing to start); not unhandled meanwhile.
loading.catch(() => undefined);

/** Piscina's entry: the real one (worker.ts) once it has loaded. */
export default async function handleTask(task: BatchTask): Promise<unknown> {
  return (await loading).default(task);
}
