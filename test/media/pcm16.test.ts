/**
 * One quantizer for recordings: a WAV written from floats and one written
 * from the worker's 16-bit copies are the same file, byte for byte.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AudioFrame } from '../../src/media/frames.js';
import { quantizeS16, quantizeSample } from '../../src/media/pcm16.js';
import { Recorder } from '../../src/sinks/recorder.js';
import { WavFileWriter } from '../../src/sinks/wav-file-writer.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Values around every edge of the mapping: full scale, clipping, rounding ties, NaN. */
const EDGES = [0, 1, -1, 1.5, -1.5, 0.5 / 32768, -0.5 / 32768, 1.5 / 32768, 32766.5 / 32768, 32767.5 / 32768, -32767.5 / 32768, 1e-9, Number.NaN, 0.25, -0.75];

function frameOf(position: number, data: Float32Array): AudioFrame {
  return { position, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data, rms: 0, peak: 0, arrival: 0 };
}

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

  it('makes the same WAV from floats as from 16-bit copies, with overlaps trimmed and gaps filled alike', async () => {
    dir = await mkdtemp(join(tmpdir(), 'earshot-pcm16-'));
    const frames: AudioFrame[] = [];
    let seed = 1;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2.2 - 1.1; // some beyond ±1
    for (let i = 0; i < 120; i++) {
      const data = new Float32Array(960);
      for (let k = 0; k < data.length; k++) data[k] = i % 10 === 3 ? EDGES[k % EDGES.length] : random();
      // A gap after frame 40, an overlap at frame 80.
      const position = i * 960 + (i > 40 ? 480 : 0) - (i >= 80 ? 300 : 0);
      frames.push(frameOf(position, data));
    }
    const write = async (name: string, withCopies: boolean) => {
      const r = await Recorder.start({ path: join(dir!, name), name, sampleRate: 48000, channels: 1, sampleFormat: 's16', startPosition: 0 });
      for (const f of frames) {
        let copy: Int16Array | undefined;
        if (withCopies) {
          copy = new Int16Array(f.data.length);
          quantizeS16(f.data as Float32Array, copy);
        }
        r.write(f, copy);
      }
      await r.stop();
      return readFile(join(dir!, name));
    };
    const fromFloats = await write('floats.wav', false);
    const fromCopies = await write('copies.wav', true);
    expect(fromCopies.length).toBeGreaterThan(44 + 2 * 960 * 100);
    expect(fromCopies.equals(fromFloats)).toBe(true);
  });

  it('keeps every byte when chunk buffers are reused many times over', async () => {
    dir = await mkdtemp(join(tmpdir(), 'earshot-pcm16-'));
    const path = join(dir, 'reuse.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1, chunkBytes: 4096 });
    const all = new Int16Array(960 * 200);
    for (let i = 0; i < all.length; i++) all[i] = (i * 7919) % 65536 - 32768;
    for (let i = 0; i < 200; i++) {
      w.append(all.subarray(i * 960, (i + 1) * 960));
      if (i % 17 === 0) await new Promise((r) => setImmediate(r)); // let writes complete and buffers come back
    }
    await w.close();
    const bytes = await readFile(path);
    expect(Array.from(new Int16Array(bytes.buffer.slice(bytes.byteOffset + 44, bytes.byteOffset + bytes.length)))).toEqual(Array.from(all));
  });
});
