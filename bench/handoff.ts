/**
 * What handing one batch to a worker and getting its result back costs, by
 * way of hand-off, in CPU per round trip (µs), main thread and the rest of
 * the process. Batch-shaped tasks (a 600-byte input transferred, an output
 * buffer transferred back and reused), one at a time, one every 5 ms as the
 * pool's tick sends them, so every round trip includes waking a sleeping
 * worker, as in a server. Variants run in turn, in blocks of 150 round trips,
 * so drift of the machine hits them alike; medians over blocks, and "over
 * idle" subtracts a block of the bare 5 ms timer loop.
 *
 * - `piscina`: a Piscina task as the pool sent batches before lanes (Atomics
 *   wake, abort signal, a shared marker per task);
 * - `piscina (no atomics)`: the same with `atomics: 'disabled'` (what the pool
 *   now gives Piscina, which carries only each worker's first task);
 * - `port`: a bare MessagePort per worker: what a pool lane (src/pool/task-lane.ts) does;
 * - `port, shared buffers`: the same port, the batch's bytes written into and
 *   read from shared memory the lane holds for good, so that each message is a
 *   number (the batch's size) with nothing to serialize or transfer (tried in
 *   the pool on 2026-12-02: the hand-off got cheaper, the whole server did not;
 *   docs/performance.md);
 * - `port, worker in Atomics.wait`: the same port, but the idle worker blocks in
 *   Atomics.wait and reads the port synchronously when the main thread wakes it
 *   (Piscina's own trick, without the rest of a Piscina task): a possible next step.
 * - `shared memory, polled`: no message either way: the main thread writes the
 *   batch into shared memory and goes on, the worker looks for it on its own
 *   1 ms timer, and the main thread reads the result on its next turn (tried in
 *   the pool on 2026-12-06 and not kept: docs/performance.md).
 *
 * CPU per thread from /proc/self/task/<tid>/schedstat (Linux only).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { MessageChannel, Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';

const BLOCK = 150;
const GAP_MS = 5;

export interface HandoffRow {
  variant: string;
  mainUs: number;
  otherUs: number;
  /** Main + other threads, minus the bare timer loop's. */
  overIdleUs: number;
}

type RoundTrip = (spare: ArrayBuffer | undefined) => Promise<{ output?: ArrayBuffer }>;

function cpuUs(): { main: number; all: number } {
  let main = 0;
  let all = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    const us = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e3;
    all += us;
    if (Number(tid) === process.pid) main = us;
  }
  return { main, all };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchHandoff(options: { rounds?: number; log: (line: string) => void }): Promise<HandoffRow[]> {
  const { log } = options;
  const rounds = options.rounds ?? 8;
  if (!existsSync('/proc/self/task')) {
    log('\n(handoff) needs /proc (Linux); skipped');
    return [];
  }
  const marker = new Int32Array(new SharedArrayBuffer(20));
  const pools: Piscina[] = [];
  const workers: Worker[] = [];
  const variants: Record<string, RoundTrip> = { idle: async () => ({}) };
  /** Called as a variant's block starts (true) and ends (false). */
  const blockHooks: Record<string, (on: boolean) => void> = {};
  for (const [name, atomics] of [['piscina', 'sync'], ['piscina (no atomics)', 'disabled']] as const) {
    const pool = new Piscina({ filename: new URL('./handoff/piscina-worker.mjs', import.meta.url).href, minThreads: 1, maxThreads: 1, idleTimeout: Infinity, concurrentTasksPerWorker: 1, recordTiming: false, atomics });
    pools.push(pool);
    const abort = new AbortController();
    variants[name] = (spare) => {
      const input = new ArrayBuffer(600);
      return pool.run({ input, spare, marker, seq: 1 }, { signal: abort.signal, transferList: spare ? [input, spare] : [input] });
    };
  }
  for (const [name, file] of [['port', 'port-worker.mjs'], ['port, worker in Atomics.wait', 'port-wait-worker.mjs']] as const) {
    const worker = new Worker(new URL(`./handoff/${file}`, import.meta.url));
    workers.push(worker);
    const { port1, port2 } = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    const counter = new Int32Array(signal);
    const waits = file === 'port-wait-worker.mjs';
    worker.postMessage({ port: port2, signal }, [port2]);
    let settle: ((r: { output?: ArrayBuffer }) => void) | undefined;
    port1.on('message', (r: { output?: ArrayBuffer }) => settle?.(r));
    variants[name] = (spare) =>
      new Promise((resolve) => {
        settle = resolve;
        const input = new ArrayBuffer(600);
        port1.postMessage({ input, spare, seq: 1 }, spare ? [input, spare] : [input]);
        if (waits) {
          Atomics.add(counter, 0, 1);
          Atomics.notify(counter, 0);
        }
      });
    port1.unref();
  }
  {
    const worker = new Worker(new URL('./handoff/port-shared-worker.mjs', import.meta.url));
    workers.push(worker);
    const { port1, port2 } = new MessageChannel();
    const shared = { input: new SharedArrayBuffer(64 * 1024), output: new SharedArrayBuffer(64 * 1024) };
    const input = new Uint8Array(shared.input);
    worker.postMessage({ port: port2, shared }, [port2]);
    let settle: ((r: { output?: ArrayBuffer }) => void) | undefined;
    port1.on('message', () => settle?.({}));
    variants['port, shared buffers'] = () =>
      new Promise((resolve) => {
        settle = resolve;
        input.fill(1, 0, 600);
        port1.postMessage(600);
      });
    port1.unref();
  }
  {
    // No message either way: the main thread writes the batch and goes on; the worker finds it on its
    // own 1 ms timer; the main thread reads the result on its next turn (here the next round trip,
    // 5 ms later; a 1 ms timer waits for it if it is not there yet).
    const worker = new Worker(new URL('./handoff/polled-worker.mjs', import.meta.url));
    workers.push(worker);
    const shared = { control: new SharedArrayBuffer(16), input: new SharedArrayBuffer(64 * 1024), output: new SharedArrayBuffer(64 * 1024) };
    const control = new Int32Array(shared.control);
    const input = new Uint8Array(shared.input);
    worker.postMessage({ shared });
    let posted = 0;
    variants['shared memory, polled'] = async () => {
      while (Atomics.load(control, 2) !== posted) await sleep(1);
      input.fill(1, 0, 600);
      Atomics.store(control, 1, 600);
      Atomics.store(control, 0, ++posted);
      return {};
    };
    worker.unref();
    blockHooks['shared memory, polled'] = (on) => {
      Atomics.store(control, 3, on ? 1 : 0);
      Atomics.notify(control, 3);
    };
  }
  const names = Object.keys(variants);
  const main: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const other: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) {
    let spare: ArrayBuffer | undefined;
    blockHooks[n]?.(true);
    for (let i = 0; i < 20; i++) spare = (await variants[n](spare)).output; // warm-up
    blockHooks[n]?.(false);
  }
  for (let r = 0; r < rounds; r++) {
    for (const n of names) {
      let spare: ArrayBuffer | undefined;
      blockHooks[n]?.(true);
      const c0 = cpuUs();
      for (let i = 0; i < BLOCK; i++) {
        spare = (await variants[n](spare)).output;
        await sleep(GAP_MS);
      }
      const c1 = cpuUs();
      blockHooks[n]?.(false);
      main[n].push((c1.main - c0.main) / BLOCK);
      other[n].push((c1.all - c1.main - (c0.all - c0.main)) / BLOCK);
    }
  }
  await Promise.all(pools.map((p) => p.destroy()));
  await Promise.all(workers.map((w) => w.terminate()));
  const idle = median(main.idle) + median(other.idle);
  const rows = names
    .filter((n) => n !== 'idle')
    .map((n) => ({ variant: n, mainUs: median(main[n]), otherUs: median(other[n]), overIdleUs: median(main[n]) + median(other[n]) - idle }));
  log(`\n(h) One batch handed to a worker and back, CPU per round trip (µs), one every ${GAP_MS} ms, medians of ${rounds} blocks of ${BLOCK}`);
  log(`  ${'variant'.padEnd(30)} ${'main'.padStart(6)} ${'other threads'.padStart(14)} ${'over idle'.padStart(10)} ${'× port'.padStart(7)}`);
  const port = rows.find((r) => r.variant === 'port')!;
  for (const r of rows) log(`  ${r.variant.padEnd(30)} ${r.mainUs.toFixed(0).padStart(6)} ${r.otherUs.toFixed(0).padStart(14)} ${r.overIdleUs.toFixed(0).padStart(10)} ${(r.overIdleUs / port.overIdleUs).toFixed(2).padStart(7)}`);
  log(`  (a bare ${GAP_MS} ms timer loop alone: ${median(main.idle).toFixed(0)} µs per turn)`);
  return rows;
}
