// bench/handoff.ts: the worker side of a Piscina task, shaped like a batch (an input read, an output buffer given back).
import { threadId } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';

export default function handle(task) {
  const t0 = performance.now();
  const input = new Uint8Array(task.input);
  let sum = 0;
  for (let i = 0; i < 64; i++) sum += input[i];
  const output = task.spare ?? new ArrayBuffer(4096);
  new Uint8Array(output)[0] = sum & 1;
  const result = { threadId, output, busyMs: performance.now() - t0 };
  // As the pool's worker returns a batch: the output transferred, not cloned.
  return move({ [transferableSymbol]: [output], [valueSymbol]: result });
}
