/**
 * A peer's pipeline against a real worker pool: the recording is the same
 * whether its samples were quantized in the worker or on the main thread, a
 * subscriber that arrives mid-stream gets whole float frames from then on, in
 * order, and the stats see every frame either way.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { PeerPipeline } from '../../src/pipeline/peer-pipeline.js';
import { parsePipeline } from '../../src/pipeline/pipeline.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { ProcessorRegistry } from '../../src/sinks/processors.js';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';
import { encodeOpusFrames } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

let pool: WorkerPool;
let dir: string;
let frames: EncodedFrame[];

beforeAll(async () => {
  pool = new WorkerPool({ threads: 1, spareWorker: false });
  await pool.start();
  dir = await mkdtemp(join(tmpdir(), 'earshot-peer-pipeline-'));
  frames = encodeOpusFrames((await readFixture('speech-48k.wav')).channels[0].subarray(0, 960 * 100)).map((f) => ({ ...f, samples: 960 }));
});

afterAll(async () => {
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

async function pipelineOf(name: string, doc: Record<string, unknown>): Promise<PeerPipeline> {
  const store = new RecordingsStore(join(dir, name));
  await store.init();
  return new PeerPipeline({
    pool,
    store,
    pipeline: parsePipeline({ name, ...doc }),
    room: 'r',
    peer: name,
    session: 'session0',
    processors: new ProcessorRegistry(),
    onProcessorEvent: () => {},
    onPipelineError: (m) => {
      throw new Error(m);
    },
    onSinkError: (sink, e) => {
      throw new Error(`${sink}: ${e.message}`);
    },
  });
}

/** Pushes the frames at 2 ms intervals (faster than real time; the pool batches them) and runs `at(i)` before frame i. */
async function feed(p: PeerPipeline, at: (i: number) => void = () => {}): Promise<void> {
  for (let i = 0; i < frames.length; i++) {
    at(i);
    p.push({ ...frames[i], arrival: performance.now() });
    await new Promise((r) => setTimeout(r, 2));
  }
  await p.close();
}

async function recordingOf(name: string): Promise<Buffer> {
  const files = (await readdir(join(dir, name))).filter((f) => f.endsWith('.wav'));
  expect(files).toHaveLength(1);
  return readFile(join(dir, name, files[0]));
}

describe('PeerPipeline', () => {
  it('records the same file with samples quantized in the worker as with a subscriber reading floats all along', async () => {
    const sinks = [{ type: 'record', sampleFormat: 's16' }, { type: 'stats' }];
    // Nobody reads floats: the worker sends 16-bit copies only.
    const copies = await pipelineOf('copies', { sinks });
    await feed(copies);
    // A subscriber from the start: floats and copies both come.
    const floats = await pipelineOf('floats', { sinks });
    const seen: AudioFrame[] = [];
    floats.branches[0].audio$.subscribe((f) => seen.push(f));
    await feed(floats);
    expect(seen.length).toBeGreaterThan(90);
    for (const f of seen) expect(f.data).toBeInstanceOf(Float32Array);
    const a = await recordingOf('copies');
    const b = await recordingOf('floats');
    expect(a.length).toBe(44 + 2 * 960 * frames.length);
    expect(a.equals(b)).toBe(true);
    // The stats saw every frame in both.
    expect(copies.stats.processing(0).framesProcessed).toBe(frames.length);
    expect(floats.stats.processing(0).framesProcessed).toBe(frames.length);
    expect(copies.stats.audio(performance.now()).sessionRmsDbfs).toBeCloseTo(floats.stats.audio(performance.now()).sessionRmsDbfs, 5);
  });

  it('gives a subscriber that comes mid-stream whole float frames, contiguous from its first one', async () => {
    const p = await pipelineOf('late', { sinks: [{ type: 'record' }, { type: 'stats' }] });
    const seen: AudioFrame[] = [];
    await feed(p, (i) => {
      if (i === 40) p.branches[0].audio$.subscribe((f) => seen.push(f));
    });
    expect(seen.length).toBeGreaterThan(40);
    for (const f of seen) {
      expect(f.sampleFormat).toBe('f32');
      expect(f.data).toBeInstanceOf(Float32Array);
      expect(f.data.length).toBe(960);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i].position).toBe(seen[i - 1].position + 960);
    expect(seen[seen.length - 1].position).toBe(960 * (frames.length - 1));
    // The recording has every frame.
    expect((await recordingOf('late')).length).toBe(44 + 2 * 960 * frames.length);
  });
});
