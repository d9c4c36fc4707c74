/**
 * Frames of an s16 branch (Int16Array data) reach the recorder intact: an s16
 * WAV gets the integers as they are, an f32 WAV gets them as ÷32768 floats.
 * And one quantizer for recordings: a WAV written from floats and one written
 * from the worker's 16-bit copies are the same file, byte for byte.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import type { AudioFrame } from '../../src/media/frames.js';
import { quantizeS16 } from '../../src/media/pcm16.js';
import { Recorder } from '../../src/sinks/recorder.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-s16-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ints = Int16Array.from([0, 1, -1, 32767, -32768, 12345, -12345, 100]);
const frame = (position: number, data: Int16Array): AudioFrame => ({ position, sampleRate: 16000, channels: 1, sampleFormat: 's16', data, rms: 0, peak: 0, arrival: 0 });

async function record(sampleFormat: 's16' | 'f32'): Promise<wavefile.WaveFile> {
  const path = join(dir, `${sampleFormat}.wav`);
  const recorder = await Recorder.start({ path, name: `${sampleFormat}.wav`, sampleRate: 16000, channels: 1, sampleFormat, startPosition: 0 });
  recorder.write(frame(0, ints.subarray(0, 4)));
  recorder.write(frame(6, ints.subarray(4))); // a 2-sample gap, filled with silence
  await recorder.stop();
  return new wavefile.WaveFile(await readFile(path));
}

describe('recording s16 frames', () => {
  it('writes the integers unchanged into an s16 WAV', async () => {
    const wav = await record('s16');
    expect(wav.bitDepth).toBe('16');
    expect([...(wav.getSamples(false, Int32Array) as unknown as Int32Array)]).toEqual([0, 1, -1, 32767, 0, 0, -32768, 12345, -12345, 100]);
  });

  it('writes them as ÷32768 floats into an f32 WAV', async () => {
    const wav = await record('f32');
    expect(wav.bitDepth).toBe('32f');
    const samples = [...(wav.getSamples(false, Float64Array) as unknown as Float64Array)];
    expect(samples).toEqual([0, 1, -1, 32767, 0, 0, -32768, 12345, -12345, 100].map((v) => Math.fround(v / 32768)));
  });
});

/** Values around every edge of the 16-bit mapping: full scale, clipping, rounding ties, NaN. */
const EDGES = [0, 1, -1, 1.5, -1.5, 0.5 / 32768, -0.5 / 32768, 1.5 / 32768, 32766.5 / 32768, 32767.5 / 32768, -32767.5 / 32768, 1e-9, Number.NaN, 0.25, -0.75];

function frameOf(position: number, data: Float32Array): AudioFrame {
  return { position, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data, rms: 0, peak: 0, arrival: 0 };
}

describe('recording f32 frames as s16', () => {
  it('makes the same WAV from floats as from 16-bit copies, with overlaps trimmed and gaps filled alike', async () => {
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
      const r = await Recorder.start({ path: join(dir, name), name, sampleRate: 48000, channels: 1, sampleFormat: 's16', startPosition: 0 });
      for (const f of frames) {
        let copy: Int16Array | undefined;
        if (withCopies) {
          copy = new Int16Array(f.data.length);
          quantizeS16(f.data as Float32Array, copy);
        }
        r.write(f, copy);
      }
      await r.stop();
      return readFile(join(dir, name));
    };
    const fromFloats = await write('floats.wav', false);
    const fromCopies = await write('copies.wav', true);
    expect(fromCopies.length).toBeGreaterThan(80 + 2 * 960 * 100);
    expect(fromCopies.equals(fromFloats)).toBe(true);
  });
});
