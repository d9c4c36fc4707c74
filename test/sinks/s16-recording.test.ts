/**
 * Frames of an s16 branch (Int16Array data) reach the recorder intact: an s16
 * WAV gets the integers as they are, an f32 WAV gets them as ÷32768 floats.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import type { AudioFrame } from '../../src/media/frames.js';
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
