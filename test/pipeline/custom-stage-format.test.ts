/**
 * A custom worker stage that resamples: the worker reports the real format of
 * each branch when the stream starts, and the recording is written in it (a
 * real worker, a real module, a real WAV file), whether the module declares
 * its output format or only builds a stage that says it.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PeerPipeline } from '../../src/pipeline/peer-pipeline.js';
import { parsePipeline } from '../../src/pipeline/pipeline.js';
import { readOggOpusSummary } from '../../src/sinks/ogg-opus-reader.js';
import { readWav } from '../helpers/audio.js';
import { fixtureModule } from '../helpers/fixtures.js';
import { usePipelineRig } from '../helpers/pipeline-rig.js';

const MODULE = fixtureModule('decimate.js');
/** 2 s of speech in 20 ms Opus frames. */
const FRAMES = 100;

const rig = usePipelineRig({ fixture: 'speech-48k.wav', frames: FRAMES });

beforeAll(async () => {
  expect(await rig.pool.registerStageModule(MODULE)).toEqual(['decimate', 'decimate-undeclared', 'decimate-mismatch']);
});

/** Runs the frames through a one-branch pipeline with `stages` and a record sink; returns the pipeline once closed and its WAV. */
async function record(name: string, stages: Array<Record<string, unknown>>): Promise<{ pipeline: PeerPipeline; wav: Buffer }> {
  const pipeline = await rig.open(name, parsePipeline({ name, stages, sinks: [{ type: 'record' }] }, name, { customStages: rig.pool.customStageTypes }));
  await rig.feed(pipeline);
  return { pipeline, wav: await rig.recording(name) };
}

/** Sample rate, channels and duration from a 16-bit PCM WAV's header (read by wavefile, which walks its chunks). */
function wavHeader(wav: Buffer): { sampleRate: number; channels: number; seconds: number } {
  const file = new wavefile.WaveFile(wav);
  const { numChannels: channels, sampleRate } = file.fmt as { numChannels: number; sampleRate: number };
  const dataBytes = (file.data as { chunkSize: number }).chunkSize;
  return { sampleRate, channels, seconds: dataBytes / (2 * channels * sampleRate) };
}

describe('a custom stage that changes the sample rate', () => {
  it('records at the rate the worker reports (48 kHz → 16 kHz), with the right duration', async () => {
    const { pipeline, wav } = await record('declared', [{ type: 'decimate', factor: 3 }]);
    // The main thread cannot know what a custom stage does; the worker told it.
    expect(pipeline.branches[0].sampleRate).toBe(16000);
    const header = wavHeader(wav);
    expect(header).toMatchObject({ sampleRate: 16000, channels: 1 });
    expect(header.seconds).toBeCloseTo(FRAMES * 0.02, 2);
    // And the content is the speech, decimated: read back, it lasts as long as what was sent.
    const decoded = await readWav(join(rig.dir, 'declared', (await readdir(join(rig.dir, 'declared')))[0]));
    expect(decoded.sampleRate).toBe(16000);
    expect(decoded.channels[0].length).toBe((FRAMES * 960) / 3);
  });

  it('records at the rate of the stage it built when the module declares no output format', async () => {
    const { wav } = await record('undeclared', [{ type: 'decimate-undeclared', factor: 2 }, { type: 'gain', db: -6 }]);
    const header = wavHeader(wav);
    expect(header.sampleRate).toBe(24000);
    expect(header.seconds).toBeCloseTo(FRAMES * 0.02, 2);
  });

  it('codes Ogg Opus of what the stage makes and says its rate: OpusHead and the recording info read 16 kHz', async () => {
    const name = 'ogg';
    const pipeline = await rig.open(name, parsePipeline({ name, stages: [{ type: 'decimate', factor: 3 }], sinks: [{ type: 'record', format: 'ogg-opus' }] }, name, { customStages: rig.pool.customStageTypes }));
    const [info] = await rig.feed(pipeline);
    // Before, the file was started before the worker's report and said what validation assumed: 48 kHz.
    expect(info).toMatchObject({ format: 'ogg-opus', sampleRate: 16000, channels: 1 });
    const [file] = (await readdir(join(rig.dir, name))).filter((f) => f.endsWith('.opus'));
    const path = join(rig.dir, name, file);
    const summary = await readOggOpusSummary(path, (await stat(path)).size);
    expect(summary).toMatchObject({ inputSampleRate: 16000, channels: 1 });
    expect(summary!.seconds).toBeCloseTo(FRAMES * 0.02, 1);
  });

  it('refuses a stage whose output differs from the format its module declares, before any audio flows', async () => {
    const [problem] = await rig.pool.checkSetups([{ channels: 1, branches: [{ stages: [{ type: 'decimate-mismatch', factor: 3 }] }] }]);
    expect(problem).toMatch(/decimate-mismatch: create\(\) made a stage whose output is 16000 Hz × 1 \(f32\), but outputFormat\(\) declares 48000 Hz × 1 \(f32\)/);
  });
});
