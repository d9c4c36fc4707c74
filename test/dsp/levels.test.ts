/** Levels computed in the worker for every output frame, on real signals. */
import { describe, expect, it } from 'vitest';
import { DBFS_FLOOR, measureLevels, toDbfs } from '../../src/dsp/levels.js';
import { rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

describe('measureLevels', () => {
  it('measures a steady tone with RMS = peak / √2', async () => {
    const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
    const { rms, peak } = measureLevels(tone);
    expect(rms / peak).toBeCloseTo(Math.SQRT1_2, 2);
    expect(toDbfs(rms)).toBeCloseTo(rmsDb(tone), 3);
  });

  it('agrees with an independent RMS on speech and reports the largest absolute sample', async () => {
    const speech = (await readFixture('speech-48k.wav')).channels[0];
    const { rms, peak } = measureLevels(speech);
    expect(toDbfs(rms)).toBeCloseTo(rmsDb(speech), 3);
    expect(peak).toBe(speech.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
  });

  it('measures silence and an empty block as zero', () => {
    expect(measureLevels(new Float32Array(960))).toEqual({ rms: 0, peak: 0, clipped: 0 });
    expect(measureLevels(new Float32Array(0))).toEqual({ rms: 0, peak: 0, clipped: 0 });
  });
});

describe('toDbfs', () => {
  it('maps full scale to 0 dBFS and halving to about −6 dB', () => {
    expect(toDbfs(1)).toBe(0);
    expect(toDbfs(0.5)).toBeCloseTo(-6.0206, 4);
    expect(toDbfs(Math.SQRT1_2)).toBeCloseTo(-3.0103, 4);
  });

  it('clamps silence, tiny, negative and NaN levels to the −120 dBFS floor instead of −Infinity', () => {
    expect(DBFS_FLOOR).toBe(-120);
    for (const v of [0, 1e-9, -0.5, Number.NaN]) expect(toDbfs(v)).toBe(-120);
    expect(toDbfs(1e-6)).toBeCloseTo(-120, 9);
    expect(toDbfs(2e-6)).toBeGreaterThan(-120);
  });
  it('counts samples at or beyond 16-bit full scale as clipped, either sign', () => {
    const data = Float32Array.from([0.5, 32767 / 32768, -1, 1.2, -0.99, 0.9999]);
    expect(measureLevels(data).clipped).toBe(3);
  });
});
