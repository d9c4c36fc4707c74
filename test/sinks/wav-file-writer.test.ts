/**
 * Streaming WAV writer and recorder: files are valid while being written, hold
 * exactly what was appended, and gaps/overlaps are resolved by media position.
 */
import { copyFile, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Recorder } from '../../src/sinks/recorder.js';
import { WavFileWriter } from '../../src/sinks/wav-file-writer.js';
import { openWav } from '../../src/client/wav-source.js';
import { ChunkPool } from '../../src/sinks/chunk-pool.js';
import type { AudioFrame } from '../../src/media/frames.js';
import { until } from '../helpers/until.js';
import { fileBytes } from '../helpers/wav-files.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-wav-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function tone(frames: number, rate = 48000, start = 0): Float32Array {
  return Float32Array.from({ length: frames }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * (start + i)) / rate));
}

function read(buf: Buffer) {
  const wav = new wavefile.WaveFile(buf);
  const fmt = wav.fmt as { sampleRate: number; numChannels: number; bitsPerSample: number; audioFormat: number };
  const samples = wav.getSamples(true, Float64Array) as unknown as Float64Array; // interleaved
  return { fmt, samples };
}

describe('WavFileWriter', () => {
  it('writes a 16-bit PCM file whose samples match the input within one LSB', async () => {
    const path = join(dir, 'a.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1 });
    const input = tone(48000);
    for (let i = 0; i < input.length; i += 960) w.append(input.subarray(i, i + 960));
    await w.close();
    const { fmt, samples } = read(await readFile(path));
    expect(fmt).toMatchObject({ sampleRate: 48000, numChannels: 1, bitsPerSample: 16, audioFormat: 1 });
    expect(samples.length).toBe(48000);
    for (let i = 0; i < input.length; i += 997) expect(Math.abs(samples[i] / 32767 - input[i])).toBeLessThan(1.5 / 32767);
  });

  it('writes 32-bit float files that keep samples exactly', async () => {
    const path = join(dir, 'f.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 16000, channels: 2, sampleFormat: 'f32' });
    const input = tone(3200, 16000);
    w.append(input);
    await w.close();
    const { fmt, samples } = read(await readFile(path));
    expect(fmt).toMatchObject({ sampleRate: 16000, numChannels: 2, bitsPerSample: 32, audioFormat: 3 });
    expect(Float32Array.from(samples)).toEqual(input);
  });

  it('leaves a valid WAV on disk at any moment while writing (header rewritten every interval)', async () => {
    const path = join(dir, 'live.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1, headerIntervalMs: 100 });
    const copies: Buffer[] = [];
    for (let k = 0; k < 12; k++) {
      w.append(tone(4800, 48000, k * 4800)); // 100 ms per step
      await new Promise((r) => setTimeout(r, 60));
      await copyFile(path, join(dir, `copy${k}.wav`));
      copies.push(await readFile(join(dir, `copy${k}.wav`)));
    }
    await w.close();
    let grew = 0;
    let last = -1;
    for (const c of copies) {
      const { samples } = read(c); // throws if the header is inconsistent
      expect(samples.length).toBeLessThanOrEqual(12 * 4800);
      if (samples.length > last) grew++;
      last = samples.length;
    }
    expect(grew).toBeGreaterThan(3);
    expect(last).toBeGreaterThan(0);
    expect(read(await readFile(path)).samples.length).toBe(12 * 4800);
  });

  it('on a disk that falls behind, drops the oldest chunks as holes: counted, and the audio after them at its media time', async () => {
    const path = join(dir, 'slow.wav');
    const slowDisk = async (p: string) => {
      const fh = await open(p, 'wx');
      return {
        write: async (b: Uint8Array, o: number, l: number, pos: number) => {
          await new Promise((r) => setTimeout(r, 150));
          return fh.write(b, o, l, pos);
        },
        truncate: (n: number) => fh.truncate(n),
        close: () => fh.close(),
      };
    };
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1, chunkBytes: 32 * 1024, maxPendingBytes: 64 * 1024, openFile: slowDisk });
    // 5 s of tone in 20 ms frames, ten times faster than real time.
    const audio = tone(5 * 48000);
    for (let i = 0; i < 250; i++) {
      w.append(audio.subarray(i * 960, (i + 1) * 960));
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 20));
    }
    await w.close();
    expect(w.droppedBytes).toBeGreaterThan(0);
    const { fmt, samples } = read(await readFile(path));
    expect(fmt.sampleRate).toBe(48000);
    // As long as the media; every sample either the tone at its own time or a dropped chunk's zeros.
    expect(samples.length).toBe(5 * 48000);
    let zeros = 0;
    for (let i = 0; i < samples.length; i++) {
      if (samples[i] === 0 && Math.abs(audio[i]) > 1e-3) zeros++;
      else if (Math.abs(samples[i] / 32767 - audio[i]) > 1.5 / 32767) throw new Error(`sample ${i} is ${samples[i] / 32767}, not the tone's ${audio[i]}`);
    }
    expect(zeros * 2).toBeGreaterThan(w.droppedBytes * 0.9);
    expect(w.durationSeconds).toBe(5);
  });

  it('refuses to overwrite an existing file', async () => {
    const path = join(dir, 'x.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 8000, channels: 1 });
    await w.close();
    await expect(WavFileWriter.create(path, { sampleRate: 8000, channels: 1 })).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('keeps a 20-minute pause, appended a second at a time, without holding or dropping it: zeros on disk, the audio after it at its time', async () => {
    const path = join(dir, 'pause.wav');
    // A backlog limit far below the pause's 115 MB: silence must not count against it.
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 1, maxPendingBytes: 256 * 1024, headerIntervalMs: 50 });
    const pause = 1200;
    w.append(tone(48000));
    for (let k = 0; k < pause; k++) w.appendSilence(48000);
    w.append(tone(48000, 48000, 48000));
    expect(w.framesAppended).toBe((pause + 2) * 48000);
    await new Promise((r) => setTimeout(r, 200)); // header rewrites while it stands
    const live = await readFile(path, { encoding: null }).then((b) => b.subarray(0, 80));
    const size = (await stat(path)).size;
    expect(live.readUInt32LE(76)).toBeLessThanOrEqual(size - 80); // the header never claims more than the file holds
    await w.close();
    expect(w.droppedBytes).toBe(0);
    const dataBytes = (pause + 2) * 48000 * 2;
    expect(w.dataBytesWritten).toBe(dataBytes);
    expect((await stat(path)).size).toBe(80 + dataBytes);
    const fh = await open(path, 'r');
    try {
      const at = async (frame: number, frames: number) => {
        const b = Buffer.alloc(frames * 2);
        await fh.read(b, 0, b.length, 80 + frame * 2);
        return Array.from(new Int16Array(b.buffer, b.byteOffset, frames));
      };
      const header = Buffer.alloc(80);
      await fh.read(header, 0, 80, 0);
      expect(header.readUInt32LE(76)).toBe(dataBytes);
      const q = (x: Float32Array) => Array.from(Int16Array.from(x, (v) => Math.max(-32768, Math.min(32767, Math.round(v * 32768)))));
      expect(await at(0, 48000)).toEqual(q(tone(48000)));
      for (const second of [1, 2, 600, pause]) expect((await at(second * 48000, 48000)).every((v) => v === 0)).toBe(true);
      expect(await at((pause + 1) * 48000, 48000)).toEqual(q(tone(48000, 48000, 48000)));
    } finally {
      await fh.close();
    }
  });

  it('stores a pause that arrives a little at a time (a DTX talker\'s) as a hole, not as zeros written: it reads as zeros, the audio after it at its time', async () => {
    const path = join(dir, 'dtx-pause.wav');
    // The bytes of audio the writer hands the file system (past the header), and how often it extends the file.
    let dataWritten = 0;
    let extended = 0;
    const w = await WavFileWriter.create(path, {
      sampleRate: 48000,
      channels: 1,
      headerIntervalMs: 20,
      openFile: async (p) => {
        const fh = await open(p, 'wx');
        return {
          write: (buffer: Buffer, offset: number, length: number, position: number) => {
            if (position >= 80) dataWritten += length;
            return fh.write(buffer, offset, length, position);
          },
          truncate: (length: number) => {
            extended++;
            return fh.truncate(length);
          },
          close: () => fh.close(),
        };
      },
    });
    const sizeReaches = async (bytes: number) => {
      while ((await stat(path)).size < bytes) await new Promise((r) => setTimeout(r, 5));
    };
    w.append(tone(48000));
    await sizeReaches(80 + 96000); // the tone is on disk: what comes next starts a chunk of its own
    // 6 s of pause, 200 ms at a time, each placed by a flush before the next arrives.
    for (let k = 1; k <= 30; k++) {
      w.appendSilence(9600);
      await sizeReaches(80 + 96000 + k * 19200);
    }
    w.append(tone(48000, 48000, 48000));
    await w.close();
    const dataBytes = 8 * 48000 * 2;
    expect(w.dataBytesWritten).toBe(dataBytes);
    // Only the two seconds of tone were written; the pause extended the file, 30 times.
    expect(dataWritten).toBe(2 * 96000);
    expect(extended).toBe(30);
    const { size, blocks } = await stat(path);
    expect(size).toBe(80 + dataBytes);
    // On disk (ext4, XFS, tmpfs: file systems with holes) the pause takes next to no blocks.
    expect(blocks * 512).toBeLessThan(2 * 96000 + 64 * 1024);
    const samples = new Int16Array((await readFile(path)).buffer, 80, dataBytes / 2);
    const q = (x: Float32Array) => Array.from(Int16Array.from(x, (v) => Math.max(-32768, Math.min(32767, Math.round(v * 32768)))));
    expect(Array.from(samples.subarray(0, 48000))).toEqual(q(tone(48000)));
    expect(samples.subarray(48000, 7 * 48000).every((v) => v === 0)).toBe(true);
    expect(Array.from(samples.subarray(7 * 48000))).toEqual(q(tone(48000, 48000, 48000)));
  });

  it('ends a file on a long pause with the pause in it', async () => {
    const path = join(dir, 'trailing.wav');
    const w = await WavFileWriter.create(path, { sampleRate: 16000, channels: 2, sampleFormat: 'f32', maxPendingBytes: 64 * 1024 });
    w.append(tone(3200, 16000));
    w.appendSilence(16000 * 300); // five minutes, 38 MB of f32 stereo
    await w.close();
    expect(w.droppedBytes).toBe(0);
    expect(w.durationSeconds).toBe(300.1);
    const bytes = (1600 + 16000 * 300) * 8;
    expect((await stat(path)).size).toBe(94 + bytes);
    const fh = await open(path, 'r');
    try {
      const tail = Buffer.alloc(4096);
      await fh.read(tail, 0, tail.length, 94 + bytes - tail.length);
      expect(tail.every((v) => v === 0)).toBe(true);
    } finally {
      await fh.close();
    }
  });

  it('keeps every byte when chunk buffers are reused many times over', async () => {
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
    expect(Array.from(new Int16Array(bytes.buffer.slice(bytes.byteOffset + 80, bytes.byteOffset + bytes.length)))).toEqual(Array.from(all));
  });
});

describe('Recorder', () => {
  const frame = (position: number, data: Float32Array): AudioFrame => ({ position, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data, rms: 0, peak: 0, arrival: 0 });

  it('fills gaps with silence and trims overlaps so the duration equals media time', async () => {
    const path = join(dir, 'r.wav');
    const r = await Recorder.start({ path, name: 'r.wav', sampleRate: 48000, channels: 1, startPosition: 0 });
    r.write(frame(960, tone(960))); // first 960 samples never arrived
    r.write(frame(1920, tone(960)));
    r.write(frame(4800, tone(960))); // 1920 samples missing
    r.write(frame(5000, tone(960))); // overlaps the previous frame by 760
    const info = await r.stop();
    expect(info.seconds * 48000).toBe(5960);
    expect(info.gapFrames).toBe(960 + 1920);
    const { samples } = read(await readFile(path));
    expect(samples.length).toBe(5960);
    expect(samples.slice(0, 960).every((v) => v === 0)).toBe(true);
    expect(samples.slice(2880, 4800).every((v) => v === 0)).toBe(true);
  });
});

describe('Recorder and silence', () => {
  it('writes a 20-minute run of silent frames a backlog limit could not hold, and the sound after it at its time', async () => {
    const path = join(dir, 'silent-frames.wav');
    const r = await Recorder.start({ path, name: 'silent-frames.wav', sampleRate: 16000, channels: 1, startPosition: 0 });
    const frame = (position: number, data: Float32Array, peak: number): AudioFrame => ({ position, sampleRate: 16000, channels: 1, sampleFormat: 'f32', data, rms: peak / 2, peak, arrival: 0 });
    const loud = tone(16000, 16000);
    r.write(frame(0, loud, 0.5));
    // Frames of zeros as the pool delivers a long gap: one a second, 20 minutes (38 MB as s16, far past the 8 MiB backlog).
    for (let k = 1; k <= 1200; k++) r.write(frame(k * 16000, new Float32Array(16000), 0));
    r.write(frame(1201 * 16000, loud, 0.5));
    const info = await r.stop();
    expect(info.seconds).toBe(1202);
    expect(info.droppedBytes).toBe(0);
    const bytes = 1202 * 16000 * 2;
    expect(info.bytes).toBe(80 + bytes);
    const fh = await open(path, 'r');
    try {
      const b = Buffer.alloc(32000);
      await fh.read(b, 0, b.length, 80 + 1201 * 32000);
      const last = new Int16Array(b.buffer, b.byteOffset, 16000);
      expect(Array.from(last)).toEqual(Array.from(Int16Array.from(loud, (v) => Math.round(v * 32768))));
      await fh.read(b, 0, b.length, 80 + 600 * 32000);
      expect(b.every((v) => v === 0)).toBe(true);
    } finally {
      await fh.close();
    }
  });
});

describe('WavFileWriter chunk buffers shared between recordings', () => {
  it('a chunk one recording has written is the next chunk of another, and no recording gets another one\'s audio', async () => {
    const pool = new ChunkPool();
    const writers = 20;
    const chunkBytes = 4096; // 1024 f32 samples: appending that many fills a chunk, which is then written
    // No timer flush during the test: chunks are written only when full, so the order is the test's.
    const ws = await Promise.all(
      Array.from({ length: writers }, (_, i) => WavFileWriter.create(join(dir, `r${i}.wav`), { sampleRate: 16000, channels: 1, sampleFormat: 'f32', chunkBytes, headerIntervalMs: 600_000, chunkPool: pool })),
    );
    expect(pool.allocated).toBe(writers); // each took the chunk it fills
    const inputs = ws.map((_, i) => Float32Array.from({ length: 4096 }, (_, n) => 0.4 * Math.sin((2 * Math.PI * (200 + 37 * i) * n) / 16000)));
    const writtenBack = async () => {
      for (const deadline = Date.now() + 10_000; pool.free === 0; ) {
        if (Date.now() > deadline) throw new Error('no chunk came back from its write');
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    // Flushes one after another, as staggered recorders flush: each full chunk goes to the disk,
    // its writer takes a free one (only the very first has to be made), and the written one comes back.
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < writers; i++) {
        ws[i].append(inputs[i].subarray(round * 1024, (round + 1) * 1024));
        await writtenBack();
      }
    }
    expect(pool.allocated).toBe(writers + 1);
    await Promise.all(ws.map((w) => w.close()));
    for (let i = 0; i < writers; i++) {
      const { samples } = read(await readFile(join(dir, `r${i}.wav`)));
      expect(Float32Array.from(samples)).toEqual(inputs[i]);
    }
    // Per recording, 20 recordings held 40 chunks (one filling, one written); shared, 21 served them all.
    expect(pool.free).toBeGreaterThan(0);
  });
});

describe('WavFileWriter silence', () => {
  it('writes silence as exact zeros across chunk boundaries, in chunks that held another recording\'s audio', async () => {
    for (const sampleFormat of ['s16', 'f32'] as const) {
      const pool = new ChunkPool();
      const chunkBytes = 4096;
      const loud = Float32Array.from({ length: 48000 }, (_, n) => (n % 2 ? 0.9 : -0.9));
      // A first recording fills chunks with loud audio and gives them back to the pool.
      const first = await WavFileWriter.create(join(dir, `loud-${sampleFormat}.wav`), { sampleRate: 16000, channels: 2, sampleFormat, chunkBytes, headerIntervalMs: 600_000, chunkPool: pool });
      first.append(loud);
      await first.close();
      const made = pool.allocated;
      expect(pool.free).toBeGreaterThanOrEqual(5); // enough for every chunk of the next recording

      // The second: a little audio, a silence longer than three chunks that starts mid-chunk, more audio.
      const path = join(dir, `quiet-${sampleFormat}.wav`);
      const w = await WavFileWriter.create(path, { sampleRate: 16000, channels: 2, sampleFormat, chunkBytes, headerIntervalMs: 600_000, chunkPool: pool });
      const head = tone(300 * 2, 16000);
      const gapFrames = 1700; // 1700 stereo frames: 6800 bytes of s16, 13600 of f32
      const tail = tone(200 * 2, 16000, 600);
      w.append(head);
      w.appendSilence(gapFrames);
      w.append(tail);
      expect(w.framesAppended).toBe(300 + gapFrames + 200);
      expect(pool.allocated).toBe(made); // every chunk it wrote to had held the loud recording
      await w.close();

      const { fmt, samples } = read(await readFile(path));
      expect(fmt.numChannels).toBe(2);
      expect(samples.length).toBe((300 + gapFrames + 200) * 2);
      const gap = samples.subarray(600, 600 + gapFrames * 2);
      expect(gap.every((v) => v === 0)).toBe(true);
      // The audio on both sides is what was appended, where it was appended (s16 within one step).
      const scale = sampleFormat === 's16' ? 32768 : 1; // wavefile reads s16 as integers
      const step = sampleFormat === 's16' ? 1 / 32768 : 1e-7;
      const near = (got: Float64Array, want: Float32Array) => got.length === want.length && want.every((v, i) => Math.abs(got[i] / scale - v) <= step);
      expect(near(samples.subarray(0, 600), head)).toBe(true);
      expect(near(samples.subarray(600 + gapFrames * 2), tail)).toBe(true);
    }
  });
});

describe('a WAV recording past 4 GiB', () => {
  it('f32 stereo: goes on past the 4 GiB a RIFF size can say, as RF64 (EBU 3306), and the file reads whole', async () => {
    const path = join(dir, 'long.wav');
    const errors: Error[] = [];
    const w = await WavFileWriter.create(path, { sampleRate: 48000, channels: 2, sampleFormat: 'f32', headerIntervalMs: 50, onError: (e) => errors.push(e) });
    // Below the limit: a RIFF WAV whose first chunk is a 28-byte JUNK, room for the ds64 chunk.
    const start = await readFile(path);
    expect([start.toString('ascii', 0, 4), start.toString('ascii', 12, 16), start.readUInt32LE(16)]).toEqual(['RIFF', 'JUNK', 28]);
    // The most sample frames a RIFF size allows: 3.1 hours, extended over (a hole), not written.
    const riffFrames = Math.floor((0xffffffff - (94 - 8)) / 8);
    const headerOnDisk = () => fileBytes(path, 0, 94);
    w.appendSilence(riffFrames - 10);
    // The periodic rewrite while it is still under the limit: a RIFF header for what is on disk.
    await until('a header for the silence', async () => ((await headerOnDisk()).readUInt32LE(90) === (riffFrames - 10) * 8 ? true : undefined), 5000, 20);
    expect((await headerOnDisk()).toString('ascii', 0, 4)).toBe('RIFF');
    w.append(new Float32Array(2 * 30).fill(0.5)); // across the 4 GiB: 10 frames below, 20 past it
    // The next rewrite, while recording: the same file's header is RF64's now.
    await until('an RF64 header', async () => ((await headerOnDisk()).toString('ascii', 0, 4) === 'RF64' ? true : undefined), 5000, 20);
    w.appendSilence(1000);
    w.append(new Float32Array(2 * 5).fill(-0.25));
    const frames = riffFrames - 10 + 30 + 1000 + 5;
    await w.close();
    expect(errors).toEqual([]);
    expect(w.error).toBeUndefined();
    const dataBytes = frames * 8;
    expect(w.dataBytesWritten).toBe(dataBytes);
    expect(dataBytes).toBeGreaterThan(0xffffffff);
    expect((await stat(path)).size).toBe(94 + dataBytes);
    const header = await fileBytes(path, 0, 94);
    expect([header.toString('ascii', 0, 4), header.readUInt32LE(4), header.toString('ascii', 8, 16), header.readUInt32LE(16)]).toEqual(['RF64', 0xffffffff, 'WAVEds64', 28]);
    // ds64: RIFF size, data size, sample count (64 bits each), no table.
    expect([header.readBigUInt64LE(20), header.readBigUInt64LE(28), header.readBigUInt64LE(36), header.readUInt32LE(44)]).toEqual([BigInt(86 + dataBytes), BigInt(dataBytes), BigInt(frames), 0]);
    // fact's and data's 32-bit sizes say "see ds64".
    expect([header.toString('ascii', 74, 78), header.readUInt32LE(82), header.toString('ascii', 86, 90), header.readUInt32LE(90)]).toEqual(['fact', 0xffffffff, 'data', 0xffffffff]);
    const tail = await fileBytes(path, 94 + (riffFrames - 11) * 8, 8 * (1 + 30 + 1000 + 5));
    const samples = Array.from(new Float32Array(tail.buffer, tail.byteOffset, tail.length / 4));
    // One frame of the silence, the 30 frames of 0.5 (the 20 past 4 GiB too), the silence, the last 5.
    expect(samples).toEqual([0, 0, ...Array(60).fill(0.5), ...Array(2000).fill(0), ...Array(10).fill(-0.25)]);
    // Read as a WAV file by earshot's reader (the one earshot send uses), which follows ds64. (sox reads it
    // too, but takes ~40 s to count 4 GiB of samples.)
    expect((await openWav(path)).frames).toBe(frames);
  });
});
