/**
 * The streaming WAV writer on a full disk: whatever reached the disk stays a
 * valid WAV whose header claims exactly the bytes the file holds (whole sample
 * frames), including when a write lands only partly before ENOSPC. The disk is
 * simulated by a file handle with a byte quota, and (when this process may
 * mount one) by a real 256 KiB tmpfs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Recorder } from '../../src/sinks/recorder.js';
import { WavFileWriter, type WavFileHandle, type WavSampleFormat } from '../../src/sinks/wav-file-writer.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-wavfault-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function enospc(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
}

/**
 * Opens a real file whose size may not exceed `limit` bytes, like a disk with
 * that much room: a write crossing the limit writes what fits and reports the
 * shorter count (as write(2) does), the next one fails with ENOSPC. With
 * `refuseAll`, once the disk is full every write fails, overwrites included.
 */
function quotaOpener(limit: number, options: { refuseAll?: boolean } = {}) {
  const log = { writes: 0, shortWrites: 0, refused: 0 };
  const openFile = async (path: string): Promise<WavFileHandle> => {
    const fh = await open(path, 'wx');
    let full = false;
    return {
      async write(buffer, offset, length, position) {
        log.writes++;
        const room = Math.max(0, Math.min(length, limit - position));
        if (room === 0 || (full && options.refuseAll)) {
          full = true;
          log.refused++;
          throw enospc();
        }
        if (room < length) {
          log.shortWrites++;
          full = true;
        }
        const { bytesWritten } = await fh.write(buffer, offset, room, position);
        return { bytesWritten };
      },
      truncate: (length) => fh.truncate(length),
      close: () => fh.close(),
    };
  };
  return { openFile, log };
}

/** Reads a WAV and checks the invariant: the header's data size is the file's size minus the header. */
async function readChecked(path: string) {
  const buf = await readFile(path);
  const wav = new wavefile.WaveFile(buf); // throws on an inconsistent file
  const chunks = wav as unknown as { data: { chunkSize: number }; fmt: { blockAlign: number; numChannels: number; sampleRate: number } };
  const dataOffset = buf.indexOf('data', 12, 'ascii') + 8;
  return { buf, wav, dataBytes: chunks.data.chunkSize, dataOffset, blockAlign: chunks.fmt.blockAlign };
}

function ramp(samples: number): Float32Array {
  // Distinct values, so the bytes on disk can be matched to the input.
  return Float32Array.from({ length: samples }, (_, i) => ((i % 2000) - 1000) / 1001);
}

describe('WavFileWriter on a full disk', () => {
  const cases: Array<{ format: WavSampleFormat; channels: number; header: number }> = [
    { format: 's16', channels: 1, header: 80 },
    { format: 's16', channels: 2, header: 80 },
    { format: 'f32', channels: 2, header: 94 },
  ];
  for (const { format, channels, header } of cases) {
    it(`keeps a valid ${format} ${channels}-channel WAV whose header matches the bytes on disk after a short write and ENOSPC`, async () => {
      const path = join(dir, `${format}-${channels}.wav`);
      const bps = format === 's16' ? 2 : 4;
      const block = bps * channels;
      // Room for the header and 10 000 data bytes plus 3 more: the limit falls inside a sample frame.
      const limit = header + 10_000 + 3;
      const { openFile, log } = quotaOpener(limit);
      const errors: Error[] = [];
      const w = await WavFileWriter.create(path, { sampleRate: 48000, channels, sampleFormat: format, chunkBytes: 4096, openFile, onError: (e) => errors.push(e) });
      const input = ramp(48000 * channels); // far more than fits
      for (let i = 0; i < input.length; i += 960 * channels) w.append(input.subarray(i, i + 960 * channels));
      // Audio that comes after the failure never reaches the disk either.
      for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(errors).toHaveLength(1);
      w.append(input.subarray(0, 960 * channels));
      w.appendSilence(960);
      await w.close();

      expect(log.shortWrites).toBe(1);
      expect(errors).toHaveLength(1);
      expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOSPC');
      expect(w.error).toBe(errors[0]);
      const size = (await stat(path)).size;
      const { dataBytes, dataOffset, wav } = await readChecked(path);
      expect(dataOffset).toBe(header);
      expect(dataBytes).toBe(size - header);
      expect(dataBytes % block).toBe(0);
      // Everything that fit, cut to whole frames: 10 003 bytes → the last whole frame.
      expect(dataBytes).toBe(10_003 - (10_003 % block));
      expect(w.dataBytesWritten).toBe(dataBytes);
      expect(w.durationSeconds).toBeCloseTo(dataBytes / block / 48000, 9);
      // Every byte appended is on disk or counted as dropped (the part frame cut from the end aside).
      const appended = (input.length + 960 * channels) * bps + 960 * block;
      expect(appended - dataBytes - w.droppedBytes).toBeGreaterThanOrEqual(0);
      expect(appended - dataBytes - w.droppedBytes).toBeLessThan(block);
      // The samples on disk are the first ones appended, in order.
      const samples = wav.getSamples(true, Float64Array) as unknown as Float64Array;
      expect(samples.length).toBe(dataBytes / bps);
      for (let i = 0; i < samples.length; i += 97) {
        const expected = format === 'f32' ? Math.fround(input[i]) : Math.min(32767, Math.round(input[i] * 32768));
        expect(samples[i]).toBe(expected);
      }
    });
  }

  it('counts each byte lost once when a disk that fell behind (chunks dropped) then fills up', async () => {
    const path = join(dir, 'behind-then-full.wav');
    let release!: () => void;
    const stalled = new Promise<void>((r) => (release = r));
    const limit = 80 + 40_000;
    const openFile = async (p: string): Promise<WavFileHandle> => {
      const fh = await open(p, 'wx');
      return {
        async write(buffer, offset, length, position) {
          // The header goes through; data waits until released, then finds the disk nearly full.
          if (position >= 80) await stalled;
          const room = Math.max(0, Math.min(length, limit - position));
          if (room === 0) throw enospc();
          return fh.write(buffer, offset, room, position);
        },
        truncate: (n) => (n > limit ? Promise.reject(enospc()) : fh.truncate(n)),
        close: () => fh.close(),
      };
    };
    const errors: Error[] = [];
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1, chunkBytes: 8192, maxPendingBytes: 16_384, openFile, onError: (e) => errors.push(e) });
    const input = ramp(48000 * 3);
    for (let i = 0; i < input.length; i += 960) w.append(input.subarray(i, i + 960));
    expect(w.droppedBytes).toBeGreaterThan(0); // chunks dropped while the disk stalled
    release();
    await w.close();
    expect(errors.length).toBeGreaterThan(0);
    const { dataBytes, wav } = await readChecked(path);
    // A dropped chunk keeps its place in the file as zeros: those bytes are on disk and counted as dropped.
    const samples = wav.getSamples(true, Float64Array) as unknown as Float64Array;
    let holes = 0;
    for (let i = 0; i < samples.length; i++) if (samples[i] === 0 && Math.round(input[i] * 32768) !== 0) holes += 2;
    expect(holes).toBeGreaterThan(0);
    // Otherwise every byte appended is on disk or counted as dropped, once (a dropped chunk's hole was counted
    // again on failure: a whole chunk, 8192 bytes, too many). The few samples the ramp has at 0 read as holes' or not.
    expect(Math.abs(input.length * 2 - (dataBytes - holes) - w.droppedBytes)).toBeLessThanOrEqual(64);
  });

  it('cuts the file back to what the header on disk claims when even the header cannot be rewritten', async () => {
    const path = join(dir, 'refused.wav');
    const { openFile, log } = quotaOpener(80 + 5000, { refuseAll: true });
    const errors: Error[] = [];
    const w = await WavFileWriter.create(path, { sampleRate: 8000, channels: 1, chunkBytes: 1024, openFile, onError: (e) => errors.push(e) });
    w.append(ramp(8000));
    await w.close();
    expect(log.refused).toBeGreaterThan(0);
    expect(errors.length).toBeGreaterThan(0); // the failed writes were reported, not only absorbed
    const size = (await stat(path)).size;
    const { dataBytes } = await readChecked(path);
    expect(dataBytes).toBe(size - 80);
    expect(w.dataBytesWritten).toBe(dataBytes);
  });

  it('leaves no file when not even the header fits', async () => {
    const path = join(dir, 'empty.wav');
    const { openFile } = quotaOpener(20);
    await expect(WavFileWriter.create(path, { sampleRate: 48000, channels: 1, openFile })).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a recorder on a full disk reports failed with the seconds and bytes the file really holds', async () => {
    const path = join(dir, 'rec.wav');
    const { openFile } = quotaOpener(80 + 9600 + 1); // 0.1 s of 48 kHz s16 mono, and one byte
    const failures: Error[] = [];
    const r = await Recorder.start({ path, name: 'rec.wav', sampleRate: 48000, channels: 1, startPosition: 0, openFile, onError: (e) => failures.push(e) });
    for (let k = 0; k < 50; k++) r.write({ position: k * 960, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data: ramp(960), rms: 0, peak: 0, arrival: 0 });
    const info = await r.stop();
    expect(failures).toHaveLength(1);
    expect(info.state).toBe('failed');
    expect(info.bytes).toBe((await stat(path)).size);
    expect(info.bytes).toBe(80 + 9600);
    expect(info.seconds).toBeCloseTo(0.1, 9);
    expect(info.error).toMatch(/ENOSPC/);
  });
});

describe('Recorder loss accounting', () => {
  it('counts the silence the worker inserted (at the file rate) and the frames dropped on the way', async () => {
    const path = join(dir, 'loss.wav');
    const r = await Recorder.start({ path, name: 'loss.wav', sampleRate: 16000, channels: 1, startPosition: 0 });
    r.write({ position: 0, sampleRate: 16000, channels: 1, sampleFormat: 'f32', data: ramp(320), rms: 0, peak: 0, arrival: 0 });
    // 3 frames dropped by a full worker queue: the worker filled 3 × 960 samples at 48 kHz with silence.
    r.noteLoss({ queueFull: 3 }, 3 * 960);
    r.noteLoss({ late: 1 });
    r.write({ position: 320, sampleRate: 16000, channels: 1, sampleFormat: 'f32', data: new Float32Array(960), rms: 0, peak: 0, arrival: 0 });
    r.write({ position: 1600, sampleRate: 16000, channels: 1, sampleFormat: 'f32', data: ramp(320), rms: 0, peak: 0, arrival: 0 }); // 320 missing here
    const info = await r.stop();
    expect(info.gapFrames).toBe(960 + 320);
    expect(info.gapSeconds).toBe(0.08);
    expect(info.droppedFrames).toBe(4);
    expect(info.droppedBy).toEqual({ queueFull: 3, late: 1, workerRestart: 0, stageFailed: 0, backlog: 0, processorStage: 0 });
  });
});

// A real full file system: a 256 KiB tmpfs. Mounting needs root (CAP_SYS_ADMIN); elsewhere this is skipped.
let tmpfs: string | undefined;
beforeAll(async () => {
  const mountPoint = await mkdtemp(join(tmpdir(), 'earshot-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint], { stdio: 'ignore' });
    tmpfs = mountPoint;
  } catch {
    await rm(mountPoint, { recursive: true, force: true });
  }
});
afterAll(async () => {
  if (!tmpfs) return;
  try {
    execFileSync('umount', [tmpfs], { stdio: 'ignore' });
  } finally {
    await rm(tmpfs, { recursive: true, force: true });
  }
});

describe('WavFileWriter on a real full tmpfs', () => {
  it('fills the disk, reports ENOSPC once, and leaves a file whose header matches its size; the next file is not left empty', async (ctx) => {
    if (!tmpfs) return ctx.skip('mounting a tmpfs is not permitted here');
    const path = join(tmpfs, 'full.wav');
    const errors: Error[] = [];
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 2, sampleFormat: 'f32', chunkBytes: 7 * 1024 + 4, onError: (e) => errors.push(e) });
    const second = ramp(96000);
    for (let k = 0; k < 2; k++) for (let i = 0; i < second.length; i += 1920) w.append(second.subarray(i, i + 1920)); // 768 KB
    await w.close();
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ENOSPC']);
    const size = (await stat(path)).size;
    const { dataBytes } = await readChecked(path);
    expect(dataBytes).toBe(size - 94);
    expect(dataBytes % 8).toBe(0);
    expect(dataBytes).toBeGreaterThan(100_000);

    await expect(WavFileWriter.create(join(tmpfs, 'next.wav'), { sampleRate: 48000, channels: 1 })).rejects.toMatchObject({ code: 'ENOSPC' });
    expect((await readdir(tmpfs)).sort()).toEqual(['full.wav']);
  });
});
