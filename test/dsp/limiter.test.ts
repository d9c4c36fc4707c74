/**
 * The `limiter` stage: the ceiling is a hard guarantee, quiet audio passes
 * bit for bit once the gain has recovered, and channels share one gain.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createLimiterStage } from '../../src/dsp/limiter.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { channelOf, concat, interleave, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { runStage } from './frames.js';

const RATE = 48000;
let tone: Float32Array; // 1 kHz, peak −12.04 dBFS
let noise: Float32Array; // white, peak −20 dBFS

beforeAll(async () => {
  tone = (await readFixture('tone-1k-48k.wav')).channels[0];
  noise = (await readFixture('noise-white-48k.wav')).channels[0];
});

const limiter = (options: Omit<StageSpec, 'type'> = {}, channels = 1) => createLimiterStage({ type: 'limiter', ...options }, { sampleRate: RATE, channels });
const peakOf = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const scaled = (x: Float32Array, db: number) => x.map((v) => v * 10 ** (db / 20));
const fromDb = (db: number) => 10 ** (db / 20);

describe('limiter stage', () => {
  it('never lets a tone driven 12 dB over the ceiling exceed it', () => {
    for (const ceilingDb of [-1, -6, 0, -30]) {
      const hot = scaled(tone, ceilingDb + 12 + 12.04); // peak = ceiling + 12 dB
      const { out } = runStage(limiter({ ceilingDb }), hot);
      expect(peakOf(out)).toBeLessThanOrEqual(fromDb(ceilingDb));
      // …and it limits rather than mutes: the peaks sit just under the ceiling.
      expect(peakOf(out.subarray(RATE))).toBeGreaterThan(fromDb(ceilingDb - 0.5));
    }
  });

  it('holds the ceiling on broadband noise 30 dB too hot, in odd chunk sizes', () => {
    const { out } = runStage(limiter({ ceilingDb: -3 }), scaled(noise, 30 - 20 + -3), 1, 333);
    expect(peakOf(out)).toBeLessThanOrEqual(fromDb(-3));
  });

  it('passes audio below the ceiling unchanged, and again once the release has settled after a peak', () => {
    const quiet = runStage(limiter(), tone.slice()).out; // peak −12 dBFS, ceiling −1
    expect(sameSamples(quiet, tone)).toBe(true);
    const input = concat([scaled(tone.subarray(0, RATE / 5), 20), tone.subarray(0, 2 * RATE)]);
    const { out } = runStage(limiter({ releaseMs: 50 }), input);
    // 1 s after the burst is 20 release time constants: the gain is back at exactly 1.
    const after = RATE / 5 + RATE;
    expect(sameSamples(out.subarray(after), input.subarray(after))).toBe(true);
    expect(sameSamples(out.subarray(RATE / 5, RATE / 5 + 480), input.subarray(RATE / 5, RATE / 5 + 480))).toBe(false); // still recovering right after it
  });

  it('links stereo channels: a peak on the left lowers the right by the same gain', () => {
    const left = scaled(tone.subarray(0, RATE), 20); // peak +8 dBFS
    const right = noise.subarray(0, RATE).map((v) => v * 0.1);
    const { out } = runStage(limiter({}, 2), interleave([left, right]), 2);
    const l = channelOf(out, 0, 2);
    const r = channelOf(out, 1, 2);
    expect(peakOf(l)).toBeLessThanOrEqual(fromDb(-1));
    // Where both are non-negligible, each channel got the same gain.
    for (let i = RATE / 2; i < RATE / 2 + 480; i++) {
      if (Math.abs(left[i]) > 0.1 && Math.abs(right[i]) > 0.001) expect(l[i] / left[i]).toBeCloseTo(r[i] / right[i], 4);
    }
  });

  it('checks its options, naming them', () => {
    const make = (options: Record<string, unknown>) => () => limiter(options);
    expect(make({ ceilingDb: 1 })).toThrow(RangeError);
    expect(make({ ceilingDb: 1 })).toThrow('limiter: option "ceilingDb" must be a number from -30 to 0, got 1');
    expect(make({ releaseMs: 0.5 })).toThrow('limiter: option "releaseMs" must be a number from 1 to 2000, got 0.5');
    expect(make({ releaseMs: '50' })).toThrow(TypeError);
    expect(make({ attackMs: 1 })).toThrow('limiter: unknown option "attackMs"; allowed: ceilingDb, releaseMs');
  });
});
