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
 * RSS at rest is read once it has settled (an idle server gives ~100 MiB of
 * its start-up back only after 20–60 s). It is still a poor zero: V8's young
 * generations and the allocator's arenas grow once with the first streams,
 * not with each one. The streams therefore first come in a ladder (K/4, K/2,
 * 3K/4, each held `stepSeconds`, default 60), and the RSS each step settles
 * at (median of its last half) against the streams running gives the memory
 * one more stream takes: the least-squares slope over the ladder and the
 * first minute at K.
 *
 * Run: `npm run bench -- --only soak [--streams 40] [--window 600] [--step-seconds 60] [--build]`.
 * `--build` runs the server as users do (`dist/`); from the sources, every thread
 * also carries a TypeScript loader: at rest ~55 MiB more RSS than built (184–192 against
 * 130–140 MiB here), about the same per stream.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSource, sendMany } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-stream.js';
import { cpuNs, median, ROOT, rssBytes, startEarshot } from './capacity.js';

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
  /** The ladder's steps: streams running and the RSS they settled at (median of the step's last half), MiB. */
  ladder: Array<{ streams: number; rssMiB: number }>;
  /** Least-squares slope of the ladder's RSS against streams: what one more stream takes, MiB. */
  marginalRssPerStreamMiB: number;
  framesDropped: number;
  packetsLost: number;
  failedSessions: number;
}

type PeerStats = { processing: { framesDropped: number; recentLatencyMs: { p99: number | null } }; rtp: { packetsLost: number } };

export async function benchSoak(options: { streams?: number; seconds?: number; stepSeconds?: number; build?: boolean; log?: (line: string) => void } = {}): Promise<SoakResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const k = options.streams ?? 40;
  const seconds = options.seconds ?? 600;
  const stepSeconds = options.stepSeconds ?? 60;
  // Streams running at each ladder step; the last step is K itself (the soak's first minute).
  const steps = [...new Set([Math.round(k / 4), Math.round(k / 2), Math.round((3 * k) / 4)])].filter((n) => n > 0 && n < k);
  const work = await mkdtemp(join(tmpdir(), 'earshot-soak-'));
  const source = encodeSource(await readWavSource(join(ROOT, 'test', 'fixtures', 'speech-noisy-48k.wav')));
  const child = await startEarshot({ root: ROOT, port: 18995, work, threads: 2, build: options.build });
  const mib = (b: number) => b / 2 ** 20;
  // A group of streams per ladder step, each named after its group so that all can be read at the end.
  const groups = [...steps, k].map((n, i, all) => ({ name: `soak${i + 1}`, count: n - (i > 0 ? all[i - 1] : 0) }));
  const peers = groups.flatMap((g) => Array.from({ length: g.count }, (_, i) => (g.count === 1 ? g.name : `${g.name}-${i + 1}`)));
  try {
    log(`\n(s) Soak: ${k} denoised streams for ${seconds} s, default pipeline, after a ladder of ${steps.join(', ')} streams held ${stepSeconds} s each; server RSS every 5 s`);
    // Warm-up (JIT, workers, first allocations), then the resting RSS once it has settled:
    // a server gives back ~100 MiB of its start-up only after 20–60 s, and a rest read
    // before that is higher than the loaded server's.
    await sendMany(4, { url: `${child.url}/whip/warm/w`, source, seconds: 3 });
    const rest = await settledRss(child.pid);
    // The ladder: each group runs from its step to the soak's end, so all streams end together.
    const sending: Array<ReturnType<typeof sendMany>> = [];
    const ladder: SoakResult['ladder'] = [];
    const ladderSeconds = steps.length * stepSeconds;
    for (const [i, n] of steps.entries()) {
      sending.push(sendMany(groups[i].count, { url: `${child.url}/whip/soak/${groups[i].name}`, source, seconds: ladderSeconds - i * stepSeconds + seconds, loop: true }));
      const rss: number[] = [];
      const t = setInterval(() => rss.push(mib(rssBytes(child.pid))), 2500);
      await new Promise((r) => setTimeout(r, stepSeconds * 1000));
      clearInterval(t);
      ladder.push({ streams: n, rssMiB: median(rss.slice(Math.floor(rss.length / 2))) });
      log(`  ladder: ${n} streams, RSS ${ladder[ladder.length - 1].rssMiB.toFixed(1)} MiB`);
    }
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
    const last = groups[groups.length - 1];
    sending.push(sendMany(last.count, { url: `${child.url}/whip/soak/${last.name}`, source, seconds, loop: true }));
    const sent = (await Promise.all(sending)).flat();
    clearInterval(sampler);
    clearInterval(perMinute);
    clearTimeout(reader);
    const half = samples.filter((s) => s.t >= seconds / 120);
    const slope = slopeOf(half.map((s) => ({ x: s.t, y: s.rss })));
    const lastMinute = samples.filter((s) => s.t >= seconds / 60 - 1);
    const lastMean = lastMinute.reduce((a, s) => a + s.rss, 0) / Math.max(1, lastMinute.length);
    // The soak's first minute is the ladder's top step (its second half, as for the others).
    ladder.push({ streams: k, rssMiB: median(samples.filter((s) => s.t >= 0.5 && s.t <= 1).map((s) => s.rss)) });
    const marginal = slopeOf(ladder.map((l) => ({ x: l.streams, y: l.rssMiB })));
    const result: SoakResult = {
      streams: k,
      seconds,
      restRssMiB: rest,
      minutes,
      slopeMiBPerMinute: slope,
      rssPerStreamMiB: (lastMean - rest) / k,
      ladder,
      marginalRssPerStreamMiB: marginal,
      framesDropped: final.reduce((a, s) => a + (s?.processing.framesDropped ?? 0), 0),
      packetsLost: final.reduce((a, s) => a + Math.max(0, s?.rtp.packetsLost ?? 0), 0),
      failedSessions: sent.filter((s) => 'error' in s).length,
    };
    log(`  RSS at rest ${rest.toFixed(1)} MiB; last minute ${lastMean.toFixed(1)} MiB: ${result.rssPerStreamMiB.toFixed(2)} MiB per stream against rest`);
    log(`  RSS by streams running: ${ladder.map((l) => `${l.streams} → ${l.rssMiB.toFixed(1)}`).join(', ')} MiB: ${marginal.toFixed(2)} MiB per stream added (least-squares slope)`);
    log(`  RSS slope over the second half: ${slope.toFixed(2)} MiB per minute (${((slope * 60) / lastMean * 100).toFixed(1)} % per hour)`);
    log(`  ${result.framesDropped} frames dropped, ${result.packetsLost} packets lost, ${result.failedSessions} sessions failed`);
    return result;
  } finally {
    await child.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** Least-squares slope of y over x. */
function slopeOf(points: Array<{ x: number; y: number }>): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  return points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0) / points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
}

/**
 * RSS in MiB once it has stopped falling: read every 5 s for at least 60 s, until
 * six readings in a row lie within 2 MiB (at most 180 s). An idle server holds its
 * start-up RSS for ~20 s before giving ~100 MiB back, so a shorter wait can stop early.
 */
async function settledRss(pid: number): Promise<number> {
  const readings: number[] = [];
  for (let waited = 0; ; waited += 5) {
    readings.push(rssBytes(pid) / 2 ** 20);
    const last = readings.slice(-6);
    if (waited >= 180 || (waited >= 60 && Math.max(...last) - Math.min(...last) <= 2)) return readings[readings.length - 1];
    await new Promise((r) => setTimeout(r, 5000));
  }
}
