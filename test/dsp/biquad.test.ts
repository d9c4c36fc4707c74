/**
 * The biquad stages (`highpass`, `lowpass`, `bandpass`, `notch`): the design
 * formulas give the textbook values, and the running filters match them when
 * driven with steady sines (output RMS over input RMS after the start-up
 * transient). Measured: every test frequency (60 of them, at 48 and 16 kHz)
 * within 0.0001 dB of the design; the bound asserted is 0.5 dB.
 */
import { describe, expect, it } from 'vitest';
import { bandEdgeSections, biquadCoefficients, biquadMagnitudeDb, type BiquadKind } from '../../src/dsp/biquad.js';
import { createStage } from '../../src/dsp/registry.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { channelOf, dominantFrequency, interleave, rmsDb, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { runStage, sine } from './frames.js';

/** Level change (dB) of a steady sine through a fresh stage, measured over the last half of 1 s. */
function measuredGainDb(spec: StageSpec, frequency: number, sampleRate: number): number {
  const input = sine(frequency, sampleRate, 1);
  const { out } = runStage(createStage(spec, { sampleRate, channels: 1 }), input);
  const half = input.length / 2;
  return rmsDb(out.subarray(half)) - rmsDb(input.subarray(half));
}

interface Case {
  kind: BiquadKind;
  spec: StageSpec;
  /** Frequency and Q the stage should be designed with. */
  f0: number;
  q: number;
  /** Test frequencies as multiples of f0. A notch's exact centre (−∞ dB) is avoided. */
  at: number[];
}

const cases: Case[] = [
  { kind: 'highpass', spec: { type: 'highpass', frequency: 1000 }, f0: 1000, q: Math.SQRT1_2, at: [0.25, 0.5, 1, 2, 4] },
  { kind: 'lowpass', spec: { type: 'lowpass', frequency: 1000 }, f0: 1000, q: Math.SQRT1_2, at: [0.25, 0.5, 1, 2, 4] },
  { kind: 'bandpass', spec: { type: 'bandpass', frequency: 1000, q: 2 }, f0: 1000, q: 2, at: [0.25, 0.5, 1, 2, 4] },
  { kind: 'notch', spec: { type: 'notch', frequency: 1000 }, f0: 1000, q: 5, at: [0.25, 0.5, 0.9, 1.1, 4] },
  { kind: 'highpass', spec: { type: 'highpass', frequency: 80, q: 2 }, f0: 80, q: 2, at: [0.25, 0.5, 1, 2, 4] },
  { kind: 'lowpass', spec: { type: 'lowpass', frequency: 3000, q: 0.5 }, f0: 3000, q: 0.5, at: [0.25, 0.5, 1, 2, 2.6] },
];

describe('biquad design', () => {
  it('puts a Butterworth highpass and lowpass 3 dB down at their corner and flat far from it', () => {
    for (const kind of ['highpass', 'lowpass'] as const) {
      const c = biquadCoefficients(kind, 1000, Math.SQRT1_2, 48000);
      expect(biquadMagnitudeDb(c, 1000, 48000)).toBeCloseTo(-3.01, 2);
      expect(biquadMagnitudeDb(c, kind === 'highpass' ? 12000 : 50, 48000)).toBeCloseTo(0, 1);
    }
  });

  it('gives the bandpass 0 dB at its centre and the notch no output there', () => {
    expect(biquadMagnitudeDb(biquadCoefficients('bandpass', 1000, 3, 48000), 1000, 48000)).toBeCloseTo(0, 6);
    expect(biquadMagnitudeDb(biquadCoefficients('notch', 1000, 5, 48000), 1000, 48000)).toBeLessThan(-100);
  });

  it('falls 12 dB per octave beyond the corner', () => {
    // An octave well above the corner and well below Nyquist (where the bilinear transform steepens the slope).
    const c = biquadCoefficients('lowpass', 200, Math.SQRT1_2, 48000);
    const octave = biquadMagnitudeDb(c, 1600, 48000) - biquadMagnitudeDb(c, 3200, 48000);
    expect(octave).toBeGreaterThan(11.5);
    expect(octave).toBeLessThan(12.5);
  });
});

describe('biquad stages', () => {
  for (const sampleRate of [48000, 16000]) {
    for (const { kind, spec, f0, q, at } of cases) {
      const frequencies = at.map((k) => k * f0).filter((f) => f < sampleRate / 2);
      it(`${kind} ${JSON.stringify(spec)} at ${sampleRate} Hz matches its design within 0.5 dB at ${frequencies.join(', ')} Hz`, () => {
        const design = biquadCoefficients(kind, f0, q, sampleRate);
        for (const f of frequencies) {
          const expected = biquadMagnitudeDb(design, f, sampleRate);
          expect(Math.abs(measuredGainDb(spec, f, sampleRate) - expected), `${f} Hz: design ${expected.toFixed(2)} dB`).toBeLessThan(0.5);
        }
      });
    }
  }

  it('builds the band-edge bandpass as Butterworth high-pass + low-pass: −3 dB at each edge, flat between, 12 dB/octave skirts', () => {
    const spec = { type: 'bandpass', lowFrequency: 300, highFrequency: 3400 };
    const sections = bandEdgeSections(300, 3400, 48000);
    const design = (f: number) => sections.reduce((db, c) => db + biquadMagnitudeDb(c, f, 48000), 0);
    for (const f of [37, 150, 300, 1010, 3400, 6800, 12000]) {
      expect(Math.abs(measuredGainDb(spec, f, 48000) - design(f)), `${f} Hz`).toBeLessThan(0.5);
    }
    expect(Math.abs(measuredGainDb(spec, Math.sqrt(300 * 3400), 48000))).toBeLessThan(0.1); // measured −0.07 dB
    expect(Math.abs(measuredGainDb(spec, 300, 48000) + 3.01)).toBeLessThan(0.3);
    expect(Math.abs(measuredGainDb(spec, 3400, 48000) + 3.01)).toBeLessThan(0.3);
    expect(measuredGainDb(spec, 37, 48000)).toBeLessThan(-35); // a telephone band really drops the rumble
  });

  it('loses level in a band-edge bandpass whose edges are close, as its description says', () => {
    // Measured through the stage: an octave apart, and 1000–1200 Hz.
    const octave = { type: 'bandpass', lowFrequency: 1000, highFrequency: 2000 };
    expect(measuredGainDb(octave, Math.sqrt(2) * 1000, 48000)).toBeCloseTo(-1.9, 0);
    expect(measuredGainDb(octave, 1000, 48000)).toBeCloseTo(-3.3, 0);
    const narrow = { type: 'bandpass', lowFrequency: 1000, highFrequency: 1200 };
    expect(measuredGainDb(narrow, Math.sqrt(1000 * 1200), 48000)).toBeCloseTo(-4.6, 0);
    expect(measuredGainDb(narrow, 1200, 48000)).toBeCloseTo(-4.7, 0);
    // Two octaves apart: within 0.5 dB at the centre.
    expect(Math.abs(measuredGainDb({ type: 'bandpass', lowFrequency: 1000, highFrequency: 4000 }, 2000, 48000))).toBeLessThan(0.55);
  });

  it('filters each stereo channel with its own state, exactly as two mono filters would', async () => {
    const stereo = await readFixture('tone-stereo-48k.wav'); // 440 Hz left, 880 Hz right
    const spec: StageSpec = { type: 'highpass', frequency: 700, q: 1 };
    const both = runStage(createStage(spec, { sampleRate: 48000, channels: 2 }), interleave(stereo.channels), 2).out;
    const left = runStage(createStage(spec, { sampleRate: 48000, channels: 1 }), stereo.channels[0]).out;
    const right = runStage(createStage(spec, { sampleRate: 48000, channels: 1 }), stereo.channels[1]).out;
    expect(sameSamples(channelOf(both, 0, 2), left)).toBe(true);
    expect(sameSamples(channelOf(both, 1, 2), right)).toBe(true);
    // And it is a highpass: 440 Hz loses more than 880 Hz.
    const design = biquadCoefficients('highpass', 700, 1, 48000);
    expect(rmsDb(left.subarray(24000)) - rmsDb(stereo.channels[0].subarray(24000))).toBeCloseTo(biquadMagnitudeDb(design, 440, 48000), 0);
    expect(rmsDb(right.subarray(24000)) - rmsDb(stereo.channels[1].subarray(24000))).toBeCloseTo(biquadMagnitudeDb(design, 880, 48000), 0);
  });

  it('removes a 1 kHz tone with a notch and keeps speech-band content around it', async () => {
    const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
    const out = runStage(createStage({ type: 'notch', frequency: 1000, q: 5 }, { sampleRate: 48000, channels: 1 }), tone).out;
    expect(rmsDb(tone) - rmsDb(out.subarray(24000))).toBeGreaterThan(60);
    const lowpassed = runStage(createStage({ type: 'lowpass', frequency: 4000 }, { sampleRate: 48000, channels: 1 }), tone).out;
    expect(dominantFrequency(lowpassed, 48000)).toBe(1000);
  });

  it('settles to exact silence after the input stops (no denormal tail)', () => {
    const stage = createStage({ type: 'highpass', frequency: 80 }, { sampleRate: 48000, channels: 1 });
    runStage(stage, sine(100, 48000, 0.5));
    const { out } = runStage(stage, new Float32Array(48000 * 5));
    expect(out.subarray(-960).every((v) => v === 0)).toBe(true);
  });

  it('copies the input sample format to its output', () => {
    const stage = createStage({ type: 'lowpass', frequency: 1000 }, { sampleRate: 16000, channels: 2, sampleFormat: 's16' });
    expect(stage.output).toEqual({ sampleRate: 16000, channels: 2, sampleFormat: 's16' });
  });
});

describe('biquad options', () => {
  const make = (spec: Omit<StageSpec, 'type'> & { type: string }, sampleRate = 48000) => () => createStage(spec, { sampleRate, channels: 1 });

  it('requires a frequency between 0 and half the sample rate', () => {
    expect(make({ type: 'highpass' })).toThrow(TypeError);
    expect(make({ type: 'highpass' })).toThrow('highpass: option "frequency" is required (a number above 0)');
    expect(make({ type: 'lowpass', frequency: 8000 }, 16000)).toThrow(RangeError);
    expect(make({ type: 'lowpass', frequency: 8000 }, 16000)).toThrow('lowpass: option "frequency": 8000 is not allowed; use a number above 0 and below 8000 (half the 16000 Hz this stage gets)');
    expect(make({ type: 'notch', frequency: 0 })).toThrow(RangeError);
    expect(make({ type: 'notch', frequency: '50' })).toThrow(TypeError);
    expect(make({ type: 'notch', frequency: Number.NaN })).toThrow(RangeError);
  });

  it('takes q from 0.1 to 20', () => {
    expect(make({ type: 'highpass', frequency: 100, q: 0.05 })).toThrow(RangeError);
    expect(make({ type: 'highpass', frequency: 100, q: 0.05 })).toThrow('highpass: option "q" must be a number from 0.1 to 20, got 0.05');
    expect(make({ type: 'notch', frequency: 50, q: 21 })).toThrow('notch: option "q" must be a number from 0.1 to 20, got 21');
    expect(make({ type: 'bandpass', frequency: 50, q: true })).toThrow(TypeError);
  });

  it('takes the bandpass as centre + q or as two edges, never both or neither', () => {
    expect(make({ type: 'bandpass' })).toThrow(TypeError);
    expect(make({ type: 'bandpass' })).toThrow('"bandpass" needs either "frequency" (and optionally "q"), or "lowFrequency" and "highFrequency"; it got neither');
    expect(make({ type: 'bandpass', frequency: 1000, lowFrequency: 300, highFrequency: 3400 })).toThrow('it got both forms');
    expect(make({ type: 'bandpass', q: 2, lowFrequency: 300, highFrequency: 3400 })).toThrow(TypeError);
    expect(make({ type: 'bandpass', lowFrequency: 300 })).toThrow('bandpass: option "highFrequency": missing; "bandpass" with "lowFrequency" needs "highFrequency" too');
    expect(make({ type: 'bandpass', lowFrequency: 3400, highFrequency: 300 })).toThrow(RangeError);
    expect(make({ type: 'bandpass', lowFrequency: 3400, highFrequency: 300 })).toThrow('bandpass: option "highFrequency": 300 is not allowed; use a number above "lowFrequency" (3400)');
    expect(make({ type: 'bandpass', lowFrequency: 300, highFrequency: 9000 }, 16000)).toThrow(RangeError);
  });

  it('rejects unknown options naming the allowed ones', () => {
    expect(make({ type: 'lowpass', frequency: 100, cutoff: 3 })).toThrow('lowpass: unknown option "cutoff"; allowed: frequency, q');
    expect(make({ type: 'bandpass', frequency: 100, width: 3 })).toThrow('bandpass: unknown option "width"; allowed: frequency, q, lowFrequency, highFrequency');
  });
});
