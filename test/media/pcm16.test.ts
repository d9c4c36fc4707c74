/**
 * One quantizer for every float → 16-bit conversion (recordings, s16 frames,
 * audio sockets). That a WAV written from floats and one written from the
 * worker's 16-bit copies are the same file is in test/sinks/s16-recording.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { quantizeS16, quantizeSample } from '../../src/media/pcm16.js';

/** Values around every edge of the mapping: full scale, clipping, rounding ties, NaN. */
const EDGES = [0, 1, -1, 1.5, -1.5, 0.5 / 32768, -0.5 / 32768, 1.5 / 32768, 32766.5 / 32768, 32767.5 / 32768, -32767.5 / 32768, 1e-9, Number.NaN, 0.25, -0.75];

describe('the 16-bit quantizer', () => {
  it('rounds x · 32768 to nearest, clipped to the 16-bit range, and gives every 16-bit value back from its float', () => {
    const src = Float32Array.from(EDGES);
    const out = new Int16Array(src.length);
    quantizeS16(src, out);
    const expected = Array.from(src, (v) => (Number.isNaN(v) ? 0 : Math.min(32767, Math.max(-32768, Math.round(v * 32768))) || 0));
    expect(Array.from(out)).toEqual(expected);
    expect(Array.from(Int16Array.from(src, quantizeSample))).toEqual(Array.from(out));
    expect(quantizeSample(1)).toBe(32767); // +1.0 stays in range
    expect(quantizeSample(-1)).toBe(-32768);
    // Every conversion to float here divides by 32768 (Opus decode, PCM input, s16 frames):
    // quantizing undoes it exactly, so 16-bit audio survives a trip through floats.
    const all = new Float32Array(65536);
    for (let i = 0; i < all.length; i++) all[i] = (i - 32768) / 32768;
    const back = new Int16Array(all.length);
    quantizeS16(all, back);
    for (let i = 0; i < back.length; i++) if (back[i] !== i - 32768) expect(back[i]).toBe(i - 32768);
  });

  it('quantizes a slice into an offset', () => {
    const src = Float32Array.from([0.1, 0.2, 0.3, 0.4]);
    const out = new Int16Array(6);
    quantizeS16(src, out, 1, 2, 2);
    expect(Array.from(out)).toEqual([0, 0, Math.round(0.2 * 32768), Math.round(0.3 * 32768), 0, 0]);
  });
});
