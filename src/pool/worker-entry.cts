/**
 * The file Piscina starts each DSP worker with (from the build; under the
 * TypeScript sources, worker-dev.cjs does the same after registering tsx).
 *
 * A CommonJS module on purpose. Piscina loads a worker file with `require()`
 * first (and `import()` when that throws). Since Node 20.19, `require()` also
 * loads ES modules, and in Node 20 that path has ended the whole process with
 * a fatal assertion twice in CI: once when the entry had top-level await
 * (`require()` threw, Piscina imported it, and its second `require()` met that
 * import still loading: "v8::Module::IsGraphAsync must be used on an
 * instantiated module"), and once, with no top-level await, while building the
 * ES module's CommonJS facade ("CreateRequiredModuleFacade … Assertion failed:
 * facade->InstantiateModule(…)", a worker stopped as it loaded). `require()`
 * of a CommonJS file takes neither path; the real entry is only ever loaded by
 * `import()`.
 */
type Worker = typeof import('./worker.js');

const loading: Promise<Worker> = import('./worker.js');
// A failed load rejects every task (the pool reports the worker as failing to start); not unhandled meanwhile.
loading.catch(() => undefined);

/** Piscina's entry: the real one (worker.ts) once it has loaded. */
async function handleTask(task: Parameters<Worker['default']>[0]): Promise<unknown> {
  return (await loading).default(task);
}

export = handleTask;
