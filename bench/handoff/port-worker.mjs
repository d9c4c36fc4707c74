// bench/handoff.ts: the same batch-shaped task on a bare MessagePort (what a pool lane does).
import { parentPort, threadId } from 'node:worker_threads';

parentPort.once('message', ({ port }) => {
  port.on('message', (task) => {
    const t0 = performance.now();
    const input = new Uint8Array(task.input);
    let sum = 0;
    for (let i = 0; i < 64; i++) sum += input[i];
    const output = task.spare ?? new ArrayBuffer(4096);
    new Uint8Array(output)[0] = sum & 1;
    port.postMessage({ threadId, output, busyMs: performance.now() - t0 }, [output]);
  });
});
