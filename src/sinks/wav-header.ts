/**
 * The header of the WAV files earshot records, written and read back.
 *
 * A RIFF file's sizes are 32 bits, so a plain WAV holds at most 4 GiB (48 kHz:
 * 12.4 h of s16 mono, 3.1 h of f32 stereo). Recordings are written as EBU Tech
 * 3306 recommends for files that may outgrow that: a plain RIFF WAV with a
 * 28-byte `JUNK` chunk first, which every WAV reader skips, and which becomes
 * the `ds64` chunk of an RF64 file (64-bit sizes) once the file passes 4 GiB.
 * Only the header changes, in place: the audio never moves.
 *
 * Layout (s16, 80 bytes; f32 adds cbSize and a `fact` chunk, 94 bytes):
 *   RIFF|RF64 size WAVE, JUNK|ds64 28 (riff size, data size, sample count: u64; table 0),
 *   fmt  16|18 …, [fact 4 frames], data size
 */
/** "s16" (16-bit PCM) or "f32" (32-bit IEEE float). */
export type WavSampleFormat = 's16' | 'f32';

/** Bytes of the JUNK / ds64 chunk's body (EBU 3306, with no table). */
const DS64_BODY = 28;
/** What a 32-bit size says in an RF64 file: "see ds64". */
const SEE_DS64 = 0xffffffff;

export interface WavLayout {
  sampleFormat: WavSampleFormat;
  channels: number;
  sampleRate: number;
}

/** Header bytes of a recording in `format`. */
export function wavHeaderBytes(format: WavSampleFormat): number {
  return format === 's16' ? 80 : 94;
}

/** Whether a file with this header and `dataBytes` of audio needs RF64 (its RIFF size would not fit 32 bits). */
export function needsRf64(headerBytes: number, dataBytes: number): boolean {
  return headerBytes - 8 + dataBytes > SEE_DS64;
}

/** The header of a recording holding `dataBytes` of audio: RIFF with a JUNK placeholder, or RF64 once it must be. */
export function wavHeader(layout: WavLayout, dataBytes: number): Buffer {
  const bytesPerSample = layout.sampleFormat === 's16' ? 2 : 4;
  const blockAlign = layout.channels * bytesPerSample;
  const size = wavHeaderBytes(layout.sampleFormat);
  const rf64 = needsRf64(size, dataBytes);
  const h = Buffer.alloc(size);
  h.write(rf64 ? 'RF64' : 'RIFF', 0, 'ascii');
  h.writeUInt32LE(rf64 ? SEE_DS64 : size - 8 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  h.write(rf64 ? 'ds64' : 'JUNK', 12, 'ascii');
  h.writeUInt32LE(DS64_BODY, 16);
  if (rf64) {
    writeDs64(h, 20, size - 8 + dataBytes, dataBytes, dataBytes / blockAlign);
    h.writeUInt32LE(0, 20 + 24); // no table of other chunks' sizes
  }
  let o = 20 + DS64_BODY;
  h.write('fmt ', o, 'ascii');
  h.writeUInt32LE(layout.sampleFormat === 's16' ? 16 : 18, o + 4);
  h.writeUInt16LE(layout.sampleFormat === 's16' ? 1 : 3, o + 8); // WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT
  h.writeUInt16LE(layout.channels, o + 10);
  h.writeUInt32LE(layout.sampleRate, o + 12);
  h.writeUInt32LE(layout.sampleRate * blockAlign, o + 16);
  h.writeUInt16LE(blockAlign, o + 20);
  h.writeUInt16LE(bytesPerSample * 8, o + 22);
  o += 24;
  if (layout.sampleFormat === 'f32') {
    h.writeUInt16LE(0, o); // cbSize
    h.write('fact', o + 2, 'ascii');
    h.writeUInt32LE(4, o + 6);
    h.writeUInt32LE(rf64 ? SEE_DS64 : dataBytes / blockAlign, o + 10);
    o += 14;
  }
  h.write('data', o, 'ascii');
  h.writeUInt32LE(rf64 ? SEE_DS64 : dataBytes, o + 4);
  return h;
}

/** The three 64-bit sizes of a ds64 chunk's body at `at` (its table, if any, is left as it is). */
function writeDs64(h: Buffer, at: number, riffSize: number, dataBytes: number, frames: number): void {
  h.writeBigUInt64LE(BigInt(riffSize), at);
  h.writeBigUInt64LE(BigInt(dataBytes), at + 8);
  h.writeBigUInt64LE(BigInt(frames), at + 16);
}

/** Where a WAV file's sizes are, as read from the start of the file. */
export interface WavHeaderInfo {
  rf64: boolean;
  channels: number;
  sampleRate: number;
  byteRate: number;
  blockAlign: number;
  /** Offset of the `ds64` chunk's body, or of a JUNK chunk first in the file that can become one. */
  ds64At?: number;
  /** Offset of the `fact` chunk's sample count. */
  factAt?: number;
  /** Offset of the `data` chunk's size field; the audio starts 4 bytes later. */
  dataSizeAt: number;
  /** The data size the header gives (an RF64 file's from ds64). */
  dataBytes: number;
}

/**
 * Reads a RIFF or RF64 WAVE header from `head` (the first bytes of the file,
 * enough to reach the `data` chunk's header), or undefined for one it cannot
 * read.
 */
export function readWavHeaderInfo(head: Buffer): WavHeaderInfo | undefined {
  const container = head.length >= 12 ? head.toString('ascii', 0, 4) : '';
  if ((container !== 'RIFF' && container !== 'RF64') || head.toString('ascii', 8, 12) !== 'WAVE') return undefined;
  const rf64 = container === 'RF64';
  let fmt: Pick<WavHeaderInfo, 'channels' | 'sampleRate' | 'byteRate' | 'blockAlign'> | undefined;
  let ds64At: number | undefined;
  let factAt: number | undefined;
  for (let o = 12; o + 8 <= head.length; ) {
    const id = head.toString('ascii', o, o + 4);
    const size = head.readUInt32LE(o + 4);
    if (id === 'ds64' && rf64 && size >= DS64_BODY && o + 8 + DS64_BODY <= head.length) ds64At = o + 8;
    else if (id === 'JUNK' && !rf64 && o === 12 && size >= DS64_BODY) ds64At = o + 8;
    else if (id === 'fmt ' && o + 24 <= head.length) {
      fmt = { channels: head.readUInt16LE(o + 10), sampleRate: head.readUInt32LE(o + 12), byteRate: head.readUInt32LE(o + 16), blockAlign: head.readUInt16LE(o + 20) };
    } else if (id === 'fact' && o + 12 <= head.length) factAt = o + 8;
    else if (id === 'data') {
      if (!fmt || !(fmt.byteRate > 0) || !(fmt.blockAlign > 0)) return undefined;
      if (rf64 && ds64At === undefined) return undefined;
      // An RF64 file's sizes are ds64's (as ffmpeg and libsndfile read them), whatever the 32-bit field says.
      const dataBytes = rf64 ? Number(head.readBigUInt64LE(ds64At! + 8)) : size;
      return { rf64, ...fmt, ds64At, factAt, dataSizeAt: o + 4, dataBytes };
    }
    o += 8 + size + (size & 1);
  }
  return undefined;
}

/**
 * The bytes to write at the start of the file so that its header `info`
 * covers `dataBytes` of audio: the RIFF sizes, or (past 4 GiB, when the file
 * has room for a ds64 chunk) RF64 and its ds64. Undefined when the file cannot
 * say that size (past 4 GiB without a JUNK chunk to turn into ds64).
 */
export function wavSizesPatch(head: Buffer, info: WavHeaderInfo, dataBytes: number): Buffer | undefined {
  const dataStart = info.dataSizeAt + 4;
  const rf64 = info.rf64 || needsRf64(dataStart, dataBytes);
  if (rf64 && info.ds64At === undefined) return undefined;
  const h = Buffer.from(head.subarray(0, dataStart));
  const frames = dataBytes / info.blockAlign;
  if (rf64) {
    if (!info.rf64) {
      // The JUNK placeholder becomes the ds64 chunk, with no table.
      h.write('RF64', 0, 'ascii');
      h.write('ds64', info.ds64At! - 8, 'ascii');
      h.writeUInt32LE(0, info.ds64At! + 24);
    }
    h.writeUInt32LE(SEE_DS64, 4);
    writeDs64(h, info.ds64At!, dataStart - 8 + dataBytes, dataBytes, frames);
  } else h.writeUInt32LE(dataStart - 8 + dataBytes, 4);
  if (info.factAt !== undefined) h.writeUInt32LE(rf64 ? SEE_DS64 : frames, info.factAt);
  h.writeUInt32LE(rf64 ? SEE_DS64 : dataBytes, info.dataSizeAt);
  return h;
}
