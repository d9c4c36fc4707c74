/**
 * (e) Cost of statistics on the main thread for 100 streams: each stream's
 * frames go through the stats sink (levels window, 10 s buckets, VAD state,
 * latency histograms — per peer and server-wide), and the outlets are served at
 * a dashboard's pace: a full `{ server, peers }` snapshot serialized for SSE
 * every 250 ms and a Prometheus scrape every 5 s. Measured as main-thread CPU
 * per second of media, in % of one core. The DSP and werift are not in it.
 *
 * Run alone: `node --import tsx bench/stats.ts`.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import client from 'prom-client';
import type { AudioFrame } from '../src/media/frames.js';
import { LatencyHistogram } from '../src/media/latency-histogram.js';
import { PeerAudioStats } from '../src/sinks/peer-stats.js';
import { RtpIngest } from '../src/rtc/rtp-ingest.js';

export interface StatsBenchResult {
  streams: number;
  mediaSeconds: number;
  /** Main-thread CPU for statistics, % of one core. */
  cpuPercentOfCore: number;
  /** Of which: per-frame accounting. */
  framesPercent: number;
  /** Of which: SSE snapshots (4/s). */
  publishPercent: number;
  /** Of which: Prometheus scrapes (1/5 s). */
  scrapePercent: number;
}

export async function benchStats(options: { streams?: number; seconds?: number } = {}): Promise<StatsBenchResult> {
  const streams = options.streams ?? 100;
  const seconds = options.seconds ?? 20;
  const peers = Array.from({ length: streams }, () => new PeerAudioStats());
  // RTP receive statistics (RFC 3550) are part of every snapshot; their per-packet
  // bookkeeping belongs to the ingest and is fed here untimed.
  const ingests = Array.from({ length: streams }, () => new RtpIngest(() => {}));
  const payload = new Uint8Array([0xf8, 0xff, 0xfe]);
  const global = new LatencyHistogram();
  const data = new Float32Array(960);
  const frame = (i: number): AudioFrame => ({
    position: i * 960,
    sampleRate: 48000,
    channels: 1,
    sampleFormat: 'f32',
    data,
    rms: 0.05 + 0.01 * Math.sin(i),
    peak: 0.3,
    vad: i % 50 < 30 ? 0.9 : 0.1,
    arrival: 0,
  });
  const registry = new client.Registry();
  const gauge = new client.Gauge({ name: 'bench_peers_speaking', help: 'x', registers: [registry], collect() { this.set(snapshots().filter((s) => s.audio.speaking).length); } });
  void gauge;
  const snapshots = () => peers.map((p, i) => ({ rtp: ingests[i].stats(now()), audio: p.audio(now()), processing: p.processing(0) }));
  let t0 = 0;
  const now = () => t0;

  let framesUs = 0;
  let publishUs = 0;
  let scrapeUs = 0;
  const framesPerSecond = 50;
  for (let tick = 0; tick < seconds * framesPerSecond; tick++) {
    t0 = tick * 20;
    for (let p = 0; p < streams; p++) ingests[p].receive({ sequenceNumber: tick & 0xffff, timestamp: tick * 960, ssrc: 1000 + p, payload, headerBytes: 12, arrival: t0 });
    const a = performance.now();
    for (let p = 0; p < streams; p++) {
      const f = frame(tick);
      peers[p].addFrame(f, t0);
      peers[p].addLatency(4 + (tick % 7));
      global.add(4 + (tick % 7));
    }
    const b = performance.now();
    framesUs += (b - a) * 1000;
    if (tick % 12 === 0) {
      JSON.stringify({ peers: snapshots() }); // SSE every 240 ms
      publishUs += (performance.now() - b) * 1000;
    }
    if (tick % 250 === 0) {
      const c = performance.now();
      await registry.metrics(); // scrape every 5 s
      scrapeUs += (performance.now() - c) * 1000;
    }
  }
  const mediaUs = seconds * 1e6;
  return {
    streams,
    mediaSeconds: seconds,
    cpuPercentOfCore: ((framesUs + publishUs + scrapeUs) / mediaUs) * 100,
    framesPercent: (framesUs / mediaUs) * 100,
    publishPercent: (publishUs / mediaUs) * 100,
    scrapePercent: (scrapeUs / mediaUs) * 100,
  };
}

export function printStats(r: StatsBenchResult): void {
  console.log(`\n(e) Statistics for ${r.streams} streams, main thread, per second of media (${r.mediaSeconds} s simulated)`);
  console.log(`  total ${r.cpuPercentOfCore.toFixed(2)} % of one core (budget: 2 %) = frames ${r.framesPercent.toFixed(2)} % + SSE snapshots ${r.publishPercent.toFixed(2)} % + Prometheus ${r.scrapePercent.toFixed(2)} %`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchStats({ streams: 100, seconds: 2 }); // warm-up
  printStats(await benchStats());
}
