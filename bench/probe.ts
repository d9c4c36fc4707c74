/**
 * Main-thread probe for benchmark child processes, preloaded with
 * `node --import ./bench/probe.ts …` into the earshot server and the baseline
 * receivers alike, so every process is measured the same way. It only acts on
 * IPC messages from the bench (the child must be spawned with an `ipc` stdio
 * slot) and costs nothing in between. Worker threads are not probed (Piscina
 * starts them with empty `execArgv`): what it measures is the main thread.
 *
 * Messages (bench → child), each answered with `{ probe: <cmd>, … }`:
 * - `start`: opens a measuring window (GC profiler, event-loop utilization and delay);
 * - `stop`: closes it and reports a {@link ProbeWindow};
 * - `profile-start` / `profile-stop` (with `path`): a V8 CPU profile of the main
 *   thread over that span, written as a `.cpuprofile`;
 * - `heap-start` / `heap-stop` (with `path`): V8's sampling heap profiler over
 *   that span, counting objects collected meanwhile too (so it shows where the
 *   allocation churn comes from), written as a `.heapprofile`.
 *
 * Allocation is measured from the GC profiler's per-collection heap statistics:
 * bytes allocated in a window = the growth of the used heap between
 * collections (each collection's "before" minus the previous one's "after"),
 * plus the growth from the last collection to the end of the window. The same
 * is done for V8's external memory, where ArrayBuffer backing stores are
 * counted (typed arrays above 64 bytes live there, e.g. every PCM frame).
 * Pauses are the GC profiler's `cost` of each collection (main-thread time).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import { GCProfiler, getHeapStatistics } from 'node:v8';

/** What one measuring window saw on the main thread. */
export interface ProbeWindow {
  seconds: number;
  /** JS heap bytes allocated (see module comment). */
  heapAllocatedBytes: number;
  /** External (ArrayBuffer backing store) bytes allocated. */
  externalAllocatedBytes: number;
  gcCount: number;
  /** Main-thread GC time, ms. */
  gcTotalMs: number;
  gcPauseP50Ms: number;
  gcPauseP99Ms: number;
  gcPauseMaxMs: number;
  /** Event-loop utilization, 0..1. */
  elu: number;
  /** How late the loop ran a timer, p99, ms (sampled every 20 ms). */
  eventLoopDelayP99Ms: number;
}

interface GcStat {
  gcType: string;
  cost: number;
  beforeGC: { heapStatistics: { usedHeapSize: number; externalMemory: number } };
  afterGC: { heapStatistics: { usedHeapSize: number; externalMemory: number } };
}

interface Window {
  profiler: GCProfiler;
  t0: number;
  elu0: EventLoopUtilization;
  used0: number;
  external0: number;
  delay: ReturnType<typeof monitorEventLoopDelay>;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function external(): number {
  return (getHeapStatistics() as { external_memory?: number }).external_memory ?? process.memoryUsage().external;
}

/** How often the probe samples event-loop delay, ms: coarser than the server's own 5 ms sampler, so that it adds few wakes to what it measures. */
const LOOP_DELAY_SAMPLE_MS = 20;

let window: Window | undefined;
let session: Session | undefined;

function start(): void {
  window?.profiler.stop();
  window?.delay.disable();
  // Every 20 ms: each sample wakes the event loop, and at 5 ms the probe's 200 wakes a second
  // were added to every measured process (the baselines, which have no sampler of their own, too).
  const delay = monitorEventLoopDelay({ resolution: LOOP_DELAY_SAMPLE_MS });
  delay.enable();
  const profiler = new GCProfiler();
  profiler.start();
  window = { profiler, t0: performance.now(), elu0: performance.eventLoopUtilization(), used0: getHeapStatistics().used_heap_size, external0: external(), delay };
}

function stop(): ProbeWindow | null {
  const w = window;
  if (!w) return null;
  window = undefined;
  const used1 = getHeapStatistics().used_heap_size;
  const external1 = external();
  const result = w.profiler.stop() as unknown as { statistics: GcStat[] } | undefined;
  w.delay.disable();
  const stats = result?.statistics ?? [];
  let heap = 0;
  let ext = 0;
  let prevUsed = w.used0;
  let prevExt = w.external0;
  for (const s of stats) {
    heap += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - prevUsed);
    ext += Math.max(0, s.beforeGC.heapStatistics.externalMemory - prevExt);
    prevUsed = s.afterGC.heapStatistics.usedHeapSize;
    prevExt = s.afterGC.heapStatistics.externalMemory;
  }
  heap += Math.max(0, used1 - prevUsed);
  ext += Math.max(0, external1 - prevExt);
  const pauses = stats.map((s) => s.cost / 1000).sort((a, b) => a - b);
  return {
    seconds: (performance.now() - w.t0) / 1000,
    heapAllocatedBytes: heap,
    externalAllocatedBytes: ext,
    gcCount: stats.length,
    gcTotalMs: pauses.reduce((a, b) => a + b, 0),
    gcPauseP50Ms: quantile(pauses, 0.5),
    gcPauseP99Ms: quantile(pauses, 0.99),
    gcPauseMaxMs: pauses.length > 0 ? pauses[pauses.length - 1] : 0,
    elu: performance.eventLoopUtilization(w.elu0).utilization,
    // Node records the time between two samples: the period is taken off, what is left is lateness.
    eventLoopDelayP99Ms: Math.max(0, w.delay.percentile(99) / 1e6 - LOOP_DELAY_SAMPLE_MS),
  };
}

function post(method: string, params?: object): Promise<unknown> {
  return new Promise((resolve, reject) => session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
}

function connect(): void {
  if (session) return;
  session = new Session();
  session.connect();
}

async function heapStart(interval: number): Promise<void> {
  connect();
  await post('HeapProfiler.enable');
  // BENCH_HEAP_RETAINED=1: only what is still alive when sampling stops (what survives scavenges), not everything allocated.
  const all = process.env.BENCH_HEAP_RETAINED !== '1';
  await post('HeapProfiler.startSampling', { samplingInterval: interval, includeObjectsCollectedByMajorGC: all, includeObjectsCollectedByMinorGC: all });
}

async function heapStop(path: string): Promise<void> {
  const { profile } = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
  writeFileSync(path, JSON.stringify(profile));
}

async function profileStart(intervalUs: number): Promise<void> {
  connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: intervalUs });
  await post('Profiler.start');
}

async function profileStop(path: string): Promise<void> {
  const { profile } = (await post('Profiler.stop')) as { profile: unknown };
  writeFileSync(path, JSON.stringify(profile));
}

if (process.send) {
  process.on('message', (m: { probe?: string; path?: string; intervalUs?: number }) => {
    if (!m || typeof m.probe !== 'string') return;
    const reply = (data: object) => process.send!({ probe: m.probe, ...data });
    switch (m.probe) {
      case 'start':
        start();
        reply({});
        break;
      case 'stop':
        reply({ window: stop() });
        break;
      case 'profile-start':
        profileStart(m.intervalUs ?? 250).then(() => reply({}), (e: Error) => reply({ error: e.message }));
        break;
      case 'profile-stop':
        profileStop(m.path!).then(() => reply({}), (e: Error) => reply({ error: e.message }));
        break;
      case 'heap-start':
        heapStart(m.intervalUs ?? 4096).then(() => reply({}), (e: Error) => reply({ error: e.message }));
        break;
      case 'heap-stop':
        heapStop(m.path!).then(() => reply({}), (e: Error) => reply({ error: e.message }));
        break;
    }
  });
  // The IPC channel must not keep a server from exiting on SIGTERM.
  process.channel?.unref();
}
