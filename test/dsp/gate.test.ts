/**
 * The `gate` stage on the fixtures. Levels measured first (envelope = RMS
 * over a 5 ms one-pole window, as the gate sees it, after the first 100 ms):
 * - noise-white-48k.wav: −24.8 dBFS RMS, envelope −25.5 … −24.1 dBFS;
 * - tone-1k-48k.wav:     −15.05 dBFS RMS, envelope −15.1 … −15.0 dBFS.
 * A −20 dBFS threshold sits between them with 4–5 dB to spare on each side.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createGateStage } from '../../src/dsp/gate.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { channelOf, concat, interleave, rmsDb, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { runStage } from './frames.js';

const RATE = 48000;
const THRESHOLD = -20;
let noise: Float32Array; // white, −24.8 dBFS
let tone: Float32Array; // 1 kHz, −15.05 dBFS

beforeAll(async () => {
  noise = (await readFixture('noise-white-48k.wav')).channels[0];
  tone = (await readFixture('tone-1k-48k.wav')).channels[0];
});

const gate = (options: Omit<StageSpec, 'type'> = {}, channels = 1) => createGateStage({ type: 'gate', thresholdDb: THRESHOLD, ...options }, { sampleRate: RATE, channels });
const ms = (n: number) => (n * RATE) / 1000;

describe('gate stage', () => {
  it('silences white noise below the threshold by more than 60 dB', () => {
    const { out } = runStage(gate(), noise);
    expect(out.length).toBe(noise.length);
    // It starts closed and never opens: the floor (−80 dB) applies from the first sample.
    expect(rmsDb(noise) - rmsDb(out)).toBeGreaterThan(60);
  });

  it('passes a tone above the threshold within 0.5 dB', () => {
    const { out } = runStage(gate(), tone);
    // After the 1 ms attack ramp the gain is exactly 1.
    expect(Math.abs(rmsDb(out.subarray(ms(10))) - rmsDb(tone.subarray(ms(10))))).toBeLessThan(0.5);
    expect(sameSamples(out.subarray(ms(10)), tone.subarray(ms(10)))).toBe(true);
  });

  it('closes after hold and release when the tone gives way to noise, without a click', () => {
    const input = concat([tone.subarray(0, RATE), noise.subarray(0, 2 * RATE)]);
    const { out } = runStage(gate(), input);
    // Envelope decay (~6 ms to the threshold) + hold 50 ms + release 100 ms: closed 200 ms after the switch.
    expect(rmsDb(noise.subarray(ms(200), 2 * RATE)) - rmsDb(out.subarray(RATE + ms(200)))).toBeGreaterThan(60);
    // While it closes, the output never jumps more than the louder input does from one sample to the next.
    const maxStep = (x: Float32Array) => x.reduce((m, v, i) => (i > 0 ? Math.max(m, Math.abs(v - x[i - 1])) : m), 0);
    const closing = out.subarray(RATE - ms(10), RATE + ms(200));
    expect(maxStep(closing)).toBeLessThanOrEqual(maxStep(input.subarray(RATE - ms(10), RATE + ms(200))));
  });

  it('stays open through a pause shorter than the hold time', () => {
    const input = concat([tone.subarray(0, RATE / 2), new Float32Array(ms(30)), tone.subarray(0, RATE / 2)]);
    const { out } = runStage(gate({ holdMs: 50 }), input);
    expect(sameSamples(out.subarray(ms(10)), input.subarray(ms(10)))).toBe(true);
  });

  it('links stereo channels: a loud left channel opens the gate for a quiet right one', () => {
    const quiet = noise.subarray(0, RATE).map((v) => v * 0.05); // −50.8 dBFS, far below the threshold
    const { out } = runStage(gate({}, 2), interleave([tone.subarray(0, RATE), quiet]), 2);
    expect(sameSamples(channelOf(out, 1, 2).subarray(ms(10)), quiet.subarray(ms(10)))).toBe(true);
    const alone = runStage(gate(), quiet.slice()).out;
    expect(rmsDb(quiet) - rmsDb(alone)).toBeGreaterThan(60);
  });

  it('attenuates to floorDb when closed', () => {
    const { out } = runStage(gate({ floorDb: -20 }), noise);
    expect(rmsDb(noise) - rmsDb(out)).toBeCloseTo(20, 1);
  });

  it('keeps the input format', () => {
    expect(gate({}, 2).output).toEqual({ sampleRate: RATE, channels: 2 });
  });

  it('checks every option, naming it', () => {
    const make = (options: Record<string, unknown>) => () => gate(options);
    expect(make({ thresholdDb: 3 })).toThrow(RangeError);
    expect(make({ thresholdDb: 3 })).toThrow('gate: option "thresholdDb" must be a number from -100 to 0, got 3');
    expect(make({ attackMs: -1 })).toThrow('gate: option "attackMs" must be a number from 0 to 100, got -1');
    expect(make({ holdMs: 2001 })).toThrow('gate: option "holdMs" must be a number from 0 to 2000, got 2001');
    expect(make({ releaseMs: 0 })).toThrow('gate: option "releaseMs" must be a number from 1 to 5000, got 0');
    expect(make({ floorDb: -121 })).toThrow('gate: option "floorDb" must be a number from -120 to 0, got -121');
    expect(make({ floorDb: '-80' })).toThrow(TypeError);
    expect(make({ threshold: -40 })).toThrow('gate: unknown option "threshold"; allowed: thresholdDb, attackMs, holdMs, releaseMs, floorDb');
  });
});
