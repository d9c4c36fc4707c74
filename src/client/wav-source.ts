/**
 * Decodes WAV files (any PCM or float encoding, A-law, µ-law or mono IMA ADPCM; any rate, any
 * channel count) for the Opus encoder: `openWav` parses a file's header, `decodeChunk` decodes
 * its data chunk a stretch at a time, and the mixing and resampling turn the stretches into
 * 48 kHz float PCM with 1 or 2 channels. wav-stream.ts reads a file with them, a stretch at a
 * time (`openWavStream`) or whole (`readWavSource`).
 */
import { open, type FileHandle } from 'node:fs/promises';
import wavefile from 'wavefile';
import { SpeexResampler } from '../../wasm/speex.js';
import { errors } from '../errors.js';
import { failOption } from '../option-checks.js';

export interface PcmSource {
  sampleRate: 48000;
  /** One array per channel (1 or 2), −1..1. */
  channels: Float32Array[];
}

const unreadable = errors.WAV_UNREADABLE;

/** `EARSHOT_OPTION_INVALID` unless `channels` is 1, 2 or not given: an encoder of other counts failed with a bare number. */
export function checkChannels(channels: unknown): void {
  if (channels !== undefined && channels !== 1 && channels !== 2) failOption('channels', '1 or 2', channels);
}

/** 1 for a mono file, 2 for any other. */
export function defaultChannels(wav: WavFile): 1 | 2 {
  return wav.fmt.numChannels === 1 ? 1 : 2;
}

/** The first `frames` of each plane. */
export function capFrames(planes: Float32Array[], frames: number): Float32Array[] {
  return frames < planes[0].length ? planes.map((p) => p.subarray(0, frames)) : planes;
}

/** The file's channels as they are (one or two), or more than two mixed down to stereo. */
export function toStereo(planes: Float32Array[], fmt: WavFormat): Float32Array[] {
  return planes.length > 2 ? downmix(planes, fmt.audioFormat === EXTENSIBLE ? fmt.dwChannelMask : 0) : planes;
}

/** How the data chunk's bytes decode: linear PCM or float read directly, or expanded by wavefile's codecs. */
type Encoding = 'linear' | 'companded' | 'ima';

/** An open WAV file whose header has been read: its format, and where its audio is. */
export interface WavFile {
  readonly file: string;
  readonly fmt: Readonly<WavFormat>;
  /** The format code: the header's, or WAVE_FORMAT_EXTENSIBLE's sub-format. */
  readonly code: number;
  readonly encoding: Encoding;
  readonly bigEndian: boolean;
  /** Bytes of the data chunk the file holds (fewer than the chunk declares when the file was cut short). */
  readonly dataBytes: number;
  /**
   * Seconds of audio the data chunk declares that the file does not hold: it
   * was cut short (a copy or download that stopped). 0 when it is whole, or
   * when its header gives no size (a WAV written to a pipe: `UNKNOWN_SIZES`).
   */
  readonly missingSeconds: number;
  /** Frames (samples per channel, at the file's rate) the data chunk decodes to. */
  readonly frames: number;
  /** The bytes to read the data chunk in: one frame's, or one IMA ADPCM block's. */
  readonly unitBytes: number;
  /** Frames one unit decodes to. */
  readonly unitFrames: number;
  /** A WAVE file of the header alone, for wavefile's codecs. */
  readonly header: Buffer;
  /**
   * `length` bytes of the data chunk from `offset` (into `into` when given and large enough).
   * `EARSHOT_WAV_READ_FAILED` when the read fails or the file no longer has them: it was
   * truncated after it was opened.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Where a file's bytes come from: positioned reads of a regular file, or a pipe or device read whole. */
interface ByteSource {
  readonly size: number;
  /** Up to `length` bytes from `at`: fewer only at the end of the file. */
  read(at: number, length: number, into?: Buffer): Promise<Uint8Array>;
  /** The file's size now, for saying how it changed since it was opened. */
  sizeNow(): Promise<number>;
  close(): Promise<void>;
}

function fileBytes(handle: FileHandle, size: number): ByteSource {
  return {
    size,
    async read(at, length, into) {
      const buf = into && into.length >= length ? into : Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(buf, got, length - got, at + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    },
    sizeNow: async () => (await handle.stat()).size,
    close: () => handle.close(),
  };
}

/** A pipe or device (`/dev/stdin`) cannot be read at an offset: it is read whole, as every file once was. */
async function wholeBytes(handle: FileHandle): Promise<ByteSource> {
  let all: Buffer;
  try {
    all = await handle.readFile();
  } finally {
    await handle.close();
  }
  return { size: all.length, read: async (at, length) => all.subarray(at, at + length), sizeNow: async () => all.length, close: async () => undefined };
}

/**
 * Opens `file` and reads its header: `EARSHOT_WAV_UNREADABLE` saying why when it is missing, not
 * a WAV file, or of an encoding, rate or channel count earshot cannot send, or holds no audio.
 * The audio is read later, with `read()`; the caller closes the file.
 */
export async function openWav(file: string): Promise<WavFile> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw unreadable(file, 'no such file', 'Check the path.');
    if (code === 'EISDIR') throw unreadable(file, 'it is a directory', 'Give the path of a WAV file.'); // opening one fails so on Windows
    if (code === 'EACCES' || code === 'EPERM') throw unreadable(file, 'permission denied', 'Make the file readable by this user.');
    throw unreadable(file, (e as Error).message, '');
  }
  let bytes: ByteSource;
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new IsADirectory();
    bytes = stat.isFile() ? fileBytes(handle, stat.size) : await wholeBytes(handle);
  } catch (e) {
    await handle.close().catch(() => undefined);
    if (e instanceof IsADirectory) throw unreadable(file, 'it is a directory', 'Give the path of a WAV file.');
    throw unreadable(file, (e as Error).message, '');
  }
  try {
    return await parseWav(file, bytes);
  } catch (e) {
    await bytes.close();
    throw e;
  }
}

async function parseWav(file: string, bytes: ByteSource): Promise<WavFile> {
  const head = Buffer.from(await bytes.read(0, 12));
  const container = head.toString('latin1', 0, 4);
  if (!((container === 'RIFF' || container === 'RIFX' || container === 'RF64') && head.toString('latin1', 8, 12) === 'WAVE')) {
    throw unreadable(file, 'not a WAV file (it does not begin as one: RIFF, RIFX or RF64, then WAVE)');
  }
  const bigEndian = container === 'RIFX';
  const chunks = await wavChunks(bytes, bigEndian, container === 'RF64');
  let wav: InstanceType<typeof wavefile.WaveFile>;
  let header: Buffer;
  try {
    if (chunks.fmt && chunks.fmt.length < 16) throw new Error(`its "fmt " chunk has ${chunks.fmt.length} bytes, fewer than 16`);
    header = headerOnly(head, chunks, bigEndian);
    wav = new wavefile.WaveFile(header);
  } catch (e) {
    throw unreadable(file, `not a WAV file (${(e as Error).message})`);
  }
  // Copy the format out: wavefile's codecs (fromALaw() …) rebuild the file and reset this object.
  const fmt = { ...(wav.fmt as WavFormat) };
  if (!(fmt.sampleRate >= 1000 && fmt.sampleRate <= 384000)) throw unreadable(file, `sample rate ${fmt.sampleRate} Hz is out of range (1000–384000 Hz)`, 'Resample it, e.g. `sox in.wav -r 48000 out.wav`.');
  const code = fmt.audioFormat === EXTENSIBLE ? (fmt.subformat[0] ?? 0) : fmt.audioFormat;
  let encoding: Encoding;
  try {
    encoding = encodingOf(fmt, code);
  } catch (e) {
    // Unsupported's message says what to do with this file (convert it, and how).
    if (e instanceof Unsupported) throw unreadable(file, e.message, '');
    throw unreadable(file, `unsupported encoding (${(e as Error).message})`);
  }
  const dataStart = chunks.data?.start ?? 0;
  const dataBytes = chunks.data?.bytes ?? 0;
  const channels = fmt.numChannels;
  /** Frames in `bytes` of the data chunk. */
  let framesIn: (bytes: number) => number;
  let unitBytes: number;
  let unitFrames: number;
  if (encoding === 'linear') {
    unitBytes = Math.ceil(fmt.bitsPerSample / 8) * channels; // laid out by the bits, whatever the block size says (see decodeLinear)
    unitFrames = 1;
    framesIn = (bytes) => Math.floor(bytes / unitBytes);
  } else if (encoding === 'companded') {
    unitBytes = channels; // one byte a sample, each expanded to 16 bits
    unitFrames = 1;
    framesIn = (bytes) => Math.floor(bytes / channels);
  } else {
    // wavefile's IMA ADPCM decoder gives 2 × blockAlign − 6 samples a block (the header's sample
    // twice) and leaves the last block silent, in an output of two samples a byte; the fact chunk
    // says how many are audio. The stream reproduces exactly that (see decodeChunk).
    unitBytes = fmt.blockAlign;
    unitFrames = 2 * fmt.blockAlign - 6;
    const fact = wav.fact as { chunkId: string; dwSampleLength: number };
    const audio = fact.chunkId === 'fact' ? fact.dwSampleLength : Infinity;
    framesIn = (bytes) => Math.min(2 * bytes, audio);
  }
  const frames = framesIn(dataBytes);
  if (!(frames > 0)) throw unreadable(file, 'it holds no audio', 'Give a WAV file with samples in its data chunk.');
  const secondsAt = (offset: number) => ((offset / dataBytes) * frames) / fmt.sampleRate;
  const declared = chunks.data?.declared;
  return {
    file,
    fmt,
    code,
    encoding,
    bigEndian,
    dataBytes,
    missingSeconds: declared === undefined ? 0 : Math.max(0, framesIn(declared) - frames) / fmt.sampleRate,
    frames,
    unitBytes,
    unitFrames,
    header,
    async read(offset, length, into) {
      let got: Uint8Array;
      try {
        got = await bytes.read(dataStart + offset, length, into);
      } catch (e) {
        throw errors.WAV_READ_FAILED(file, secondsAt(offset), (e as Error).message);
      }
      if (got.length < length) {
        const now = await bytes.sizeNow().then(String, () => 'fewer');
        throw errors.WAV_READ_FAILED(file, secondsAt(offset + got.length), `it now has ${now} bytes, ${bytes.size} when it was opened: it was truncated while being read`);
      }
      return got;
    },
    close: () => bytes.close(),
  };
}

interface Chunks {
  fmt?: Uint8Array;
  fact?: Uint8Array;
  /** Where the data chunk's bytes start, and how many: as many as its header declares (a RIFF pad byte after an odd size is not audio), or as many as the file has when it was cut short. */
  data?: { start: number; bytes: number; declared: number | undefined };
}

/**
 * Data sizes that say "not known" (a WAV written to a pipe, which cannot go back to its header):
 * 0xFFFFFFFF (ffmpeg, and RF64 without a ds64 size), 0x7FFFF000 (sox's MS_UNSPEC), and an
 * all-ones ds64 size.
 */
const UNKNOWN_SIZES = new Set([0xffffffff, 0x7ffff000, Number(0xffffffffffffffffn)]);

/** Most bytes of a `fmt ` or `fact` chunk kept: wavefile reads 40 of one and 4 of the other. */
const MAX_HEADER_CHUNK = 65536;

/**
 * The first `fmt `, `fact` and `data` chunks of a RIFF, RF64 or big-endian RIFX WAVE file, found
 * by walking its chunks by their sizes and pad bytes, reading only their headers (and the small
 * fmt and fact chunks). wavefile walks them too, but in a buffer of the whole file; it read the
 * rest of the file after a LIST chunk as that chunk's contents, and refused valid files with two
 * LIST chunks ("Cannot read properties of undefined (reading 'start')"); and it counts an
 * odd-sized data chunk's pad byte as audio (a full-scale click at the end of 8-bit files). An
 * RF64 file's data chunk says 0xFFFFFFFF bytes: its real size is in the ds64 chunk (EBU 3306).
 * The walk stops once it has what decoding needs.
 */
async function wavChunks(bytes: ByteSource, bigEndian: boolean, rf64: boolean): Promise<Chunks> {
  const found: Chunks = {};
  // Chunk headers are read through a window of the file: one read for a usual header, not one per chunk.
  let window: { at: number; bytes: Uint8Array } = { at: 0, bytes: new Uint8Array(0) };
  const at = async (offset: number, length: number): Promise<Buffer> => {
    if (offset < window.at || offset + length > window.at + window.bytes.length) window = { at: offset, bytes: await bytes.read(offset, Math.max(length, 65536)) };
    const b = window.bytes.subarray(offset - window.at, offset - window.at + length);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  };
  let ds64DataSize: number | undefined;
  for (let offset = 12; offset + 8 <= bytes.size; ) {
    const head = await at(offset, 8);
    const id = head.toString('latin1', 0, 4);
    let size = bigEndian ? head.readUInt32BE(4) : head.readUInt32LE(4);
    if (rf64 && id === 'ds64' && ds64DataSize === undefined) {
      const ds64 = await at(offset + 8, 16);
      if (ds64.length === 16) ds64DataSize = Number(ds64.readBigUInt64LE(8));
    }
    if (rf64 && id === 'data' && size === 0xffffffff && ds64DataSize !== undefined) size = ds64DataSize;
    const available = Math.min(size, bytes.size - offset - 8);
    if ((id === 'fmt ' && !found.fmt) || (id === 'fact' && !found.fact)) found[id === 'fmt ' ? 'fmt' : 'fact'] = Uint8Array.from(await at(offset + 8, Math.min(available, MAX_HEADER_CHUNK)));
    if (id === 'data') found.data ??= { start: offset + 8, bytes: available, declared: UNKNOWN_SIZES.has(size) ? undefined : size };
    offset += 8 + size + (size % 2);
    if (found.fmt && found.data && (found.fact || formatCode(found.fmt, bigEndian) !== IMA_ADPCM)) break; // only IMA ADPCM needs the fact chunk
  }
  return found;
}

/** The format code of a `fmt ` chunk's bytes (WAVE_FORMAT_EXTENSIBLE's sub-format), for knowing whether a fact chunk matters. */
function formatCode(fmt: Uint8Array, bigEndian: boolean): number {
  const b = Buffer.from(fmt.buffer, fmt.byteOffset, fmt.byteLength);
  if (b.length < 2) return 0;
  const tag = bigEndian ? b.readUInt16BE(0) : b.readUInt16LE(0);
  if (tag !== EXTENSIBLE) return tag;
  return b.length >= 28 ? (bigEndian ? b.readUInt32BE(24) : b.readUInt32LE(24)) : 0;
}

/**
 * A WAVE file of `chunks`' format alone (its `fmt ` and `fact`, and an empty `data`), for wavefile
 * to read the format from: the samples are decoded from the data chunk's bytes directly, or
 * handed to wavefile's codecs as its `data.samples`.
 */
function headerOnly(head: Buffer, chunks: Chunks, bigEndian: boolean): Buffer {
  // An RF64 header without its ds64 chunk, which wavefile requires, is a RIFF one: its sizes are the real ones.
  const parts: Buffer[] = [head.toString('latin1', 0, 4) === 'RF64' ? Buffer.concat([Buffer.from('RIFF'), head.subarray(4, 12)]) : head.subarray(0, 12)];
  for (const [id, bytes] of [['fmt ', chunks.fmt], ['fact', chunks.fact], ['data', chunks.data && new Uint8Array(0)]] as const) {
    if (!bytes) continue;
    const chunkHead = Buffer.alloc(8);
    chunkHead.write(id, 'latin1');
    if (bigEndian) chunkHead.writeUInt32BE(bytes.length, 4);
    else chunkHead.writeUInt32LE(bytes.length, 4);
    parts.push(chunkHead, Buffer.from(bytes), Buffer.alloc(bytes.length % 2));
  }
  return Buffer.concat(parts);
}

interface WavFormat {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  bitsPerSample: number;
  blockAlign: number;
  /** WAVE_FORMAT_EXTENSIBLE: which speaker each channel feeds (bit i set: the next channel is speaker i; 0: unassigned). */
  dwChannelMask: number;
  /** WAVE_FORMAT_EXTENSIBLE: the sub-format GUID as four 32-bit words; the first is the format code. */
  subformat: number[];
}

const PCM = 1;
const IEEE_FLOAT = 3;
const ALAW = 6;
const MULAW = 7;
const IMA_ADPCM = 0x11;
const EXTENSIBLE = 0xfffe;

/** Names of the WAVE format codes users meet (RFC 2361 and mmreg.h), for saying which one a file has. */
const FORMAT_NAMES: Record<number, string> = {
  [PCM]: 'PCM',
  0x2: 'MS ADPCM',
  [IEEE_FLOAT]: 'IEEE float',
  [ALAW]: 'A-law',
  [MULAW]: 'µ-law',
  [IMA_ADPCM]: 'IMA ADPCM',
  0x22: 'TrueSpeech',
  0x31: 'GSM 6.10',
  0x40: 'G.721 ADPCM',
  0x50: 'MPEG audio',
  0x55: 'MP3',
  0x161: 'Windows Media Audio',
  0x2000: 'AC-3',
  0xf1ac: 'FLAC',
};

function formatName(code: number): string {
  return `format 0x${code.toString(16).toUpperCase().padStart(4, '0')}${FORMAT_NAMES[code] ? ` (${FORMAT_NAMES[code]})` : ''}`;
}

const TO_PCM = 'convert it to PCM, e.g. `sox in.wav -e signed-integer out.wav`';

/** A file earshot cannot decode; the message says which encoding it has and what to do. */
class Unsupported extends Error {}

/** The path names a directory (read as a file, it fails with a bare `EISDIR`). */
class IsADirectory extends Error {}

/**
 * How the file's data chunk decodes, or `Unsupported`. Linear PCM and float are read straight
 * from the data chunk's bytes; A-law, µ-law and mono IMA ADPCM are expanded by wavefile's codecs
 * first. Anything else is refused by name: wavefile's general conversion decoded MS ADPCM as IMA
 * ADPCM (noise, 6 dB too loud) and failed on others with "Invalid typed array length: Infinity".
 * Checked when the file is opened, before anything is sent.
 */
function encodingOf(fmt: WavFormat, code: number): Encoding {
  const channels = fmt.numChannels;
  if (!(channels >= 1)) throw new Unsupported('its header says it has no channels');
  if (code === PCM || code === IEEE_FLOAT) {
    checkLinear(code, fmt.bitsPerSample);
    return 'linear';
  }
  const companded = (code === ALAW || code === MULAW) && fmt.bitsPerSample === 8;
  // wavefile's IMA ADPCM decoder reads one channel of 4-bit codes; a stereo file came out as noise.
  const ima = code === IMA_ADPCM && fmt.bitsPerSample === 4 && channels === 1;
  if (!companded && !ima) {
    const detail = code === IMA_ADPCM ? ` with ${channels} channels of ${fmt.bitsPerSample}-bit codes (earshot reads mono 4-bit)` : '';
    throw new Unsupported(`${formatName(code)}${detail} is not supported; ${TO_PCM}`);
  }
  return companded ? 'companded' : 'ima';
}

/** Linear PCM of 1–32 bits, float of 32 or 64, or `Unsupported`: 64-bit integers read as floats were NaN and Infinity. */
function checkLinear(code: number, bits: number): void {
  const float = code === IEEE_FLOAT;
  if (float ? bits !== 32 && bits !== 64 : !(bits >= 1 && bits <= 32)) {
    const what = !float && bits === 64 ? '64-bit integer PCM' : `${formatName(code)} with ${bits}-bit samples`;
    const todo = !float && bits === 64 ? 'convert it to 32-bit, e.g. `ffmpeg -i in.wav -c:a pcm_s32le out.wav`' : TO_PCM;
    throw new Unsupported(`${what} is not supported; ${todo}`);
  }
}

/**
 * Consecutive bytes of `wav`'s data chunk (whole frames, or whole IMA ADPCM blocks) as −1..1
 * floats, one array per channel of the file. `last`: they end the data chunk. Every encoding
 * decodes a sample, or an ADPCM block, on its own, so a file decoded a stretch at a time gives
 * exactly what it gives decoded whole, with one exception made up for here: wavefile's IMA ADPCM
 * decoder leaves the last block it is given silent (as it does the file's last), so a stretch
 * that does not end the file is given one block of silence more and all of its own are decoded.
 */
export function decodeChunk(wav: WavFile, bytes: Uint8Array, last: boolean): Float32Array[] {
  const { fmt, code } = wav;
  if (wav.encoding === 'linear') return decodeLinear(bytes, { code, numChannels: fmt.numChannels, bitsPerSample: fmt.bitsPerSample }, wav.bigEndian);
  const codec = new wavefile.WaveFile(wav.header);
  const blocks = wav.encoding === 'ima' && !last ? Math.floor(bytes.length / wav.unitBytes) : 0;
  (codec.data as { samples: Uint8Array }).samples = blocks ? Buffer.concat([bytes, new Uint8Array(wav.unitBytes)]) : bytes;
  if (code === ALAW) codec.fromALaw();
  else if (code === MULAW) codec.fromMuLaw();
  else codec.fromIMAADPCM();
  // Now 16-bit PCM, in the file's byte order.
  const planes = decodeLinear((codec.data as { samples: Uint8Array }).samples, { code: PCM, numChannels: fmt.numChannels, bitsPerSample: 16 }, codec.container === 'RIFX');
  return blocks ? capFrames(planes, blocks * wav.unitFrames) : planes;
}

/**
 * Linear PCM (1–32 bits) and float (32, 64-bit) from the data chunk's bytes. A sample takes whole
 * bytes: one of fewer bits is left-justified in them (12-bit audio in 16-bit containers, 20 in
 * 24), so it is scaled by its container; scaled by its own bits, such audio came out 16 or 8 times
 * too loud. The samples are laid out by the bits, as wavefile reads them, whatever the header's
 * block size says. Integers are scaled as wavefile's `toBitDepth('32f')` scales them
 * (by 2^(n−1)−1 above zero and 2^(n−1) below), to the same bits up to 24-bit (for 32-bit
 * integers wavefile rounds to float32 along the way and may be one step off; this is the exact
 * quotient), but wavefile takes 1–3 s for a few seconds of audio on a busy machine, longer than
 * sending it fast. A float sample that is not finite (NaN, ±Infinity) becomes 0: the encoder
 * would spread it over the whole packet. A partial frame at the end is left out.
 */
function decodeLinear(data: Uint8Array, fmt: Pick<WavFormat, 'numChannels' | 'bitsPerSample'> & { code: number }, bigEndian: boolean): Float32Array[] {
  const { code, numChannels: channels, bitsPerSample: bits } = fmt;
  const float = code === IEEE_FLOAT;
  const bytes = Math.ceil(bits / 8); // one sample's container
  const blockAlign = bytes * channels;
  const le = !bigEndian;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const frames = Math.floor(data.byteLength / blockAlign);
  const max = 2 ** (bytes * 8 - 1) - 1;
  const min = 2 ** (bytes * 8 - 1);
  const read: (offset: number) => number = float
    ? bits === 32
      ? (o) => view.getFloat32(o, le)
      : (o) => view.getFloat64(o, le)
    : bytes === 1
      ? (o) => view.getUint8(o) - 128 // 8-bit WAV is unsigned
      : bytes === 2
        ? (o) => view.getInt16(o, le)
        : bytes === 3
          ? le
            ? (o) => ((view.getUint8(o + 2) << 24) >> 8) | (view.getUint8(o + 1) << 8) | view.getUint8(o)
            : (o) => ((view.getUint8(o) << 24) >> 8) | (view.getUint8(o + 1) << 8) | view.getUint8(o + 2)
          : (o) => view.getInt32(o, le);
  const planes = Array.from({ length: channels }, () => new Float32Array(frames));
  for (let c = 0; c < channels; c++) {
    const plane = planes[c];
    for (let i = 0, o = c * bytes; i < frames; i++, o += blockAlign) {
      const v = read(o);
      plane[i] = float ? (Number.isFinite(v) ? v : 0) : v > 0 ? v / max : v / min;
    }
  }
  return planes;
}

// Speaker positions, as WAVE_FORMAT_EXTENSIBLE's channel mask numbers them (the channels are in bit order).
const FL = 0x1;
const FR = 0x2;
const FC = 0x4;
const LFE = 0x8;
const BL = 0x10;
const BR = 0x20;
const FLC = 0x40;
const FRC = 0x80;
const BC = 0x100;
const SL = 0x200;
const SR = 0x400;
// 0x800 top centre, 0x2000 top front centre, 0x10000 top back centre: centre speakers, as FC and BC.
const TFL = 0x1000;
const TFR = 0x4000;
const TBL = 0x8000;
const TBR = 0x20000;
const LEFT = BL | FLC | SL | TFL | TBL;
const RIGHT = BR | FRC | SR | TFR | TBR;
const LAST_SPEAKER = TBR;

/**
 * The layout of a file without a channel mask (or a mask of 0, which sox writes for 3, 5 and 7
 * channels): the usual one for the count, as sox and Windows write them (quad for 4, 5.0 for 5,
 * 6.1 for 7, 7.1 for 8). Channels past 8 have no position.
 */
const DEFAULT_MASK: Record<number, number> = { 3: FL | FR | FC, 4: FL | FR | BL | BR, 5: FL | FR | FC | BL | BR, 6: FL | FR | FC | LFE | BL | BR, 7: FL | FR | FC | LFE | BC | SL | SR, 8: FL | FR | FC | LFE | BL | BR | SL | SR };

/**
 * Mixes more than two channels down to stereo, the standard way (ITU-R BS.775, as ffmpeg and
 * sox do): the front left and right as they are, every other left or right speaker at −3 dB
 * (0.707) into its side, centre speakers and channels without a position at −3 dB into both, the
 * LFE left out (a low-frequency effect, not program). Taking the first two channels lost the
 * dialogue of a film's centre channel.
 */
function downmix(planes: Float32Array[], mask: number): Float32Array[] {
  const speakers = mask || (DEFAULT_MASK[planes.length] ?? DEFAULT_MASK[8]);
  const length = planes[0].length;
  const left = new Float32Array(length);
  const right = new Float32Array(length);
  let bit = 1;
  for (const plane of planes) {
    while (bit <= LAST_SPEAKER && !(speakers & bit)) bit *= 2;
    // A mask with fewer speakers than channels leaves the rest without a position (0).
    const [l, r] = gains(bit <= LAST_SPEAKER ? bit : 0);
    bit *= 2;
    if (l) for (let i = 0; i < length; i++) left[i] += l * plane[i];
    if (r) for (let i = 0; i < length; i++) right[i] += r * plane[i];
  }
  return [left, right];
}

/** Into the left and right of a stereo downmix. */
function gains(speaker: number): [number, number] {
  if (speaker === FL) return [1, 0];
  if (speaker === FR) return [0, 1];
  if (speaker === LFE) return [0, 0];
  if (speaker & LEFT) return [Math.SQRT1_2, 0];
  if (speaker & RIGHT) return [0, Math.SQRT1_2];
  return [Math.SQRT1_2, Math.SQRT1_2]; // centre speakers, and channels without a position
}

/** One or two channels of the file's (at most two): mono the mean of them, stereo a mono file's channel twice. */
export function mixTo(planes: Float32Array[], channels: 1 | 2): Float32Array[] {
  if (channels === 2) return [planes[0], planes[1] ?? planes[0]];
  const mono = new Float32Array(planes[0].length);
  for (const p of planes) for (let i = 0; i < mono.length; i++) mono[i] += p[i] / planes.length;
  return [mono];
}

/** How many 48 kHz frames `frames` at `rate` become: the same duration, to the nearest frame. */
export function framesAt48k(frames: number, rate: number): number {
  return Math.round((frames * 48000) / rate);
}

/** Speex at quality 7. */
const newResampler = (rate: number) => new SpeexResampler(1, rate, 48000, 7);

/** Zeros fed after the input to flush the filter: its delay and a margin, at the input rate. */
const tailLength = (delay: number, rate: number) => Math.ceil(((delay + 64) * rate) / 48000);

/**
 * A file's rate to 48 kHz, a stretch at a time: the Speex filter's output does not depend on how
 * its input is split (its state carries over), so every split gives the same samples. The
 * filter's leading delay is dropped from the first outputs, `finish()` feeds zeros to flush its
 * tail, and the output is cut or padded with zeros to `frames`: the same duration, aligned with
 * the input. `loadSpeex()` first.
 */
export class StreamResampler {
  readonly #speex: SpeexResampler[];
  readonly #rate: number;
  #skip: number;
  /** Frames still to give. */
  #left: number;

  constructor(rate: number, channels: number, frames: number) {
    this.#rate = rate;
    this.#speex = Array.from({ length: channels }, () => newResampler(rate));
    this.#skip = this.#speex[0].outputLatency;
    this.#left = frames;
  }

  push(planes: Float32Array[]): Float32Array[] {
    return this.#take(planes.map((p, c) => this.#speex[c].process(p)));
  }

  /** The rest, after the input's end. */
  finish(): Float32Array[] {
    const tail = new Float32Array(tailLength(this.#speex[0].outputLatency, this.#rate));
    const out = this.#take(this.#speex.map((r) => r.process(tail)));
    if (this.#left === 0) return out;
    const padded = out.map((p) => {
      const q = new Float32Array(p.length + this.#left);
      q.set(p);
      return q;
    });
    this.#left = 0;
    return padded;
  }

  close(): void {
    for (const r of this.#speex) r.close();
  }

  #take(outs: Float32Array[]): Float32Array[] {
    const skip = Math.min(this.#skip, outs[0].length);
    const n = Math.min(this.#left, outs[0].length - skip);
    this.#skip -= skip;
    this.#left -= n;
    return outs.map((p) => p.subarray(skip, skip + n));
  }
}
