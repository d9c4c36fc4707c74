/**
 * OpusStreamDecoder lays decoded audio out at media time (a recording lasts as long as the media):
 * loss is concealed for exactly its duration, gaps become silence, late and
 * duplicate packets are dropped, corrupt ones never throw.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadOpus } from '../../wasm/opus.js';
import { OpusStreamDecoder, type DecodedChunk } from '../../src/dsp/opus-decode.js';
import type { EncodedFrame } from '../../src/media/frames.js';
import { channelOf, concat, dominantFrequency, encodeOpusFrames, interleave, rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

let tone: Float32Array; // 1 kHz, 3 s, 48 kHz mono
let toneFrames: EncodedFrame[]; // 20 ms Opus frames of the whole tone

beforeAll(async () => {
  loadOpus();
  tone = (await readFixture('tone-1k-48k.wav')).channels[0];
  toneFrames = encodeOpusFrames(tone);
});

function decodeAll(inputs: EncodedFrame[], channels: 1 | 2 = 1) {
  const decoder = new OpusStreamDecoder(channels);
  const chunks = decoder.decode(inputs);
  const result = { chunks, pcm: concat(chunks.map((c) => c.data)), counters: { ...decoder.counters }, next: decoder.nextPosition };
  decoder.close();
  return result;
}

/** Chunks must tile media time: each starts where the previous one ended. */
function expectContiguous(chunks: DecodedChunk[], channels = 1): void {
  for (let i = 1; i < chunks.length; i++) expect(chunks[i].position).toBe(chunks[i - 1].position + chunks[i - 1].data.length / channels);
}

describe('OpusStreamDecoder', () => {
  it('decodes a tone into contiguous chunks at the source pitch and level', () => {
    const { chunks, pcm, counters, next } = decodeAll(toneFrames);
    expect(pcm.length).toBe(toneFrames.length * 960);
    expect(next).toBe(toneFrames.length * 960);
    expectContiguous(chunks);
    expect(Math.abs(dominantFrequency(pcm, 48000) - 1000)).toBeLessThanOrEqual(10);
    // Opus has a few ms of start-up; compare levels after it.
    expect(Math.abs(rmsDb(pcm.subarray(4800)) - rmsDb(tone.subarray(4800, pcm.length)))).toBeLessThan(1);
    expect(counters).toEqual({ decoded: toneFrames.length, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0 });
  });

  it('conceals a lost packet for exactly its duration, continuing the tone', () => {
    const inputs = toneFrames.slice(0, 20).map((f, i) => (i === 10 ? { ...f, payload: null } : f));
    const { chunks, pcm, counters } = decodeAll(inputs);
    expect(pcm.length).toBe(20 * 960);
    expectContiguous(chunks);
    expect(counters.concealed).toBe(1);
    expect(counters.decoded).toBe(19);
    expect(counters.silenceSamples).toBe(0);
    // PLC extrapolates the tone instead of dropping out.
    expect(rmsDb(pcm.subarray(10 * 960, 11 * 960))).toBeGreaterThan(rmsDb(tone.subarray(0, 960)) - 10);
  });

  it('conceals a burst of lost packets as a fade, not a dropout, one frame of concealment per lost frame', async () => {
    // Speech (concealment of a steady tone is easy): three packets lost in a row while someone talks.
    const speech = (await readFixture('speech-48k.wav')).channels[0];
    const frames = encodeOpusFrames(speech, 1, 32000);
    const level = (pcm: Float32Array, frame: number) => rmsDb(pcm.subarray(frame * 960, (frame + 1) * 960));
    // A frame where the talker is loud, so that a fade has room to show.
    const reference = decodeAll(frames).pcm;
    let at = 50;
    while (level(reference, at - 1) < -30) at++;
    const { pcm, chunks, counters } = decodeAll(frames.slice(0, at + 8).map((f, i) => (i >= at && i < at + 3 ? { ...f, payload: null } : f)));
    expect(pcm.length).toBe((at + 8) * 960);
    expectContiguous(chunks);
    expect(counters).toMatchObject({ concealed: 3, silenceSamples: 0 });
    // Each concealed frame stays within 15 dB of the last one received: concealment of 120 ms per
    // lost packet had run the decoder ahead, and the second and third lost frames read −74 and −81 dB.
    const before = level(pcm, at - 1);
    for (let k = 0; k < 3; k++) expect(level(pcm, at + k)).toBeGreaterThan(before - 15);
  });

  it('pads a loss longer than one concealment with silence so the duration still matches', () => {
    // One lost input standing for 200 ms: more than the longest Opus packet (120 ms), which is as far as concealment goes.
    const lost: EncodedFrame = { position: 5 * 960, payload: null, samples: 9600, arrival: 0 };
    const after = toneFrames.slice(15, 20);
    const { pcm, counters, next } = decodeAll([...toneFrames.slice(0, 5), lost, ...after]);
    expect(pcm.length).toBe(20 * 960);
    expect(next).toBe(20 * 960);
    expect(counters.concealed).toBe(1);
    expect(counters.silenceSamples).toBeGreaterThan(0);
    expect(counters.silenceSamples).toBeLessThan(9600);
    // The padding sits at the end of the lost stretch.
    expect(pcm.subarray(15 * 960 - 960, 15 * 960).every((v) => v === 0)).toBe(true);
  });

  it('treats an empty payload as a lost packet', () => {
    const inputs = toneFrames.slice(0, 6).map((f, i) => (i === 3 ? { ...f, payload: new Uint8Array(0) } : f));
    const { pcm, counters } = decodeAll(inputs);
    expect(pcm.length).toBe(6 * 960);
    expect(counters).toMatchObject({ decoded: 5, concealed: 1, corrupt: 0 });
  });

  it('fills a gap with no packets (DTX) with silence of the gap’s length', () => {
    const later = toneFrames.slice(5, 10).map((f) => ({ ...f, position: f.position + 7 * 960 }));
    const { chunks, pcm, counters } = decodeAll([...toneFrames.slice(0, 5), ...later]);
    expect(pcm.length).toBe(17 * 960);
    expectContiguous(chunks);
    expect(counters.silenceSamples).toBe(7 * 960);
    expect(pcm.subarray(5 * 960, 12 * 960).every((v) => v === 0)).toBe(true);
    expect(rmsDb(pcm.subarray(12 * 960 + 480))).toBeGreaterThan(-20);
  });

  it('splits a long gap into chunks of at most one second', () => {
    const later = { ...toneFrames[1], position: 960 + 48000 * 3 + 100 };
    const { chunks, counters } = decodeAll([toneFrames[0], later]);
    expect(counters.silenceSamples).toBe(48000 * 3 + 100);
    expect(Math.max(...chunks.map((c) => c.data.length))).toBeLessThanOrEqual(48000);
    expectContiguous(chunks);
  });

  it('drops late, duplicate and partly overlapping packets whole and counts them', () => {
    const f = toneFrames;
    const overlapping = { ...f[3], position: f[3].position - 480 }; // starts inside frame 2
    const { chunks, pcm, counters } = decodeAll([f[0], f[1], f[1], f[2], f[0], overlapping, f[3]]);
    expect(pcm.length).toBe(4 * 960);
    expectContiguous(chunks);
    expect(counters.late).toBe(3);
    expect(counters.decoded).toBe(4);
  });

  it('keeps media time across calls: a packet already played in an earlier batch is late', () => {
    const decoder = new OpusStreamDecoder(1);
    decoder.decode(toneFrames.slice(0, 5));
    const chunks = decoder.decode([toneFrames[4], toneFrames[5]]);
    expect(chunks.map((c) => c.position)).toEqual([5 * 960]);
    expect(decoder.counters.late).toBe(1);
    decoder.close();
  });

  it('conceals a packet libopus rejects, counting it as corrupt and concealed', () => {
    // Code-3 packet claiming 63 frames: longer than Opus allows, so libopus refuses it.
    const inputs = toneFrames.slice(0, 5).map((f, i) => (i === 2 ? { ...f, payload: new Uint8Array([0x0b, 0xff, 0xff, 0xff]) } : f));
    const { pcm, counters } = decodeAll(inputs);
    expect(pcm.length).toBe(5 * 960);
    expect(counters).toMatchObject({ decoded: 4, corrupt: 1, concealed: 1 });
  });

  it('never throws on random bytes and keeps the duration', () => {
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24; // deterministic byte stream
    const garbage = toneFrames.slice(0, 50).map((f) => ({ ...f, payload: Uint8Array.from({ length: 1 + (random() % 200) }, random) }));
    const { chunks, pcm, counters } = decodeAll(garbage);
    // Opus accepts many byte strings as valid packets (of 2.5–120 ms); whichever way each goes, it is accounted for.
    expect(counters.decoded + counters.corrupt + counters.late).toBe(50);
    expect(counters.concealed).toBe(counters.corrupt);
    expect(counters.corrupt).toBeGreaterThan(0);
    expectContiguous(chunks);
    expect(pcm.length).toBeGreaterThan(49 * 960); // the last input starts at 49 × 960 or was overtaken
    expect(pcm.every((v) => Number.isFinite(v))).toBe(true);
  });

  it('uses the decoded length for a received packet of unknown duration', () => {
    const frames40 = encodeOpusFrames(tone.subarray(0, 1920 * 5), 1, { frameSamples: 1920 }).map((f) => ({ ...f, samples: 0 }));
    const { chunks, pcm } = decodeAll(frames40);
    expect(chunks.map((c) => c.data.length)).toEqual([1920, 1920, 1920, 1920, 1920]);
    expect(pcm.length).toBe(1920 * 5);
  });

  it('conceals a lost packet of unknown duration for the length of the last decoded frame', () => {
    const frames40 = encodeOpusFrames(tone.subarray(0, 1920 * 3), 1, { frameSamples: 1920 });
    frames40[2] = { ...frames40[2], payload: null, samples: 0 };
    const { pcm, counters } = decodeAll(frames40);
    expect(pcm.length).toBe(1920 * 3);
    expect(counters.concealed).toBe(1);
  });

  it('drops inputs whose position is not a sample index instead of corrupting media time', () => {
    const bad = [{ ...toneFrames[1], position: Number.NaN }, { ...toneFrames[1], position: -960 }, { ...toneFrames[1], position: 960.5 }];
    const { pcm, counters } = decodeAll([toneFrames[0], ...bad, toneFrames[1]]);
    expect(pcm.length).toBe(2 * 960);
    expect(counters.late).toBe(3);
  });

  it('decodes stereo keeping the channels apart', async () => {
    const stereo = await readFixture('tone-stereo-48k.wav');
    const oneSecond = interleave(stereo.channels.map((c) => c.subarray(0, 48000)));
    const { pcm } = decodeAll(encodeOpusFrames(oneSecond, 2, 64000), 2);
    expect(pcm.length).toBe(2 * 48000);
    expect(Math.abs(dominantFrequency(channelOf(pcm, 0, 2), 48000) - 440)).toBeLessThanOrEqual(5);
    expect(Math.abs(dominantFrequency(channelOf(pcm, 1, 2), 48000) - 880)).toBeLessThanOrEqual(5);
  });

  it('refuses to decode after close and tolerates a second close', () => {
    const decoder = new OpusStreamDecoder(1);
    decoder.close();
    decoder.close();
    expect(() => decoder.decode(toneFrames.slice(0, 1))).toThrow(/closed/);
  });
});
