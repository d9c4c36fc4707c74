/**
 * (b) Capacity: K concurrent `earshot send` sessions over loopback against the
 * real server (a child process running the built CLI, default pipeline), K
 * rising until frames drop or the p99 latency (RTP arrival → frame at the
 * sinks, over every frame of every peer once all are connected) exceeds 20 ms.
 * The worst-peer column uses the same window; "p99 w/ setup" covers whole sessions,
 * including the seconds when K peers negotiate DTLS at once. The senders run in
 * this process, on the same 2 cores.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSource, sendMany } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-source.js';
import { quantileOf, type LatencyHistogramSnapshot } from '../src/sinks/latency-histogram.js';

export interface CapacityStep {
  streams: number;
  /** No drops, no loss, no failed session, steady p99 ≤ 20 ms. */
  ok: boolean;
  /** No drops, no loss, no failed session (latency aside). */
  noDrops: boolean;
  /** Worker utilization over the steady phase, 0..1 (both threads). */
  workerUtilization: number;
  /** Server CPU (all threads) per stream, % of one core, in the steady phase. */
  cpuPerStreamPct: number;
  serverCpuPct: number;
  /** Steady state (all sessions connected): p50 over every frame of every peer. */
  latencyP50Ms: number;
  /** Steady state: p99 over every frame of every peer. */
  latencyP99Ms: number;
  /** Steady state: worst single peer's p99. */
  latencyP99WorstMs: number;
  /** Whole sessions including connection setup: p99 over every frame. */
  latencyP99WithSetupMs: number;
  framesDropped: number;
  packetsLost: number;
  rssPerStreamMiB: number;
  failedSessions: number;
}

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const LATENCY_LIMIT_MS = 20;

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15), in clock ticks
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function startServer(port: number, recordings: string, threads: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'earshot.js'), 'serve', '--port', String(port), '--recordings', recordings, '--log-level', 'warn', '--max-sessions', '1000', '--threads', String(threads)], { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return child;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error('server did not start (did `npm run build` run?)');
}

export async function benchCapacity(options: { steps?: number[]; seconds?: number; port?: number; threads?: number } = {}): Promise<CapacityStep[]> {
  const threads = options.threads ?? 2;
  const steps = options.steps ?? [10, 20, 40, 60, 80, 100, 120];
  const seconds = options.seconds ?? 8;
  const port = options.port ?? 18931;
  const recordings = await mkdtemp(join(tmpdir(), 'earshot-bench-'));
  const server = await startServer(port, recordings, threads);
  const pid = server.pid!;
  const source = encodeSource(await readWavSource(join(ROOT, 'test', 'fixtures', 'speech-noisy-48k.wav')));
  const hz = 100; // USER_HZ on Linux
  const results: CapacityStep[] = [];
  try {
    for (const k of steps) {
      await new Promise((r) => setTimeout(r, 500));
      const rssBefore = rssBytes(pid);
      // Sample CPU and latency over the middle of the run, when every session is connected and streaming.
      let cpu = 0;
      let rssPeak = rssBefore;
      const histograms = (): Promise<Array<LatencyHistogramSnapshot | null>> =>
        Promise.all(
          Array.from({ length: k }, async (_, i) => {
            const r = await fetch(`http://127.0.0.1:${port}/stats/k${k}-${i + 1}?histogram`);
            return r.ok ? ((await r.json()) as { latencyHistogram: LatencyHistogramSnapshot | null }).latencyHistogram : null;
          }),
        );
      let steady: number[][] = [];
      let utilization = 0;
      let steadyMax = 0; // bounds the open top bucket when interpolating
      const sampler = (async () => {
        await new Promise((r) => setTimeout(r, 2500));
        const h0 = await histograms();
        const b0 = ((await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { server: { pool: { busyMs: number } } }).server.pool.busyMs;
        const c0 = cpuTicks(pid);
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, (seconds - 3.5) * 1000));
        const elapsed = performance.now() - t0;
        cpu = ((cpuTicks(pid) - c0) / hz / (elapsed / 1000)) * 100;
        const b1 = ((await (await fetch(`http://127.0.0.1:${port}/stats`)).json()) as { server: { pool: { busyMs: number } } }).server.pool.busyMs;
        utilization = (b1 - b0) / (elapsed * threads);
        rssPeak = rssBytes(pid);
        const h1 = await histograms();
        steady = h1.map((h, i) => (h && h0[i] ? h.counts.map((c, j) => c - h0[i]!.counts[j]) : []));
        steadyMax = Math.max(0, ...h1.map((h) => h?.max ?? 0));
      })();
      const sent = await sendMany(k, { url: `http://127.0.0.1:${port}/whip/bench/k${k}`, source, seconds });
      await sampler;
      const failed = sent.filter((s) => 'error' in s).length;
      const peers = await Promise.all(
        Array.from({ length: k }, async (_, i) => {
          const r = await fetch(`http://127.0.0.1:${port}/stats/k${k}-${i + 1}`);
          return r.ok ? ((await r.json()) as { processing: { latencyMs: { p50: number; p99: number }; framesDropped: number }; rtp: { packetsLost: number } }) : undefined;
        }),
      );
      const got = peers.filter((p): p is NonNullable<typeof p> => p !== undefined);
      const sum = (hs: number[][]) => hs.filter((h) => h.length > 0).reduce((a, h) => a.map((v, j) => v + h[j]));
      const valid = steady.filter((h) => h.length > 0);
      const all = valid.length > 0 ? sum(valid) : [];
      const step: CapacityStep = {
        streams: k,
        ok: false,
        noDrops: false,
        workerUtilization: utilization,
        serverCpuPct: cpu,
        cpuPerStreamPct: cpu / k,
        latencyP50Ms: quantileOf(all, 0.5, steadyMax) ?? NaN,
        latencyP99Ms: quantileOf(all, 0.99, steadyMax) ?? NaN,
        latencyP99WorstMs: Math.max(...valid.map((h) => quantileOf(h, 0.99, steadyMax) ?? 0)),
        latencyP99WithSetupMs: Math.max(...got.map((p) => p.processing.latencyMs.p99)),
        framesDropped: got.reduce((n, p) => n + p.processing.framesDropped, 0),
        packetsLost: got.reduce((n, p) => n + Math.max(0, p.rtp.packetsLost), 0),
        rssPerStreamMiB: Math.max(0, rssPeak - rssBefore) / k / 2 ** 20,
        failedSessions: failed,
      };
      step.noDrops = failed === 0 && step.framesDropped === 0 && step.packetsLost === 0;
      step.ok = step.noDrops && step.latencyP99Ms <= LATENCY_LIMIT_MS;
      results.push(step);
      printStep(step);
      // Go on past the latency limit to find where frames start to drop; stop there.
      if (!step.noDrops) break;
    }
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    await rm(recordings, { recursive: true, force: true });
  }
  return results;
}

export function printStepHeader(threads = 2): void {
  console.log(`\n(b) Capacity: K concurrent senders over loopback, default pipeline (denoise → WAV + stats), ${threads} worker thread${threads === 1 ? '' : 's'}`);
  console.log('  K'.padEnd(7) + 'p99≤20'.padEnd(8) + 'drops'.padEnd(7) + 'server CPU %'.padStart(13) + 'workers %'.padStart(11) + 'CPU/stream %'.padStart(14) + 'p50 ms'.padStart(8) + 'p99 ms'.padStart(8) + 'worst p99'.padStart(11) + 'p99 w/ setup'.padStart(14) + 'dropped'.padStart(9) + 'lost'.padStart(6) + 'RSS/stream MiB'.padStart(16));
}

function printStep(s: CapacityStep): void {
  console.log(
    `  ${s.streams}`.padEnd(7) +
      (s.ok ? 'yes' : 'NO').padEnd(8) +
      (s.noDrops ? 'none' : 'YES').padEnd(7) +
      s.serverCpuPct.toFixed(0).padStart(13) +
      (s.workerUtilization * 100).toFixed(0).padStart(11) +
      s.cpuPerStreamPct.toFixed(2).padStart(14) +
      s.latencyP50Ms.toFixed(1).padStart(8) +
      s.latencyP99Ms.toFixed(1).padStart(8) +
      s.latencyP99WorstMs.toFixed(1).padStart(11) +
      s.latencyP99WithSetupMs.toFixed(1).padStart(14) +
      String(s.framesDropped).padStart(9) +
      String(s.packetsLost).padStart(6) +
      s.rssPerStreamMiB.toFixed(2).padStart(16) +
      (s.failedSessions ? `  (${s.failedSessions} sessions failed)` : ''),
  );
}
