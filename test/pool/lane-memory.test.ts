/**
 * A plain batch (frames only) travels between the main thread and its worker
 * as a number each way, its bytes in the lane's shared memory
 * (src/pool/task-lane.ts, `LaneMemory` in protocol.ts). Frames a handler
 * keeps past delivery keep their samples, although the shared memory takes
 * the next batch; the 16-bit copies of a copies-only batch are right during
 * the call.
 */
import { MessagePort } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { quantizeS16 } from '../../src/media/pcm16.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { encodeOpusFrames } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

let frames: EncodedFrame[];
/** The same frames decoded by a StreamProcessor in this thread: what the worker must deliver. */
let expected: Float32Array[];

beforeAll(async () => {
  await loadDspModules();
  frames = encodeOpusFrames((await readFixture('speech-48k.wav')).channels[0].subarray(0, 960 * 60));
  const reference = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
  expected = reference.process(frames.map((f) => ({ ...f })))[0].map((f) => Float32Array.from(f.data as Float32Array));
  reference.close();
});

let pool: WorkerPool | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await pool?.close();
  pool = undefined;
});

/** Posts on the main thread's ports while `run` runs: how many were a bare number (a plain batch or its answer), how many an object. */
async function countPosts(run: () => Promise<void>): Promise<{ numbers: number; objects: number }> {
  const counts = { numbers: 0, objects: 0 };
  const post = MessagePort.prototype.postMessage;
  vi.spyOn(MessagePort.prototype, 'postMessage').mockImplementation(function (this: MessagePort, message: unknown, transfer?: readonly unknown[]) {
    if (typeof message === 'number') counts.numbers++;
    else counts.objects++;
    return post.call(this, message, transfer as never);
  });
  await run();
  return counts;
}

/** Pushes every frame, a batch's worth at a time, and waits for the stream to end. */
async function play(push: (f: EncodedFrame) => void, close: () => Promise<void>): Promise<void> {
  for (let i = 0; i < frames.length; i++) {
    push({ ...frames[i], arrival: performance.now() });
    if (i % 3 === 2) await new Promise((r) => setTimeout(r, 15));
  }
  await close();
}

describe("a lane's shared memory", () => {
  it('carries the batches of a running stream as numbers, and frames kept past delivery keep their samples', async () => {
    pool = new WorkerPool({ threads: 1, spareWorker: false, batchIntervalMs: 5 });
    await pool.start();
    const kept: AudioFrame[] = [];
    const h = pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => kept.push(...f), onError: () => {} });
    const posts = await countPosts(() => play((f) => h.push(f), () => h.close()));
    // The stream's first batch carries its setup (an object); the rest are plain.
    expect(posts.numbers).toBeGreaterThanOrEqual(10);
    expect(posts.objects).toBeLessThanOrEqual(3);
    expect(kept.length).toBe(frames.length);
    // Every frame, read after all batches were delivered, is the decode of its packet.
    for (let i = 0; i < kept.length; i++) {
      expect(kept[i].position).toBe(i * 960);
      expect(kept[i].data.buffer).not.toBeInstanceOf(SharedArrayBuffer);
      expect(Array.from(kept[i].data)).toEqual(Array.from(expected[i]));
    }
  });

  it("gives a copies-only branch its 16-bit samples during the call, from the shared memory", async () => {
    pool = new WorkerPool({ threads: 1, spareWorker: false, batchIntervalMs: 5 });
    await pool.start();
    const copies: Int16Array[] = [];
    const h = pool.openStream(
      { channels: 1, branches: [{ stages: [] }] },
      {
        onFrames: (_b, _f, pcm16, complete) => {
          expect(complete?.every((c) => !c)).toBe(true);
          for (const p of pcm16 ?? []) copies.push(Int16Array.from(p!));
        },
        f32Branches: () => 0,
        pcm16Branches: () => 1,
        onError: () => {},
      },
    );
    const posts = await countPosts(() => play((f) => h.push(f), () => h.close()));
    expect(posts.numbers).toBeGreaterThanOrEqual(10);
    expect(copies.length).toBe(frames.length);
    for (let i = 0; i < copies.length; i++) {
      const want = new Int16Array(expected[i].length);
      quantizeS16(expected[i], want);
      expect(Array.from(copies[i])).toEqual(Array.from(want));
    }
  });
});
