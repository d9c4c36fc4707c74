/**
 * A WAV file whose writer was killed before it could rewrite the header (an
 * engine process of `--processes N` killed with SIGKILL) holds audio on disk
 * that its header does not count; repairWavHeader makes the header cover all
 * of it, cut to whole sample frames, and leaves a finalized file as it is.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WavFileWriter } from '../../src/sinks/wav-file-writer.js';
import { repairWavHeader } from '../../src/sinks/wav-repair.js';
import { openWav } from '../../src/client/wav-source.js';
import { fileBytes, sparseWav } from '../helpers/wav-files.js';

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
    expect(await repairWavHeader(path)).toEqual({ dataBytes: written, previousDataBytes: 0, bytes: 80 + written, seconds: written / 96000 });
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
    expect(repaired).toMatchObject({ dataBytes: whole, previousDataBytes: 0, bytes: 94 + whole });
    expect((await stat(path)).size).toBe(94 + whole);
    const buf = await readFile(path);
    expect(buf.readUInt32LE(82)).toBe(whole / 8); // fact: sample frames
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
    expect(await repairWavHeader(path)).toEqual({ dataBytes: 9600, previousDataBytes: 9600, bytes: 80 + 9600, seconds: 0.1 });
    expect(await readFile(path)).toEqual(before);
  });

  it('makes a file that passed 4 GiB after its last header RF64, as its writer would have, and follows it on as RF64', async () => {
    const path = join(dir, 'long.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1 });
    w.append(new Float32Array(4800).fill(0.25));
    await w.close();
    // The writer killed after writing past 4 GiB and before its next header: the data stands on disk
    // (here a hole, zeros), the header still a RIFF one for 0.1 s.
    const past = 2 ** 32 + 9600; // whole 2-byte frames
    await truncate(path, 80 + past + 1); // and half a sample frame
    expect(await repairWavHeader(path)).toEqual({ dataBytes: past, previousDataBytes: 9600, bytes: 80 + past, seconds: past / 96000 });
    const header = await fileBytes(path, 0, 80);
    expect([header.toString('ascii', 0, 4), header.readUInt32LE(4), header.toString('ascii', 12, 16), header.readUInt32LE(16)]).toEqual(['RF64', 0xffffffff, 'ds64', 28]);
    expect([header.readBigUInt64LE(20), header.readBigUInt64LE(28), header.readBigUInt64LE(36), header.readUInt32LE(76)]).toEqual([BigInt(72 + past), BigInt(past), BigInt(past / 2), 0xffffffff]);
    expect((await stat(path)).size).toBe(80 + past);
    expect((await openWav(path)).frames).toBe(past / 2);
    // An RF64 file its writer left short of what it holds: its ds64 says the rest.
    await truncate(path, 80 + past + 4800);
    expect(await repairWavHeader(path)).toMatchObject({ dataBytes: past + 4800, previousDataBytes: past });
    expect((await openWav(path)).frames).toBe((past + 4800) / 2);
  });

  it('makes a float file that passed 4 GiB RF64 with its fact chunk saying "see ds64"', async () => {
    const path = join(dir, 'long-f32.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 2, sampleFormat: 'f32' });
    w.append(new Float32Array(9600).fill(0.25));
    await w.close();
    const past = 2 ** 32 + 8 * 1000; // whole 8-byte frames
    await truncate(path, 94 + past + 5);
    expect(await repairWavHeader(path)).toMatchObject({ dataBytes: past, previousDataBytes: 38400, bytes: 94 + past });
    const header = await fileBytes(path, 0, 94);
    expect([header.toString('ascii', 0, 4), header.toString('ascii', 12, 16), header.readBigUInt64LE(28), header.readBigUInt64LE(36)]).toEqual(['RF64', 'ds64', BigInt(past), BigInt(past / 8)]);
    expect([header.toString('ascii', 74, 78), header.readUInt32LE(82), header.readUInt32LE(90)]).toEqual(['fact', 0xffffffff, 0xffffffff]);
    expect((await openWav(path)).frames).toBe(past / 8);
  });

  it('leaves a plain WAV past 4 GiB that has no room for a ds64 chunk as it is', async () => {
    const path = join(dir, 'plain.wav');
    await sparseWav(path, 9600);
    await truncate(path, 44 + 0xffffffff + 9600);
    const before = await fileBytes(path, 0, 44);
    expect(await repairWavHeader(path)).toBeUndefined();
    expect(await fileBytes(path, 0, 44)).toEqual(before);
    expect((await stat(path)).size).toBe(44 + 0xffffffff + 9600);
  });

  it('leaves a file that is not a WAV alone', async () => {
    const path = join(dir, 'not.wav');
    await writeFile(path, 'not a wav file at all');
    expect(await repairWavHeader(path)).toBeUndefined();
    expect(await readFile(path, 'utf8')).toBe('not a wav file at all');
  });
});
