/**
 * Audio lost to a stage fault where no later frame shows the gap: in the
 * stream's last batch (a crashed worker), or for the rest of a stream the pool
 * ended (a hung stage's, a stage that threw). The recording still lasts as
 * long as the media, the lost time is silence at its end, and the frames are
 * counted — a real pool, real custom stage modules, a real WAV file.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePipeline } from '../../src/pipeline/pipeline.js';
import type { RecordingInfo } from '../../src/sinks/recorder.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { opusdec, opusinfo } from '../helpers/opus-tools.js';
import { fixtureModule } from '../helpers/fixtures.js';
import { usePipelineRig } from '../helpers/pipeline-rig.js';

/** 2 s of a 1 kHz tone in 20 ms Opus frames. */
const FRAMES = 100;
const rig = usePipelineRig({ fixture: 'tone-1k-48k.wav', frames: FRAMES });

beforeAll(async () => {
  for (const m of ['exit-stage.js', 'hang-stage.js', 'throw-stage.js']) await rig.pool.registerStageModule(fixtureModule(m));
});

/** Feeds the tone through a record pipeline with `stage` after the decoder; the recording's info and samples. */
async function record(name: string, stage: Record<string, unknown>): Promise<{ info: RecordingInfo; samples: Float32Array; problems: string[] }> {
  const problems: string[] = [];
  const pipeline = await rig.open(name, parsePipeline({ name, stages: [stage], sinks: [{ type: 'record' }] }, name, { customStages: rig.pool.customStageTypes }), { problems });
  const [info] = await rig.feed(pipeline);
  const [file] = await readdir(join(rig.dir, name));
  return { info, samples: (await readWav(join(rig.dir, name, file))).channels[0], problems };
}

/** The file lasts as long as the media: the tone, then the lost frames' time as exact zeros, each lost frame counted under `reason`. */
function expectLossAtEnd({ info, samples }: { info: RecordingInfo; samples: Float32Array }, reason: 'workerRestart' | 'stageFailed' = 'workerRestart'): number {
  expect(samples.length).toBe(FRAMES * 960);
  expect(info.seconds).toBeCloseTo(FRAMES * 0.02, 6);
  const lost = info.droppedBy[reason];
  expect(lost).toBeGreaterThan(0);
  expect(lost).toBeLessThan(FRAMES);
  expect(info.droppedFrames).toBe(lost);
  // Nothing else is missing: the silence is exactly the lost frames' time, and it is at the end.
  expect(info.gapFrames).toBe(lost * 960);
  const kept = samples.length - info.gapFrames;
  expect(samples.subarray(kept).every((v) => v === 0)).toBe(true);
  expect(dominantFrequency(samples.subarray(kept - 4800, kept), 48000)).toBeCloseTo(1000, -1);
  return lost;
}

describe('audio lost at the end of a stream', () => {
  it('a stage that throws: the rest of its batch, the queue and the frames after are counted (as stageFailed) and recorded as silence', async () => {
    const r = await record('throw-mid', { type: 'throw', afterChunks: 50 });
    expect(r.problems).toEqual([expect.stringMatching(/throw stage: chunk 50/)]);
    // Chunk 50, the rest of its batch, the queue and every frame after: the 49 frames before it were recorded, even those in its batch.
    // Counted as lost to the stage: no worker restarted.
    expect(expectLossAtEnd(r, 'stageFailed')).toBe(FRAMES - 49);
    expect(r.info.droppedBy.workerRestart).toBe(0);
  });

  it('a worker that crashes in the last batch: its frames are silence at the end of a full-length recording, counted', async () => {
    const r = await record('crash-last', { type: 'exit', afterChunks: FRAMES });
    expect(r.problems).toEqual([]); // one crash: the stream restarts (quarantine comes at the second)
    expectLossAtEnd(r);
  });

  it('an Ogg Opus recording coded in the worker: a crash in the last batch leaves silence to the media end, counted', async () => {
    const problems: string[] = [];
    const name = 'crash-last-ogg';
    const doc = { name, stages: [{ type: 'exit', afterChunks: FRAMES }, { type: 'gain', db: 0 }], sinks: [{ type: 'record', format: 'ogg-opus' }] };
    const pipeline = await rig.open(name, parsePipeline(doc, name, { customStages: rig.pool.customStageTypes }), { problems });
    const [info] = await rig.feed(pipeline);
    expect(problems).toEqual([]);
    const lost = info.droppedBy.workerRestart;
    expect(lost).toBeGreaterThan(0);
    expect(info.gapFrames).toBe(lost * 960);
    const [file] = await readdir(join(rig.dir, name));
    await opusinfo(join(rig.dir, name, file)); // a valid Ogg Opus file
    // Packets to the media's end; a player drops the encoder's pre-skip (6.5 ms) at the start, as with received packets.
    const decoded = (await opusdec(join(rig.dir, name, file))).channels[0];
    expect(decoded.length).toBe(FRAMES * 960 - 312);
    expect(info.seconds).toBeCloseTo((FRAMES * 960 - 312) / 48000, 6);
    // The tone, then the lost frames' time as silence.
    const kept = decoded.length - info.gapFrames;
    expect(dominantFrequency(decoded.subarray(kept - 4800 - 960, kept - 960), 48000)).toBeCloseTo(1000, -1);
    expect(Math.max(...decoded.subarray(kept + 960).map(Math.abs))).toBeLessThan(1e-3);
  });

  // Last: the hung worker's replacement is still starting when this stream has ended.
  it('a hung stage: the stream is ended, and what it had queued and what came after is counted and recorded as silence', async () => {
    const r = await record('hang-mid', { type: 'hang', afterChunks: 50 });
    expect(r.problems).toEqual([expect.stringMatching(/^EARSHOT_STAGE_TIMEOUT/)]);
    // The batch the stage hung in, the queue behind it and every frame pushed after: half the stream or more.
    expect(expectLossAtEnd(r)).toBeGreaterThanOrEqual(FRAMES / 2 - 5);
  });
});
