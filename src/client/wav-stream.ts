/**
 * A WAV file read from disk as 48 kHz PCM, a stretch at a time: what `sendAudio` sends a file by
 * path from, holding about a second of it whatever the file's length (a 10-minute stereo file is
 * 230 MB of 48 kHz floats, a 2-hour recording gigabytes). `readWavSource` reads the same
 * stretches into memory whole, for a program that wants the samples.
 */
import { loadSpeex } from '../../wasm/speex.js';
import { capFrames, checkChannels, decodeChunk, defaultChannels, framesAt48k, mixTo, openWav, StreamResampler, toStereo, type PcmSource, type WavFile } from './wav-source.js';

/**
 * Reads `file` whole as 48 kHz PCM with `channels` channels, 1 or 2 (default: 1 for mono files, 2
 * otherwise; a file of more than two is mixed down to stereo first). With `seconds`, only about
 * that much of the start is read, decoded and resampled, and the first `seconds` are given,
 * exactly as the whole file gives them. The whole audio is held in memory (a 10-minute 48 kHz
 * stereo file takes 230 MB): `sendAudio` streams a file it is given by path instead.
 */
export async function readWavSource(file: string, channels?: 1 | 2, seconds?: number): Promise<PcmSource> {
  const stream = await openWavStream(file, channels);
  try {
    const frames = seconds === undefined ? stream.frames : Math.min(stream.frames, Math.ceil(seconds * 48000));
    const planes = Array.from({ length: stream.channels }, () => new Float32Array(frames));
    for (let at = 0; at < frames; ) {
      const stretch = await stream.read();
      if (stretch === null) break;
      const n = Math.min(stretch[0].length, frames - at);
      planes.forEach((p, c) => p.set(stretch[c].subarray(0, n), at));
      at += n;
    }
    return { sampleRate: 48000, channels: planes };
  } finally {
    await stream.close();
  }
}

/** A pass over a WAV file's audio, 48 kHz, one plane per channel. */
export interface WavStream {
  readonly channels: 1 | 2;
  /** 48 kHz frames in one pass: the file's duration at 48 kHz. */
  readonly frames: number;
  /**
   * The next stretch (about half a second, never empty), or null once the pass has ended. Not to
   * be called again before the last call has settled. Rejects with `EARSHOT_WAV_READ_FAILED` when
   * reading fails (the file was truncated after it was opened, a read error); then again on every
   * call.
   */
  read(): Promise<Float32Array[] | null>;
  /** Starts the next pass at the file's first sample (for a loop): the same samples again. */
  rewind(): Promise<void>;
  close(): Promise<void>;
}

export interface WavStreamOptions {
  /** Frames of the file (at its rate) read at a time; default about half a second. For tests of the seams. */
  chunkFrames?: number;
}

/** Most bytes read at a time: a 384 kHz file of 8 float64 channels has 12 MB in half a second. */
const MAX_CHUNK_BYTES = 1 << 20;

/**
 * Opens `file` and reads its header: `EARSHOT_WAV_UNREADABLE` at once for a file that is no WAV
 * file earshot can decode, saying why. `channels` as `readWavSource`'s (default 1 for a mono
 * file, 2 otherwise; more than two mixed down to stereo). Close it when done.
 */
export async function openWavStream(file: string, channels?: 1 | 2, options: WavStreamOptions = {}): Promise<WavStream> {
  checkChannels(channels);
  const wav = await openWav(file);
  try {
    if (wav.fmt.sampleRate !== 48000) await loadSpeex();
    return new Reader(wav, channels ?? defaultChannels(wav), options.chunkFrames);
  } catch (e) {
    await wav.close();
    throw e;
  }
}

class Reader implements WavStream {
  readonly channels: 1 | 2;
  readonly frames: number;
  readonly #wav: WavFile;
  readonly #chunkBytes: number;
  readonly #chunkFrames: number;
  /** The raw bytes of one read, reused: a stretch's bytes are decoded before the next is read. */
  readonly #raw: Buffer;
  /** Planes to resample: one when a mono file is sent as stereo (its one channel, twice). */
  readonly #resampled: number;
  #resampler: StreamResampler | undefined;
  /** Bytes of the data chunk read in this pass. */
  #offset = 0;
  /** Frames (at the file's rate) decoded in this pass. */
  #decoded = 0;
  #flushed = false;
  #ended = false;
  /** The next stretch, being read while the one before is encoded and sent. */
  #ahead: Promise<Float32Array[] | null> | undefined;

  constructor(wav: WavFile, channels: 1 | 2, chunkFrames?: number) {
    this.channels = channels;
    this.#wav = wav;
    const rate = wav.fmt.sampleRate;
    this.frames = rate === 48000 ? wav.frames : framesAt48k(wav.frames, rate);
    // Whole frames, or whole IMA ADPCM blocks: the decoders take nothing less.
    const units = Math.max(1, Math.ceil((chunkFrames ?? Math.min(rate / 2, MAX_CHUNK_BYTES / (wav.unitBytes / wav.unitFrames))) / wav.unitFrames));
    this.#chunkBytes = units * wav.unitBytes;
    this.#chunkFrames = units * wav.unitFrames;
    this.#raw = Buffer.allocUnsafe(this.#chunkBytes);
    this.#resampled = channels === 2 && wav.fmt.numChannels === 1 ? 1 : channels;
    this.#resampler = this.#newResampler();
  }

  async read(): Promise<Float32Array[] | null> {
    if (this.#ended) return null;
    // A failed read stays in #ahead: every later call rejects with it.
    this.#ahead ??= this.#produce();
    const next = await this.#ahead;
    this.#ahead = undefined;
    if (next === null) {
      this.#ended = true;
      return null;
    }
    // Read on while the caller encodes this stretch: the sender then waits for the disk only at the start.
    this.#ahead = this.#produce();
    this.#ahead.catch(() => undefined); // reported by the next read(), or not at all when none comes
    return next;
  }

  async rewind(): Promise<void> {
    await this.#ahead?.catch(() => undefined);
    this.#ahead = undefined;
    this.#offset = 0;
    this.#decoded = 0;
    this.#flushed = false;
    this.#ended = false;
    this.#resampler?.close();
    this.#resampler = this.#newResampler();
  }

  async close(): Promise<void> {
    this.#ended = true;
    await this.#ahead?.catch(() => undefined);
    this.#ahead = undefined;
    this.#resampler?.close();
    this.#resampler = undefined;
    await this.#wav.close();
  }

  #newResampler(): StreamResampler | undefined {
    const rate = this.#wav.fmt.sampleRate;
    return rate === 48000 ? undefined : new StreamResampler(rate, this.#resampled, this.frames);
  }

  /** The next stretch of 48 kHz output, or null at the end of the pass. */
  async #produce(): Promise<Float32Array[] | null> {
    for (;;) {
      const planes = await this.#decodeNext();
      let out: Float32Array[];
      if (planes) {
        const mixed = mixTo(toStereo(planes, this.#wav.fmt), this.channels).slice(0, this.#resampled);
        out = this.#resampler ? this.#resampler.push(mixed) : mixed;
      } else if (this.#resampler && !this.#flushed) {
        this.#flushed = true;
        out = this.#resampler.finish();
      } else {
        return null;
      }
      // The resampler's first outputs are its delay, dropped: a short first stretch may give nothing.
      if (out[0].length > 0) return this.channels === 2 && out.length === 1 ? [out[0], out[0]] : out;
    }
  }

  /** The next stretch of the file's own frames (its rate, its channels), or null after its last. */
  async #decodeNext(): Promise<Float32Array[] | null> {
    const wav = this.#wav;
    const left = wav.frames - this.#decoded;
    if (left <= 0) return null;
    if (this.#offset < wav.dataBytes) {
      const length = Math.min(this.#chunkBytes, wav.dataBytes - this.#offset);
      const bytes = await wav.read(this.#offset, length, this.#raw);
      this.#offset += length;
      const planes = capFrames(decodeChunk(wav, bytes, this.#offset === wav.dataBytes), left);
      this.#decoded += planes[0].length;
      return planes;
    }
    // IMA ADPCM only: past its last block, whose samples wavefile's decoder leaves silent, up to the frames it counts.
    const n = Math.min(this.#chunkFrames, left);
    this.#decoded += n;
    return Array.from({ length: wav.fmt.numChannels }, () => new Float32Array(n));
  }
}
