/**
 * Reading an Opus packet without decoding it: its duration from the TOC, and
 * whether its encoder marked it as carrying no voice (what lets a silent
 * talker's comfort-noise updates wait for their worker). Checked on what
 * libopus really produces, not on hand-made bytes alone.
 */
import { describe, expect, it } from 'vitest';
import { opusPacketInactive, opusPacketSamples } from '../../src/media/opus-toc.js';
import { OpusEncoder, type OpusApplicationName } from '../../wasm/opus.js';
import { concat, rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

/** 20 ms packets of `pcm`, as a DTX encoder makes them (≤ 2-byte packets are the DTX frames a sender withholds). */
function encode(pcm: Float32Array, options: { dtx?: boolean; bitrate?: number; channels?: 1 | 2; application?: OpusApplicationName } = {}): Uint8Array[] {
  const channels = options.channels ?? 1;
  const encoder = new OpusEncoder({ dtx: options.dtx ?? false, bitrate: options.bitrate ?? 32000, channels, application: options.application });
  const out: Uint8Array[] = [];
  try {
    for (let i = 0; i + 960 * channels <= pcm.length; i += 960 * channels) out.push(encoder.encode(pcm.subarray(i, i + 960 * channels)));
  } finally {
    encoder.close();
  }
  return out;
}

describe('opusPacketSamples', () => {
  it('reads 20 ms from real packets and the frame count of code 1–3 packets', () => {
    const packets = encode(new Float32Array(960 * 5));
    for (const p of packets) expect(opusPacketSamples(p)).toBe(960);
    expect(opusPacketSamples(Uint8Array.of((31 << 3) | 1, 0, 0))).toBe(1920); // code 1: two 20 ms CELT frames
    expect(opusPacketSamples(Uint8Array.of((31 << 3) | 3, 3))).toBe(2880); // code 3: three frames
    expect(opusPacketSamples(Uint8Array.of((31 << 3) | 3, 7))).toBe(0); // 140 ms: more than RFC 6716 allows
    expect(opusPacketSamples(new Uint8Array(0))).toBe(0);
  });
});

describe('opusPacketInactive', () => {
  it("says no voice for every comfort-noise update of a DTX encoder, and voice for loud speech (SILK/hybrid flags)", async () => {
    const speech = (await readFixture('speech-48k.wav')).channels[0];
    const pcm = concat([speech, new Float32Array(speech.length)]);
    for (const bitrate of [16000, 32000, 64000]) {
      const packets = encode(pcm, { dtx: true, bitrate });
      const speechFrames = Math.floor(speech.length / 960);
      // Comfort-noise updates: what a DTX encoder still sends in the silence once DTX has begun (after its first 0.5 s).
      const updates = packets.slice(speechFrames + 25).filter((p) => p.length > 2);
      expect(updates.length).toBeGreaterThan(10);
      for (const p of updates) expect(p[0] >> 3).toBeLessThan(16); // SILK or hybrid: the flag is a VAD flag
      expect(updates.every(opusPacketInactive)).toBe(true);
      // Speech frames well above the floor: the encoder's VAD says voice for nearly all of them.
      const loud = packets.slice(0, speechFrames).filter((_, i) => rmsDb(speech.subarray(i * 960, (i + 1) * 960)) > -30);
      expect(loud.length).toBeGreaterThan(100);
      const judgedInactive = loud.filter(opusPacketInactive).length;
      expect(judgedInactive / loud.length).toBeLessThan(0.05);
    }
  });

  it('says no voice for CELT silence frames (digital silence, a muted microphone) and voice for a CELT tone', async () => {
    const silent = encode(new Float32Array(960 * 30), { dtx: true }).filter((p) => p.length > 2);
    expect(silent.length).toBeGreaterThan(0);
    for (const p of silent) {
      expect(p[0] >> 3).toBeGreaterThanOrEqual(16); // CELT-only: the flag is the silence flag
      expect(opusPacketInactive(p)).toBe(true);
    }
    // Low-delay mode codes everything as CELT.
    const celt = encode((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 30), { application: 'lowDelay' });
    for (const p of celt) expect(p[0] >> 3).toBeGreaterThanOrEqual(16);
    expect(celt.some(opusPacketInactive)).toBe(false);
  });

  it('cannot tell, so says voice, for stereo, multi-frame, empty and TOC-only packets', async () => {
    const tone = await readFixture('tone-stereo-48k.wav');
    const stereo = [...encode(interleave(tone.channels[0], tone.channels[1]).subarray(0, 960 * 2 * 10), { channels: 2, bitrate: 64000 }), ...encode(new Float32Array(960 * 2 * 30), { channels: 2, dtx: true, bitrate: 64000 })];
    for (const p of stereo) {
      expect(p[0] & 0x4).toBe(0x4);
      expect(opusPacketInactive(p)).toBe(false);
    }
    expect(opusPacketInactive(Uint8Array.of((31 << 3) | 1, 0xff, 0xfe, 0xff, 0xfe))).toBe(false); // two CELT silence frames: code 1
    expect(opusPacketInactive(Uint8Array.of(31 << 3))).toBe(false); // TOC only: a DTX frame, not an update
    expect(opusPacketInactive(new Uint8Array(0))).toBe(false);
  });
});

function interleave(l: Float32Array, r: Float32Array): Float32Array {
  const out = new Float32Array(Math.min(l.length, r.length) * 2);
  for (let i = 0; i < out.length / 2; i++) {
    out[2 * i] = l[i];
    out[2 * i + 1] = r[i];
  }
  return out;
}
