/**
 * Reads a WAV file (any PCM or float encoding, A-law, µ-law or mono IMA ADPCM; any rate, any channel count) and
 * returns 48 kHz float PCM with 1 or 2 channels, ready for the Opus encoder.
 */
import { readFile } from 'node:fs/promises';
import wavefile from 'wavefile';
import { loadSpeex, SpeexResampler } from '../../wasm/speex.js';
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

/**
 * Loads `file` and converts it to 48 kHz with `channels` channels, 1 or 2 (default: 1 for mono
 * files, 2 otherwise; a file of more than two is mixed down to stereo first). With `seconds`,
 * only about that much of the start is decoded and resampled (at least `seconds`, exactly as
 * the whole file would give it), for sending no more than that: a 10-minute file took 12 s and
 * 1 GB of memory to send 1 s.
 */
export async function readWavSource(file: string, channels?: 1 | 2, seconds?: number): Promise<PcmSource> {
  checkChannels(channels);
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw unreadable(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  const container = buf.toString('latin1', 0, 4);
  let wav: InstanceType<typeof wavefile.WaveFile>;
  let data: Uint8Array;
  try {
    if ((container === 'RIFF' || container === 'RIFX') && buf.toString('latin1', 8, 12) === 'WAVE') {
      const chunks = wavChunks(buf, container === 'RIFX');
      if (chunks.fmt && chunks.fmt.length < 16) throw new Error(`its "fmt " chunk has ${chunks.fmt.length} bytes, fewer than 16`);
      wav = new wavefile.WaveFile(headerOnly(buf, chunks));
      data = chunks.data ?? new Uint8Array(0);
    } else {
      wav = new wavefile.WaveFile(buf); // RF64 (wavefile reads its ds64 sizes), or not a WAV file at all
      data = (wav.data as { samples: Uint8Array }).samples;
    }
  } catch (e) {
    throw unreadable(file, `not a WAV file (${(e as Error).message})`);
  }
  // Copy the format out: wavefile's codecs (fromALaw() …) rebuild the file and reset this object.
  const fmt = { ...(wav.fmt as WavFormat) };
  if (!(fmt.sampleRate >= 1000 && fmt.sampleRate <= 384000)) throw unreadable(file, `sample rate ${fmt.sampleRate} Hz is out of range`);
  let planes: Float32Array[];
  try {
    // Past `seconds`, the resampler's filter still reads ahead a few hundred samples: 0.1 s more covers it.
    const frames = seconds === undefined ? Infinity : Math.ceil((seconds + 0.1) * fmt.sampleRate);
    planes = decode(wav, data, fmt, container === 'RIFX', frames);
  } catch (e) {
    throw unreadable(file, e instanceof Unsupported ? e.message : `unsupported encoding (${(e as Error).message})`);
  }
  if (planes.length === 0 || planes[0].length === 0) throw unreadable(file, 'it holds no audio');
  const stereo = planes.length > 2 ? downmix(planes, fmt.audioFormat === EXTENSIBLE ? fmt.dwChannelMask : 0) : planes;
  return toSource(stereo, fmt.sampleRate, channels ?? (planes.length === 1 ? 1 : 2));
}

interface Chunks {
  fmt?: Uint8Array;
  fact?: Uint8Array;
  /** The data chunk's bytes: as many as its header declares (a RIFF pad byte after an odd size is not audio), or as many as the file has when it was cut short. */
  data?: Uint8Array;
}

/**
 * The first `fmt `, `fact` and `data` chunks of a RIFF (or big-endian RIFX) WAVE file, found by
 * walking its chunks by their sizes and pad bytes. wavefile walks them too, but it reads the rest
 * of the file after a LIST chunk as that chunk's contents, and refused valid files with two LIST
 * chunks ("Cannot read properties of undefined (reading 'start')"); and it counts an odd-sized
 * data chunk's pad byte as audio (a full-scale click at the end of 8-bit files).
 */
function wavChunks(buf: Buffer, bigEndian: boolean): Chunks {
  const found: Chunks = {};
  for (let at = 12; at + 8 <= buf.length; ) {
    const id = buf.toString('latin1', at, at + 4);
    const size = bigEndian ? buf.readUInt32BE(at + 4) : buf.readUInt32LE(at + 4);
    const bytes = buf.subarray(at + 8, Math.min(at + 8 + size, buf.length));
    if (id === 'fmt ' || id === 'fact' || id === 'data') found[id === 'fmt ' ? 'fmt' : id] ??= bytes;
    at += 8 + size + (size % 2);
  }
  return found;
}

/**
 * A WAVE file of `chunks`' format alone (its `fmt ` and `fact`, and an empty `data`), for wavefile
 * to read the format from: the samples are decoded from `chunks.data` directly, or handed to
 * wavefile's codecs as its `data.samples`.
 */
function headerOnly(buf: Buffer, chunks: Chunks): Buffer {
  const bigEndian = buf.toString('latin1', 0, 4) === 'RIFX';
  const parts: Buffer[] = [buf.subarray(0, 12)];
  for (const [id, bytes] of [['fmt ', chunks.fmt], ['fact', chunks.fact], ['data', chunks.data && new Uint8Array(0)]] as const) {
    if (!bytes) continue;
    const head = Buffer.alloc(8);
    head.write(id, 'latin1');
    if (bigEndian) head.writeUInt32BE(bytes.length, 4);
    else head.writeUInt32LE(bytes.length, 4);
    parts.push(head, Buffer.from(bytes), Buffer.alloc(bytes.length % 2));
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

/**
 * The file's audio as −1..1 floats, one array per channel. Linear PCM and float are read
 * straight from the data chunk's bytes; A-law, µ-law and mono IMA ADPCM are expanded by
 * wavefile's codecs first. Anything else is refused by name: wavefile's general conversion
 * decoded MS ADPCM as IMA ADPCM (noise, 6 dB too loud) and failed on others with "Invalid typed
 * array length: Infinity".
 */
function decode(wav: InstanceType<typeof wavefile.WaveFile>, data: Uint8Array, fmt: WavFormat, bigEndian: boolean, maxFrames: number): Float32Array[] {
  const code = fmt.audioFormat === EXTENSIBLE ? (fmt.subformat[0] ?? 0) : fmt.audioFormat;
  const channels = fmt.numChannels;
  if (!(channels >= 1)) throw new Unsupported('its header says it has no channels');
  if (code === PCM || code === IEEE_FLOAT) return decodeLinear(data, { ...fmt, code }, bigEndian, maxFrames);
  const companded = (code === ALAW || code === MULAW) && fmt.bitsPerSample === 8;
  // wavefile's IMA ADPCM decoder reads one channel of 4-bit codes; a stereo file came out as noise.
  const ima = code === IMA_ADPCM && fmt.bitsPerSample === 4 && channels === 1;
  if (!companded && !ima) {
    const detail = code === IMA_ADPCM ? ` with ${channels} channels of ${fmt.bitsPerSample}-bit codes (earshot reads mono 4-bit)` : '';
    throw new Unsupported(`${formatName(code)}${detail} is not supported; ${TO_PCM}`);
  }
  // IMA ADPCM fills its last block with padding; the fact chunk says how many samples are audio.
  const fact = wav.fact as { chunkId: string; dwSampleLength: number };
  const samples = Math.min(maxFrames, ima && fact.chunkId === 'fact' ? fact.dwSampleLength : Infinity);
  (wav.data as { samples: Uint8Array }).samples = data;
  if (code === ALAW) wav.fromALaw();
  else if (code === MULAW) wav.fromMuLaw();
  else wav.fromIMAADPCM();
  // Now 16-bit PCM, in the file's byte order.
  const planes = decodeLinear((wav.data as { samples: Uint8Array }).samples, { code: PCM, numChannels: channels, bitsPerSample: 16 }, wav.container === 'RIFX');
  return samples < planes[0].length ? planes.map((p) => p.subarray(0, samples)) : planes;
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
 * would spread it over the whole packet.
 */
function decodeLinear(data: Uint8Array, fmt: Pick<WavFormat, 'numChannels' | 'bitsPerSample'> & { code: number }, bigEndian: boolean, maxFrames = Infinity): Float32Array[] {
  const { code, numChannels: channels, bitsPerSample: bits } = fmt;
  const float = code === IEEE_FLOAT;
  const bytes = Math.ceil(bits / 8); // one sample's container
  if (float ? bits !== 32 && bits !== 64 : !(bits >= 1 && bits <= 32)) {
    // 64-bit integers read as floats were NaN and Infinity.
    const what = !float && bits === 64 ? '64-bit integer PCM' : `${formatName(code)} with ${bits}-bit samples`;
    const todo = !float && bits === 64 ? 'convert it to 32-bit, e.g. `ffmpeg -i in.wav -c:a pcm_s32le out.wav`' : TO_PCM;
    throw new Unsupported(`${what} is not supported; ${todo}`);
  }
  const blockAlign = bytes * channels;
  const le = !bigEndian;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const frames = Math.min(Math.floor(data.byteLength / blockAlign), maxFrames);
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

/** Mixes to 1 or 2 channels and resamples to 48 kHz, keeping the exact duration and alignment. */
export async function toSource(planes: Float32Array[], sampleRate: number, channels: 1 | 2): Promise<PcmSource> {
  let mixed: Float32Array[];
  if (channels === 1) {
    const mono = new Float32Array(planes[0].length);
    for (const p of planes) for (let i = 0; i < mono.length; i++) mono[i] += p[i] / planes.length;
    mixed = [mono];
  } else {
    mixed = [planes[0], planes[1] ?? planes[0]];
  }
  if (sampleRate === 48000) return { sampleRate: 48000, channels: mixed };
  await loadSpeex();
  const frames = Math.round((mixed[0].length * 48000) / sampleRate);
  return { sampleRate: 48000, channels: mixed.map((p) => resampleExact(p, sampleRate, frames)) };
}

/** Offline resampling: feeds trailing zeros to flush the filter and drops its leading delay. */
function resampleExact(input: Float32Array, rate: number, frames: number): Float32Array {
  const r = new SpeexResampler(1, rate, 48000, 7);
  try {
    const delay = r.outputLatency;
    const tail = new Float32Array(Math.ceil(((delay + 64) * rate) / 48000));
    const a = r.process(input);
    const b = r.process(tail);
    const all = new Float32Array(a.length + b.length);
    all.set(a);
    all.set(b, a.length);
    const out = new Float32Array(frames);
    out.set(all.subarray(delay, delay + frames));
    return out;
  } finally {
    r.close();
  }
}
