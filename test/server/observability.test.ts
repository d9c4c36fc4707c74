/**
 * Statistics in their three outlets — JSON, Server-Sent Events, Prometheus —
 * checked against what was actually sent over real loopback WebRTC.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { firstValueFrom, take, toArray } from 'rxjs';
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sendAudio, type SendResult } from '../../src/client/audio-sender.js';
import { cumulativeBuckets, EXPORT_BOUNDS_MS } from '../../src/server/metrics.js';
import { LATENCY_BOUNDS_MS } from '../../src/media/latency-histogram.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectProblem } from '../helpers/problems.js';
import { startServer, type TestServer } from '../helpers/server.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Reads an SSE stream until aborted, collecting parsed events. */
function readEvents(url: string, signal: AbortSignal): { events: SseEvent[]; done: Promise<void>; headers: Promise<Headers> } {
  const events: SseEvent[] = [];
  let resolveHeaders!: (h: Headers) => void;
  const headers = new Promise<Headers>((r) => (resolveHeaders = r));
  const done = (async () => {
    const res = await fetch(url, { signal });
    resolveHeaders(res.headers);
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (.+)$/m.exec(block)?.[1];
          const data = /^data: (.+)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    } catch (e) {
      // The test ends the stream by aborting; anything else (a malformed event) must fail the test.
      if (!signal.aborted) throw e;
    }
  })();
  return { events, done, headers };
}

let t: TestServer;
let sent: SendResult;
let sse: ReturnType<typeof readEvents>;
const abort = new AbortController();

beforeAll(async () => {
  // +20 dB after denoising clips the loud parts of the speech fixture on purpose.
  t = await startServer({ pipeline: { name: 'loud', stages: [{ type: 'denoise' }, { type: 'gain', db: 20 }], sinks: [{ type: 'record' }, { type: 'stats' }] } });
  sse = readEvents(`${t.url}/events?interval=100`, abort.signal);
  await sse.headers;
  const bad = await fetch(`${t.url}/whip/obs/nobody`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: 'not sdp' });
  expect(bad.status).toBe(400);
  sent = await sendAudio({ url: `${t.url}/whip/obs/ana`, source: fixturePath('speech-48k.wav'), seconds: 3, simulateLoss: 0.05 });
  const until = Date.now() + 3000;
  while (!sse.events.some((e) => e.event === 'session' && e.data.type === 'ended') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
});
afterAll(async () => {
  abort.abort();
  await sse.done;
  await t.close();
});

describe('statistics', () => {
  it('JSON: per-peer audio, RTP and processing figures match what was sent; global counters count sessions and refusals', async () => {
    const s = (await (await fetch(`${t.url}/stats/ana`)).json()) as {
      rtp: { packetsReceived: number; packetsLost: number; ssrc: number };
      audio: { clippedSamples: number; speechSegments: number; speaking: boolean | null; rms10sDbfs: number; peak10sDbfs: number };
      processing: {
        framesProcessed: number;
        framesConcealed: number;
        dropped: { queueFull: number; late: number; corrupt: number };
        latencyMs: { p50: number; p99: number };
        recentLatencyMs: { p50: number; p99: number; samples: number; windowSeconds: number };
      };
    };
    expect(s.rtp.packetsReceived).toBe(sent.packetsSent);
    expect(s.rtp.packetsLost).toBe(sent.packetsDropped);
    expect(s.rtp.ssrc).toBe(sent.ssrc);
    expect(s.processing.framesConcealed).toBe(sent.packetsDropped);
    expect(s.processing.framesProcessed).toBe(sent.packetsSent + sent.packetsDropped); // one 20 ms frame per packet slot
    expect(s.processing.dropped).toEqual({ queueFull: 0, late: 0, corrupt: 0 });
    // The recent window (the 3 s stream lies inside its 10 s) holds every frame, with the same figures.
    expect(s.processing.recentLatencyMs.windowSeconds).toBe(10);
    expect(s.processing.recentLatencyMs.samples).toBe(s.processing.framesProcessed);
    expect(s.processing.recentLatencyMs.p50).toBeGreaterThan(0);
    expect(s.processing.recentLatencyMs.p99).toBeGreaterThanOrEqual(s.processing.recentLatencyMs.p50);
    expect(s.processing.recentLatencyMs.p99).toBeCloseTo(s.processing.latencyMs.p99, 1);
    expect(s.audio.clippedSamples).toBeGreaterThan(0);
    expect(s.audio.speechSegments).toBeGreaterThanOrEqual(1);
    expect(s.audio.peak10sDbfs).toBeGreaterThan(s.audio.rms10sDbfs);

    const { server } = (await (await fetch(`${t.url}/stats`)).json()) as {
      server: { sessionsStarted: number; sessionsEnded: number; sessionsRefused: number; refusedBy: Record<string, number>; endedBy: Record<string, number>; pool: { taskMs: { p50: number; p99: number } } };
    };
    expect(server).toMatchObject({ sessionsStarted: 1, sessionsEnded: 1, sessionsRefused: 1, refusedBy: { EARSHOT_SDP_INVALID: 1 }, endedBy: { deleted: 1 } });
    expect(server.pool.taskMs.p99).toBeGreaterThanOrEqual(server.pool.taskMs.p50);
  });

  it('JSON: an ended peer keeps its latency histogram (?histogram) and reports no bitrate now', async () => {
    const s = (await (await fetch(`${t.url}/stats/ana?histogram`)).json()) as {
      state: string;
      rtp: { bitrate: number };
      processing: { latencyMs: { samples: number } };
      latencyHistogram: { boundsMs: number[]; counts: number[] } | null;
    };
    expect(s.state).toBe('ended');
    expect(s.rtp.bitrate).toBe(0);
    expect(s.latencyHistogram).not.toBeNull();
    expect(s.latencyHistogram!.counts.reduce((a, b) => a + b, 0)).toBe(s.processing.latencyMs.samples);
    expect(s.processing.latencyMs.samples).toBeGreaterThan(100);
    // A yes or no in the value is read as such, and anything else refused.
    for (const [query, has] of [['histogram=true', true], ['histogram=1', true], ['histogram=false', false], ['histogram=0', false], ['', false]] as const) {
      const body = (await (await fetch(`${t.url}/stats/ana?${query}`)).json()) as object;
      expect('latencyHistogram' in body, query).toBe(has);
    }
    await expectProblem(await fetch(`${t.url}/stats/ana?histogram=yes`), { status: 400, code: 'EARSHOT_BODY_INVALID', detail: /histogram must be given alone/ });
  });

  it('SSE: /events streams the session start, moving levels with the speaking state, and the end with its recording', async () => {
    expect((await sse.headers).get('content-type')).toMatch(/^text\/event-stream/);
    const sessions = sse.events.filter((e) => e.event === 'session').map((e) => e.data);
    expect(sessions.map((e) => [e.type, e.peer, e.room, e.pipeline])).toEqual([
      ['started', 'ana', 'obs', 'loud'],
      ['ended', 'ana', 'obs', 'loud'],
    ]);
    expect(sessions[1]).toMatchObject({ reason: 'deleted', recordings: [expect.stringMatching(/^obs-ana-.*\.wav$/)] });
    const peerStats = sse.events
      .filter((e) => e.event === 'stats')
      .flatMap((e) => (e.data.peers as Array<{ peer: string; audio: { rmsDbfs: number; speaking: boolean | null } }>).filter((p) => p.peer === 'ana'));
    expect(peerStats.length).toBeGreaterThan(10); // ten a second for three seconds
    expect(new Set(peerStats.map((p) => p.audio.rmsDbfs)).size).toBeGreaterThan(5); // the meter moves
    expect(peerStats.some((p) => p.audio.speaking === true)).toBe(true);
  });

  it('Prometheus: aggregated counters equal the JSON figures, histograms are consistent, no per-peer labels', async () => {
    const res = await fetch(`${t.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const value = (line: string) => {
      const m = text.split('\n').find((l) => l.startsWith(`${line} `));
      if (!m) throw new Error(`no metric line "${line}"`);
      return Number(m.slice(line.length + 1));
    };
    expect(value('earshot_sessions_started_total')).toBe(1);
    expect(value('earshot_sessions_ended_total{reason="deleted"}')).toBe(1);
    expect(value('earshot_sessions_refused_total{code="EARSHOT_SDP_INVALID"}')).toBe(1);
    expect(value('earshot_peers')).toBe(0);
    expect(value('earshot_rtp_packets_received_total')).toBe(sent.packetsSent);
    expect(value('earshot_rtp_packets_lost_total')).toBe(sent.packetsDropped);
    expect(value('earshot_frames_concealed_total')).toBe(sent.packetsDropped);
    expect(value('earshot_audio_clipped_samples_total')).toBeGreaterThan(0);
    expect(value('earshot_frames_dropped_total{reason="queue_full"}')).toBe(0);
    // Histogram: cumulative buckets ending at +Inf = _count = frames processed.
    const buckets = text.split('\n').filter((l) => l.startsWith('earshot_processing_latency_seconds_bucket')).map((l) => Number(l.split(' ')[1]));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    expect(value('earshot_processing_latency_seconds_bucket{le="+Inf"}')).toBe(value('earshot_processing_latency_seconds_count'));
    expect(value('earshot_processing_latency_seconds_count')).toBe(sent.packetsSent + sent.packetsDropped);
    expect(value('earshot_rtp_jitter_seconds_count')).toBeGreaterThanOrEqual(1);
    // Aggregated only: no peer, room or SSRC appears anywhere.
    expect(text).not.toMatch(/peer=|room=|ssrc=|"ana"|"obs"/);
    for (const line of text.split('\n').filter((l) => l.startsWith('# TYPE earshot_') && l.endsWith(' counter'))) {
      expect(line.split(' ')[2]).toMatch(/_total$/);
    }
  });

  it('Prometheus: standard Node names, counters rather than since-start gauges, bytes, ≤ 15 buckets per histogram', async () => {
    // Garbage enough for a few young-generation collections since the server started, so that Node's
    // GC histogram has buckets to show (in a process that has imported everything already, starting
    // a server may not need one); the observer hears of them a task later.
    let kept: number[] = [];
    for (let i = 0; i < 1_000_000; i++) kept = [i, i + 1, i + 2, i + 3];
    expect(kept).toHaveLength(4);
    await new Promise((r) => setTimeout(r, 50));
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const types = new Map(text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => [l.split(' ')[2], l.split(' ')[3]]));
    const value = (name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
    // prom-client's default metrics under their stock names, so stock Node.js dashboards work.
    expect(types.get('process_cpu_seconds_total')).toBe('counter');
    expect(types.get('process_resident_memory_bytes')).toBe('gauge');
    expect(types.get('nodejs_eventloop_lag_p99_seconds')).toBe('gauge');
    expect(types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect(text).not.toContain('earshot_process_');
    // Work done is a counter (rate() it); nothing is averaged since start.
    expect(types.get('earshot_pool_busy_seconds_total')).toBe('counter');
    expect(value('earshot_pool_busy_seconds_total')).toBeGreaterThan(0);
    for (const gone of ['earshot_pool_utilization_ratio', 'earshot_event_loop_lag_p99_seconds', 'earshot_rtp_loss_ratio', 'earshot_rtp_receive_bits_per_second']) expect(types.has(gone), gone).toBe(false);
    expect(types.get('earshot_rtp_receive_bytes_per_second')).toBe('gauge');
    expect(value('earshot_rtp_receive_bytes_per_second')).toBe(0); // nobody is sending now
    // No histogram, ours or Node's, has more than 15 buckets (+Inf included): each bucket is a time series.
    const histograms = [...types].filter(([, type]) => type === 'histogram').map(([name]) => name);
    expect(histograms).toEqual(expect.arrayContaining(['earshot_processing_latency_seconds', 'earshot_rtp_jitter_seconds', 'earshot_pool_task_duration_seconds']));
    for (const name of histograms) {
      // Per series: Node's GC histogram has one per kind of collection (minor, major, …) that has happened.
      const series = new Map<string, number>();
      for (const line of text.split('\n').filter((l) => l.startsWith(`${name}_bucket{`))) {
        const labels = line.slice(line.indexOf('{'), line.lastIndexOf('}') + 1).replace(/le="[^"]*",?/, '').replace(/,}$/, '}');
        series.set(labels, (series.get(labels) ?? 0) + 1);
      }
      expect(series.size, name).toBeGreaterThan(0);
      for (const [labels, buckets] of series) {
        expect(buckets, `${name}${labels}`).toBeGreaterThan(1);
        expect(buckets, `${name}${labels}`).toBeLessThanOrEqual(15);
      }
    }
    const latencyBounds = text.split('\n').filter((l) => l.startsWith('earshot_processing_latency_seconds_bucket')).map((l) => /le="([^"]+)"/.exec(l)![1]);
    expect(latencyBounds).toEqual([...EXPORT_BOUNDS_MS.map((ms) => String(ms / 1000)), '+Inf']);
    // docs/metrics.md documents every metric of earshot's own that a server exports (the front of --processes adds two, documented there too).
    const documented = await readFile(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    expect([...types.keys()].filter((name) => name.startsWith('earshot_') && !documented.includes(`\`${name}\``))).toEqual([]);
  });

  it('servers created and closed in one process start Node\'s default metrics once, not once each (prom-client never stops their monitors); each still exports them', async () => {
    const started = vi.spyOn(client, 'collectDefaultMetrics');
    for (let i = 0; i < 2; i++) {
      const other = await startServer({ threads: 1 });
      try {
        const text = await (await fetch(`${other.url}/metrics`)).text();
        expect(text).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
        expect(text).toMatch(/^# TYPE nodejs_eventloop_lag_p99_seconds gauge$/m);
      } finally {
        await other.close();
      }
    }
    // This file's server started them already (or another server of the process did).
    expect(started).not.toHaveBeenCalled();
  });

  it('event-loop delay: a stall of the main thread shows in /stats (since start) and in /metrics (since the last scrape)', async () => {
    type Delay = { p50: number; p99: number; max: number };
    const delay = async () => ((await (await fetch(`${t.url}/stats`)).json()) as { server: { eventLoopDelayMs: Delay } }).server.eventLoopDelayMs;
    const lagMax = async () => Number(/^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(await (await fetch(`${t.url}/metrics`)).text())?.[1]);
    // Longer than any stall since start, so that the figure since start has to move.
    const stallMs = Math.max(150, (await delay()).max + 100);
    await lagMax(); // a scrape starts prom-client's next window
    // After a reset, Node's histogram records from its second sample on: let one pass first.
    await new Promise((r) => setTimeout(r, 50));
    const until = performance.now() + stallMs;
    while (performance.now() < until); // the server runs in this process: its main thread is stuck
    await new Promise((r) => setTimeout(r, 60));
    // Sampled every 5 ms: the sample due during the stall ran at its end, up to 5 ms less late.
    const after = await delay();
    expect(after.max).toBeGreaterThanOrEqual(stallMs - 30);
    expect(after.p50).toBeLessThan(after.max);
    // prom-client's figure is the time between two samples, the period included.
    expect(await lagMax()).toBeGreaterThanOrEqual((stallMs - 10) / 1000);
    // The next window starts without the stall.
    expect(await lagMax()).toBeLessThan((stallMs - 10) / 1000);
  });

  it('observable: server.stats$() emits the statistics on its interval', async () => {
    const three = await firstValueFrom(t.server.stats$(50).pipe(take(3), toArray()));
    expect(three).toHaveLength(3);
    expect(three[2].server.sessionsStarted).toBe(1);
    expect(() => t.server.stats$(1)).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', message: 'stats$(intervalMs): intervalMs must be a number from 50 to 2147483647 (ms), got 1' }));
  });

  it('observable: server.stats$() completes when the server closes, so a program that used it exits', { timeout: 60_000 }, async () => {
    // Its timer kept running after close(): the program never exited.
    const dir = await mkdtemp(join(tmpdir(), 'earshot-stats-exit-'));
    try {
      const script = join(dir, 'program.mts');
      const index = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'index.ts')).href;
      await writeFile(
        script,
        [
          `import { createServer } from ${JSON.stringify(index)};`,
          `const server = await createServer({ port: 0, host: '127.0.0.1', logLevel: 'silent', recordingsDir: ${JSON.stringify(join(dir, 'rec'))} });`,
          'await server.listen();',
          "server.stats$(100).subscribe({ complete: () => console.log('stats$ completed') });",
          'await new Promise((r) => setTimeout(r, 300));',
          'await server.close();',
          "server.stats$(100).subscribe({ complete: () => console.log('late stats$ completed') });",
        ].join('\n'),
      );
      const run = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', script], { timeout: 30_000 }, (error, stdout) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout }));
      });
      expect(run.stdout.trim().split('\n')).toEqual(['stats$ completed', 'late stats$ completed']);
      expect(run.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  // Last: it starts a second session on the shared server.
  it('Prometheus: earshot_recordings_active counts recordings, not peers (call-recording writes two per peer)', async () => {
    const sending = sendAudio({ url: `${t.url}/whip/obs/two?pipeline=call-recording`, source: fixturePath('speech-48k.wav'), seconds: 2 });
    const active = async () => Number(/^earshot_recordings_active (\S+)$/m.exec(await (await fetch(`${t.url}/metrics`)).text())?.[1]);
    let most = 0;
    for (const until = Date.now() + 5000; Date.now() < until && most < 2; await new Promise((r) => setTimeout(r, 50))) most = Math.max(most, await active());
    const peer = (await (await fetch(`${t.url}/stats/two`)).json()) as { recordings: Array<{ state: string }> };
    await sending;
    expect(most).toBe(2);
    expect(peer.recordings.map((r) => r.state)).toEqual(['recording', 'recording']);
  });
});

describe('exported histogram buckets', () => {
  it('sums the fine buckets exactly into the coarse ones, and refuses a bound the histogram lacks', () => {
    const counts = LATENCY_BOUNDS_MS.map((_, i) => i + 1).concat([1000]);
    const coarse = cumulativeBuckets({ boundsMs: LATENCY_BOUNDS_MS, counts }, EXPORT_BOUNDS_MS);
    expect(coarse).toHaveLength(EXPORT_BOUNDS_MS.length + 1);
    coarse.slice(0, -1).forEach(({ le, count }, k) => {
      expect(le).toBe(EXPORT_BOUNDS_MS[k]);
      expect(count).toBe(LATENCY_BOUNDS_MS.reduce((n, bound, i) => n + (bound <= le ? counts[i] : 0), 0));
    });
    expect(coarse.at(-1)).toEqual({ le: Infinity, count: counts.reduce((a, b) => a + b, 0) });
    expect(() => cumulativeBuckets({ boundsMs: LATENCY_BOUNDS_MS, counts }, [1, 3.5])).toThrow(/3\.5 is not a bound/);
  });
});
