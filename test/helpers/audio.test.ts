/**
 * The fixtures and the analysis helpers every audio test relies on: if these
 * were wrong, every other assertion about pitch and level would be too.
 */
import { describe, expect, it } from 'vitest';
import { channelOf, concat, dominantFrequency, envelopeMatch, interleave, rmsDb } from './audio.js';
import { readFixture } from './fixtures.js';

describe('test fixtures and helpers', () => {
  it('reads the mono 48 kHz tone as 3 s of 1 kHz at about −15 dBFS', async () => {
    const wav = await readFixture('tone-1k-48k.wav');
    expect(wav.sampleRate).toBe(48000);
    expect(wav.channels).toHaveLength(1);
    expect(wav.durationSec).toBe(3);
    expect(dominantFrequency(wav.channels[0], 48000)).toBe(1000);
    expect(rmsDb(wav.channels[0])).toBeCloseTo(-15.05, 1);
  });

  it('reads the stereo tone as 440 Hz left and 880 Hz right', async () => {
    const wav = await readFixture('tone-stereo-48k.wav');
    expect(wav.channels).toHaveLength(2);
    expect(dominantFrequency(wav.channels[0], 48000)).toBe(440);
    expect(dominantFrequency(wav.channels[1], 48000)).toBe(880);
  });

  it('reads the same speech at 16, 44.1 and 48 kHz with the same duration and level', async () => {
    const [s16, s44, s48] = await Promise.all(['speech-16k.wav', 'speech-44k1.wav', 'speech-48k.wav'].map((n) => readFixture(n)));
    expect([s16.sampleRate, s44.sampleRate, s48.sampleRate]).toEqual([16000, 44100, 48000]);
    expect(Math.abs(s16.durationSec - s48.durationSec)).toBeLessThan(0.01);
    expect(Math.abs(s44.durationSec - s48.durationSec)).toBeLessThan(0.01);
    expect(Math.abs(rmsDb(s16.channels[0]) - rmsDb(s48.channels[0]))).toBeLessThan(0.5);
  });

  it('hands out fresh copies, so a test that modifies samples does not affect the next', async () => {
    const a = await readFixture('tone-1k-48k.wav');
    a.channels[0].fill(0);
    const b = await readFixture('tone-1k-48k.wav');
    expect(rmsDb(b.channels[0])).toBeGreaterThan(-16);
  });

  it('finds a tone’s frequency to within a few hertz off the 10 Hz grid', () => {
    for (const f of [333, 1000, 2467]) {
      const x = Float32Array.from({ length: 24000 }, (_, i) => Math.sin((2 * Math.PI * f * i) / 48000));
      expect(Math.abs(dominantFrequency(x, 48000) - f)).toBeLessThanOrEqual(1);
    }
  });

  it('matches a recording to its looped source by loudness contour: the offset, the level, and nothing for other audio', async () => {
    const speech = (await readFixture('speech-48k.wav')).channels[0];
    // 4 s from 9 s on: past the end, so the source has to be looped to match.
    const looped = concat([speech.subarray(9 * 48000), speech.subarray(0, 4 * 48000 - (speech.length - 9 * 48000))]);
    const quieter = looped.map((v) => v * 0.5);
    const match = envelopeMatch(quieter, speech, 48000);
    // Not 1: the contour loops in whole 20 ms windows, the fixture does not end on one.
    expect(match.correlation).toBeGreaterThan(0.95);
    expect(match.offsetSec).toBeCloseTo(9, 2);
    expect(Math.abs(match.levelDifferenceDb + 6.02)).toBeLessThan(0.2);
    const noise = (await readFixture('noise-pink-48k.wav')).channels[0];
    expect(envelopeMatch(noise, speech, 48000).correlation).toBeLessThan(0.5);
  });

  it('interleaves and splits channels symmetrically', () => {
    const l = Float32Array.of(1, 2, 3);
    const r = Float32Array.of(-1, -2, -3);
    const lr = interleave([l, r]);
    expect([...lr]).toEqual([1, -1, 2, -2, 3, -3]);
    expect(channelOf(lr, 1, 2)).toEqual(r);
  });
});
