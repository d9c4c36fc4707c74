/**
 * (o) Overload: publishers offered at about twice what the server sustains,
 * against the real server with admission on (its defaults, then a latency
 * limit of 100 ms, then that with a machine-CPU limit: bench/run.ts), the default pipeline
 * (denoise → WAV + stats). Publishers arrive at `ramp` per second; a refused
 * one (503) retries after its Retry-After, as a WHIP client should,
 * for as long as the offer lasts (`seconds`); every admitted one sends speech
 * until 15 s after that.
 *
 * What it prints: how many were admitted and refused (by code, with
 * `Retry-After`), what the admitted streams suffered while all of them ran
 * (frames dropped, the windowed latency p99 of each, from `/stats/:peer`),
 * and the server's RSS before the load, at its peak and 10 s after the
 * last stream ended.
 *
 * Run: `npm run bench -- --only overload [--streams 80] [--window 20] [--server-cpus 0]`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSource, sendAudio, type SendResult } from '../src/client/audio-sender.js';
import { WhipRequestError } from '../src/client/whip-client.js';
import { readWavSource } from '../src/client/wav-stream.js';
import { ROOT, rssBytes, startEarshot } from './capacity.js';

export interface OverloadResult {
  offered: number;
  admitted: number;
  refused: Record<string, number>;
  /** 503 answers, retries included. */
  refusals: number;
  /** Refusals that carried Retry-After. */
  refusedWithRetryAfter: number;
  /** Frames the admitted streams lost to full queues or lateness, in all. */
  admittedFramesDropped: number;
  /** Windowed (last 10 s) latency p99 of the admitted streams, ms, sampled while all ran: median and worst. */
  admittedP99Ms: { median: number; worst: number };
  rssMiB: { before: number; peak: number; after: number };
}

function describe(options: { maxLatencyMs?: number; maxMachineCpu?: number; serveArgs?: string[] }): string {
  const flags = [options.maxLatencyMs === undefined ? '' : `--admission-max-latency ${options.maxLatencyMs}`, options.maxMachineCpu === undefined ? '' : `--admission-max-machine-cpu ${options.maxMachineCpu}`, ...(options.serveArgs ?? [])].filter(Boolean);
  return flags.length > 0 ? flags.join(' ') : 'defaults';
}

export async function benchOverload(
  options: { offered?: number; seconds?: number; ramp?: number; maxLatencyMs?: number; maxMachineCpu?: number; trace?: boolean; serverCpus?: string; build?: boolean; serveArgs?: string[]; log?: (line: string) => void } = {},
): Promise<OverloadResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const offered = options.offered ?? 80;
  const seconds = options.seconds ?? 30;
  const ramp = options.ramp ?? 8;
  const work = await mkdtemp(join(tmpdir(), 'earshot-overload-'));
  const source = encodeSource(await readWavSource(join(ROOT, 'test', 'fixtures', 'speech-noisy-48k.wav')));
  // --server-cpus: the server on CPUs of its own (its DSP threads then its default, one per CPU), the
  // publishers (this process) on the others, as when they run on other machines.
  const publisherCpus = options.serverCpus === undefined ? undefined : otherCpus(options.serverCpus);
  if (publisherCpus !== undefined) execFileSync('taskset', ['-a', '-p', '-c', publisherCpus, String(process.pid)], { stdio: 'ignore' });
  const child = await startEarshot({
    root: ROOT,
    port: 18991,
    work,
    threads: options.serverCpus === undefined ? 2 : undefined,
    cpus: options.serverCpus,
    build: options.build,
    admission: true,
    serveArgs: [
      ...(options.maxLatencyMs === undefined ? [] : ['--admission-max-latency', String(options.maxLatencyMs)]),
      ...(options.maxMachineCpu === undefined ? [] : ['--admission-max-machine-cpu', String(options.maxMachineCpu)]),
      ...(options.serveArgs ?? []),
    ],
  });
  const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  try {
    const placement = publisherCpus === undefined ? '' : `; the server on CPU ${options.serverCpus}, the publishers on ${publisherCpus}`;
    log(`\n(o) Overload: ${offered} publishers offered at ${ramp}/s, retrying refusals for ${seconds} s, default pipeline, admission on (${describe(options)})${placement}`);
    // Warm-up (JIT, workers), then the resting RSS.
    await Promise.all(Array.from({ length: 4 }, (_, i) => sendAudio({ url: `${child.url}/whip/warm/w${i}`, source, seconds: 3 }).catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 3000));
    const before = rssBytes(child.pid);
    let peak = before;
    /** Publishers never admitted, by the code of their last refusal. */
    const refused: Record<string, number> = {};
    let refusals = 0;
    let retryAfter = 0;
    const admittedPeers: string[] = [];
    const peakTimer = setInterval(() => (peak = Math.max(peak, rssBytes(child.pid))), 250);
    const started = performance.now();
    // --trace: what admission measured, once a second, to see how the admissions met the load.
    const traceTimer = options.trace ? setInterval(() => void traceAdmission(child.url, started, admittedPeers.length, log), 1000) : undefined;
    // Offers keep coming for `seconds`; every admitted stream sends until a common end, 15 s after that.
    const offerUntil = started + seconds * 1000;
    const sendUntil = offerUntil + 15_000;
    const publisher = async (peer: string): Promise<SendResult | undefined> => {
      for (;;) {
        let wait = 0;
        try {
          return await sendAudio({
            url: `${child.url}/whip/overload/${peer}`,
            source,
            seconds: (sendUntil - performance.now()) / 1000,
            loop: true,
            fetch: async (input, init) => {
              const res = await fetch(input, init);
              if (res.status === 503) {
                refusals++;
                wait = Number(res.headers.get('retry-after') ?? 0);
                if (wait > 0) retryAfter++;
              }
              if (res.status === 201) admittedPeers.push(peer);
              return res;
            },
          });
        } catch (e: unknown) {
          // A WHIP client retries a 503 after its Retry-After, as long as the offer lasts.
          if (wait > 0 && performance.now() + wait * 1000 < offerUntil) {
            await new Promise((r) => setTimeout(r, wait * 1000));
            continue;
          }
          const code = e instanceof WhipRequestError ? e.code : (e as Error).message.slice(0, 60);
          refused[code] = (refused[code] ?? 0) + 1;
          return undefined;
        }
      }
    };
    const runs: Array<Promise<SendResult | undefined>> = [];
    for (let i = 0; i < offered; i++) {
      runs.push(publisher(`o${i + 1}`));
      await new Promise((r) => setTimeout(r, 1000 / ramp));
    }
    // The last admission's first 10 s window filled, every admitted stream still sending.
    await new Promise((r) => setTimeout(r, offerUntil + 10_000 - performance.now()));
    const stats = await Promise.all(
      admittedPeers.map(async (p) => (await (await fetch(`${child.url}/stats/${p}`)).json()) as { processing: { framesDropped: number; recentLatencyMs: { p99: number | null } } }),
    );
    await Promise.all(runs);
    clearInterval(peakTimer);
    clearInterval(traceTimer);
    await new Promise((r) => setTimeout(r, 10_000));
    const after = rssBytes(child.pid);
    const p99s = stats.map((s) => s.processing.recentLatencyMs.p99 ?? NaN).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    const result: OverloadResult = {
      offered,
      admitted: admittedPeers.length,
      refused,
      refusals,
      refusedWithRetryAfter: retryAfter,
      admittedFramesDropped: stats.reduce((n, s) => n + s.processing.framesDropped, 0),
      admittedP99Ms: { median: p99s[Math.floor(p99s.length / 2)] ?? NaN, worst: p99s[p99s.length - 1] ?? NaN },
      rssMiB: { before: mib(before), peak: mib(peak), after: mib(after) },
    };
    log(`  admitted ${result.admitted} of ${offered}; ${refusals} refusals (${retryAfter} with Retry-After); never admitted ${JSON.stringify(refused)}`);
    log(`  admitted streams while all ran: ${result.admittedFramesDropped} frames dropped; windowed p99 median ${result.admittedP99Ms.median} ms, worst ${result.admittedP99Ms.worst} ms`);
    log(`  RSS: ${result.rssMiB.before} MiB before, ${result.rssMiB.peak} MiB at the peak, ${result.rssMiB.after} MiB 10 s after the last stream (${Math.round((result.rssMiB.after / result.rssMiB.before - 1) * 100)} % over before)`);
    return result;
  } finally {
    await child.stop();
    await rm(work, { recursive: true, force: true });
    if (publisherCpus !== undefined) execFileSync('taskset', ['-a', '-p', '-c', `0-${cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });
  }
}

/** The machine's CPUs not in `list` (a taskset list such as "0" or "0-1,4"), as a taskset list. */
function otherCpus(list: string): string {
  const taken = new Set<number>();
  for (const part of list.split(',')) {
    const [a, b = a] = part.split('-').map(Number);
    if (!Number.isInteger(a) || !Number.isInteger(b)) throw new Error(`--server-cpus: "${list}" is not a CPU list such as 0 or 0-1,4`);
    for (let c = a; c <= b; c++) taken.add(c);
  }
  const rest = Array.from({ length: cpus().length }, (_, c) => c).filter((c) => !taken.has(c));
  if (rest.length === 0) throw new Error(`--server-cpus ${list} leaves no CPU for the publishers`);
  return rest.join(',');
}

/** One line of what admission last measured (`/stats` → `server.admission`). */
async function traceAdmission(url: string, started: number, admitted: number, log: (line: string) => void): Promise<void> {
  try {
    const stats = (await (await fetch(`${url}/stats`, { signal: AbortSignal.timeout(900) })).json()) as {
      server: { peers: number; admission: { ready: boolean; reasons: string[]; workerUtilization: number; eventLoopUtilization: number; processUtilization: number; machineUtilization: number; latencyP99Ms: number | null; unsettledSessions: number } | null };
    };
    const a = stats.server.admission;
    if (!a) return;
    const pct = (v: number) => `${Math.round(v * 100)}%`;
    log(
      `  t=${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s  admitted ${String(admitted).padStart(3)}  live ${String(stats.server.peers).padStart(3)}  p99 ${a.latencyP99Ms === null ? '–' : a.latencyP99Ms.toFixed(0).padStart(4)} ms  workers ${pct(a.workerUtilization)}  loop ${pct(a.eventLoopUtilization)}  earshot ${pct(a.processUtilization)}  machine ${pct(a.machineUtilization)}  unsettled ${a.unsettledSessions}  ${a.ready ? 'ready' : a.reasons.join('; ')}`,
    );
  } catch {
    // a busy server may miss a line
  }
}
