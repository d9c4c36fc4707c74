/**
 * Where the server's main thread goes under load: K publishers (default 30)
 * against the earshot server (default pipeline), a V8 CPU profile of the main
 * thread over a steady window (bench/probe.ts drives the inspector in the
 * child), and the samples sorted into categories.
 *
 * Each sample is charged to the nearest frame on its stack that belongs to a
 * package or to earshot: Node internals called by werift (crypto, dgram) count
 * as werift, `fs` writes called by the WAV writer as the WAV writer. Frames
 * with no such ancestor are the event loop itself (timers, I/O polling,
 * MessagePort plumbing). V8's own `(garbage collector)` and `(program)`
 * (native code outside JS, e.g. structured clone, libuv) are their own
 * categories. Figures are % of one core over the window: the main thread's
 * CPU time (from /proc) shared out in proportion to the profile's busy samples.
 * Samples are taken on wall time, so a thread preempted inside a system call
 * (waking a worker, submitting an fs write) collects samples there: such items
 * read high on a busy machine.
 *
 * So, where `perf` can sample (bench/perf-record.ts), a window before that
 * one samples the main thread on the CPU only, kernel time included, and
 * charges each sample to the same categories by the JavaScript on its stack
 * (the server then runs with `--perf-basic-prof`). Earshot's own share of the
 * main thread is read from that window: it is what the CPU spent.
 *
 * A last window of the same length runs V8's sampling heap profiler
 * (collected objects included) and reports allocation by the same
 * categories, in bytes per stream-second. Both profiles are written to
 * bench/results/ (not kept in git). With `compare`, the other tree is
 * profiled instead of this one.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sendMany } from '../src/client/audio-sender.js';
import { cpuNs, encodedSources, machine, PROFILE_PIPELINES, resultsDir, ROOT, startEarshot, type Machine, type SourceName } from './capacity.js';
import type { ProbeWindow } from './probe.js';
import { jsFrame, perfUnavailable, readStacks, recordThread, type PerfStack } from './perf-record.js';

export interface ProfileResult {
  machine: Machine;
  streams: number;
  pipeline: string;
  /** What the publishers sent (capacity.ts SOURCES). */
  source: string;
  seconds: number;
  /** Main-thread CPU over the window (from /proc), % of one core: the categories share it out. */
  mainCpuPct: number;
  /** Category → % of one core. */
  categories: Record<string, number>;
  /** Earshot's own code by file (sources under src/), % of one core. */
  earshotFiles: Record<string, number>;
  /** Top self-time functions, % of one core. */
  topFunctions: Array<{ name: string; pct: number }>;
  /** Earshot's own code (the `earshot: …` categories), % of one core. */
  earshotOwnPct: number;
  /** Of it, `postMessage` called by the pool: handing each batch to its worker (a thread wake), % of one core. */
  handoffPct: number;
  gc: ProbeWindow | null;
  profilePath: string;
  /** Main-thread allocation by category over a second window (sampling heap profiler), bytes per stream-second. */
  allocation: Record<string, number>;
  /** Top allocation sites, bytes per stream-second. */
  topAllocations: Array<{ name: string; bytesPerStreamSecond: number }>;
  heapProfilePath: string;
  /** The main thread on the CPU (perf), or why that window did not run. */
  onCpu: OnCpuResult | { skipped: string };
}

/** Where the main thread's CPU time went, from on-CPU samples (`perf record -t`, kernel included). */
export interface OnCpuResult {
  seconds: number;
  samples: number;
  /** Main-thread CPU over this window (from /proc), % of one core. */
  mainCpuPct: number;
  /** Category → % of the main thread's CPU time. */
  categories: Record<string, number>;
  /** Earshot's own code by file, % of the main thread's CPU time. */
  earshotFiles: Record<string, number>;
  /** Earshot's functions (native code they called included), % of the main thread's CPU time. */
  earshotFunctions: Array<{ name: string; pct: number }>;
  /** Earshot's own code (the `earshot: …` categories), % of the main thread's CPU time. */
  earshotOwnShare: number;
  /** Of it, time in system calls (waking a worker, handing a write to libuv), % of the main thread's CPU time. */
  earshotSyscallShare: number;
}

/** V8's collector at work: charged to GC whichever code allocated. */
const GC_FRAME = /v8::internal::(Heap::|Scavenger|ScavengerCollector|MarkCompactCollector|MinorMarkCompact|MinorMS|ConcurrentMarking|IncrementalMarking)/;

/** Charges on-CPU stacks to the categories of `categoryOf`, by the innermost package or earshot frame on each. */
export function categorizeStacks(stacks: readonly PerfStack[], root: string): Omit<OnCpuResult, 'seconds' | 'mainCpuPct'> {
  const categories: Record<string, number> = {};
  const files: Record<string, number> = {};
  const functions: Record<string, number> = {};
  let own = 0;
  let ownSyscalls = 0;
  const n = stacks.length;
  for (const stack of stacks) {
    let category = 'node event loop, native';
    if (stack.some((f) => GC_FRAME.test(f))) category = 'GC';
    else {
      for (const frame of stack) {
        const js = jsFrame(frame);
        const c = js && categoryOf(js.url, root);
        if (!js || !c) continue; // native code, or Node internals: charged to the JavaScript that called them
        category = c;
        if (c.startsWith('earshot')) {
          const at = js.url.lastIndexOf('/src/');
          const file = at >= 0 ? js.url.slice(at + 1) : js.url;
          files[file] = (files[file] ?? 0) + 1;
          const name = `${js.name} ${file}`;
          functions[name] = (functions[name] ?? 0) + 1;
        }
        break;
      }
    }
    categories[category] = (categories[category] ?? 0) + 1;
    if (category.startsWith('earshot:')) {
      own++;
      if (stack.some((f) => f.startsWith('entry_SYSCALL_64') || f === 'do_syscall_64')) ownSyscalls++;
    }
  }
  const share = (count: number) => +((count / Math.max(1, n)) * 100).toFixed(2);
  const sorted = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, share(v)]));
  return {
    samples: n,
    categories: sorted(categories),
    earshotFiles: sorted(files),
    earshotFunctions: Object.entries(functions).sort((a, b) => b[1] - a[1]).slice(0, 20).map(([name, v]) => ({ name, pct: share(v) })),
    earshotOwnShare: share(own),
    earshotSyscallShare: share(ownSyscalls),
  };
}

interface HeapNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** A sampling heap profile as a flat CPU-profile-like node list, weights in bytes. */
function flattenHeap(head: HeapNode): { nodes: CpuProfile['nodes']; weights: Map<number, number> } {
  const nodes: CpuProfile['nodes'] = [];
  const weights = new Map<number, number>();
  const walk = (n: HeapNode) => {
    nodes.push({ id: n.id, callFrame: n.callFrame, children: n.children.map((c) => c.id) });
    if (n.selfSize > 0) weights.set(n.id, n.selfSize);
    n.children.forEach(walk);
  };
  walk(head);
  return { nodes, weights };
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Category of a frame's URL, or undefined for Node internals (charged to the caller). */
function categoryOf(url: string, root: string): string | undefined {
  if (!url) return undefined;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) {
    const pkg = nm[1];
    if (pkg === 'werift' || pkg.startsWith('@shinyoshiaki') || pkg === 'rx.mini') return 'werift';
    if (pkg === 'piscina') return 'piscina';
    if (pkg === 'rxjs') return 'earshot: rxjs fan-out';
    if (pkg === 'tsx' || pkg === 'esbuild' || pkg === 'get-tsconfig') return 'tsx loader';
    return `other package (${pkg})`;
  }
  const path = url.replace(/^file:\/\//, '');
  if (path.startsWith(root) || path.includes('/src/') || path.includes('/wasm/')) {
    if (path.includes('/bench/')) return 'bench probe';
    const file = path.slice(path.lastIndexOf('/src/') + 1);
    // earshot's replacements of werift functions (header parse, SRTP and its GCM, events) do werift's work.
    if (/rtc\/(werift-|aes128-gcm)/.test(file)) return 'werift (as replaced by earshot)';
    if (/sinks\/(wav-file-writer|recorder|record-sink|file-writes|chunk-pool)/.test(file)) return 'earshot: WAV recording';
    if (/(rtc\/(rtp-ingest|peer-session)|media\/opus-toc)/.test(file)) return 'earshot: RTP ingest';
    if (/pool\//.test(file)) return 'earshot: pool (batching, protocol)';
    if (/pipeline\/peer-pipeline|core\/(earshot-core|session-lifecycle)/.test(file)) return 'earshot: pipeline delivery';
    if (/(sinks\/peer-stats|media\/latency-histogram)/.test(file)) return 'earshot: statistics';
    return 'earshot: other';
  }
  return undefined; // node:internal, native
}

export function categorize(profile: Pick<CpuProfile, 'nodes' | 'samples' | 'timeDeltas'>, root: string): { categories: Record<string, number>; files: Record<string, number>; functions: Record<string, number>; totalUs: number; handoffUs: number } {
  const parent = new Map<number, number>();
  const byId = new Map<number, CpuProfile['nodes'][number]>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const memo = new Map<number, string>();
  const catOf = (id: number): string => {
    const known = memo.get(id);
    if (known) return known;
    const n = byId.get(id)!;
    const fn = n.callFrame.functionName;
    let c: string | undefined;
    if (fn === '(garbage collector)') c = 'GC';
    else if (fn === '(idle)') c = 'idle';
    else if (fn === '(program)') c = 'native (program)';
    else if (fn === '(root)') c = 'node event loop';
    else c = categoryOf(n.callFrame.url, root);
    if (c === undefined) {
      const p = parent.get(id);
      c = p === undefined ? 'node event loop' : catOf(p);
      if (c === 'node event loop' && n.callFrame.url.startsWith('node:')) c = 'node event loop';
    }
    memo.set(id, c);
    return c;
  };
  const fileOf = (id: number): string | undefined => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const url = byId.get(cur)!.callFrame.url;
      if (/node_modules/.test(url)) return undefined;
      const i = url.lastIndexOf('/src/');
      if (i >= 0) return url.slice(i + 1);
    }
    return undefined;
  };
  const categories: Record<string, number> = {};
  const files: Record<string, number> = {};
  const functions: Record<string, number> = {};
  let total = 0;
  let handoff = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const c = catOf(id);
    categories[c] = (categories[c] ?? 0) + dt;
    if (c.startsWith('earshot')) {
      const f = fileOf(id);
      if (f) files[f] = (files[f] ?? 0) + dt;
    }
    // The probe's own samples (starting the profiler) are no function of the server's.
    if (c === 'bench probe') return;
    const n = byId.get(id)!;
    const url = n.callFrame.url;
    const name = `${n.callFrame.functionName || '(anonymous)'} ${url ? url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|wasm)\//, '$1/') : ''}`.trim();
    functions[name] = (functions[name] ?? 0) + dt;
    if (n.callFrame.functionName === 'postMessage' && !url && c === 'earshot: pool (batching, protocol)') handoff += dt;
  });
  return { categories, files, functions, totalUs: total, handoffUs: handoff };
}

/** What `--pipeline` may name: the two capacity pipelines and the profile's own. */
export type ProfilePipeline = 'default' | 'nodenoise' | keyof typeof PROFILE_PIPELINES;

/** `--pipeline`'s value, checked. */
export function profilePipeline(name: string | undefined): ProfilePipeline {
  if (name === undefined) return 'default';
  if (name === 'default' || name === 'nodenoise' || name in PROFILE_PIPELINES) return name;
  throw new Error(`--pipeline: one of default, nodenoise, ${Object.keys(PROFILE_PIPELINES).join(', ')}; got ${JSON.stringify(name)}`);
}

export async function benchProfile(options: { streams?: number; window?: number; compare?: string; build?: boolean; threads?: number; pipeline?: ProfilePipeline; source?: SourceName; log?: (l: string) => void } = {}): Promise<ProfileResult> {
  const log = options.log ?? console.log;
  const k = options.streams ?? 30;
  const windowS = options.window ?? 8;
  const root = options.compare ? resolve(options.compare) : ROOT;
  const pipeline = options.pipeline ?? 'default';
  const work = await mkdtemp(join(tmpdir(), 'earshot-profile-'));
  const noPerf = perfUnavailable();
  if (noPerf) log(`  (on-CPU window skipped: ${noPerf})`);
  // --perf-basic-prof: the server names its compiled JavaScript in /tmp/perf-<pid>.map for perf.
  const child = await startEarshot({ root, port: 18951, work, threads: options.threads ?? 2, build: options.build, nodeFlags: noPerf ? [] : ['--perf-basic-prof'] });
  const perfMap = join(tmpdir(), `perf-${child.pid}.map`);
  const sourceName = options.source ?? 'speech';
  const source = (await encodedSources(new Set([sourceName])))[sourceName]!;
  const path = join(resultsDir(), `profile-main-k${k}-${pipeline}${sourceName === 'speech' ? '' : `-${sourceName}`}${options.compare ? '-compare' : ''}.cpuprofile`);
  try {
    await sendMany(4, { url: `${child.url}/whip/bench/warm`, source, seconds: 2, loop: true }); // JIT warm-up
    const warmS = 2.5 + 0.06 * k;
    const onCpuWindow = (async (): Promise<{ data: string; seconds: number; mainCpuPct: number } | { skipped: string }> => {
      await new Promise((r) => setTimeout(r, warmS * 1000));
      if (noPerf) return { skipped: noPerf };
      const c0 = cpuNs(child.pid).main;
      const t0 = performance.now();
      // The main thread's id is the process id.
      const data = await recordThread(child.pid, windowS, work).catch((e: Error) => e);
      if (data instanceof Error) return { skipped: data.message };
      const seconds = (performance.now() - t0) / 1000;
      const mainCpuPct = ((cpuNs(child.pid).main - c0) / 1e6 / (seconds * 1000)) * 100;
      return { data, seconds, mainCpuPct };
    })();
    const sampler = (async () => {
      await onCpuWindow;
      await child.probe('start');
      await child.probe('profile-start', { intervalUs: 250 });
      const c0 = cpuNs(child.pid).main;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, windowS * 1000));
      const mainCpuPct = ((cpuNs(child.pid).main - c0) / 1e6 / (performance.now() - t0)) * 100;
      await child.probe('profile-stop', { path });
      return { gc: (await child.probe('stop')).window as ProbeWindow, mainCpuPct };
    })();
    const heapPath = path.replace(/\.cpuprofile$/, '.heapprofile');
    const heapSampler = sampler.then(async (r) => {
      await child.probe('heap-start', { intervalUs: 8192 });
      await new Promise((res) => setTimeout(res, windowS * 1000));
      await child.probe('heap-stop', { path: heapPath });
      return r;
    });
    const q = pipeline === 'default' ? '' : `?pipeline=${pipeline}`;
    const perfS = noPerf ? 0 : windowS + 1;
    await sendMany(k, { url: `${child.url}/whip/bench/p${q}`, source, seconds: warmS + perfS + 2 * windowS + 4, loop: true });
    const { gc, mainCpuPct } = await heapSampler;
    // The samples are read once the publishers are done: `perf script` takes CPU of its own.
    const window = await onCpuWindow;
    let onCpu: OnCpuResult | { skipped: string };
    try {
      onCpu = 'skipped' in window ? window : { seconds: window.seconds, mainCpuPct: window.mainCpuPct, ...categorizeStacks(readStacks(window.data), root) };
    } catch (e) {
      onCpu = { skipped: (e as Error).message };
    }
    const heap = flattenHeap((JSON.parse(readFileSync(heapPath, 'utf8')) as { head: HeapNode }).head);
    const ids = [...heap.weights.keys()];
    const alloc = categorize({ nodes: heap.nodes, samples: ids, timeDeltas: ids.map((id) => heap.weights.get(id)!) }, root);
    const perStreamSecond = (bytes: number) => Math.round(bytes / k / windowS);
    const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
    const { categories, files, functions, totalUs, handoffUs } = categorize(profile, root);
    // Samples are taken on wall time, and on a busy machine a descheduled thread still
    // collects them: share the measured main-thread CPU out by the busy samples instead.
    // The probe's own samples (starting the profiler) are left out.
    const busyUs = totalUs - (categories.idle ?? 0) - (categories['bench probe'] ?? 0);
    const pct = (us: number) => (us / busyUs) * mainCpuPct;
    const own = Object.entries(categories).reduce((sum, [c, us]) => (c.startsWith('earshot:') ? sum + us : sum), 0);
    const sortDesc = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).sort((a, b) => b[1] - a[1]).map(([kk, v]) => [kk, +pct(v).toFixed(2)]));
    const result: ProfileResult = {
      machine: machine(),
      streams: k,
      pipeline,
      source: sourceName,
      seconds: totalUs / 1e6,
      mainCpuPct,
      categories: sortDesc(Object.fromEntries(Object.entries(categories).filter(([c]) => c !== 'idle' && c !== 'bench probe'))),
      earshotFiles: sortDesc(files),
      topFunctions: Object.entries(functions).filter(([n]) => n !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 25).map(([name, us]) => ({ name, pct: +pct(us).toFixed(2) })),
      earshotOwnPct: +pct(own).toFixed(2),
      handoffPct: +pct(handoffUs).toFixed(2),
      gc,
      profilePath: path,
      allocation: Object.fromEntries(Object.entries(alloc.categories).sort((a, b) => b[1] - a[1]).map(([c, v]) => [c, perStreamSecond(v)])),
      topAllocations: Object.entries(alloc.functions).sort((a, b) => b[1] - a[1]).slice(0, 20).map(([name, v]) => ({ name, bytesPerStreamSecond: perStreamSecond(v) })),
      heapProfilePath: heapPath,
      onCpu,
    };
    printProfile(result, log);
    return result;
  } finally {
    await child.stop();
    await rm(work, { recursive: true, force: true });
    await rm(perfMap, { force: true });
  }
}

export function printProfile(r: ProfileResult, log: (l: string) => void = console.log): void {
  log(`\n(p) Main thread at K = ${r.streams} (${r.pipeline} pipeline, ${r.source}), ${r.seconds.toFixed(1)} s CPU profile, % of one core (${r.machine.cores} cores, ${r.machine.cpuModel})`);
  log(`  main thread CPU ${r.mainCpuPct.toFixed(1)} % of one core (from /proc), shared out by the profile's busy samples:`);
  for (const [c, v] of Object.entries(r.categories)) log(`  ${c}`.padEnd(44) + v.toFixed(1).padStart(7));
  log('  earshot by file:');
  for (const [f, v] of Object.entries(r.earshotFiles).slice(0, 12)) log(`    ${f}`.padEnd(44) + v.toFixed(2).padStart(7));
  const share = (v: number) => `${v.toFixed(1)} % of one core, ${((v / r.mainCpuPct) * 100).toFixed(0)} % of the main thread`;
  log(`  earshot's own code: ${share(r.earshotOwnPct)}; of it, handing batches to the workers (postMessage: a thread wake, sampled on wall time) ${share(r.handoffPct)}; the rest ${share(r.earshotOwnPct - r.handoffPct)}`);
  log('  top functions (self time):');
  for (const f of r.topFunctions.slice(0, 15)) log(`    ${f.name}`.slice(0, 90).padEnd(90) + f.pct.toFixed(2).padStart(7));
  if (r.gc) {
    const mb = (r.gc.heapAllocatedBytes + r.gc.externalAllocatedBytes) / 2 ** 20;
    log(`  GC: ${r.gc.gcCount} collections, ${((r.gc.gcTotalMs / 1000 / r.gc.seconds) * 100).toFixed(1)} % of the window, pause p99 ${r.gc.gcPauseP99Ms.toFixed(1)} ms (max ${r.gc.gcPauseMaxMs.toFixed(1)}); allocated ${(mb / r.gc.seconds / r.streams).toFixed(3)} MB per stream-second (heap ${(r.gc.heapAllocatedBytes / 2 ** 20 / r.gc.seconds / r.streams).toFixed(3)}, ArrayBuffers ${(r.gc.externalAllocatedBytes / 2 ** 20 / r.gc.seconds / r.streams).toFixed(3)}) — profiler running`);
  }
  log(`  allocation by category (sampling heap profiler, separate ${r.seconds.toFixed(0)} s window), KB per stream-second:`);
  for (const [c, v] of Object.entries(r.allocation)) log(`  ${c}`.padEnd(44) + (v / 1024).toFixed(1).padStart(7));
  log('  top allocation sites, KB per stream-second:');
  for (const f of r.topAllocations.slice(0, 12)) log(`    ${f.name}`.slice(0, 90).padEnd(90) + (f.bytesPerStreamSecond / 1024).toFixed(1).padStart(7));
  log(`  profiles: ${r.profilePath}, ${r.heapProfilePath}`);
  const c = r.onCpu;
  if ('skipped' in c) {
    log(`  on the CPU: not measured (${c.skipped})`);
    return;
  }
  log(`  on the CPU (perf, ${c.seconds.toFixed(1)} s before the profiles above, ${c.samples} samples, kernel included; main thread ${c.mainCpuPct.toFixed(1)} % of one core), % of the main thread:`);
  for (const [cat, v] of Object.entries(c.categories)) log(`  ${cat}`.padEnd(44) + v.toFixed(1).padStart(7));
  log('  earshot by file:');
  for (const [f, v] of Object.entries(c.earshotFiles).slice(0, 12)) log(`    ${f}`.padEnd(44) + v.toFixed(2).padStart(7));
  log('  earshot functions (native code they call included):');
  for (const f of c.earshotFunctions.slice(0, 12)) log(`    ${f.name}`.slice(0, 90).padEnd(90) + f.pct.toFixed(2).padStart(7));
  log(`  earshot's own code on the CPU: ${c.earshotOwnShare.toFixed(1)} % of the main thread (${((c.earshotOwnShare / 100) * c.mainCpuPct).toFixed(1)} % of one core); of it in system calls (waking workers, handing writes to libuv) ${c.earshotSyscallShare.toFixed(1)} %`);
}
