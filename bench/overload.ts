/**
 * (o) Overload: publishers offered at about twice what the server sustains,
 * against the real server with admission on (its defaults), the default
 * pipeline (denoise → WAV + stats). Publishers arrive at `ramp` per second
 * and each sends speech for `seconds`; a refused one (503) does not retry.
 *
 * What it prints: how many were admitted and refused (by code, with
 * `Retry-After`), what the admitted streams suffered while all of them ran
 * (frames dropped, the windowed latency p99 of each, from `/stats/:peer`),
 * and the server's RSS before the load, at its peak and 10 s after the
 * last stream ended.
 *
 * Run: `npm run bench -- --only overload [--streams 80] [--window 20]`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSource, sendAudio, type SendResult } from '../src/client/audio-sender.js';
import { WhipRequestError } from '../src/client/whip-client.js';
import { readWavSource } from '../src/client/wav-source.js';
import { ROOT, rssBytes, startEarshot } from './capacity.js';

export interface OverloadResult {
  offered: number;
  admitted: number;
  refused: Record<string, number>;
  /** Refusals that carried Retry-After. */
  refusedWithRetryAfter: number;
  /** Frames the admitted streams lost to full queues or lateness, in all. */
  admittedFramesDropped: number;
  /** Windowed (last 10 s) latency p99 of the admitted streams, ms, sampled while all ran: median and worst. */
  admittedP99Ms: { median: number; worst: number };
  rssMiB: { before: number; peak: number; after: number };
}

export async function benchOverload(options: { offered?: number; seconds?: number; ramp?: number; maxLatencyMs?: number; log?: (line: string) => void } = {}): Promise<OverloadResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const offered = options.offered ?? 80;
  const seconds = options.seconds ?? 20;
  const ramp = options.ramp ?? 8;
  const work = await mkdtemp(join(tmpdir(), 'earshot-overload-'));
  const source = encodeSource(await readWavSource(join(ROOT, 'test', 'fixtures', 'speech-noisy-48k.wav')));
  const child = await startEarshot({
    root: ROOT,
    port: 18991,
    work,
    threads: 2,
    admission: true,
    serveArgs: options.maxLatencyMs === undefined ? [] : ['--admission-max-latency', String(options.maxLatencyMs)],
  });
  const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  try {
    log(`\n(o) Overload: ${offered} publishers offered at ${ramp}/s, ${seconds} s of speech each, default pipeline, admission on (${options.maxLatencyMs === undefined ? 'defaults' : `--admission-max-latency ${options.maxLatencyMs}`})`);
    // Warm-up (JIT, workers), then the resting RSS.
    await Promise.all(Array.from({ length: 4 }, (_, i) => sendAudio({ url: `${child.url}/whip/warm/w${i}`, source, seconds: 3 }).catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 3000));
    const before = rssBytes(child.pid);
    let peak = before;
    const refused: Record<string, number> = {};
    let retryAfter = 0;
    const admittedPeers: string[] = [];
    const runs: Array<Promise<SendResult | undefined>> = [];
    const peakTimer = setInterval(() => (peak = Math.max(peak, rssBytes(child.pid))), 250);
    for (let i = 0; i < offered; i++) {
      const peer = `o${i + 1}`;
      runs.push(
        sendAudio({ url: `${child.url}/whip/overload/${peer}`, source, seconds, loop: true, fetch: async (input, init) => {
          const res = await fetch(input, init);
          if (res.status === 503 && res.headers.get('retry-after')) retryAfter++;
          if (res.status === 201) admittedPeers.push(peer);
          return res;
        } }).catch((e: unknown) => {
          const code = e instanceof WhipRequestError ? e.code : (e as Error).message.slice(0, 60);
          refused[code] = (refused[code] ?? 0) + 1;
          return undefined;
        }),
      );
      await new Promise((r) => setTimeout(r, 1000 / ramp));
    }
    // Every offer answered and the last admitted stream's first 10 s window filled.
    await new Promise((r) => setTimeout(r, Math.min(seconds - 1, 10) * 1000));
    const stats = await Promise.all(
      admittedPeers.map(async (p) => (await (await fetch(`${child.url}/stats/${p}`)).json()) as { processing: { framesDropped: number; recentLatencyMs: { p99: number | null } } }),
    );
    await Promise.all(runs);
    clearInterval(peakTimer);
    await new Promise((r) => setTimeout(r, 10_000));
    const after = rssBytes(child.pid);
    const p99s = stats.map((s) => s.processing.recentLatencyMs.p99 ?? NaN).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    const result: OverloadResult = {
      offered,
      admitted: admittedPeers.length,
      refused,
      refusedWithRetryAfter: retryAfter,
      admittedFramesDropped: stats.reduce((n, s) => n + s.processing.framesDropped, 0),
      admittedP99Ms: { median: p99s[Math.floor(p99s.length / 2)] ?? NaN, worst: p99s[p99s.length - 1] ?? NaN },
      rssMiB: { before: mib(before), peak: mib(peak), after: mib(after) },
    };
    log(`  admitted ${result.admitted} of ${offered}; refused ${JSON.stringify(refused)} (${retryAfter} with Retry-After)`);
    log(`  admitted streams while all ran: ${result.admittedFramesDropped} frames dropped; windowed p99 median ${result.admittedP99Ms.median} ms, worst ${result.admittedP99Ms.worst} ms`);
    log(`  RSS: ${result.rssMiB.before} MiB before, ${result.rssMiB.peak} MiB at the peak, ${result.rssMiB.after} MiB 10 s after the last stream (${Math.round((result.rssMiB.after / result.rssMiB.before - 1) * 100)} % over before)`);
    return result;
  } finally {
    await child.stop();
    await rm(work, { recursive: true, force: true });
  }
}
