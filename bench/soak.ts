/**
 * (s) Soak: K denoised streams for minutes against the real server (default
 * pipeline, admission off), to see whether memory stays flat while the same
 * load runs on, and what each stream costs in memory once it has settled.
 *
 * The server's RSS is read every 5 s from /proc. Printed per minute: RSS, and
 * the CPU and worst windowed p99 of that minute; at the end the slope of RSS
 * over the second half of the run (MiB per minute; flat is ~0), the RSS the
 * streams added per stream (RSS in the last minute minus RSS at rest before
 * they started, over K), and the frames dropped and packets lost in all.
 *
 * Run: `npm run bench -- --only soak [--streams 40] [--window 600]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSource, sendMany } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-source.js';
import { cpuNs, ROOT, rssBytes, startEarshot } from './capacity.js';

export interface SoakMinute {
  minute: number;
  rssMiB: number;
  /** Whole server process, % of one core. */
  cpuPct: number;
  /** Worst per-peer windowed (last 10 s) latency p99 sampled at the minute's end, ms. */
  worstRecentP99Ms: number | null;
}

export interface SoakResult {
  streams: number;
  seconds: number;
  restRssMiB: number;
  minutes: SoakMinute[];
  /** Least-squares slope of RSS over the second half of the run, MiB per minute. */
  slopeMiBPerMinute: number;
  /** (mean RSS of the last minute − RSS at rest) / K. */
  rssPerStreamMiB: number;
  framesDropped: number;
  packetsLost: number;
  failedSessions: number;
}

type PeerStats = { processing: { framesDropped: number; recentLatencyMs: { p99: number | null } }; rtp: { packetsLost: number } };

export async function benchSoak(options: { streams?: number; seconds?: number; log?: (line: string) => void } = {}): Promise<SoakResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const k = options.streams ?? 40;
  const seconds = options.seconds ?? 600;
  const work = await mkdtemp(join(tmpdir(), 'earshot-soak-'));
  const source = encodeSource(await readWavSource(join(ROOT, 'test', 'fixtures', 'speech-noisy-48k.wav')));
  const child = await startEarshot({ root: ROOT, port: 18995, work, threads: 2 });
  const mib = (b: number) => b / 2 ** 20;
  const peers = Array.from({ length: k }, (_, i) => `soak-${i + 1}`);
  try {
    log(`\n(s) Soak: ${k} denoised streams for ${seconds} s, default pipeline; server RSS every 5 s`);
    // Warm-up (JIT, workers, first allocations), then the resting RSS.
    await sendMany(4, { url: `${child.url}/whip/warm/w`, source, seconds: 3 });
    await new Promise((r) => setTimeout(r, 3000));
    const rest = mib(rssBytes(child.pid));
    const samples: Array<{ t: number; rss: number }> = [];
    const minutes: SoakMinute[] = [];
    const started = performance.now();
    let cpu0 = cpuNs(child.pid).total;
    let t0 = started;
    const sampler = setInterval(() => samples.push({ t: (performance.now() - started) / 60_000, rss: mib(rssBytes(child.pid)) }), 5000);
    const perMinute = setInterval(() => {
      void (async () => {
        const now = performance.now();
        const cpu1 = cpuNs(child.pid).total;
        const stats = await Promise.all(peers.map(async (p) => (await fetch(`${child.url}/stats/${p}`).then((r) => (r.ok ? (r.json() as Promise<PeerStats>) : undefined)))));
        const p99s = stats.map((s) => s?.processing.recentLatencyMs.p99 ?? NaN).filter(Number.isFinite);
        const m: SoakMinute = {
          minute: minutes.length + 1,
          rssMiB: mib(rssBytes(child.pid)),
          cpuPct: ((cpu1 - cpu0) / 1e9 / ((now - t0) / 1000)) * 100,
          worstRecentP99Ms: p99s.length > 0 ? Math.max(...p99s) : null,
        };
        cpu0 = cpu1;
        t0 = now;
        minutes.push(m);
        log(`  minute ${String(m.minute).padStart(2)}: RSS ${m.rssMiB.toFixed(1)} MiB, CPU ${m.cpuPct.toFixed(0)} % of a core, worst windowed p99 ${m.worstRecentP99Ms?.toFixed(1) ?? '–'} ms`);
      })();
    }, 60_000);
    // The peers' statistics must still exist when read at the end: skipDelete keeps nothing
    // alive, so read them just before the sends end instead.
    let final: Array<PeerStats | undefined> = [];
    const reader = setTimeout(() => {
      void Promise.all(peers.map((p) => fetch(`${child.url}/stats/${p}`).then((r) => (r.ok ? (r.json() as Promise<PeerStats>) : undefined)))).then((s) => (final = s));
    }, (seconds - 2) * 1000);
    const sent = await sendMany(k, { url: `${child.url}/whip/soak/soak`, source, seconds, loop: true });
    clearInterval(sampler);
    clearInterval(perMinute);
    clearTimeout(reader);
    const half = samples.filter((s) => s.t >= seconds / 120);
    const n = half.length;
    const mt = half.reduce((a, s) => a + s.t, 0) / n;
    const mr = half.reduce((a, s) => a + s.rss, 0) / n;
    const slope = half.reduce((a, s) => a + (s.t - mt) * (s.rss - mr), 0) / half.reduce((a, s) => a + (s.t - mt) ** 2, 0);
    const last = samples.filter((s) => s.t >= seconds / 60 - 1);
    const lastMean = last.reduce((a, s) => a + s.rss, 0) / Math.max(1, last.length);
    const result: SoakResult = {
      streams: k,
      seconds,
      restRssMiB: rest,
      minutes,
      slopeMiBPerMinute: slope,
      rssPerStreamMiB: (lastMean - rest) / k,
      framesDropped: final.reduce((a, s) => a + (s?.processing.framesDropped ?? 0), 0),
      packetsLost: final.reduce((a, s) => a + Math.max(0, s?.rtp.packetsLost ?? 0), 0),
      failedSessions: sent.filter((s) => 'error' in s).length,
    };
    log(`  RSS at rest ${rest.toFixed(1)} MiB; last minute ${lastMean.toFixed(1)} MiB: ${result.rssPerStreamMiB.toFixed(2)} MiB per stream`);
    log(`  RSS slope over the second half: ${slope.toFixed(2)} MiB per minute (${((slope * 60) / lastMean * 100).toFixed(1)} % per hour)`);
    log(`  ${result.framesDropped} frames dropped, ${result.packetsLost} packets lost, ${result.failedSessions} sessions failed`);
    return result;
  } finally {
    await child.stop();
    await rm(work, { recursive: true, force: true });
  }
}
