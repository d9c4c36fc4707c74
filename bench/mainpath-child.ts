/**
 * Child of bench/mainpath.ts: earshot's own main-thread path with werift left
 * out, in one process. K streams of real Opus packets (`--source`: noisy
 * speech by default, or a capacity source such as `silence-dtx`, sent as a
 * browser with DTX sends: a DTX frame only first in its run) enter
 * an RtpIngest each, as werift's RTP callback would hand them over (a payload
 * view into a larger packet buffer), at real-time pace with the streams'
 * phases spread over the 20 ms; the ingest feeds a PeerPipeline (the worker
 * pool, the recording, the statistics) exactly as a server session does.
 * Over a steady window it measures the main thread: CPU time (from /proc,
 * ns), allocation and GC pauses (V8's GC profiler, as bench/probe.ts); and
 * the pool's worker threads' CPU (the threads the pool started).
 *
 * Run: `node --import tsx bench/mainpath-child.ts --streams 20 --seconds 8
 * --pipeline default|nodenoise [--source silence-dtx]`; prints one JSON line. It imports earshot
 * from the tree it sits in, so a copy of another tree measures that tree.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GCProfiler, getHeapStatistics } from 'node:v8';
import { encodeSource } from '../src/client/audio-sender.js';
import { readWavSource } from '../src/client/wav-stream.js';
import { PeerPipeline } from '../src/pipeline/peer-pipeline.js';
import { parsePipeline } from '../src/pipeline/pipeline.js';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { RtpIngest } from '../src/rtc/rtp-ingest.js';
import { LatencyHistogram } from '../src/media/latency-histogram.js';
import { ProcessorRegistry } from '../src/sinks/processors.js';
import { RecordingsStore } from '../src/sinks/recordings-store.js';
import { encodedSources, SOURCES, type SourceName } from './capacity.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '8' },
    pipeline: { type: 'string', default: 'default' },
    /** What the streams send: speech (speech-noisy-48k.wav) or a capacity source (bench/capacity.ts SOURCES). */
    source: { type: 'string', default: 'speech' },
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
const sourceName = values.source as SourceName;
if (!(sourceName in SOURCES)) throw new Error(`unknown --source "${sourceName}"; sources: ${Object.keys(SOURCES).join(', ')}`);
const source = sourceName === 'speech' ? encodeSource(await readWavSource(join(root, 'test', 'fixtures', 'speech-noisy-48k.wav'))) : (await encodedSources(new Set([sourceName])))[sourceName]!;
/** Whether packet `n` goes out: with DTX, a DTX frame (≤ 2 bytes) only first in its run, as libwebrtc sends (client/audio-sender.ts). */
const sent = (n: number) => !source.dtx || source.opus[n % source.opus.length].length > 2 || source.opus[(n + source.opus.length - 1) % source.opus.length].length > 2;
/** Where stream `i` starts in the source: DTX talkers are spread over it (a room of talkers is not in step), as the capacity bench does. */
const startOf = (i: number) => (source.dtx ? Math.floor((source.opus.length * i) / K) : 0);
const dir = await mkdtemp(join(tmpdir(), 'earshot-mainpath-'));
const store = new RecordingsStore(dir);
await store.init();
const threadsBefore = new Set(readdirSync(`/proc/self/task`));
const pool = new WorkerPool({ threads: 2, ...(values['batch-ms'] ? { batchIntervalMs: Number(values['batch-ms']) } : {}) });
await pool.start();
// The threads the pool started: its workers (each a thread of its own).
const poolThreads = readdirSync(`/proc/self/task`).filter((t) => !threadsBefore.has(t));
const threadNs = (tid: string) => {
  try {
    return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return 0; // a worker that exited
  }
};
const workersNs = () => poolThreads.reduce((sum, t) => sum + threadNs(t), 0);
const latency = new LatencyHistogram();

interface Stream {
  ingest: RtpIngest;
  pipeline: PeerPipeline;
  seq: number;
  ts: number;
  next: number;
  /** Index in the source of its first packet. */
  start: number;
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
    onProcessorStageError: (processor, branch, stage, e) => process.stderr.write(`processor stage ${processor} (${branch}/${stage}): ${e.message}\n`),
  });
  // Diagnostics (MAINPATH_VARIANT): 'ingest' stops after the ingest, 'pool' sends to a bare pool stream.
  const variant = process.env.MAINPATH_VARIANT;
  const bare = variant === 'pool' ? pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: () => {}, onError: () => {} }) : undefined;
  const sink = variant === 'ingest' ? () => {} : bare ? (f: Parameters<PeerPipeline['push']>[0]) => bare.push(f) : (f: Parameters<PeerPipeline['push']>[0]) => p.push(f);
  return { ingest: new RtpIngest(sink), pipeline: p, seq: (i * 7919) & 0xffff, ts: i * 123457, next: 0, start: startOf(i) };
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
      if (!sent(s.start + s.next)) {
        // Withheld by DTX: its media time passes, its sequence number is not used.
        s.ts += 960;
        s.next++;
        continue;
      }
      const opus = source.opus[(s.start + s.next) % source.opus.length];
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
const workers0 = workersNs();
const w0 = performance.now();
await new Promise((r) => setTimeout(r, Math.max(0, end - performance.now())));
const cpu1 = mainCpuNs();
const workers1 = workersNs();
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
    source: sourceName,
    mainCpuPct: (cpu1 - cpu0) / 1e7 / elapsed,
    workersCpuPct: (workers1 - workers0) / 1e7 / elapsed,
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
