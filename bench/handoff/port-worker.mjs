// bench/handoff.ts: the batch on a bare MessagePort (what a pool lane does).
import { parentPort } from 'node:worker_threads';
import { work } from './batch-work.mjs';

parentPort.once('message', ({ port }) => {
  port.on('message', (task) => {
    const result = work(task);
    port.postMessage(result, [result.output]);
  });
});
