/**
 * The layout stages — `downmix`, `upmix`, `passthrough` — and `gain`, on the
 * stereo fixture (440 Hz left, 880 Hz right, each −15.05 dBFS RMS, amplitude 0.25).
 * `format` is tested end to end through StreamProcessor in stream-processor-modes.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createGainStage } from '../../src/dsp/gain.js';
import { createPassthroughStage } from '../../src/dsp/passthrough.js';
import { createDownmixStage, createFormatStage, createUpmixStage, quantizeS16 } from '../../src/dsp/transcode.js';
import type { PcmChunk } from '../../src/dsp/types.js';
import { channelOf, interleave, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { runStage } from './frames.js';

const RATE = 48000;
let left: Float32Array;
let right: Float32Array;

beforeAll(async () => {
  [left, right] = (await readFixture('tone-stereo-48k.wav')).channels;
});

/** Amplitude (dB re 1) of the `frequency` component over the first second: a single DFT bin over whole periods. */
function componentDb(x: Float32Array, frequency: number): number {
  let re = 0;
  let im = 0;
  for (let n = 0; n < RATE; n++) {
    re += x[n] * Math.cos((2 * Math.PI * frequency * n) / RATE);
    im -= x[n] * Math.sin((2 * Math.PI * frequency * n) / RATE);
  }
  return 20 * Math.log10((2 / RATE) * Math.hypot(re, im));
}

describe('downmix stage', () => {
  it('keeps both tones of a stereo file at half their amplitude in a mono output', () => {
    const stage = createDownmixStage({ type: 'downmix' }, { sampleRate: RATE, channels: 2 });
    expect(stage.output).toEqual({ sampleRate: RATE, channels: 1 });
    const { out } = runStage(stage, interleave([left, right]), 2);
    expect(out.length).toBe(left.length);
    const inputDb = componentDb(left, 440); // −12.04 dB: amplitude 0.25
    expect(Math.abs(componentDb(out, 440) - (inputDb - 6.02))).toBeLessThan(0.5);
    expect(Math.abs(componentDb(out, 880) - (componentDb(right, 880) - 6.02))).toBeLessThan(0.5);
    // Exactly the mean of the two channels, sample for sample.
    expect(sameSamples(out, left.map((l, i) => (l + right[i]) / 2))).toBe(true);
  });

  it('passes mono input through unchanged, so one pipeline fits either decode', () => {
    const stage = createDownmixStage({ type: 'downmix' }, { sampleRate: RATE, channels: 1 });
    const chunk: PcmChunk = { data: left.slice(0, 960), vad: 0.9, speech: true };
    expect(stage.process(chunk)).toBe(chunk);
  });

  it('keeps vad and speech on the new chunk and rejects options', () => {
    const stage = createDownmixStage({ type: 'downmix' }, { sampleRate: RATE, channels: 2 });
    expect(stage.process({ data: new Float32Array(1920), vad: 0.7, speech: true })).toMatchObject({ vad: 0.7, speech: true });
    expect(() => createDownmixStage({ type: 'downmix', channels: 1 }, { sampleRate: RATE, channels: 2 })).toThrow('downmix: unknown option "channels"; it takes no options');
  });
});

describe('upmix stage', () => {
  it('duplicates mono into two identical channels', () => {
    const stage = createUpmixStage({ type: 'upmix' }, { sampleRate: RATE, channels: 1 });
    expect(stage.output).toEqual({ sampleRate: RATE, channels: 2 });
    const { out } = runStage(stage, left);
    expect(sameSamples(channelOf(out, 0, 2), left)).toBe(true);
    expect(sameSamples(channelOf(out, 1, 2), left)).toBe(true);
  });

  it('passes stereo input through unchanged', () => {
    const stage = createUpmixStage({ type: 'upmix' }, { sampleRate: RATE, channels: 2 });
    const chunk: PcmChunk = { data: interleave([left, right]).subarray(0, 1920) };
    expect(stage.process(chunk)).toBe(chunk);
    expect(stage.output.channels).toBe(2);
  });

  it('rejects options', () => {
    expect(() => createUpmixStage({ type: 'upmix', mode: 'copy' }, { sampleRate: RATE, channels: 1 })).toThrow(TypeError);
  });
});

describe('format stage', () => {
  it('quantizes to the 16-bit grid and declares s16 output, keeping the rest of the format', () => {
    const stage = createFormatStage({ type: 'format', sampleFormat: 's16' }, { sampleRate: 16000, channels: 2 });
    expect(stage.output).toEqual({ sampleRate: 16000, channels: 2, sampleFormat: 's16' });
    const out = stage.process({ data: Float32Array.of(0.1, -0.1, 1.5, -1.5, 1 / 65536, 0.999999) })!.data;
    expect([...out]).toEqual([3277 / 32768, -3277 / 32768, 32767 / 32768, -1, 1 / 32768, 32767 / 32768]);
    for (const v of out) expect(quantizeS16(v)).toBe(v); // already on the grid
  });

  it('declares f32 output and leaves the samples alone', () => {
    const stage = createFormatStage({ type: 'format', sampleFormat: 'f32' }, { sampleRate: RATE, channels: 1, sampleFormat: 's16' });
    expect(stage.output).toEqual({ sampleRate: RATE, channels: 1, sampleFormat: 'f32' });
    const chunk: PcmChunk = { data: Float32Array.of(0.123456789) };
    expect(stage.process(chunk)).toBe(chunk);
    expect(chunk.data[0]).toBe(Math.fround(0.123456789));
  });

  it('requires sampleFormat "f32" or "s16"', () => {
    const make = (spec: Record<string, unknown>) => () => createFormatStage({ type: 'format', ...spec }, { sampleRate: RATE, channels: 1 });
    expect(make({})).toThrow(TypeError);
    expect(make({})).toThrow('format: option "sampleFormat" is required ("f32" or "s16")');
    expect(make({ sampleFormat: 's24' })).toThrow(RangeError);
    expect(make({ sampleFormat: 's24' })).toThrow('format: option "sampleFormat" must be "f32" or "s16", got "s24" (string)');
    expect(make({ sampleFormat: 16 })).toThrow(TypeError);
    expect(make({ sampleFormat: 's16', bits: 16 })).toThrow('format: unknown option "bits"; allowed: sampleFormat');
  });
});

describe('passthrough stage', () => {
  it('returns every chunk as it came, mono or stereo, and takes no options', () => {
    for (const channels of [1, 2]) {
      const stage = createPassthroughStage({ type: 'passthrough' }, { sampleRate: 44100, channels });
      expect(stage.output).toEqual({ sampleRate: 44100, channels });
      const chunk: PcmChunk = { data: new Float32Array(882 * channels), vad: 0.1 };
      expect(stage.process(chunk)).toBe(chunk);
    }
    expect(() => createPassthroughStage({ type: 'passthrough', x: 1 }, { sampleRate: RATE, channels: 1 })).toThrow('passthrough: unknown option "x"; it takes no options');
  });
});

describe('gain stage', () => {
  it('scales every sample of every channel by the gain', () => {
    const stereo = interleave([left, right]);
    const { out } = runStage(createGainStage({ type: 'gain', db: -6 }, { sampleRate: RATE, channels: 2 }), stereo, 2);
    // The stage multiplies in f32 (its SIMD WASM kernel): the exact f32 product of sample and factor.
    const factor = Math.fround(10 ** (-6 / 20));
    expect(sameSamples(out, stereo.map((v) => Math.fround(v * factor)))).toBe(true);
    expect(componentDb(channelOf(out, 1, 2), 880) - componentDb(right, 880)).toBeCloseTo(-6, 3);
  });

  it('does not clip: +20 dB takes a −12 dBFS peak to +8 dBFS', () => {
    const { out } = runStage(createGainStage({ type: 'gain', db: 20 }, { sampleRate: RATE, channels: 1 }), left);
    expect(out.reduce((m, v) => Math.max(m, v), 0)).toBeCloseTo(2.5, 2);
  });

  it('passes chunks through untouched at 0 dB', () => {
    const chunk: PcmChunk = { data: left.slice(0, 960) };
    expect(createGainStage({ type: 'gain', db: 0 }, { sampleRate: RATE, channels: 1 }).process(chunk)).toBe(chunk);
  });

  it('requires db from −60 to +60', () => {
    const make = (spec: Record<string, unknown>) => () => createGainStage({ type: 'gain', ...spec }, { sampleRate: RATE, channels: 1 });
    expect(make({})).toThrow(TypeError);
    expect(make({})).toThrow('gain: option "db" is required (a number from -60 to 60)');
    expect(make({ db: 61 })).toThrow(RangeError);
    expect(make({ db: 61 })).toThrow('gain: option "db" must be a number from -60 to 60, got 61');
    expect(make({ db: Number.POSITIVE_INFINITY })).toThrow(RangeError);
    expect(make({ db: '6' })).toThrow(TypeError);
    expect(make({ db: 6, gain: 2 })).toThrow('gain: unknown option "gain"; allowed: db');
  });
});
