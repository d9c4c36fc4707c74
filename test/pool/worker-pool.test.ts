/**
 * The worker pool: batching keeps the task count independent of the stream
 * count, and a stream survives the death of its worker.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProcessedFrame } from '../../src/dsp/types.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { encodeOpusFrames, readWav } from '../helpers/audio.js';

const fixture = (n: string) => join(import.meta.dirname, '..', 'fixtures', n);
let pool: WorkerPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/** Feeds `streams` streams with 40 frames each at real-time pace; returns tasks used and outputs. */
async function feed(p: WorkerPool, streams: number) {
  const frames = encodeOpusFrames((await readWav(fixture('tone-1k-48k.wav'))).channels[0].subarray(0, 960 * 40));
  const outputs = Array.from({ length: streams }, () => [] as ProcessedFrame[]);
  const handles = outputs.map((out) => p.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => out.push(...f), onError: (m) => { throw new Error(m); } }));
  const before = p.stats().tasksCompleted;
  for (const f of frames) {
    for (const h of handles) h.push({ ...f, arrival: performance.now() });
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all(handles.map((h) => h.close()));
  return { tasks: p.stats().tasksCompleted - before, outputs, handles };
}

describe('WorkerPool', () => {
  it('sends one task per worker per tick however many streams there are', async () => {
    pool = new WorkerPool({ threads: 2, batchIntervalMs: 10 });
    await pool.start();
    const few = await feed(pool, 2);
    const many = await feed(pool, 40);
    for (const out of [...few.outputs, ...many.outputs]) expect(out.reduce((n, f) => n + f.data.length, 0)).toBe(40 * 960);
    // 40 streams × 40 frames = 1600 frames; without batching that would be 1600 tasks.
    expect(many.tasks).toBeLessThan(1600 / 4);
    expect(many.tasks).toBeLessThan(few.tasks * 1.5 + 10);
  });

  it('keeps a stream going on a new worker when its worker dies, at the right media time', async () => {
    pool = new WorkerPool({ threads: 2, batchIntervalMs: 10 });
    await pool.start();
    const frames = encodeOpusFrames((await readWav(fixture('tone-1k-48k.wav'))).channels[0].subarray(0, 960 * 60));
    const out: ProcessedFrame[] = [];
    const h = pool.openStream({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] }, { onFrames: (_b, f) => out.push(...f), onError: () => {} });
    for (let i = 0; i < 60; i++) {
      h.push({ ...frames[i], arrival: performance.now() });
      if (i === 25) {
        const victim = pool.workerThreads.find((w) => w.threadId === h.workers[0])!;
        await victim.terminate();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await h.close();
    expect(h.workers).toHaveLength(2);
    expect(h.workers[1]).not.toBe(h.workers[0]);
    // Frames keep their media positions: strictly increasing, ending at the last frame's end.
    for (let i = 1; i < out.length; i++) expect(out[i].position).toBeGreaterThanOrEqual(out[i - 1].position + out[i - 1].data.length);
    const last = out[out.length - 1];
    expect(last.position + last.data.length).toBe(60 * 960);
    expect(pool.stats().tasksFailed).toBeLessThanOrEqual(1);
  });
});
