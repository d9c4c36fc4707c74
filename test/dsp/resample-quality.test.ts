/**
 * Frequency response of the `resample` stage (Speex) when it decimates:
 * passband flatness below the new Nyquist and rejection of everything above it
 * (which would otherwise alias back into the band).
 *
 * Two measurements that share no code with the resampler:
 * - the logarithmic sweep fixture, cut into 10 ms windows: each window's
 *   output RMS against the input RMS over the same stretch of media time, at
 *   the sweep frequency of that stretch. The sweep law is measured from the
 *   fixture's zero crossings (not assumed) and checked against its nominal
 *   20 Hz → 22.8 kHz in 4 s;
 * - steady sines at chosen frequencies (output RMS vs input RMS, after the
 *   filter's start-up), which pin down the band edge precisely.
 *
 * Aliased stopband energy comes out at another frequency, but its level is
 * what matters, and RMS measures it wherever it lands.
 *
 * Measured (10 ms sweep windows; sines):
 * - 48→16 kHz q5: sweep within 0.04 dB from 100 Hz to 0.88 × Nyquist (7040 Hz;
 *   sine there −0.39 dB), but −1.1 dB in the 7067–7192 Hz window and −1.85 dB
 *   for a sine at 0.90 × Nyquist: Speex q5's −1 dB band edge is at ~0.89 ×
 *   Nyquist. Above 8 kHz the sweep comes out ≥ 79 dB down (that is the
 *   fixture's own 16-bit noise floor; sines show ≥ 100 dB).
 * - 48→8 kHz q5: the same, scaled: ≤ 0.15 dB to 0.88 × Nyquist, ≥ 79 dB above.
 * - 48→8 kHz q10: ≤ 0.16 dB to 0.90 × Nyquist (a sine at 0.96 × Nyquist:
 *   −0.33 dB); ≥ 49 dB above Nyquist in the first window, ~80 dB beyond.
 * So "< 1 dB up to 0.9 × Nyquist" holds from q6 (sine at 0.90 × Nyquist,
 * 48→16 kHz: q6 −0.21 dB, q7 0.00 dB), not at q5, whose passband is tested to
 * 0.88 × Nyquist. That is why the stage's default quality is 6.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createResampleStage } from '../../src/dsp/resample.js';
import { loadDspModules } from '../../src/dsp/stream-processor.js';
import { concat } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

const IN_RATE = 48000;
let sweep: Float32Array;

beforeAll(async () => {
  await loadDspModules();
  sweep = (await readFixture('sweep-48k.wav')).channels[0];
});

/** Runs `input` through a fresh resample stage in 20 ms chunks, as the decoder feeds it. */
function resample(input: Float32Array, sampleRate: number, quality: number): Float32Array {
  const stage = createResampleStage({ type: 'resample', sampleRate, quality }, { sampleRate: IN_RATE, channels: 1 });
  const parts: Float32Array[] = [];
  for (let i = 0; i < input.length; i += 960) {
    const out = stage.process({ data: input.slice(i, i + 960) });
    if (out) parts.push(out.data);
  }
  stage.close();
  return concat(parts);
}

function rms(x: Float32Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i] * x[i];
  return Math.sqrt(s / (to - from));
}

const db = (ratio: number) => 20 * Math.log10(ratio);

/** Zero-crossing times (s) of `x`, interpolated between samples. */
function zeroCrossings(x: Float32Array, rate: number): number[] {
  const times: number[] = [];
  for (let i = 1; i < x.length; i++) {
    if (x[i - 1] < 0 !== x[i] < 0) times.push((i - 1 + x[i - 1] / (x[i - 1] - x[i])) / rate);
  }
  return times;
}

/**
 * The sweep's instantaneous frequency law f(t) = f0·e^(k·t), fitted by least
 * squares to ln f measured from groups of 40 zero crossings (20 periods).
 * Returns the law and the worst relative error of the measurements from it.
 */
function measureSweepLaw(x: Float32Array): { f0: number; k: number; worstError: number } {
  const zc = zeroCrossings(x, IN_RATE);
  const points: Array<[number, number]> = [];
  for (let i = 0; i + 40 < zc.length; i += 40) {
    const t = (zc[i] + zc[i + 40]) / 2;
    if (t < 0.5 || t > 3.95) continue; // too few crossings per group at the start; the fade at the end
    points.push([t, Math.log(20 / (zc[i + 40] - zc[i]))]);
  }
  const n = points.length;
  const mt = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const k = points.reduce((s, p) => s + (p[0] - mt) * (p[1] - my), 0) / points.reduce((s, p) => s + (p[0] - mt) ** 2, 0);
  const f0 = Math.exp(my - k * mt);
  const worstError = Math.max(...points.map(([t, y]) => Math.abs(Math.exp(y) / (f0 * Math.exp(k * t)) - 1)));
  return { f0, k, worstError };
}

/**
 * Output delay in output samples: the lag that best lines the output up with
 * the input taken at the output rate, over the sweep's first 2 s (all far
 * inside the passband, where the resampler is a pure delay).
 */
function measureDelay(input: Float32Array, output: Float32Array, outRate: number): number {
  const step = IN_RATE / outRate;
  let best = 0;
  let bestScore = -Infinity;
  for (let lag = 0; lag < 200; lag++) {
    let score = 0;
    for (let n = lag; n < 2 * outRate; n++) score += output[n] * input[(n - lag) * step];
    if (score > bestScore) [best, bestScore] = [lag, score];
  }
  return best;
}

interface WindowGain {
  /** Lowest and highest sweep frequency in the window, Hz. */
  low: number;
  high: number;
  /** Output RMS over input RMS, dB. */
  gainDb: number;
}

/** Gains over consecutive 10 ms windows of media time. */
function sweepResponse(outRate: number, quality: number): WindowGain[] {
  const law = measureSweepLaw(sweep);
  const out = resample(sweep, outRate, quality);
  const delay = measureDelay(sweep, out, outRate);
  const step = IN_RATE / outRate;
  const window = outRate / 100;
  const windows: WindowGain[] = [];
  // Stop 20 ms before the end: the fixture fades out there.
  for (let n = delay; n + window <= out.length && (n - delay + window) / outRate < 3.98; n += window) {
    const t0 = (n - delay) / outRate;
    const t1 = t0 + window / outRate;
    const input = rms(sweep, (n - delay) * step, (n - delay + window) * step);
    windows.push({ low: law.f0 * Math.exp(law.k * t0), high: law.f0 * Math.exp(law.k * t1), gainDb: db(rms(out, n, n + window) / input) });
  }
  return windows;
}

/** Output level of a steady sine at `frequency` relative to its input level, dB (skipping 100 ms of start-up). */
function sineGainDb(frequency: number, outRate: number, quality: number): number {
  const input = Float32Array.from({ length: IN_RATE }, (_, i) => 0.5 * Math.sin((2 * Math.PI * frequency * i) / IN_RATE));
  const out = resample(input, outRate, quality);
  return db(rms(out, outRate / 10, out.length) / (0.5 / Math.SQRT2));
}

interface Case {
  outRate: number;
  quality: number;
  /** Highest passband frequency as a fraction of the new Nyquist where ripple stays under 1 dB (see the measured figures above). */
  passbandEdge: number;
}

const cases: Case[] = [
  { outRate: 16000, quality: 5, passbandEdge: 0.88 },
  { outRate: 8000, quality: 5, passbandEdge: 0.88 },
  { outRate: 16000, quality: 6, passbandEdge: 0.9 },
  { outRate: 8000, quality: 6, passbandEdge: 0.9 },
  { outRate: 8000, quality: 10, passbandEdge: 0.9 },
];

describe('resample quality (decimation)', () => {
  it('reads the sweep fixture as a logarithmic 20 Hz → 22.8 kHz sweep over 4 s', () => {
    const law = measureSweepLaw(sweep);
    expect(law.worstError).toBeLessThan(0.03); // measured 1.9 %, from zero-crossing jitter at 2 samples per half period near 22 kHz
    expect(law.f0).toBeGreaterThan(19);
    expect(law.f0).toBeLessThan(21);
    expect(law.f0 * Math.exp(law.k * 4)).toBeGreaterThan(22000);
    expect(law.f0 * Math.exp(law.k * 4)).toBeLessThan(23600);
  });

  for (const { outRate, quality, passbandEdge } of cases) {
    const nyquist = outRate / 2;

    it(`keeps the sweep within 1 dB up to ${passbandEdge} × Nyquist at 48→${outRate / 1000} kHz, quality ${quality}`, () => {
      const windows = sweepResponse(outRate, quality);
      // From 100 Hz: below that a 10 ms window holds less than a period, and the delay's rounding to a whole output sample shows.
      const passband = windows.filter((w) => w.low >= 100 && w.high <= passbandEdge * nyquist);
      expect(passband.length).toBeGreaterThan(150);
      const gains = passband.map((w) => w.gainDb);
      expect(Math.max(...gains.map(Math.abs))).toBeLessThan(1);
    });

    it(`attenuates the sweep by more than 40 dB above Nyquist at 48→${outRate / 1000} kHz, quality ${quality}`, () => {
      const windows = sweepResponse(outRate, quality);
      const stopband = windows.filter((w) => w.low > nyquist);
      expect(stopband.length).toBeGreaterThan(20);
      expect(Math.max(...stopband.map((w) => w.gainDb))).toBeLessThan(-40);
    });

    it(`passes steady sines flat and rejects those above Nyquist at 48→${outRate / 1000} kHz, quality ${quality}`, () => {
      for (const f of [0.05, 0.25, 0.5, 0.75, passbandEdge].map((k) => k * nyquist)) expect(Math.abs(sineGainDb(f, outRate, quality))).toBeLessThan(1);
      for (const f of [1.02, 1.1, 1.5, 2].map((k) => k * nyquist)) expect(sineGainDb(f, outRate, quality)).toBeLessThan(-40);
    });
  }
});
