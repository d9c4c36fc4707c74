/**
 * WAV files written for tests: a 16-bit PCM header; files of any length
 * that cost no disk (the audio after `head` is a hole: the file system's
 * zeros, read and decoded as any other samples); and WAVE files built chunk
 * by chunk, for the layouts and formats a reader must take or refuse.
 */
import { open } from 'node:fs/promises';

/** The 44-byte header of a 16-bit PCM WAV whose data chunk has `dataBytes`. */
export function pcm16WavHeader(dataBytes: number, channels: 1 | 2 = 1, rate = 48000): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(Math.min(36 + dataBytes, 0xffffffff), 4);
  h.write('WAVEfmt ', 8, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // WAVE_FORMAT_PCM
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2 * channels, 28);
  h.writeUInt16LE(2 * channels, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/**
 * Writes a 16-bit PCM WAV of `dataBytes` of audio at `path`: `head` (the start of its samples, if
 * any), then silence as a hole, so that a file of gigabytes writes only its first bytes.
 */
export async function sparseWav(path: string, dataBytes: number, options: { channels?: 1 | 2; rate?: number; head?: Buffer } = {}): Promise<void> {
  const file = await open(path, 'w');
  try {
    await file.write(Buffer.concat([pcm16WavHeader(dataBytes, options.channels, options.rate), options.head ?? Buffer.alloc(0)]));
    await file.truncate(44 + dataBytes);
  } finally {
    await file.close();
  }
}

/** A chunk as RIFF (or RIFX) lays it out: id, size, the bytes, a pad byte after an odd size. */
export function chunk(id: string, bytes: Uint8Array, bigEndian = false): Buffer {
  const head = Buffer.alloc(8);
  head.write(id, 'latin1');
  if (bigEndian) head.writeUInt32BE(bytes.length, 4);
  else head.writeUInt32LE(bytes.length, 4);
  return Buffer.concat([head, bytes, Buffer.alloc(bytes.length % 2)]);
}

/** A WAVE file of these chunks: RIFF, or big-endian RIFX. */
export function wave(chunks: Buffer[], bigEndian = false): Buffer {
  const body = Buffer.concat([Buffer.from('WAVE'), ...chunks]);
  const head = Buffer.alloc(8);
  head.write(bigEndian ? 'RIFX' : 'RIFF');
  if (bigEndian) head.writeUInt32BE(body.length, 4);
  else head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** A `fmt ` chunk; with `mask`, WAVE_FORMAT_EXTENSIBLE with that channel mask and `format` as its sub-format. */
export function fmt({ format = 1, channels = 1, rate = 48000, bits = 16, blockAlign = (channels * Math.ceil(bits / 8)), mask, bigEndian = false }: { format?: number; channels?: number; rate?: number; bits?: number; blockAlign?: number; mask?: number; bigEndian?: boolean }): Buffer {
  const b = Buffer.alloc(mask === undefined ? 16 : 40);
  const u16 = (v: number, at: number) => (bigEndian ? b.writeUInt16BE(v, at) : b.writeUInt16LE(v, at));
  const u32 = (v: number, at: number) => (bigEndian ? b.writeUInt32BE(v, at) : b.writeUInt32LE(v, at));
  u16(mask === undefined ? format : 0xfffe, 0);
  u16(channels, 2);
  u32(rate, 4);
  u32(rate * blockAlign, 8);
  u16(blockAlign, 12);
  u16(bits, 14);
  if (mask !== undefined) {
    u16(22, 16);
    u16(bits, 18);
    u32(mask, 20);
    u32(format, 24); // the sub-format GUID: the format code, then KSDATAFORMAT's fixed part
    Buffer.from('000000001000800000aa00389b71', 'hex').copy(b, 28);
  }
  return chunk('fmt ', b, bigEndian);
}

/** `length` bytes of the file at `path` from `position`: a header or a stretch of a file too large to read whole (past 2 GiB). */
export async function fileBytes(path: string, position: number, length: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const b = Buffer.alloc(length);
    await file.read(b, 0, length, position);
    return b;
  } finally {
    await file.close();
  }
}
