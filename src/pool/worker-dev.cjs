// Worker bootstrap used only when earshot runs from its TypeScript sources
// (tests, `tsx`): registers tsx in this worker thread, then loads the real entry.
// The tests' global setup builds the package first and names the built worker
// in EARSHOT_DEV_WORKER_BUILD: that worker needs no tsx, whose loader hooks
// made each worker's start ~1 s slower (test/global-setup.ts).
// CommonJS, for the reason worker-entry.cts gives: Piscina require()s this file,
// and the real entry is loaded by import() only.
'use strict';
const { pathToFileURL } = require('node:url');

const built = process.env.EARSHOT_DEV_WORKER_BUILD;
const loading = built
  ? import(pathToFileURL(built).href)
  : import('tsx/esm/api').then(({ register }) => {
      register();
      return import('./worker.ts');
    });
loading.catch(() => undefined);

module.exports = async function handleTask(task) {
  return (await loading).default(task);
};
