/**
 * What the recordings listing needs from an Ogg Opus file without decoding
 * it: channels, pre-skip and input sample rate from OpusHead (first page), and the duration from
 * the granule position of the last complete page (RFC 7845 §4: granule minus
 * pre-skip is the sample count at 48 kHz). Only the head and the last 64 KiB
 * are read; a page still being written (bad CRC or cut short) is skipped.
 */
import { open } from 'node:fs/promises';
import { oggCrc, OPUS_GRANULE_RATE } from './ogg-opus-writer.js';

export interface OggOpusSummary {
  channels: number;
  preSkip: number;
  /** OpusHead's input sample rate: the rate of the audio that was encoded (players decode at 48 kHz); 48000 when the field is 0. */
  inputSampleRate: number;
  seconds: number;
}

const TAIL = 64 * 1024;

export async function readOggOpusSummary(path: string, size: number): Promise<OggOpusSummary | undefined> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return undefined;
  try {
    const head = Buffer.alloc(Math.min(size, 4096));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const first = pageAt(head.subarray(0, bytesRead), 0);
    if (!first || first.body.length < 19 || first.body.toString('ascii', 0, 8) !== 'OpusHead') return undefined;
    const channels = first.body[9];
    const preSkip = first.body.readUInt16LE(10);
    const inputSampleRate = first.body.readUInt32LE(12) || OPUS_GRANULE_RATE;
    const from = Math.max(0, size - TAIL);
    const tail = Buffer.alloc(size - from);
    const got = (await fh.read(tail, 0, tail.length, from)).bytesRead;
    const buf = tail.subarray(0, got);
    let granule = BigInt(preSkip);
    // The last complete page with a granule position (an empty end page has none: -1).
    for (let i = buf.lastIndexOf('OggS'); i >= 0; i = i > 0 ? buf.lastIndexOf('OggS', i - 1) : -1) {
      const page = pageAt(buf, i);
      if (page && page.granule >= 0n) {
        granule = page.granule;
        break;
      }
    }
    const samples = Number(granule) - preSkip;
    return { channels, preSkip, inputSampleRate, seconds: Math.max(0, samples) / OPUS_GRANULE_RATE };
  } finally {
    await fh.close().catch(() => {});
  }
}

/** The page starting at `offset` if it is whole and its CRC matches. */
function pageAt(buf: Buffer, offset: number): { granule: bigint; body: Buffer } | undefined {
  if (offset + 27 > buf.length || buf.toString('ascii', offset, offset + 4) !== 'OggS') return undefined;
  const segments = buf[offset + 26];
  if (offset + 27 + segments > buf.length) return undefined;
  let body = 0;
  for (let k = 0; k < segments; k++) body += buf[offset + 27 + k];
  const end = offset + 27 + segments + body;
  if (end > buf.length) return undefined;
  const page = Buffer.from(buf.subarray(offset, end));
  const crc = page.readUInt32LE(22);
  page.writeUInt32LE(0, 22);
  if (oggCrc(page) !== crc) return undefined;
  return { granule: page.readBigInt64LE(6), body: page.subarray(27 + segments) };
}
