/**
 * Engines or threads? The same load against `earshot serve --processes 1
 * --threads 2` (one werift main thread, two DSP workers) and `--processes 2
 * --threads 1` (two engine processes behind the front, one worker each), K
 * concurrent senders over loopback, default pipeline (denoise → WAV + stats),
 * admission off, K rising until frames drop — the method of bench/capacity.ts
 * (steady-state p99 of RTP arrival → frame at the sinks over every frame of
 * every peer, CPU of every server process, worker utilization).
 *
 * Both run from the TypeScript sources (tsx), so neither depends on a fresh
 * build. The configurations alternate round by round, so a machine whose
 * background load drifts does not favour one of them. Figures are printed,
 * never asserted.
 *
 *   npm run bench -- --only engines [--steps 20,40,60] [--repeat 2] [--window 8]
 *   node --import tsx bench/engines.ts            # BENCH_STEPS=20,40,60 BENCH_ROUNDS=2 BENCH_SECONDS=8
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSource, sendMany } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-stream.js';
import { quantileOf, type LatencyHistogramSnapshot } from '../src/media/latency-histogram.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const LATENCY_LIMIT_MS = 20;
const HZ = 100; // USER_HZ

interface Config {
  name: string;
  args: string[];
}

const CONFIGS: Config[] = [
  { name: '1 engine × 2 threads', args: ['--processes', '1', '--threads', '2'] },
  { name: '2 engines × 1 thread', args: ['--processes', '2', '--threads', '1'] },
];

export interface Step {
  config: string;
  round: number;
  streams: number;
  failed: number;
  dropped: number;
  lost: number;
  p50: number;
  p99: number;
  worstP99: number;
  cpuPct: number;
  workersPct: number;
  rssMiB: number;
}

function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function json<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return (await res.json()) as T;
}

async function startServer(config: Config, recordings: string): Promise<{ child: ChildProcess; url: string; pids: number[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'serve', '--port', '0', '--recordings', recordings, '--log-level', 'info', '--max-sessions', '1000', '--admission', 'off', ...config.args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start within 90 s')), 90_000);
    let buffered = '';
    child.stdout!.on('data', (c: Buffer) => {
      buffered += c.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = /"url":"([^"]+)".*"msg":"earshot listening on/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const health = await json<{ engines?: Array<{ pid: number }> }>(`${url}/health`);
  return { child, url, pids: [child.pid!, ...(health.engines ?? []).map((e) => e.pid)] };
}

async function step(config: Config, round: number, url: string, pids: number[], k: number, seconds: number, source: ReturnType<typeof encodeSource>): Promise<Step> {
  const histograms = (): Promise<Array<LatencyHistogramSnapshot | null>> =>
    Promise.all(
      Array.from({ length: k }, async (_, i) => {
        const r = await fetch(`${url}/stats/k${k}r${round}-${i + 1}?histogram`);
        return r.ok ? ((await r.json()) as { latencyHistogram: LatencyHistogramSnapshot | null }).latencyHistogram : null;
      }),
    );
  const busy = async () => {
    const s = await json<{ server: { pool: { busyMs: number; threads: number } } }>(`${url}/stats`);
    return s.server.pool;
  };
  const ticks = () => pids.reduce((n, p) => n + cpuTicks(p), 0);
  let cpu = 0;
  let workers = 0;
  let rss = 0;
  let steady: number[][] = [];
  let steadyMax = 0;
  const sampler = (async () => {
    await new Promise((r) => setTimeout(r, 2500));
    const h0 = await histograms();
    const b0 = await busy();
    const c0 = ticks();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, (seconds - 3.5) * 1000));
    const elapsed = performance.now() - t0;
    cpu = ((ticks() - c0) / HZ / (elapsed / 1000)) * 100;
    const b1 = await busy();
    workers = ((b1.busyMs - b0.busyMs) / (elapsed * b1.threads)) * 100;
    rss = pids.reduce((n, p) => n + rssBytes(p), 0);
    const h1 = await histograms();
    steady = h1.map((h, i) => (h && h0[i] ? h.counts.map((c, j) => c - h0[i]!.counts[j]) : []));
    steadyMax = Math.max(0, ...h1.map((h) => h?.max ?? 0));
  })();
  const sent = await sendMany(k, { url: `${url}/whip/bench/k${k}r${round}`, source, seconds });
  await sampler;
  const peers = await Promise.all(
    Array.from({ length: k }, async (_, i) => {
      const r = await fetch(`${url}/stats/k${k}r${round}-${i + 1}`);
      return r.ok ? ((await r.json()) as { processing: { framesDropped: number }; rtp: { packetsLost: number } }) : undefined;
    }),
  );
  const got = peers.filter((p): p is NonNullable<typeof p> => p !== undefined);
  const valid = steady.filter((h) => h.length > 0);
  const all = valid.length > 0 ? valid.reduce((a, h) => a.map((v, j) => v + h[j])) : [];
  return {
    config: config.name,
    round,
    streams: k,
    failed: sent.filter((s) => 'error' in s).length,
    dropped: got.reduce((n, p) => n + p.processing.framesDropped, 0),
    lost: got.reduce((n, p) => n + Math.max(0, p.rtp.packetsLost), 0),
    p50: quantileOf(all, 0.5, steadyMax) ?? NaN,
    p99: quantileOf(all, 0.99, steadyMax) ?? NaN,
    worstP99: Math.max(...valid.map((h) => quantileOf(h, 0.99, steadyMax) ?? 0)),
    cpuPct: cpu,
    workersPct: workers,
    rssMiB: rss / 2 ** 20,
  };
}

function print(s: Step): void {
  const ok = s.failed === 0 && s.dropped === 0 && s.lost === 0;
  console.log(
    `  ${s.config.padEnd(22)}${String(s.round).padStart(3)}${String(s.streams).padStart(5)}` +
      (ok ? (s.p99 <= LATENCY_LIMIT_MS ? 'yes' : 'no').padStart(8) : 'DROPS'.padStart(8)) +
      s.cpuPct.toFixed(0).padStart(8) + s.workersPct.toFixed(0).padStart(10) + (s.cpuPct / s.streams).toFixed(2).padStart(12) +
      s.p50.toFixed(1).padStart(8) + s.p99.toFixed(1).padStart(8) + s.worstP99.toFixed(1).padStart(10) +
      String(s.dropped).padStart(9) + String(s.lost).padStart(6) + String(s.failed).padStart(8) + s.rssMiB.toFixed(0).padStart(9),
  );
}

export interface EnginesOptions {
  /** K steps (default 20, 40, 60, 80; a configuration stops at its first step with drops). */
  steps?: number[];
  /** Rounds, configurations alternating (default 2). */
  rounds?: number;
  /** Seconds per step (default 8). */
  seconds?: number;
}

export interface EnginesResult {
  steps: Step[];
  /** Per configuration: the largest K every round carried with p99 ≤ 20 ms and no drops, loss or failure. */
  sustained: Record<string, number | null>;
}

export async function benchEngines(options: EnginesOptions = {}): Promise<EnginesResult> {
  const steps = options.steps ?? [20, 40, 60, 80];
  const rounds = options.rounds ?? 2;
  const seconds = options.seconds ?? 8;
  const source = encodeSource(await readWavSource(join(ROOT, 'test', 'fixtures', 'speech-noisy-48k.wav')));
  console.log(`Engines vs threads: ${availableParallelism()} cores, default pipeline, ${seconds} s per step, steps ${steps.join(', ')}, ${rounds} rounds (senders in this process, same cores)`);
  console.log('  config'.padEnd(24) + 'rnd'.padStart(3) + 'K'.padStart(5) + 'p99≤20'.padStart(8) + 'CPU %'.padStart(8) + 'workers %'.padStart(10) + 'CPU/stream'.padStart(12) + 'p50 ms'.padStart(8) + 'p99 ms'.padStart(8) + 'worst p99'.padStart(10) + 'dropped'.padStart(9) + 'lost'.padStart(6) + 'failed'.padStart(8) + 'RSS MiB'.padStart(9));
  const results: Step[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Alternate which configuration goes first, so drift in the machine's load does not favour one.
    const order = round % 2 === 1 ? CONFIGS : [...CONFIGS].reverse();
    for (const config of order) {
      const recordings = await mkdtemp(join(tmpdir(), 'earshot-bench-engines-'));
      const { child, url, pids } = await startServer(config, recordings);
      try {
        for (const k of steps) {
          await new Promise((r) => setTimeout(r, 1000));
          const s = await step(config, round, url, pids, k, seconds, source);
          results.push(s);
          print(s);
          if (s.failed > 0 || s.dropped > 0) break;
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
        await rm(recordings, { recursive: true, force: true });
      }
    }
  }

  const sustainedBy: Record<string, number | null> = {};
  console.log('\nSummary (per configuration: the largest K every round carried with p99 ≤ 20 ms and no drops, loss or failure; mean CPU per stream over the steps all rounds passed)');
  for (const config of CONFIGS) {
    const mine = results.filter((r) => r.config === config.name);
    const clean = (r: Step) => r.failed === 0 && r.dropped === 0 && r.lost === 0 && r.p99 <= LATENCY_LIMIT_MS;
    const sustained = steps.filter((k) => {
      const at = mine.filter((r) => r.streams === k);
      return at.length === rounds && at.every(clean);
    });
    const best = sustained[sustained.length - 1];
    const cpu = mine.filter((r) => sustained.includes(r.streams));
    const perStream = cpu.length > 0 ? cpu.reduce((n, r) => n + r.cpuPct / r.streams, 0) / cpu.length : NaN;
    console.log(`  ${config.name}: sustained ${best ?? 'none'}; CPU per stream ${perStream.toFixed(2)} % of a core`);
    sustainedBy[config.name] = best ?? null;
  }
  return { steps: results, sustained: sustainedBy };
}

// Run directly (node --import tsx bench/engines.ts), with the environment's steps.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await benchEngines({
    steps: process.env.BENCH_STEPS?.split(',').map(Number),
    rounds: process.env.BENCH_ROUNDS ? Number(process.env.BENCH_ROUNDS) : undefined,
    seconds: process.env.BENCH_SECONDS ? Number(process.env.BENCH_SECONDS) : undefined,
  });
}
