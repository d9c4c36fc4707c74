/**
 * Audio helpers for tests: read WAV files, measure level and pitch, and
 * encode PCM into the Opus frames the ingest hands to workers. They judge output
 * the way a listener would (level, pitch, duration) and share no code with the
 * DSP under test, apart from the Opus encoder that stands in for the sender.
 */
import { readFile } from 'node:fs/promises';
import wavefile from 'wavefile';
import { OpusEncoder } from '../../wasm/opus.js';
import type { AudioFrame, EncodedFrame } from '../../src/media/frames.js';

export interface WavData {
  sampleRate: number;
  /** One array per channel, −1..1. */
  channels: Float32Array[];
  durationSec: number;
}

const wavCache = new Map<string, Promise<WavData>>();

/**
 * Reads a WAV file (any PCM bit depth or float) as −1..1 floats per channel.
 * Files are parsed once per test file and each call gets fresh copies of the
 * samples, so a test may modify them (stages work in place) without affecting
 * the next test.
 */
export async function readWav(path: string): Promise<WavData> {
  let parsed = wavCache.get(path);
  if (!parsed) {
    parsed = parseWav(path);
    wavCache.set(path, parsed);
    parsed.catch(() => wavCache.delete(path));
  }
  const wav = await parsed;
  return { ...wav, channels: wav.channels.map((c) => c.slice()) };
}

/** Bytes per sample and the reader of one sample (scaled to −1..1), by wavefile bit-depth code. */
const LINEAR: Record<string, { bytes: number; read: (view: DataView, offset: number) => number }> = {
  '8': { bytes: 1, read: (v, o) => (v.getUint8(o) - 128) / 128 }, // 8-bit WAV is unsigned
  '16': { bytes: 2, read: (v, o) => v.getInt16(o, true) / 32768 },
  '24': { bytes: 3, read: (v, o) => (((v.getUint8(o + 2) << 24) >> 8) | (v.getUint8(o + 1) << 8) | v.getUint8(o)) / 8388608 },
  '32': { bytes: 4, read: (v, o) => v.getInt32(o, true) / 2147483648 },
  '32f': { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  '64': { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
};

async function parseWav(path: string): Promise<WavData> {
  const wav = new wavefile.WaveFile(await readFile(path));
  const fmt = wav.fmt as { sampleRate: number; numChannels: number; blockAlign: number };
  const { sampleRate, numChannels } = fmt;
  const linear = LINEAR[wav.bitDepth];
  let channels: Float32Array[];
  if (linear && wav.container !== 'RIFX' && fmt.blockAlign === linear.bytes * numChannels) {
    // Reading the data chunk's bytes directly is ~50× faster than wavefile's
    // getSamples (a few ms instead of 0.2–1 s per file on a busy machine), which keeps the suite quick.
    const data = (wav.data as { samples: Uint8Array }).samples;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const frames = Math.floor(data.byteLength / fmt.blockAlign);
    channels = Array.from({ length: numChannels }, (_, c) => {
      const out = new Float32Array(frames);
      for (let i = 0, o = c * linear.bytes; i < frames; i++, o += fmt.blockAlign) out[i] = linear.read(view, o);
      return out;
    });
  } else {
    wav.toBitDepth('32f'); // A-law, µ-law, ADPCM, odd depths: slow but general
    const raw = wav.getSamples(false, Float32Array) as unknown as Float32Array | Float32Array[];
    channels = numChannels === 1 ? [raw as Float32Array] : (raw as Float32Array[]);
  }
  return { sampleRate, channels, durationSec: channels[0].length / sampleRate };
}

/** RMS level in dBFS (full-scale square wave = 0 dB, full-scale sine ≈ −3 dB); −Infinity for silence or an empty array. */
export function rmsDb(samples: Float32Array): number {
  let s = 0;
  for (let i = 0; i < samples.length; i++) s += samples[i] * samples[i];
  return samples.length > 0 ? 10 * Math.log10(s / samples.length) : -Infinity;
}

/**
 * The frequency (Hz, 1 Hz resolution) with the most energy in `samples`: a
 * Goertzel scan in 10 Hz steps from 20 Hz to `maxHz`, refined in 1 Hz steps
 * around the peak, over a Hann-windowed 0.5 s from the middle of the signal
 * (the middle avoids codec and filter start-up). Accurate to ±1–2 Hz on a
 * steady tone; meaningless on broadband signals.
 */
export function dominantFrequency(samples: Float32Array, sampleRate: number, maxHz = Math.min(8000, sampleRate / 2)): number {
  const n = Math.min(samples.length, Math.floor(sampleRate / 2));
  const start = Math.max(0, Math.floor((samples.length - n) / 2));
  const seg = new Float64Array(n);
  for (let i = 0; i < n; i++) seg[i] = samples[start + i] * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / Math.max(1, n - 1)));
  const power = (f: number): number => {
    const coeff = 2 * Math.cos((2 * Math.PI * f) / sampleRate);
    let s1 = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const s0 = seg[i] + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
  };
  let best = 20;
  let bestPower = -1;
  for (let f = 20; f <= maxHz; f += 10) {
    const p = power(f);
    if (p > bestPower) [best, bestPower] = [f, p];
  }
  let fine = best;
  for (let f = best - 9; f <= best + 9; f++) {
    const p = power(f);
    if (p > bestPower) [fine, bestPower] = [f, p];
  }
  return fine;
}

export interface EncodeOptions {
  /** Opus bitrate in bits per second. Default 32000, what browsers send for mono voice. */
  bitrate?: number;
  /** Frame length in 48 kHz samples per channel: 120–2880 (2.5–60 ms). Default 960 (20 ms, as WebRTC sends). */
  frameSamples?: number;
  /** Media position of the first frame (48 kHz samples). Default 0. */
  startPosition?: number;
  /** `arrival` of frame i; default 20·i ms, as if the packets arrived in real time. */
  arrival?: (index: number) => number;
}

/**
 * Encodes 48 kHz PCM (interleaved if stereo) into Opus frames as the ingest
 * hands them to a worker: consecutive media positions, `samples` set, one new
 * encoder per call (fresh codec state, FEC on, like a browser). A trailing
 * partial frame is dropped. `bitrateOrOptions` may be a bitrate, for brevity.
 */
export function encodeOpusFrames(pcm48k: Float32Array, channels: 1 | 2 = 1, bitrateOrOptions: number | EncodeOptions = {}): EncodedFrame[] {
  const options = typeof bitrateOrOptions === 'number' ? { bitrate: bitrateOrOptions } : bitrateOrOptions;
  const frameSamples = options.frameSamples ?? 960;
  const start = options.startPosition ?? 0;
  const arrival = options.arrival ?? ((i: number) => i * 20 * (frameSamples / 960));
  const encoder = new OpusEncoder({ channels, bitrate: options.bitrate ?? 32000 });
  const step = frameSamples * channels;
  const out: EncodedFrame[] = [];
  try {
    for (let i = 0; i + step <= pcm48k.length; i += step) {
      const index = out.length;
      out.push({ position: start + index * frameSamples, payload: encoder.encode(pcm48k.subarray(i, i + step)), samples: frameSamples, arrival: arrival(index) });
    }
  } finally {
    encoder.close();
  }
  return out;
}

/** Concatenates arrays (e.g. the `data` of consecutive output frames). */
export function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Bit-exact equality of two sample arrays. Prefer it to `toEqual` for long
 * arrays: on a mismatch, `toEqual` builds a diff of every element (minutes for 100 k samples).
 */
export function sameSamples(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Interleaves per-channel arrays (as `readWav` returns them) into L R L R … */
export function interleave(channels: readonly Float32Array[]): Float32Array {
  const n = channels.length;
  const length = Math.min(...channels.map((c) => c.length));
  const out = new Float32Array(length * n);
  for (let c = 0; c < n; c++) for (let i = 0; i < length; i++) out[i * n + c] = channels[c][i];
  return out;
}

/** Takes one channel out of interleaved samples. */
export function channelOf(interleaved: Float32Array, channel: number, channels: number): Float32Array {
  const out = new Float32Array(Math.floor(interleaved.length / channels));
  for (let i = 0; i < out.length; i++) out[i] = interleaved[i * channels + channel];
  return out;
}

/**
 * Level (dB relative to full-scale sine... i.e. amplitude in dB) of one
 * frequency in `samples`, by the Goertzel algorithm with a Hann window. A sine
 * of amplitude A at exactly `hz` measures ≈ 20·log10(A).
 */
export function toneLevelDb(samples: Float32Array, sampleRate: number, hz: number): number {
  const n = samples.length;
  const k = (2 * Math.PI * hz) / sampleRate;
  const coeff = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  let windowSum = 0;
  for (let i = 0; i < n; i++) {
    const w = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1));
    windowSum += w;
    const s0 = samples[i] * w + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  const amplitude = (2 * Math.sqrt(Math.max(power, 0))) / windowSum;
  return 20 * Math.log10(Math.max(amplitude, 1e-12));
}

/** Where and how well a recording's loudness contour matches its source's (see `envelopeMatch`). */
export interface EnvelopeMatch {
  /** Pearson correlation of the two 20 ms level contours (dB) at the best offset, −1..1. */
  correlation: number;
  /** Offset into the source where the recording starts, seconds. */
  offsetSec: number;
  /** The recording's level minus the source's over the windows where the source is loud (within 20 dB of its peak), dB. */
  levelDifferenceDb: number;
}

/**
 * Matches the loudness contour of `recording` against `source` (same rate),
 * as if the source played in a loop and the recording began at an unknown
 * point of it, which is what a browser's fake microphone does. A recording of
 * the source correlates highly at the right offset whatever the codec, noise
 * suppression or gain did to the waveform; silence, noise or other audio does not.
 */
export function envelopeMatch(recording: Float32Array, source: Float32Array, sampleRate: number): EnvelopeMatch {
  const win = Math.round(sampleRate / 50); // 20 ms
  const contour = (x: Float32Array) => Float64Array.from({ length: Math.floor(x.length / win) }, (_, i) => Math.max(-80, rmsDb(x.subarray(i * win, (i + 1) * win))));
  const rec = contour(recording);
  const src = contour(source);
  const m = rec.length;
  const n = src.length;
  if (m < 2 || n < 2) throw new RangeError('envelopeMatch needs at least 40 ms of recording and of source');
  const at = (lag: number, i: number) => src[(lag + i) % n];
  const recMean = rec.reduce((s, v) => s + v, 0) / m;
  let best = { correlation: -Infinity, lag: 0 };
  for (let lag = 0; lag < n; lag++) {
    let srcMean = 0;
    for (let i = 0; i < m; i++) srcMean += at(lag, i);
    srcMean /= m;
    let cov = 0;
    let varRec = 0;
    let varSrc = 0;
    for (let i = 0; i < m; i++) {
      const a = rec[i] - recMean;
      const b = at(lag, i) - srcMean;
      cov += a * b;
      varRec += a * a;
      varSrc += b * b;
    }
    const correlation = varRec > 0 && varSrc > 0 ? cov / Math.sqrt(varRec * varSrc) : 0;
    if (correlation > best.correlation) best = { correlation, lag };
  }
  const peak = Math.max(...src);
  let diff = 0;
  let loud = 0;
  for (let i = 0; i < m; i++) {
    const s = at(best.lag, i);
    if (s < peak - 20) continue;
    diff += rec[i] - s;
    loud++;
  }
  return { correlation: best.correlation, offsetSec: (best.lag * win) / sampleRate, levelDifferenceDb: loud > 0 ? diff / loud : NaN };
}

/** Cuts mono samples into 20 ms AudioFrames (copies), positions from 0, for feeding operators and pools. */
export function monoFrames(samples: Float32Array, sampleRate = 48000): AudioFrame[] {
  const n = sampleRate / 50;
  const out: AudioFrame[] = [];
  for (let i = 0; i + n <= samples.length; i += n) {
    out.push({ position: i, sampleRate, channels: 1, sampleFormat: 'f32', data: samples.slice(i, i + n), rms: 0, peak: 0, arrival: 0 } as AudioFrame);
  }
  return out;
}
