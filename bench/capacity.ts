/**
 * (b) Capacity: K concurrent `earshot send` publishers over loopback against
 * real receivers, each a child process of this one, measured in the same run:
 *
 * - `earshot`: the server (the CLI, from the TypeScript sources unless
 *   `build` is set) running the default pipeline (denoise → WAV + stats);
 * - `earshot-nodenoise`: the same server, a pipeline without stages (WAV + stats);
 * - `werift+wav`: bench/baseline-receiver.ts — werift answering WHIP the same
 *   way, decoding Opus and writing WAV on its main thread, nothing else;
 * - `werift`: the same receiver counting RTP packets only;
 * - with `compare`, `before` and `before-nodenoise`: another earshot tree
 *   (e.g. a copy of the code before a change) with the same two pipelines
 *   (`compareLabel` renames them), or only those `targets` names (e.g.
 *   `before@talk-dtx`); with `compareBaselines` also that tree's
 *   two baseline receivers, as `before:werift+wav` and `before:werift` (e.g.
 *   a tree whose node_modules holds a patched werift).
 *
 * Any target name may end in `@<source>` for what its publishers send (see
 * SOURCES): the default is `speech`, continuous noisy speech; `talk-dtx` and
 * `silence-dtx` send as browsers with DTX do (the `dtx` section).
 *
 * For every K the targets run one after another (so machine noise hits them
 * alike), repeated `repeat` times. Over a steady window (all sessions
 * connected) each child reports: CPU of the whole process and of its main
 * thread (from /proc …/schedstat, ns), and from bench/probe.ts the main
 * thread's allocation (JS heap and ArrayBuffer bytes) and GC pauses, its
 * event-loop utilization and delay; earshot also reports frame latency (RTP
 * arrival → frame at the sinks, over every frame of every peer), drops and
 * loss. CPU per stream is then given as a ratio to `werift+wav` at the same K.
 * The publishers run in this process on the same cores (or, with
 * `publishers`, in that many child processes); their CPU is not counted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childPublishers, encodedSources, localPublishers, SOURCES, type Publishers, type SourceName } from './publishers.js';
import { quantileOf, type LatencyHistogramSnapshot } from '../src/media/latency-histogram.js';
import type { ProbeWindow } from './probe.js';

export const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const PROBE = join(ROOT, 'bench', 'probe.ts');

export { encodedSources, SOURCES, type SourceName } from './publishers.js';

function sourceOf(name: TargetName): SourceName {
  const suffix = name.split('@')[1] ?? 'speech';
  if (!(suffix in SOURCES)) throw new Error(`target "${name}": unknown source "@${suffix}" (sources: ${Object.keys(SOURCES).join(', ')})`);
  return suffix as SourceName;
}
const LATENCY_LIMIT_MS = 20;

/** `earshot`, `earshot-nodenoise`, `werift+wav`, `werift`, and with `compare` `<label>`, `<label>-nodenoise`, `<label>:werift+wav`, `<label>:werift`. */
export type TargetName = string;
export const ALL_TARGETS: TargetName[] = ['earshot', 'earshot-nodenoise', 'werift+wav', 'werift'];
/** Earshot targets are compared with this one. */
export const BASELINE: TargetName = 'werift+wav';

export interface CapacityOptions {
  steps?: number[];
  /** Steady-window length, s (after every session connected). Default 6. */
  window?: number;
  /**
   * Seconds from the publishers' start to the window's start, for the sessions
   * to connect and settle. Default 2.5 + 0.06 × K (K sessions negotiating DTLS
   * at once take a few seconds on 2 cores). A server's cost keeps falling for
   * ~30 s after K sessions connect (their set-up's garbage collected, code
   * paths of light traffic compiled): that tail weighs on a light load such as
   * silent talkers, whose steady cost is measured with a longer settle.
   */
  settle?: number;
  repeat?: number;
  targets?: TargetName[];
  /** Another earshot tree to run as `before` / `before-nodenoise`. */
  compare?: string;
  /** Name of the compared tree's targets. Default `before`. */
  compareLabel?: string;
  /** Run the compared tree's baseline receivers too. */
  compareBaselines?: boolean;
  /** Run earshot from dist/ (bin/earshot.js) instead of the sources. */
  build?: boolean;
  threads?: number;
  /**
   * Processes the publishers run in, sharing them out (bench/publishers.ts).
   * Default 1: this process, one event loop for all K, whose stalls send
   * every stream's held-back packets at once.
   */
  publishers?: number;
  /** Progress lines go here (stdout, or stderr with --json). */
  log?: (line: string) => void;
}

export interface CapacityStep {
  target: TargetName;
  streams: number;
  round: number;
  /** Whole process, % of one core, over the steady window. */
  cpuPct: number;
  cpuPerStreamPct: number;
  /** Main thread only, % of one core. */
  mainCpuPct: number;
  mainPerStreamPct: number;
  /** Every other thread (DSP workers, V8's and libuv's helpers), % of one core. */
  otherThreadsCpuPct: number;
  /** Times a second the main thread, and all threads together, slept and woke (voluntary context switches). */
  mainWakesPerSecond: number;
  wakesPerSecond: number;
  /** Main-thread allocation, bytes per stream-second (JS heap + ArrayBuffers). */
  allocPerStreamSecond: number;
  heapAllocPerStreamSecond: number;
  externalAllocPerStreamSecond: number;
  gcPauseP99Ms: number;
  gcPauseMaxMs: number;
  /** Main-thread GC time, % of wall time. */
  gcPct: number;
  elu: number;
  eventLoopDelayP99Ms: number;
  /**
   * The publishing processes over the window (the worst of them): its event
   * loop's delay (p99 and worst) and its longest GC pause. When one stalls,
   * every one of its publishers' next packets leave together, and the
   * receivers see a burst.
   */
  publisherLoopDelayP99Ms: number;
  publisherLoopDelayMaxMs: number;
  publisherGcMaxMs: number;
  /** Earshot only: steady-state frame latency over every frame of every peer. */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** Earshot only: worker busy share, 0..1 (all worker threads). */
  workerUtilization?: number;
  framesDropped?: number;
  packetsLost?: number;
  failedSessions: number;
  /**
   * RSS growth over the step (end of the window minus before its sessions started) over K, MiB.
   * Not memory per stream: a server keeps what earlier steps grew, so this reads ~0 after a
   * larger step. The soak's ladder measures memory per stream.
   */
  rssPerStreamMiB: number;
  /** No drops, no loss, no failed session (latency aside). */
  noDrops: boolean;
  /** noDrops and steady p99 ≤ 20 ms (earshot); noDrops alone for baselines. */
  ok: boolean;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  node: string;
  date: string;
}

export interface CapacityResult {
  machine: Machine;
  steps: CapacityStep[];
  /** Per target and K: medians over rounds, with CPU per stream as a ratio to the baseline. */
  summary: CapacitySummaryRow[];
}

export interface CapacitySummaryRow {
  target: TargetName;
  streams: number;
  cpuPerStreamPct: number;
  mainPerStreamPct: number;
  /** cpuPerStreamPct / the baseline's at the same K (medians). */
  ratio: number | null;
  mainRatio: number | null;
  allocPerStreamSecond: number;
  gcPauseP99Ms: number;
  latencyP99Ms?: number;
  eventLoopDelayP99Ms: number;
  rounds: number;
}

export function machine(): Machine {
  return { cores: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? 'unknown', node: process.version, date: new Date().toISOString().slice(0, 10) };
}

/** Resident memory of `pid`, bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** CPU time (ns) of every thread of `pid`, and of its main thread. */
export function cpuNs(pid: number): { total: number; main: number } {
  const t = threadTimes(pid);
  return { total: t.total, main: t.main };
}

/**
 * CPU time (ns) of every thread of `pid` and of its main thread, and how often
 * they slept and woke (voluntary context switches). On a VM a wake costs CPU
 * whatever the thread then does, so hand-overs between threads show here
 * before they show in the CPU totals.
 */
export function threadTimes(pid: number): { total: number; main: number; wakes: number; mainWakes: number } {
  let total = 0;
  let main = 0;
  let wakes = 0;
  let mainWakes = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const w = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? 0);
      total += ns;
      wakes += w;
      if (tid === String(pid)) {
        main = ns;
        mainWakes = w;
      }
    } catch {
      // the thread exited meanwhile
    }
  }
  return { total, main, wakes, mainWakes };
}

/** A child process with the probe preloaded, and a request/response channel to it. */
export class Child {
  readonly #pending = new Map<string, (m: Record<string, unknown>) => void>();
  readonly exited: Promise<void>;
  constructor(readonly process: ChildProcess, readonly url: string) {
    process.on('message', (m: Record<string, unknown>) => {
      const cmd = m?.probe as string | undefined;
      if (cmd) this.#pending.get(cmd)?.(m);
    });
    this.exited = new Promise((r) => process.once('exit', () => r()));
  }
  get pid(): number {
    return this.process.pid!;
  }
  probe(cmd: string, extra: object = {}): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`probe ${cmd}: no answer`)), 30_000);
      this.#pending.set(cmd, (m) => {
        clearTimeout(timer);
        this.#pending.delete(cmd);
        resolve(m);
      });
      this.process.send({ probe: cmd, ...extra });
    });
  }
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    this.process.kill('SIGTERM');
    const t = setTimeout(() => this.process.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
  }
}

async function waitFor(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: the child exited (${child.exitCode})`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}

/** Node arguments for a server or a baseline: tsx (for TypeScript entries and the probe), then the probe. */
function nodeArgs(extra: string[] = []): string[] {
  return ['--import', 'tsx', '--import', PROBE, ...extra];
}

/** Port of the WebSocket server this process runs for the `ws16k` target (in the bench process: its CPU is not earshot's). */
const BENCH_WS_PORT = 18990;

/** The `ws16k` target's server: takes every connection and counts what arrives, like a recognizer that keeps up. */
async function benchWebSocketServer(): Promise<{ bytes: () => number; close(): Promise<void> }> {
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: BENCH_WS_PORT });
  await new Promise<void>((resolve, reject) => wss.once('listening', resolve).once('error', reject));
  let bytes = 0;
  wss.on('connection', (socket) => socket.on('message', (data: Buffer) => (bytes += data.length)));
  return {
    bytes: () => bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

/**
 * Output pipelines, run as targets `earshot-<name>` (the `outputs` section):
 * what each way of getting audio out costs next to `nodenoise` (WAV + stats).
 */
export const OUTPUT_PIPELINES: Record<string, { description: string; stages: unknown[]; sinks: unknown[] }> = {
  ogg: { description: 'bench: received packets to Ogg Opus (pass-through) + stats', stages: [], sinks: [{ type: 'record', format: 'ogg-opus' }, { type: 'stats' }] },
  wav16k: { description: 'bench: resampled to 16 kHz, WAV + stats', stages: [{ type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'record' }, { type: 'stats' }] },
  opus16k: { description: 'bench: resampled to 16 kHz, Opus-encoded in the worker to Ogg Opus + stats (the encode WHEP listeners use)', stages: [{ type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'record', format: 'ogg-opus' }, { type: 'stats' }] },
  ws16k: {
    description: 'bench: resampled to 16 kHz, streamed as s16 by a websocket sink to the bench process (an ASR stand-in that only counts bytes) + stats',
    stages: [{ type: 'resample', sampleRate: 16000 }],
    sinks: [{ type: 'websocket', url: `ws://127.0.0.1:${BENCH_WS_PORT}/bench` }, { type: 'stats' }],
  },
};

/**
 * Pipelines only the profile runs (`--only profile --pipeline NAME`): `norecord` is the
 * default pipeline without its recording, what the main thread would keep were recording done
 * in the workers (stats stays: a pipeline needs a sink, and its per-frame figures come from
 * the worker already).
 */
export const PROFILE_PIPELINES: Record<string, { description: string; stages: unknown[]; sinks: unknown[] }> = {
  norecord: { description: 'bench: the default pipeline without its recording', stages: [{ type: 'denoise' }], sinks: [{ type: 'stats' }] },
};

/** Pipelines for the earshot targets: the default one, the same without stages, and the output pipelines. */
function writePipelines(dir: string, root: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'default.json'), readFileSync(join(root, 'pipelines', 'default.json')));
  writeFileSync(
    join(dir, 'nodenoise.json'),
    JSON.stringify({ name: 'nodenoise', description: 'bench: the default pipeline without denoise', stages: [], sinks: [{ type: 'record', format: 'wav', sampleFormat: 's16' }, { type: 'stats' }] }),
  );
  // Only this tree's: a compared older tree may not know these sinks.
  if (root !== ROOT) return;
  for (const [name, p] of Object.entries({ ...OUTPUT_PIPELINES, ...PROFILE_PIPELINES })) writeFileSync(join(dir, `${name}.json`), JSON.stringify({ name, ...p }));
}

/**
 * The server under test as a child process. `threads` undefined: the server's own default (one per
 * CPU it may run on). `cpus`: a CPU list (`taskset -c`, e.g. "0") the server is confined to, as a
 * server with cores of its own.
 */
export async function startEarshot(options: { root: string; port: number; work: string; threads?: number; cpus?: string; build?: boolean; nodeFlags?: string[]; admission?: boolean; serveArgs?: string[] }): Promise<Child> {
  const { root, port, work, threads } = options;
  // BENCH_SERVER_NODE_FLAGS (e.g. "--trace-gc --max-semi-space-size=4") reaches the server process only.
  const envFlags = process.env.BENCH_SERVER_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  options = { ...options, nodeFlags: [...envFlags, ...(options.nodeFlags ?? [])] };
  const pipelines = join(work, 'pipelines');
  writePipelines(pipelines, root);
  const recordings = join(work, 'recordings');
  mkdirSync(recordings, { recursive: true });
  const args = ['serve', '--port', String(port), '--pipelines', pipelines, '--recordings', recordings, '--log-level', 'warn', '--max-sessions', '1000', '--max-pending-sessions', '1000', '--admission', options.admission ? 'on' : 'off', ...(threads === undefined ? [] : ['--threads', String(threads)]), ...(options.serveArgs ?? [])];
  // The probe is TypeScript, so a built server loads it through tsx too; its workers start with
  // no loader (execArgv: [], pool/worker-pool.ts), as users run them.
  const entry = [...nodeArgs(options.nodeFlags), options.build ? join(root, 'bin', 'earshot.js') : join(root, 'src', 'cli', 'main.ts')];
  // The server's log goes to stderr: stdout carries --json.
  // taskset execs node in its place: the child's pid is the server's.
  const command = options.cpus === undefined ? [process.execPath, ...entry, ...args] : ['taskset', '-c', options.cpus, process.execPath, ...entry, ...args];
  const child = spawn(command[0], command.slice(1), { cwd: ROOT, stdio: ['ignore', 2, 2, 'ipc'] });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/health`, child);
  return new Child(child, url);
}

async function startBaseline(root: string, mode: 'wav' | 'rtp', port: number, work: string): Promise<Child> {
  mkdirSync(work, { recursive: true });
  const child = spawn(process.execPath, [...nodeArgs(), join(root, 'bench', 'baseline-receiver.ts'), '--port', String(port), '--mode', mode, '--dir', work], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/health`, child);
  return new Child(child, url);
}

interface Target {
  name: TargetName;
  child: Child;
  /** WHIP URL of peer `id` (sendMany appends -1 … -K). */
  whip(id: string): string;
  earshot: boolean;
  /** What its publishers send. */
  source: SourceName;
}

async function histograms(url: string, peers: string[]): Promise<Array<LatencyHistogramSnapshot | null>> {
  return Promise.all(
    peers.map(async (p) => {
      const r = await fetch(`${url}/stats/${p}?histogram`);
      return r.ok ? ((await r.json()) as { latencyHistogram: LatencyHistogramSnapshot | null }).latencyHistogram : null;
    }),
  );
}

async function poolBusyMs(url: string): Promise<number> {
  return ((await (await fetch(`${url}/stats`)).json()) as { server: { pool: { busyMs: number } } }).server.pool.busyMs;
}

async function runStep(t: Target, k: number, round: number, windowS: number, publishers: Publishers, threads: number, settleS?: number): Promise<CapacityStep> {
  const id = `r${round}k${k}${t.name.replace(/[^a-z]/g, '')}`;
  const peers = publishers.peers(id, k);
  // Time for K sessions to negotiate DTLS at once (a few seconds at K = 40 on 2 cores), unless told.
  const warmS = settleS ?? 2.5 + 0.06 * k;
  const seconds = warmS + windowS + 1;
  let w: ProbeWindow | null = null;
  let cpu = { total: 0, main: 0, wakes: 0, mainWakes: 0 };
  let elapsed = 0;
  let steady: number[][] = [];
  let steadyMax = 0;
  let utilization: number | undefined;
  const rss0 = rssBytes(t.child.pid);
  let rss1 = rss0;
  let stalls = { loopDelayP99Ms: NaN, loopDelayMaxMs: NaN, gcMaxMs: NaN };
  const sampler = (async () => {
    await new Promise((r) => setTimeout(r, warmS * 1000));
    const h0 = t.earshot ? await histograms(t.child.url, peers) : [];
    const b0 = t.earshot ? await poolBusyMs(t.child.url) : 0;
    await t.child.probe('start');
    publishers.watch();
    const c0 = threadTimes(t.child.pid);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const c1 = threadTimes(t.child.pid);
    elapsed = (performance.now() - t0) / 1000;
    stalls = await publishers.watched();
    rss1 = rssBytes(t.child.pid);
    w = (await t.child.probe('stop')).window as ProbeWindow;
    cpu = { total: c1.total - c0.total, main: c1.main - c0.main, wakes: c1.wakes - c0.wakes, mainWakes: c1.mainWakes - c0.mainWakes };
    if (t.earshot) {
      utilization = ((await poolBusyMs(t.child.url)) - b0) / (elapsed * 1000 * threads);
      const h1 = await histograms(t.child.url, peers);
      steady = h1.map((h, i) => (h && h0[i] ? h.counts.map((c, j) => c - h0[i]!.counts[j]) : []));
      steadyMax = Math.max(0, ...h1.map((h) => h?.max ?? 0));
    }
  })();
  const failed = await publishers.send(id, k, t.whip, t.source, seconds);
  await sampler;
  const probe = w as ProbeWindow | null;
  const cpuPct = (cpu.total / 1e9 / elapsed) * 100;
  const mainCpuPct = (cpu.main / 1e9 / elapsed) * 100;
  const streamSeconds = k * (probe?.seconds ?? elapsed);
  const step: CapacityStep = {
    target: t.name,
    streams: k,
    round,
    cpuPct,
    cpuPerStreamPct: cpuPct / k,
    mainCpuPct,
    mainPerStreamPct: mainCpuPct / k,
    otherThreadsCpuPct: cpuPct - mainCpuPct,
    mainWakesPerSecond: cpu.mainWakes / elapsed,
    wakesPerSecond: cpu.wakes / elapsed,
    allocPerStreamSecond: probe ? (probe.heapAllocatedBytes + probe.externalAllocatedBytes) / streamSeconds : NaN,
    heapAllocPerStreamSecond: probe ? probe.heapAllocatedBytes / streamSeconds : NaN,
    externalAllocPerStreamSecond: probe ? probe.externalAllocatedBytes / streamSeconds : NaN,
    gcPauseP99Ms: probe?.gcPauseP99Ms ?? NaN,
    gcPauseMaxMs: probe?.gcPauseMaxMs ?? NaN,
    gcPct: probe ? (probe.gcTotalMs / 1000 / probe.seconds) * 100 : NaN,
    elu: probe?.elu ?? NaN,
    eventLoopDelayP99Ms: probe?.eventLoopDelayP99Ms ?? NaN,
    publisherLoopDelayP99Ms: stalls.loopDelayP99Ms,
    publisherLoopDelayMaxMs: stalls.loopDelayMaxMs,
    publisherGcMaxMs: stalls.gcMaxMs,
    failedSessions: failed,
    rssPerStreamMiB: Math.max(0, rss1 - rss0) / k / 2 ** 20,
    noDrops: failed === 0,
    ok: failed === 0,
  };
  if (t.earshot) {
    const got = (
      await Promise.all(
        peers.map(async (p) => {
          const r = await fetch(`${t.child.url}/stats/${p}`);
          return r.ok ? ((await r.json()) as { processing: { framesDropped: number }; rtp: { packetsLost: number } }) : undefined;
        }),
      )
    ).filter((p): p is NonNullable<typeof p> => p !== undefined);
    const valid = steady.filter((h) => h.length > 0);
    const all = valid.length > 0 ? valid.reduce((a, h) => a.map((v, j) => v + h[j])) : [];
    step.latencyP50Ms = quantileOf(all, 0.5, steadyMax) ?? NaN;
    step.latencyP99Ms = quantileOf(all, 0.99, steadyMax) ?? NaN;
    step.workerUtilization = utilization;
    step.framesDropped = got.reduce((n, p) => n + p.processing.framesDropped, 0);
    step.packetsLost = got.reduce((n, p) => n + Math.max(0, p.rtp.packetsLost), 0);
    step.noDrops = failed === 0 && step.framesDropped === 0 && step.packetsLost === 0;
    step.ok = step.noDrops && step.latencyP99Ms <= LATENCY_LIMIT_MS;
  }
  return step;
}

/** Median of the finite values (NaN if none). */
export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function summarize(steps: CapacityStep[]): CapacitySummaryRow[] {
  const rows: CapacitySummaryRow[] = [];
  const ks = [...new Set(steps.map((s) => s.streams))];
  const targets = [...new Set(steps.map((s) => s.target))];
  for (const k of ks) {
    for (const target of targets) {
      const mine = steps.filter((s) => s.target === target && s.streams === k);
      if (mine.length === 0) continue;
      // The baseline receiving what this target received: `werift+wav@talk-dtx` for `earshot@talk-dtx`, if it ran.
      const source = target.split('@')[1];
      const sameSource = source && steps.some((s) => s.target === `${BASELINE}@${source}`) ? `${BASELINE}@${source}` : BASELINE;
      const base = steps.filter((s) => s.target === sameSource && s.streams === k);
      const baseCpu = median(base.map((s) => s.cpuPerStreamPct));
      const baseMain = median(base.map((s) => s.mainPerStreamPct));
      const cpu = median(mine.map((s) => s.cpuPerStreamPct));
      const main = median(mine.map((s) => s.mainPerStreamPct));
      const lat = median(mine.map((s) => s.latencyP99Ms ?? NaN));
      rows.push({
        target,
        streams: k,
        cpuPerStreamPct: cpu,
        mainPerStreamPct: main,
        ratio: Number.isFinite(baseCpu) && baseCpu > 0 ? cpu / baseCpu : null,
        mainRatio: Number.isFinite(baseMain) && baseMain > 0 ? main / baseMain : null,
        allocPerStreamSecond: median(mine.map((s) => s.allocPerStreamSecond)),
        gcPauseP99Ms: median(mine.map((s) => s.gcPauseP99Ms)),
        ...(Number.isFinite(lat) ? { latencyP99Ms: lat } : {}),
        eventLoopDelayP99Ms: median(mine.map((s) => s.eventLoopDelayP99Ms)),
        rounds: mine.length,
      });
    }
  }
  return rows;
}

/** An earshot tree's targets (`label`, `label-nodenoise`, `label-<output>`) and the pipeline each runs (undefined: the default). */
function earshotTargets(label: string): Map<string, string | undefined> {
  return new Map<string, string | undefined>([[label, undefined], [`${label}-nodenoise`, 'nodenoise'], ...Object.keys(OUTPUT_PIPELINES).map((p): [string, string] => [`${label}-${p}`, p])]);
}

/**
 * Why `names` would not all make targets (a typo, a source that does not exist, a compared tree not
 * given), or undefined: checked before a run starts, so a bad name stops nothing half-way.
 */
export function targetProblem(names: readonly TargetName[], compare: string | undefined, label = 'before'): string | undefined {
  const baselines = ['werift+wav', 'werift', ...(compare ? [`${label}:werift+wav`, `${label}:werift`] : [])];
  const earshot = [...earshotTargets('earshot').keys(), ...(compare ? earshotTargets(label).keys() : [])];
  for (const name of names) {
    const source = name.split('@')[1];
    if (source !== undefined && !(source in SOURCES)) return `target "${name}": unknown source "@${source}" (sources: ${Object.keys(SOURCES).join(', ')})`;
  }
  const unknown = names.filter((n) => { const base = n.split('@')[0]; return !earshot.includes(base) && !baselines.includes(base); });
  if (unknown.length === 0) return undefined;
  const known = [...earshotTargets('earshot').keys(), 'werift+wav', 'werift'];
  return `unknown capacity target${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')} (targets: ${known.join(', ')}, each with @source; with --compare also <label>, <label>-nodenoise, <label>:werift+wav, <label>:werift${compare ? `, label "${label}"` : ': no --compare was given'})`;
}

export async function benchCapacity(options: CapacityOptions = {}): Promise<CapacityResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const steps = options.steps ?? [10, 20, 40];
  const windowS = options.window ?? 6;
  const repeat = options.repeat ?? 1;
  const threads = options.threads ?? 2;
  const names = [...(options.targets ?? ALL_TARGETS)];
  const label = options.compareLabel ?? 'before';
  // Targets that name the compared tree (e.g. `before@talk-dtx`) say which of its runs are wanted; else both pipelines.
  if (options.compare && !names.some((n) => n.split(/[@:-]/)[0] === label)) names.push(label, `${label}-nodenoise`);
  if (options.compare && options.compareBaselines) names.push(`${label}:werift+wav`, `${label}:werift`);
  const work = await mkdtemp(join(tmpdir(), 'earshot-capacity-'));
  const needed = new Set(names.map(sourceOf));
  const publisherProcesses = options.publishers ?? 1;
  const publishers = publisherProcesses > 1 ? await childPublishers(publisherProcesses, [...needed]) : localPublishers(await encodedSources(needed));
  const children: Child[] = [];
  const targets: Target[] = [];
  const asr = names.some((n) => n.endsWith('-ws16k')) ? await benchWebSocketServer() : undefined;
  const m = machine();
  log(`\n(b) Capacity on ${m.cores} cores (${m.cpuModel}), Node ${m.node}, ${threads} DSP worker threads; K = ${steps.join(', ')}, ${windowS} s steady window${options.settle !== undefined ? ` from ${options.settle} s after the publishers start` : ''}, ${repeat} round${repeat > 1 ? 's' : ''}${publisherProcesses > 1 ? `; publishers in ${publisherProcesses} processes` : ''}`);
  try {
    let port = 18931;
    const earshotTree = async (root: string, label: string) => {
      const base = (n: TargetName) => n.split('@')[0];
      if (!names.some((n) => base(n) === label || base(n).startsWith(`${label}-`))) return;
      const child = await startEarshot({ root, port: port++, work: join(work, label), threads, build: options.build });
      children.push(child);
      const pipelineOf = earshotTargets(label);
      for (const name of names) {
        if (!pipelineOf.has(base(name))) continue;
        const pipeline = pipelineOf.get(base(name));
        targets.push({ name, child, earshot: true, source: sourceOf(name), whip: (id) => `${child.url}/whip/bench/${id}${pipeline ? `?pipeline=${pipeline}` : ''}` });
      }
    };
    await earshotTree(ROOT, 'earshot');
    if (options.compare) await earshotTree(resolve(options.compare), label);
    const baselines: Array<[string, 'wav' | 'rtp', string]> = [
      ['werift+wav', 'wav', ROOT],
      ['werift', 'rtp', ROOT],
      ...(options.compare ? ([[`${label}:werift+wav`, 'wav', resolve(options.compare)], [`${label}:werift`, 'rtp', resolve(options.compare)]] as Array<[string, 'wav' | 'rtp', string]>) : []),
    ];
    for (const [name, mode, root] of baselines) {
      for (const target of names.filter((n) => n.split('@')[0] === name)) {
        const child = await startBaseline(root, mode, port++, join(work, target.replace(/\W/g, '')));
        children.push(child);
        targets.push({ name: target, child, earshot: false, source: sourceOf(target), whip: (id) => `${child.url}/whip/bench/${id}` });
      }
    }
    // A name that made no target was a typo, or names a compared tree not given: said, not skipped.
    if (names.some((n) => !targets.some((t) => t.name === n))) throw new Error(targetProblem(names, options.compare, label) ?? `targets not started: ${names.filter((n) => !targets.some((t) => t.name === n)).join(', ')}`);
    // Warm-up: JIT, worker start-up, first sessions: not measured.
    for (const t of targets) await runStep(t, 4, 0, 1, publishers, threads).catch(() => undefined);
    printHeader(log);
    const results: CapacityStep[] = [];
    for (let round = 1; round <= repeat; round++) {
      for (const k of steps) {
        // Alternate the order between rounds so no target always runs first.
        const order = round % 2 === 1 ? targets : [...targets].reverse();
        for (const t of order) {
          await new Promise((r) => setTimeout(r, 500));
          const step = await runStep(t, k, round, windowS, publishers, threads, options.settle);
          results.push(step);
          log(formatStep(step));
        }
      }
    }
    const summary = summarize(results);
    printSummary(summary, log);
    return { machine: m, steps: results, summary };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await publishers.close();
    if (asr) log(`websocket sink target: ${(asr.bytes() / 1e6).toFixed(1)} MB received by the bench's WebSocket server`);
    await asr?.close();
    await rm(work, { recursive: true, force: true });
  }
}

function printHeader(log: (l: string) => void): void {
  log(
    '  target'.padEnd(20) +
      'K'.padStart(4) +
      'CPU %'.padStart(8) +
      'per stream'.padStart(12) +
      'main %'.padStart(8) +
      'main/str'.padStart(10) +
      'other %'.padStart(9) +
      'wakes/s main'.padStart(14) +
      'all'.padStart(7) +
      'alloc KB/str·s'.padStart(16) +
      'GC p99 ms'.padStart(11) +
      'GC %'.padStart(7) +
      'ELU'.padStart(6) +
      'loop p99'.padStart(10) +
      'p99 ms'.padStart(8) +
      'workers %'.padStart(11) +
      'ΔRSS MiB/str'.padStart(13) +
      'drops'.padStart(7) +
      'pub lag max'.padStart(13),
  );
}

function formatStep(s: CapacityStep): string {
  const f = (v: number | undefined, d = 1) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
  return (
    `  ${s.target}`.padEnd(20) +
    String(s.streams).padStart(4) +
    f(s.cpuPct, 0).padStart(8) +
    f(s.cpuPerStreamPct, 2).padStart(12) +
    f(s.mainCpuPct, 0).padStart(8) +
    f(s.mainPerStreamPct, 2).padStart(10) +
    f(s.otherThreadsCpuPct, 0).padStart(9) +
    f(s.mainWakesPerSecond, 0).padStart(14) +
    f(s.wakesPerSecond, 0).padStart(7) +
    f(s.allocPerStreamSecond / 1024, 0).padStart(16) +
    f(s.gcPauseP99Ms, 1).padStart(11) +
    f(s.gcPct, 1).padStart(7) +
    f(s.elu, 2).padStart(6) +
    f(s.eventLoopDelayP99Ms, 1).padStart(10) +
    f(s.latencyP99Ms, 1).padStart(8) +
    f(s.workerUtilization === undefined ? undefined : s.workerUtilization * 100, 0).padStart(11) +
    f(s.rssPerStreamMiB, 2).padStart(13) +
    (s.framesDropped === undefined ? (s.failedSessions ? `${s.failedSessions} failed` : 'n/a') : s.noDrops ? 'none' : `${s.framesDropped}/${s.packetsLost}`).padStart(7) +
    f(s.publisherLoopDelayMaxMs, 0).padStart(13) +
    (s.failedSessions && s.framesDropped !== undefined ? `  (${s.failedSessions} sessions failed)` : '')
  );
}

export function printSummary(rows: CapacitySummaryRow[], log: (l: string) => void = console.log): void {
  log(`\n  CPU per stream (% of one core), medians over rounds, and as a ratio to ${BASELINE} (werift decoding + writing WAV on its main thread) at the same K:`);
  log('  target'.padEnd(20) + 'K'.padStart(4) + 'CPU/stream'.padStart(12) + `× ${BASELINE}`.padStart(15) + 'main/stream'.padStart(13) + '× main'.padStart(8) + 'alloc KB/str·s'.padStart(16) + 'GC p99 ms'.padStart(11) + 'p99 ms'.padStart(8) + 'loop p99'.padStart(10));
  const f = (v: number | null | undefined, d: number) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
  for (const r of rows) {
    log(
      `  ${r.target}`.padEnd(20) +
        String(r.streams).padStart(4) +
        f(r.cpuPerStreamPct, 2).padStart(12) +
        f(r.ratio, 2).padStart(15) +
        f(r.mainPerStreamPct, 2).padStart(13) +
        f(r.mainRatio, 2).padStart(8) +
        f(r.allocPerStreamSecond / 1024, 0).padStart(16) +
        f(r.gcPauseP99Ms, 1).padStart(11) +
        f(r.latencyP99Ms, 1).padStart(8) +
        f(r.eventLoopDelayP99Ms, 1).padStart(10),
    );
  }
}

export function resultsDir(): string {
  const dir = join(ROOT, 'bench', 'results');
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  return dir;
}
