/**
 * A peer's pipeline against a real worker pool: the recording is the same
 * whether its samples were quantized in the worker or on the main thread, a
 * subscriber that arrives mid-stream gets whole float frames from then on, in
 * order, and the stats see every frame either way.
 */
import { describe, expect, it } from 'vitest';
import type { AudioFrame } from '../../src/media/frames.js';
import type { PeerPipeline } from '../../src/pipeline/peer-pipeline.js';
import { parsePipeline } from '../../src/pipeline/pipeline.js';
import { usePipelineRig } from '../helpers/pipeline-rig.js';

const rig = usePipelineRig({ fixture: 'speech-48k.wav', frames: 100 });

function pipelineOf(name: string, doc: Record<string, unknown>): Promise<PeerPipeline> {
  return rig.open(name, parsePipeline({ name, ...doc }));
}

/** Pushes the frames at 2 ms intervals (faster than real time; the pool batches them) and runs `at(i)` before frame i; asserts no sink or stage failed. */
function feed(p: PeerPipeline, at?: (i: number) => void): Promise<unknown> {
  return rig.feed(p, { at, gapMs: 2 });
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
    const a = await rig.recording('copies');
    const b = await rig.recording('floats');
    expect(a.length).toBe(44 + 2 * 960 * rig.frames.length);
    expect(a.equals(b)).toBe(true);
    // The stats saw every frame in both.
    expect(copies.stats.processing(0).framesProcessed).toBe(rig.frames.length);
    expect(floats.stats.processing(0).framesProcessed).toBe(rig.frames.length);
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
    expect(seen[seen.length - 1].position).toBe(960 * (rig.frames.length - 1));
    // The recording has every frame.
    expect((await rig.recording('late')).length).toBe(44 + 2 * 960 * rig.frames.length);
  });
});
