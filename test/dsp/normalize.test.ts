/**
 * The `normalize` stage (slow AGC) on real speech. Loudness is judged the
 * way the stage is specified: RMS over the 100 ms blocks that hold speech
 * (blocks of the clean source above −45 dBFS; speech-48k.wav has 95 such
 * blocks at a power mean of −21.3 dBFS, and pauses of digital near-silence
 * at −96 dBFS), as the power mean of those blocks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createNormalizeStage } from '../../src/dsp/normalize.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { concat, rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { runStage, sine } from './frames.js';

const RATE = 48000;
const BLOCK = 4800;
let speech: Float32Array;
let noise: Float32Array; // white, −24.8 dBFS

beforeAll(async () => {
  speech = (await readFixture('speech-48k.wav')).channels[0];
  noise = (await readFixture('noise-white-48k.wav')).channels[0];
});

const normalize = (options: Omit<StageSpec, 'type'> = {}) => createNormalizeStage({ type: 'normalize', ...options }, { sampleRate: RATE, channels: 1 });
const scaled = (x: Float32Array, db: number) => x.map((v) => v * 10 ** (db / 20));

/** Power mean (dB) of `x` over the 100 ms blocks `select` picks by block index. */
function blocksDb(x: Float32Array, blocks: number[]): number {
  return rmsDb(concat(blocks.map((b) => x.subarray(b * BLOCK, (b + 1) * BLOCK))));
}

/** Indexes of the 100 ms blocks of `source` from `fromSec` on whose level passes `test`. */
function blocksWhere(source: Float32Array, fromSec: number, test: (db: number) => boolean): number[] {
  const out: number[] = [];
  for (let b = Math.ceil((fromSec * RATE) / BLOCK); (b + 1) * BLOCK <= source.length; b++) if (test(rmsDb(source.subarray(b * BLOCK, (b + 1) * BLOCK)))) out.push(b);
  return out;
}

describe('normalize stage', () => {
  it('brings speech 20 dB too quiet to within 3 dB of the target over its last 3 s', () => {
    const quiet = scaled(speech, -20); // speech blocks at −41.3 dBFS
    const { out } = runStage(normalize(), quiet);
    const speechBlocks = blocksWhere(speech, speech.length / RATE - 3, (db) => db > -45);
    expect(speechBlocks.length).toBeGreaterThan(20);
    expect(blocksDb(quiet, speechBlocks)).toBeLessThan(-40);
    // Measured −22.2 dBFS: the gain reached its +20 dB limit (these blocks sit at −42.2 dBFS in the input).
    expect(Math.abs(blocksDb(out, speechBlocks) - -20)).toBeLessThan(3);
  });

  it('does not lift the pauses of quiet speech above −60 dBFS', () => {
    const quiet = scaled(speech, -20);
    const { out } = runStage(normalize(), quiet);
    const pauses = blocksWhere(speech, 0, (db) => db < -90);
    expect(pauses.length).toBeGreaterThan(5);
    for (const b of pauses) expect(rmsDb(out.subarray(b * BLOCK, (b + 1) * BLOCK))).toBeLessThan(-60);
  });

  it('leaves a stream of near-silence (−70 dBFS noise) where it is', () => {
    const hush = scaled(noise, -70 + 24.8);
    const { out } = runStage(normalize(), hush);
    expect(rmsDb(out)).toBeLessThan(-60);
    expect(rmsDb(out) - rmsDb(hush)).toBeCloseTo(0, 3);
  });

  it('pulls the gain back when a pause after speech would be lifted above silenceDb', () => {
    // 5 s of quiet speech drives the gain up; then 6 s of −65 dBFS room noise, which +20 dB would make −45.
    const room = scaled(noise, -65 + 24.8);
    const input = concat([scaled(speech, -20).subarray(0, 5 * RATE), room, room.subarray(0, 2 * RATE)]);
    const { out } = runStage(normalize(), input);
    const lastSecond = out.subarray(out.length - RATE);
    expect(rmsDb(lastSecond)).toBeLessThan(-59.5); // measured −60.1: settled just under silenceDb (−47.6 in the first second)
  });

  it('turns a loud tone down to the target and moves no faster than rateDbPerSecond', () => {
    const loud = sine(1000, RATE, 4, 0.5); // −9.0 dBFS RMS, 11 dB over the target
    const { out } = runStage(normalize({ rateDbPerSecond: 6 }), loud.slice());
    // After 1 s at most 6 dB (plus one 100 ms block of ramp) can have been taken off.
    expect(rmsDb(out.subarray(RATE - 480, RATE + 480)) - rmsDb(loud.subarray(0, 960))).toBeGreaterThan(-6.7);
    expect(Math.abs(rmsDb(out.subarray(3 * RATE)) - -20)).toBeLessThan(0.5);
  });

  it('changes the gain smoothly, sample by sample, never in steps', () => {
    const loud = sine(440, RATE, 3, 0.5);
    const { out } = runStage(normalize({ rateDbPerSecond: 60 }), loud.slice(), 1, 700);
    let worst = 0;
    let last: number | undefined;
    for (let i = 0; i < out.length; i++) {
      if (Math.abs(loud[i]) < 0.05) continue; // ratios of tiny samples are all rounding
      const gain = out[i] / loud[i];
      if (last !== undefined) worst = Math.max(worst, Math.abs(gain - last));
      last = gain;
    }
    // 60 dB/s is 6 dB per block spread over 4800 samples: far below 0.001 per sample.
    expect(worst).toBeLessThan(0.001);
  });

  it('checks its options, naming them', () => {
    const make = (options: Record<string, unknown>) => () => normalize(options);
    expect(make({ targetDb: 0 })).toThrow(RangeError);
    expect(make({ targetDb: 0 })).toThrow('normalize: option "targetDb" must be a number from -40 to -3, got 0');
    expect(make({ maxGainDb: 41 })).toThrow('normalize: option "maxGainDb" must be a number from 0 to 40, got 41');
    expect(make({ rateDbPerSecond: 0 })).toThrow('normalize: option "rateDbPerSecond" must be a number from 0.5 to 60, got 0');
    expect(make({ silenceDb: -20 })).toThrow('normalize: option "silenceDb" must be a number from -90 to -30, got -20');
    expect(make({ targetDb: 'loud' })).toThrow(TypeError);
    expect(make({ target: -20 })).toThrow('normalize: unknown option "target"; allowed: targetDb, maxGainDb, rateDbPerSecond, silenceDb');
  });
});
