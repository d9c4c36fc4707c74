/**
 * WAV files written for tests: a 16-bit PCM header, and files of any length
 * that cost no disk (the audio after `head` is a hole: the file system's
 * zeros, read and decoded as any other samples).
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
