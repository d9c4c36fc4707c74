/**
 * A recording on a file system that cannot hold a file as large as it grows
 * (FAT32: 4 GiB; here a process file-size limit of 256 KiB, `prlimit --fsize`,
 * which fails writes the same way, EFBIG): the recording fails with
 * EARSHOT_RECORDING_WRITE_FAILED naming why, and what reached the disk is a
 * valid WAV whose header covers it. The process goes on.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { until } from '../helpers/until.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-fsize-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a recording that reaches the largest file its file system takes', () => {
  it('fails with EARSHOT_RECORDING_WRITE_FAILED (EFBIG) and a hint, and leaves a valid WAV of what fit', async () => {
    const helper = join(import.meta.dirname, '..', 'helpers', 'size-limited-recording.ts');
    const limitKiB = 256;
    const child = spawn(process.execPath, ['--import', 'tsx', helper, dir], { stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await until('the recorder to load', () => (out.includes('READY') ? true : undefined), 30_000, 20);
    execFileSync('prlimit', ['--pid', String(child.pid), `--fsize=${limitKiB * 1024}:unlimited`]);
    child.stdin.end('go\n');
    expect(await exited, err).toBe(0);
    const { failures, info } = JSON.parse(out.trim().split('\n').at(-1)!) as { failures: Array<{ code: string; message: string }>; info: { state: string; bytes: number; seconds: number; code?: string } };
    expect(failures).toHaveLength(1);
    expect(failures[0].code).toBe('EARSHOT_RECORDING_WRITE_FAILED');
    expect(failures[0].message).toMatch(/^Writing limited\.wav failed: EFBIG .* — the file system cannot hold a file this large \(FAT32: 4 GiB\)\. Record to another file system/);
    expect(info).toMatchObject({ state: 'failed', code: 'EARSHOT_RECORDING_WRITE_FAILED' });
    // What fit: at most the limit, a valid WAV whose header says exactly what it holds.
    const [name] = await readdir(dir);
    const bytes = await readFile(join(dir, name));
    expect(bytes.length).toBe(info.bytes);
    expect(bytes.length).toBeLessThanOrEqual(limitKiB * 1024);
    expect(bytes.length).toBeGreaterThan(limitKiB * 1024 - 64 * 1024);
    const wav = new wavefile.WaveFile(bytes);
    const dataBytes = (wav.data as { chunkSize: number }).chunkSize;
    expect(80 + dataBytes).toBe(bytes.length);
    expect(info.seconds).toBeCloseTo(dataBytes / 96000, 6);
    // The tone from its start.
    const samples = wav.getSamples(false, Float64Array) as unknown as Float64Array;
    for (let i = 0; i < samples.length; i += 997) expect(Math.abs(samples[i] / 32768 - 0.5 * Math.sin((2 * Math.PI * 440 * i) / 48000))).toBeLessThan(2 / 32768);
  });
});
