/**
 * Gaps the input fills with silence (DTX pauses) skip the stages that declare
 * they can (`Stage.skipSilence`), and the frames that come out are the ones
 * processing the zeros would have made: same samples, positions, levels and
 * voice activity. A stage that cannot skip gets the zeros through `process`,
 * as do the stages after it.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerStageFactory, unregisterStageFactory } from '../../src/dsp/registry.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { PcmChunk, Stage, StageSpec } from '../../src/dsp/types.js';
import type { AudioFormat, AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { RnnoiseState } from '../../wasm/rnnoise.js';
import type { CustomStage } from '../../src/index.js';
import { encodeOpusFrames } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

const SECOND = 48000;
let noisy: Float32Array;

beforeAll(async () => {
  await loadDspModules();
  noisy = (await readFixture('speech-noisy-48k.wav')).channels[0];
});

afterEach(() => {
  vi.restoreAllMocks();
  for (const type of ['opaque', 'skipper', 'refuser', 'recorder']) unregisterStageFactory(type);
});

/** Speech with DTX pauses: 1 s, no packets for 1.5 s (two silence chunks: 1 s + 0.5 s), 1 s, 0.4 s pause, 0.5 s. */
function talkWithPauses(): EncodedFrame[] {
  const parts: Array<[from: number, seconds: number, at: number]> = [
    [0, 1, 0],
    [1, 1, 2.5],
    [2, 0.5, 3.9],
  ];
  return parts.flatMap(([from, seconds, at]) => encodeOpusFrames(noisy.subarray(from * SECOND, (from + seconds) * SECOND), 1, { startPosition: Math.round(at * SECOND) }));
}

/** Silence-filled frames positions: where no packet was. */
const PAUSES: Array<[number, number]> = [
  [1 * SECOND, 2.5 * SECOND],
  [3.5 * SECOND, 3.9 * SECOND],
];

const CHAIN: StageSpec[] = [{ type: 'denoise' }, { type: 'highpass', frequency: 80 }, { type: 'gain', db: 6 }, { type: 'format', sampleFormat: 's16' }];

/** What a user reads from a frame. */
function view(f: AudioFrame) {
  return { position: f.position, length: f.data.length, data: Array.from(f.data), rms: f.rms, peak: f.peak, clipped: f.clipped, vad: f.vad, speech: f.speech };
}

describe('silence the input filled a gap with', () => {
  it('skips every built-in stage of a chain once each is at rest, with the output processing the zeros gives', () => {
    // A custom stage without skipSilence in front makes the second branch process every gap as samples.
    registerStageFactory('opaque', (_spec, input: AudioFormat): Stage => ({ output: input, process: (c: PcmChunk) => c, close() {} }));
    const runs = vi.spyOn(RnnoiseState.prototype, 'processFrame');
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages: CHAIN }, { stages: [{ type: 'opaque' }, ...CHAIN] }] });
    const frames = talkWithPauses();
    const [skipped, processed] = processor.process(frames);
    processor.close();

    expect(skipped.map(view)).toEqual(processed.map(view));
    // Media time is kept: 3.5 s of audio and 1.9 s of pauses, no hole or overlap.
    let next = 0;
    for (const f of skipped) {
      expect(f.position).toBe(next);
      next += f.data.length;
    }
    expect(next).toBe(Math.round(4.4 * SECOND));
    // The pauses are exact silence at VAD 0 once RNNoise settled (within 60 frames of 10 ms).
    const inPause = skipped.filter((f) => PAUSES.some(([a, b]) => f.position >= a + 0.6 * SECOND && f.position + f.data.length <= b));
    expect(inPause.length).toBeGreaterThan(0);
    for (const f of inPause) expect({ peak: f.peak, vad: f.vad, speech: f.speech, nonZero: f.data.some((v) => v !== 0) }).toEqual({ peak: 0, vad: 0, speech: false, nonZero: false });
    // Neither branch ran RNNoise on settled silence (the second skips it frame by frame after a peak check);
    // together they ran it on the sound and the settling only, and each equally often.
    expect(runs.mock.calls.length % 2).toBe(0);
    expect(runs.mock.calls.length / 2).toBeLessThanOrEqual(3.5 * 100 + 2 * 60);
    // Per branch (each has its own RNNoise state): the same count.
    const perState = new Map<unknown, number>();
    for (const state of runs.mock.contexts) perState.set(state, (perState.get(state) ?? 0) + 1);
    expect([...perState.values()]).toEqual([runs.mock.calls.length / 2, runs.mock.calls.length / 2]);
  });

  it('asks each stage in order; from the first that cannot skip, process gets the zeros, and so does every stage after it', () => {
    const calls: string[] = [];
    const stage = (name: string, skips: boolean) => (_spec: StageSpec, input: AudioFormat): Stage => ({
      output: input,
      process: (c: PcmChunk) => {
        calls.push(`${name}.process(${c.data.every((v) => v === 0) ? 'zeros' : 'sound'})`);
        return c;
      },
      skipSilence: (c: PcmChunk) => {
        calls.push(`${name}.skip(${c.data.length})`);
        return skips;
      },
      close() {},
    });
    registerStageFactory('skipper', stage('skipper', true));
    registerStageFactory('refuser', stage('refuser', false));
    registerStageFactory('recorder', stage('recorder', true));
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'skipper' }, { type: 'refuser' }, { type: 'recorder' }] }] });
    const sound = encodeOpusFrames(noisy.subarray(0, 960 * 2));
    // Two packets, a 60 ms pause, one packet.
    processor.process(sound);
    calls.length = 0;
    const [out] = processor.process([{ ...encodeOpusFrames(noisy.subarray(0, 960))[0], position: 960 * 5 }]);
    processor.close();
    expect(calls).toEqual(['skipper.skip(2880)', 'refuser.skip(2880)', 'refuser.process(zeros)', 'recorder.process(zeros)', 'skipper.process(sound)', 'refuser.process(sound)', 'recorder.process(sound)']);
    expect(out.map((f) => [f.position, f.data.length])).toEqual([
      [1920, 2880],
      [4800, 960],
    ]);
  });

  it('passes a chain that skips all of it straight to the output, with zero levels and zeros in the branch format', () => {
    const calls: string[] = [];
    registerStageFactory('skipper', (_spec, input: AudioFormat): Stage => ({
      output: input,
      process: (c: PcmChunk) => {
        calls.push('process');
        return c;
      },
      skipSilence: () => {
        calls.push('skip');
        return true;
      },
      close() {},
    }));
    const processor = new StreamProcessor({ channels: 2, branches: [{ stages: [{ type: 'skipper' }, { type: 'format', sampleFormat: 's16' }] }] });
    const stereo = new Float32Array(960 * 2).map((_, i) => 0.25 * Math.sin(i / 7));
    const packet = encodeOpusFrames(stereo, 2)[0];
    processor.process([packet]);
    calls.length = 0;
    const [out] = processor.process([{ ...packet, position: 960 * 3 }]);
    processor.close();
    expect(calls).toEqual(['skip', 'process']);
    const gap = out[0];
    expect(gap).toMatchObject({ position: 960, sampleFormat: 's16', channels: 2, rms: 0, peak: 0 });
    expect(gap.data).toBeInstanceOf(Int16Array);
    expect(gap.data.length).toBe(2 * 960 * 2);
    expect(gap.data.every((v) => v === 0)).toBe(true);
    expect(gap.clipped).toBeUndefined();
  });

  it('lets the DC-blocker example skip only once it is at rest after sound, where processing zeros would give zeros', async () => {
    const example: string = '../../examples/dc-blocker-stage.js';
    const dcBlocker = ((await import(example)) as { default: CustomStage }).default;
    const stage = dcBlocker.create({ type: 'dc-blocker' }, { sampleRate: 48000, channels: 1 });
    expect(stage.skipSilence?.({ data: new Float32Array(960) })).toBe(true); // fresh: at rest
    stage.process({ data: new Float32Array(960).fill(0.25) });
    let rest = 0;
    for (; rest < 1000 && stage.skipSilence?.({ data: new Float32Array(960) }) !== true; rest++) {
      const zeros = stage.process({ data: new Float32Array(960) }) as PcmChunk;
      expect(zeros.data.some((v) => v !== 0)).toBe(true); // still ringing: skipping would have lost this tail
    }
    // The 20 Hz pole's tail falls below 1e-30 in well under a second, then is flushed to 0.
    expect(rest).toBeGreaterThan(0);
    expect(rest).toBeLessThan(50);
    const after = stage.process({ data: new Float32Array(960) }) as PcmChunk;
    expect(after.data.every((v) => v === 0)).toBe(true);
    stage.close();
  });
});
