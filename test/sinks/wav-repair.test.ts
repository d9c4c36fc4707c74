/**
 * A WAV file whose writer was killed before it could rewrite the header (an
 * engine process of `--processes N` killed with SIGKILL) holds audio on disk
 * that its header does not count; repairWavHeader makes the header cover all
 * of it, cut to whole sample frames, and leaves a finalized file as it is.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WavFileWriter } from '../../src/sinks/wav-file-writer.js';
import { repairWavHeader } from '../../src/sinks/wav-repair.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-wav-repair-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs test/helpers/killed-wav-writer.ts and SIGKILLs it once its full chunks are on disk; resolves to the data bytes it wrote. */
async function writeAndKill(path: string, format: 's16' | 'f32', channels: number, chunkBytes: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'helpers', 'killed-wav-writer.ts'), path, format, String(channels), String(chunkBytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const written = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const m = /WRITTEN (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before writing`)));
  });
  child.kill('SIGKILL');
  await exited;
  return written;
}

function decode(buf: Buffer): { samples: Float64Array; fmt: { numChannels: number; bitsPerSample: number } } {
  const wav = new wavefile.WaveFile(buf);
  return { samples: wav.getSamples(true, Float64Array) as unknown as Float64Array, fmt: wav.fmt as { numChannels: number; bitsPerSample: number } };
}

describe('repairWavHeader', () => {
  it('makes the header of a file its killed writer left cover every byte of audio on disk', async () => {
    const path = join(dir, 'killed.wav');
    const written = await writeAndKill(path, 's16', 1, 4096);
    // As the writer was killed: the audio is on disk, the header still says none of it.
    expect(decode(await readFile(path)).samples.length).toBe(0);
    expect(await repairWavHeader(path)).toEqual({ dataBytes: written, previousDataBytes: 0, bytes: 44 + written, seconds: written / 96000 });
    const { samples } = decode(await readFile(path));
    expect(samples.length).toBe(written / 2);
    // The tone as it was appended, sample for sample (16-bit).
    for (let i = 0; i < samples.length; i += 499) expect(Math.abs(samples[i] / 32768 - 0.5 * Math.sin((2 * Math.PI * 440 * i) / 48000))).toBeLessThan(2 / 32768);
  });

  it('cuts a float file to whole sample frames and keeps its fact chunk right', async () => {
    const path = join(dir, 'killed-f32.wav');
    // 4100-byte chunks of 2-channel floats (8-byte frames): the file ends in the middle of a frame.
    const written = await writeAndKill(path, 'f32', 2, 4100);
    expect(written % 8).not.toBe(0);
    const whole = written - (written % 8);
    const repaired = await repairWavHeader(path);
    expect(repaired).toMatchObject({ dataBytes: whole, previousDataBytes: 0, bytes: 58 + whole });
    expect((await stat(path)).size).toBe(58 + whole);
    const buf = await readFile(path);
    expect(buf.readUInt32LE(46)).toBe(whole / 8); // fact: sample frames
    const { samples, fmt } = decode(buf);
    expect(fmt).toMatchObject({ numChannels: 2, bitsPerSample: 32 });
    expect(samples.length).toBe(whole / 4);
  });

  it('leaves a finalized file as it is', async () => {
    const path = join(dir, 'done.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1 });
    w.append(new Float32Array(4800).fill(0.25));
    await w.close();
    const before = await readFile(path);
    expect(await repairWavHeader(path)).toEqual({ dataBytes: 9600, previousDataBytes: 9600, bytes: 44 + 9600, seconds: 0.1 });
    expect(await readFile(path)).toEqual(before);
  });

  it('leaves a file that is not a WAV alone', async () => {
    const path = join(dir, 'not.wav');
    await writeFile(path, 'not a wav file at all');
    expect(await repairWavHeader(path)).toBeUndefined();
    expect(await readFile(path, 'utf8')).toBe('not a wav file at all');
  });
});
