// bench/handoff.ts: the worker's side of one batch-shaped task, the same for every way of handing it over:
// read the input, write into the output buffer given back (or a new one), say how long it took.
import { threadId } from 'node:worker_threads';

export function work(task) {
  const t0 = performance.now();
  const input = new Uint8Array(task.input);
  let sum = 0;
  for (let i = 0; i < 64; i++) sum += input[i];
  const output = task.spare ?? new ArrayBuffer(4096);
  new Uint8Array(output)[0] = sum & 1;
  return { threadId, output, busyMs: performance.now() - t0 };
}
