/**
 * Child of bench/mainpath.ts: earshot's own main-thread path with werift left
 * out, in one process. K streams of real Opus packets (speech, 32 kb/s) enter
 * an RtpIngest each, as werift's RTP callback would hand them over (a payload
 * view into a larger packet buffer), at real-time pace with the streams'
 * phases spread over the 20 ms; the ingest feeds a PeerPipeline (the worker
 * pool, the recording, the statistics) exactly as a server session does.
 * Over a steady window it measures the main thread only: CPU time (from
 * /proc, ns), allocation and GC pauses (V8's GC profiler, as bench/probe.ts).
 *
 * Run: `node --import tsx bench/mainpath-child.ts --streams 20 --seconds 8
 * --pipeline default|nodenoise`; prints one JSON line. It imports earshot
 * from the tree it sits in, so a copy of another tree measures that tree.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { encodeSource } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-source.js';
import { PeerPipeline } from '../src/pipeline/peer-pipeline.js';
import { parsePipeline } from '../src/pipeline/pipeline.js';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { RtpIngest } from '../src/rtc/rtp-ingest.js';
import { LatencyHistogram } from '../src/media/latency-histogram.js';
import { ProcessorRegistry } from '../src/sinks/processors.js';
import { RecordingsStore } from '../src/sinks/recordings-store.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '8' },
    pipeline: { type: 'string', default: 'default' },
    warm: { type: 'string', default: '3' },
    /** The pool's batchIntervalMs (default: the pool's default). */
    'batch-ms': { type: 'string' },
    /** Write a CPU profile of the main thread over the window to this file. */
    profile: { type: 'string' },
    /** Write a sampling heap profile (allocations, collected ones included) over the window to this file. */
    'heap-profile': { type: 'string' },
  },
});
const K = Number(values.streams);
const seconds = Number(values.seconds);
const warm = Number(values.warm);
const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');

const pipeline = parsePipeline(
  values.pipeline === 'nodenoise'
    ? { name: 'nodenoise', stages: [], sinks: [{ type: 'record', format: 'wav', sampleFormat: 's16' }, { type: 'stats' }] }
    : JSON.parse(readFileSync(join(root, 'pipelines', 'default.json'), 'utf8')),
);
const source = encodeSource(await readWavSource(join(root, 'test', 'fixtures', 'speech-noisy-48k.wav')));
const dir = await mkdtemp(join(tmpdir(), 'earshot-mainpath-'));
const store = new RecordingsStore(dir);
await store.init();
const pool = new WorkerPool({ threads: 2, ...(values['batch-ms'] ? { batchIntervalMs: Number(values['batch-ms']) } : {}) });
await pool.start();
const latency = new LatencyHistogram();

interface Stream {
  ingest: RtpIngest;
  pipeline: PeerPipeline;
  seq: number;
  ts: number;
  next: number;
}

// What the tree's PeerSession does with werift's payload: older trees copied it.
const copyPayload = readFileSync(join(root, 'src', 'rtc', 'peer-session.ts'), 'utf8').includes('new Uint8Array(rtp.payload)');

const streams: Stream[] = Array.from({ length: K }, (_, i) => {
  const p = new PeerPipeline({
    pool,
    store,
    pipeline,
    room: 'bench',
    peer: `p${i}`,
    session: `session${i}`,
    processors: new ProcessorRegistry(),
    latency,
    onProcessorEvent: () => {},
    onPipelineError: (m) => process.stderr.write(`pipeline error: ${m}\n`),
    onSinkError: (sink, e) => process.stderr.write(`sink ${sink}: ${e.message}\n`),
  });
  // Diagnostics (MAINPATH_VARIANT): 'ingest' stops after the ingest, 'pool' sends to a bare pool stream.
  const variant = process.env.MAINPATH_VARIANT;
  const bare = variant === 'pool' ? pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: () => {}, onError: () => {} }) : undefined;
  const sink = variant === 'ingest' ? () => {} : bare ? (f: Parameters<PeerPipeline['push']>[0]) => bare.push(f) : (f: Parameters<PeerPipeline['push']>[0]) => p.push(f);
  return { ingest: new RtpIngest(sink), pipeline: p, seq: (i * 7919) & 0xffff, ts: i * 123457, next: 0 };
});

function mainCpuNs(): number {
  return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
}

const t0 = performance.now();
const end = t0 + (warm + seconds) * 1000;
// Stream i sends at t0 + i·20/K + n·20 ms.
const send = () => {
  const now = performance.now();
  for (let i = 0; i < K; i++) {
    const s = streams[i];
    while (t0 + (i * 20) / K + s.next * 20 <= now) {
      const opus = source.opus[s.next % source.opus.length];
      // A packet of its own, as werift decrypts each into a new buffer: 12 header bytes, then the payload.
      const packet = Buffer.allocUnsafe(12 + opus.length);
      packet.set(opus, 12);
      const view = packet.subarray(12);
      s.ingest.receive({ sequenceNumber: s.seq, timestamp: s.ts >>> 0, ssrc: 1000 + i, payload: copyPayload ? new Uint8Array(view) : view, headerBytes: 12, arrival: now });
      s.seq = (s.seq + 1) & 0xffff;
      s.ts += 960;
      s.next++;
    }
  }
};
const timer = setInterval(send, 2);

await new Promise((r) => setTimeout(r, warm * 1000));
const gc = new GCProfiler();
gc.start();
const used0 = getHeapStatistics().used_heap_size;
const ext0 = (getHeapStatistics() as { external_memory?: number }).external_memory ?? process.memoryUsage().external;
let session: Session | undefined;
if (values['heap-profile']) {
  session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
if (values.profile) {
  session ??= new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
}
const cpu0 = mainCpuNs();
const w0 = performance.now();
await new Promise((r) => setTimeout(r, Math.max(0, end - performance.now())));
const cpu1 = mainCpuNs();
if (session && values.profile) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(values.profile, JSON.stringify(profile));
}
if (session && values['heap-profile']) {
  const { profile } = await session.post('HeapProfiler.stopSampling');
  writeFileSync(values['heap-profile'], JSON.stringify(profile));
}
session?.disconnect();
const elapsed = (performance.now() - w0) / 1000;
const used1 = getHeapStatistics().used_heap_size;
const ext1 = (getHeapStatistics() as { external_memory?: number }).external_memory ?? process.memoryUsage().external;
const stats = (gc.stop() as unknown as { statistics: Array<{ cost: number; beforeGC: { heapStatistics: { usedHeapSize: number; externalMemory: number } }; afterGC: { heapStatistics: { usedHeapSize: number; externalMemory: number } } }> }).statistics;
clearInterval(timer);
let heap = 0;
let ext = 0;
let pu = used0;
let pe = ext0;
for (const g of stats) {
  heap += Math.max(0, g.beforeGC.heapStatistics.usedHeapSize - pu);
  ext += Math.max(0, g.beforeGC.heapStatistics.externalMemory - pe);
  pu = g.afterGC.heapStatistics.usedHeapSize;
  pe = g.afterGC.heapStatistics.externalMemory;
}
heap += Math.max(0, used1 - pu);
ext += Math.max(0, ext1 - pe);
const pauses = stats.map((g) => g.cost / 1000).sort((a, b) => a - b);
const frames = streams.reduce((n, s) => n + s.pipeline.stats.processing(0).framesProcessed, 0);
const dropped = streams.reduce((n, s) => n + s.pipeline.droppedFrames, 0);
await Promise.all(streams.map((s) => s.pipeline.close()));
await pool.close();
await rm(dir, { recursive: true, force: true });
process.stdout.write(
  `${JSON.stringify({
    streams: K,
    pipeline: pipeline.name,
    seconds: elapsed,
    mainCpuPct: (cpu1 - cpu0) / 1e7 / elapsed,
    mainUsPerFrame: (cpu1 - cpu0) / 1e3 / (K * 50 * elapsed),
    heapPerStreamSecond: heap / K / elapsed,
    externalPerStreamSecond: ext / K / elapsed,
    gcCount: pauses.length,
    gcPauseP99Ms: pauses.length ? pauses[Math.min(pauses.length - 1, Math.ceil(0.99 * pauses.length) - 1)] : 0,
    gcMs: pauses.reduce((a, b) => a + b, 0),
    frames,
    dropped,
  })}\n`,
);
