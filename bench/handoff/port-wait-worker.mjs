// bench/handoff.ts: the same task on a bare MessagePort, with the worker blocked in Atomics.wait
// while idle and reading the port synchronously when woken (no event-loop turn, no MessageEvent).
import { parentPort, receiveMessageOnPort, threadId } from 'node:worker_threads';

parentPort.once('message', ({ port, signal }) => {
  const counter = new Int32Array(signal);
  let seen = 0;
  for (;;) {
    Atomics.wait(counter, 0, seen);
    seen = Atomics.load(counter, 0);
    let entry;
    while ((entry = receiveMessageOnPort(port)) !== undefined) {
      const task = entry.message;
      const t0 = performance.now();
      const input = new Uint8Array(task.input);
      let sum = 0;
      for (let i = 0; i < 64; i++) sum += input[i];
      const output = task.spare ?? new ArrayBuffer(4096);
      new Uint8Array(output)[0] = sum & 1;
      port.postMessage({ threadId, output, busyMs: performance.now() - t0 }, [output]);
    }
  }
});
