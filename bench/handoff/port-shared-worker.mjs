// bench/handoff.ts: the batch on a bare MessagePort, its bytes in shared memory both ways: each
// message is only a number (the batch's size), with no object and no buffer to transfer.
import { parentPort } from 'node:worker_threads';

parentPort.once('message', ({ port, shared }) => {
  const input = new Uint8Array(shared.input);
  const output = new Uint8Array(shared.output);
  port.on('message', (bytes) => {
    let sum = 0;
    for (let i = 0; i < Math.min(64, bytes); i++) sum += input[i];
    output[0] = sum & 1;
    port.postMessage(4096);
  });
});
