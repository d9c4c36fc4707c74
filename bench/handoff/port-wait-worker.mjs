// bench/handoff.ts: the batch on a bare MessagePort, with the worker blocked in Atomics.wait
// while idle and reading the port synchronously when woken (no event-loop turn, no MessageEvent).
import { parentPort, receiveMessageOnPort } from 'node:worker_threads';
import { work } from './batch-work.mjs';

parentPort.once('message', ({ port, signal }) => {
  const counter = new Int32Array(signal);
  let seen = 0;
  for (;;) {
    Atomics.wait(counter, 0, seen);
    seen = Atomics.load(counter, 0);
    let entry;
    while ((entry = receiveMessageOnPort(port)) !== undefined) {
      const result = work(entry.message);
      port.postMessage(result, [result.output]);
    }
  }
});
