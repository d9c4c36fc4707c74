/**
 * A sample that is not a finite number (NaN, ±Infinity) must not end a
 * stream's audio: PCM input makes it 0 and counts the frame as corrupt, and a
 * filter whose state it reached (a custom stage's output) recovers at the
 * next frame. Before, one NaN left a highpass or denoise branch emitting
 * zeros for the rest of the stream.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createStage } from '../../src/dsp/registry.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { rmsDb } from '../helpers/audio.js';
import { sine } from './frames.js';

beforeAll(async () => {
  await loadDspModules();
});

/** 100 frames of a 440 Hz sine (−10 dBFS peak), 20 ms each, with `bad` written into frame 5. */
function sineFrames(bad: number[]) {
  const tone = sine(440, 48000, 2, 0.3);
  return Array.from({ length: 100 }, (_, k) => {
    const data = tone.slice(k * 960, (k + 1) * 960);
    if (k === 5) bad.forEach((v, i) => (data[100 + i] = v));
    return { position: k * 960, data, arrival: 0 };
  });
}

describe('non-finite samples', () => {
  it.each<[string, StageSpec[]]>([
    ['highpass', [{ type: 'highpass', frequency: 80 }]],
    ['denoise', [{ type: 'denoise' }]],
    ['limiter', [{ type: 'limiter' }]],
    ['bandpass, then denoise', [{ type: 'bandpass', lowFrequency: 100, highFrequency: 4000 }, { type: 'denoise' }]],
  ])('in PCM input are made 0 and counted; the %s branch keeps its audio', (_name, stages) => {
    const sp = new StreamProcessor({ input: { sampleRate: 48000, channels: 1 }, branches: [{ stages }] });
    const input = sineFrames([NaN, Infinity, -Infinity]);
    const producer = input[5].data.slice();
    const frames = sp.processPcm(input)[0];
    expect(sp.counters.corrupt).toBe(1);
    // The producer's array is left as it was.
    expect(Array.from(input[5].data)).toEqual(Array.from(producer));
    for (const f of frames) {
      expect(Number.isFinite(f.rms)).toBe(true);
      for (const v of f.data) expect(Number.isFinite(v)).toBe(true);
    }
    // After the bad frame, the tone goes on at its level (RNNoise takes its first frames to settle).
    const tail = frames.filter((f) => f.position >= 20 * 960);
    expect(tail.length).toBeGreaterThan(70);
    for (const f of tail) expect(f.peak).toBeGreaterThan(0);
    sp.close();
  });

  it('reaching a filter (a custom stage ahead of it made them) cost that frame only', () => {
    const stage = createStage({ type: 'highpass', frequency: 80 }, { sampleRate: 48000, channels: 1 });
    const tone = sine(440, 48000, 1, 0.3);
    const out: Float32Array[] = [];
    for (let k = 0; k < 50; k++) {
      const data = tone.slice(k * 960, (k + 1) * 960);
      if (k === 5) data[10] = NaN;
      const result = stage.process({ data });
      for (const c of Array.isArray(result) ? result : [result]) out.push(c.data);
    }
    // The frame with the NaN carries it from there on; every frame after it is the tone again.
    for (let k = 6; k < 50; k++) {
      expect(out[k].every(Number.isFinite)).toBe(true);
      expect(rmsDb(out[k])).toBeGreaterThan(-15);
    }
  });
});
