/**
 * The Ogg Opus writer and the pass-through recorder, checked with the real
 * opus-tools (`opusinfo`, `opusdec`): valid pages and CRCs, granule positions
 * that follow media time across loss and DTX gaps, a file copied before it is
 * finalized that still plays, and a full disk that leaves whole pages.
 */
import { copyFile, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EncodedFrame } from '../../src/media/frames.js';
import { OggOpusRecorder } from '../../src/sinks/ogg-opus-recorder.js';
import { readOggOpusSummary } from '../../src/sinks/ogg-opus-reader.js';
import { OggOpusWriter, type OggFileHandle } from '../../src/sinks/ogg-opus-writer.js';
import { dominantFrequency, encodeOpusFrames } from '../helpers/audio.js';
import { opusdec, opusinfo } from '../helpers/opus-tools.js';

/** Seconds players drop at the start (pre-skip 312, libopus's delay). */
const PRE = 312 / 48000;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-ogg-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function tone(seconds: number, hz = 1000): Float32Array {
  const out = new Float32Array(Math.round(seconds * 48000));
  for (let i = 0; i < out.length; i++) out[i] = 0.5 * Math.sin((2 * Math.PI * hz * i) / 48000);
  return out;
}

interface Page {
  flags: number;
  granule: bigint;
  sequence: number;
  serial: number;
  packets: number;
}

/** Bit-by-bit CRC (RFC 3533 §6), independent of the writer's table. */
function crcBitwise(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 24;
    for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
    crc >>>= 0;
  }
  return crc >>> 0;
}

/** Parses every page, checking its CRC. */
function pages(file: Buffer): Page[] {
  const out: Page[] = [];
  for (let o = 0; o < file.length; ) {
    expect(file.toString('ascii', o, o + 4)).toBe('OggS');
    const n = file[o + 26];
    let body = 0;
    let packets = 0;
    for (let k = 0; k < n; k++) {
      body += file[o + 27 + k];
      if (file[o + 27 + k] < 255) packets++;
    }
    const page = Buffer.from(file.subarray(o, o + 27 + n + body));
    const crc = page.readUInt32LE(22);
    page.writeUInt32LE(0, 22);
    expect(crcBitwise(page)).toBe(crc);
    out.push({ flags: page[5], granule: page.readBigInt64LE(6), serial: page.readUInt32LE(14), sequence: page.readUInt32LE(18), packets });
    o += page.length;
  }
  return out;
}

async function record(path: string, frames: readonly EncodedFrame[], channels: 1 | 2 = 1, startPosition?: number) {
  const rec = await OggOpusRecorder.start({ path, name: 'x.opus', channels, startPosition });
  for (const f of frames) rec.write(f);
  return rec.stop();
}

describe('Ogg Opus writer', () => {
  it('writes pages opusinfo accepts, with valid CRCs, sequence numbers, BOS/EOS and the OpusHead/OpusTags headers', async () => {
    const path = join(dir, 'tone.opus');
    const info = await record(path, encodeOpusFrames(tone(3), 1));
    const text = await opusinfo(path);
    expect(text).toMatch(/Pre-skip: 312/);
    expect(text).toMatch(/Channels: 1/);
    expect(text).toMatch(/Encoded with earshot/);
    const file = await readFile(path);
    const ps = pages(file);
    expect(ps[0].flags).toBe(0x02);
    expect(ps[0].packets).toBe(1);
    expect(file.toString('ascii', 28, 36)).toBe('OpusHead');
    expect(ps.slice(1).every((p) => (p.flags & 0x02) === 0)).toBe(true);
    expect(ps[ps.length - 1].flags & 0x04).toBe(0x04);
    expect(ps.slice(0, -1).every((p) => (p.flags & 0x04) === 0)).toBe(true);
    expect(ps.map((p) => p.sequence)).toEqual(ps.map((_, i) => i));
    expect(new Set(ps.map((p) => p.serial)).size).toBe(1);
    expect(ps[ps.length - 1].granule).toBe(BigInt(3 * 48000));
    expect(info).toMatchObject({ format: 'ogg-opus', state: 'stopped', seconds: 3 - PRE, bytes: file.length, channels: 1, sampleRate: 48000, gapFrames: 0 });

    const wav = await opusdec(path);
    expect(wav.channels[0].length).toBe(3 * 48000 - 312);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThanOrEqual(2);
    expect(await readOggOpusSummary(path, file.length)).toEqual({ channels: 1, preSkip: 312, inputSampleRate: 48000, seconds: 3 - PRE });
  });

  it('keeps media time across loss and DTX gaps: granule positions count the gap, opusdec decodes to the media duration', async () => {
    const path = join(dir, 'gaps.opus');
    const all = encodeOpusFrames(tone(4), 1);
    // Packets 20–24 lost (known from RTP sequence numbers: payload null), 100–139 never sent (DTX: 800 ms without packets).
    const frames: EncodedFrame[] = all
      .filter((_, i) => i < 100 || i >= 140)
      .map((f, i) => (i >= 20 && i < 25 ? { ...f, payload: null } : f));
    const info = await record(path, frames);
    await opusinfo(path);
    const ps = pages(await readFile(path));
    // Every audio page's granule is a whole number of 20 ms frames and they grow to the media duration.
    const granules = ps.slice(2).map((p) => Number(p.granule));
    expect(granules.every((g, i) => g % 960 === 0 && (i === 0 || g > granules[i - 1]))).toBe(true);
    expect(granules[granules.length - 1]).toBe(4 * 48000);
    expect(info.seconds).toBe(4 - PRE);
    expect(info.gapFrames).toBe(40 * 960);

    const wav = await opusdec(path);
    const pcm = wav.channels[0];
    expect(pcm.length).toBe(4 * 48000 - 312);
    // The DTX gap decodes to silence at its media time, the tone resumes after it.
    const rms = (a: number, b: number) => Math.sqrt(pcm.subarray(a, b).reduce((s, x) => s + x * x, 0) / (b - a));
    // Decoded sample i is media sample i + 312.
    expect(rms(105 * 960, 135 * 960)).toBeLessThan(1e-4);
    expect(rms(145 * 960, 190 * 960)).toBeGreaterThan(0.2);
    expect(Math.abs(dominantFrequency(pcm.subarray(145 * 960), 48000) - 1000)).toBeLessThanOrEqual(2);
  });

  it('starts an explicit mid-stream recording at its first packet; stereo files for stereo streams', async () => {
    const path = join(dir, 'stereo.opus');
    const mono = tone(2);
    const stereo = new Float32Array(mono.length * 2);
    for (let i = 0; i < mono.length; i++) stereo[2 * i] = stereo[2 * i + 1] = mono[i];
    const frames = encodeOpusFrames(stereo, 2, { bitrate: 64000, startPosition: 48000 * 10 });
    const info = await record(path, frames, 2);
    expect(await opusinfo(path)).toMatch(/Channels: 2/);
    expect(info.seconds).toBe(2 - PRE);
    const wav = await opusdec(path);
    expect(wav.channels).toHaveLength(2);
    expect(wav.channels[0].length).toBe(2 * 48000 - 312);
  });

  it('leaves a playable file at every moment: a copy taken before the recording is finalized decodes', async () => {
    const path = join(dir, 'live.opus');
    const rec = await OggOpusRecorder.start({ path, name: 'live.opus', channels: 1, flushIntervalMs: 50 });
    const frames = encodeOpusFrames(tone(2), 1);
    for (const f of frames) rec.write(f);
    await new Promise((r) => setTimeout(r, 300)); // a few periodic flushes
    const copy = join(dir, 'copy.opus');
    await copyFile(path, copy);
    const wav = await opusdec(copy);
    // Everything but the last packet (held for the end-of-stream page) is on disk.
    expect(wav.channels[0].length).toBe(2 * 48000 - 960 - 312);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThanOrEqual(2);
    expect(rec.info().seconds).toBe(2 - PRE);
    await rec.stop();
    expect((await opusdec(path)).channels[0].length).toBe(2 * 48000 - 312);
  });

  it('a recording that got no audio is a valid stream that plays for 0 s', async () => {
    const path = join(dir, 'empty.opus');
    const info = await record(path, []);
    await opusinfo(path);
    expect(info.seconds).toBe(0);
    expect((await opusdec(path)).channels[0].length).toBe(0);
    const ps = pages(await readFile(path));
    expect(ps).toHaveLength(3);
    expect(ps[2].flags & 0x04).toBe(0x04);
  });

  it('when the disk falls behind, memory stays bounded: packets become empty frames that keep the timeline', async () => {
    const path = join(dir, 'slow.opus');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const openFile = async (p: string): Promise<OggFileHandle> => {
      const fh = await open(p, 'wx');
      let writes = 0;
      return {
        // The header pages go through; then the disk stalls until released.
        async write(buffer, offset, length, position) {
          if (writes++ > 0) await gate;
          return fh.write(buffer, offset, length, position);
        },
        truncate: (n) => fh.truncate(n),
        close: () => fh.close(),
      };
    };
    const writer = await OggOpusWriter.create(path, { channels: 1, openFile, pageBytes: 500, maxPendingBytes: 2000 });
    const frames = encodeOpusFrames(tone(4), 1);
    for (const f of frames) writer.appendPacket(f.payload!, 960);
    expect(writer.droppedBytes).toBeGreaterThan(0);
    release();
    await writer.close();
    await opusinfo(path);
    const wav = await opusdec(path);
    expect(wav.channels[0].length).toBe(4 * 48000 - 312);
    expect(writer.durationSeconds).toBe(4 - PRE);
  });

  it('on a full disk keeps whole pages, reports once, and the file still plays', async () => {
    const path = join(dir, 'full.opus');
    const limit = 6000;
    const openFile = async (p: string): Promise<OggFileHandle> => {
      const fh = await open(p, 'wx');
      return {
        async write(buffer, offset, length, position) {
          const room = limit - position;
          if (room <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return fh.write(buffer, offset, Math.min(length, room), position);
        },
        truncate: (n) => fh.truncate(n),
        close: () => fh.close(),
      };
    };
    const errors: Error[] = [];
    const writer = await OggOpusWriter.create(path, { channels: 1, openFile, onError: (e) => errors.push(e), pageBytes: 1000 });
    const packets = encodeOpusFrames(tone(5), 1);
    for (const f of packets) writer.appendPacket(f.payload!, 960);
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    // A packet after the failure never reaches the disk: counted as dropped.
    const before = writer.droppedBytes;
    writer.appendPacket(packets[0].payload!, 960);
    expect(writer.droppedBytes - before).toBe(packets[0].payload!.length);
    await writer.close();
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOSPC');
    const file = await readFile(path);
    expect(file.length).toBe(writer.bytesWritten);
    expect(file.length).toBeLessThanOrEqual(limit);
    const ps = pages(file); // whole pages only, CRCs valid
    expect((Number(ps[ps.length - 1].granule) - 312) / 48000).toBe(writer.durationSeconds);
    expect(writer.durationSeconds).toBeGreaterThan(0.5);
    expect(writer.droppedBytes).toBeGreaterThan(0);
    const wav = await opusdec(path);
    expect(wav.channels[0].length).toBe(Math.round(writer.durationSeconds * 48000));
  });
});
