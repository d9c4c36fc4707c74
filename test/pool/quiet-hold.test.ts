/**
 * Which frames may wait for their worker: only a silent talker's comfort-noise
 * updates after the first of a pause. Frames are real libopus packets.
 */
import { describe, expect, it } from 'vitest';
import type { EncodedFrame } from '../../src/media/frames.js';
import { newQuietState, quietUpdate } from '../../src/pool/quiet-hold.js';
import { OpusEncoder } from '../../wasm/opus.js';
import { readFixture } from '../helpers/fixtures.js';

describe('quietUpdate', () => {
  it('holds the second and later no-voice updates of a pause, never the first, a voice frame, a frame without a gap or a lost one', async () => {
    const speech = (await readFixture('speech-48k.wav')).channels[0];
    const encoder = new OpusEncoder({ dtx: true });
    const silence = encoder.encode(new Float32Array(960)); // digital silence: a CELT silence frame
    // A loud frame of speech, encoded after some speech so that it is coded as voice.
    let voice = silence;
    for (let i = 0; i < 40; i++) voice = encoder.encode(speech.subarray(24000 + i * 960, 24000 + (i + 1) * 960));
    encoder.close();
    const dtx = Uint8Array.of(silence[0]); // a TOC-only DTX frame
    const at = (frameIndex: number, payload: Uint8Array | null): EncodedFrame => ({ position: frameIndex * 960, payload, samples: 960, arrival: 0 });
    const state = newQuietState();
    const held = (f: EncodedFrame) => quietUpdate(state, f);
    expect(held(at(0, voice))).toBe(false);
    expect(held(at(1, silence))).toBe(false); // no gap: the sender is still sending every frame
    expect(held(at(2, dtx))).toBe(false); // the DTX frame that starts the pause
    expect(held(at(22, silence))).toBe(false); // the first update after a gap: the pause shows here
    expect(held(at(23, dtx))).toBe(true); // what follows it may wait
    expect(held(at(42, silence))).toBe(true); // so may later updates
    expect(held(at(43, dtx))).toBe(true);
    expect(held(at(62, silence))).toBe(true);
    expect(held(at(63, null))).toBe(false); // lost: concealment is not an update
    expect(held(at(83, silence))).toBe(false); // after a lost one, first again
    expect(held(at(103, silence))).toBe(true);
    expect(held(at(110, voice))).toBe(false); // speech resumes after a gap: never held
    expect(held(at(111, dtx))).toBe(false);
    expect(held(at(130, silence))).toBe(false); // a new pause: its first update goes at once
    expect(held(at(150, silence))).toBe(true);
  });
});
