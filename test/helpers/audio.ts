/**
 * Audio helpers for tests: read WAV fixtures, measure level and pitch, and
 * encode PCM into the Opus frames the ingest hands to workers. They judge output
 * the way a listener would (level, pitch, duration) and share no code with the
 * DSP under test, apart from the Opus encoder that stands in for the sender.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wavefile from 'wavefile';
import { OpusEncoder } from '../../wasm/opus.js';
import type { EncodedInput } from '../../src/dsp/types.js';

/** Absolute path of a file in test/fixtures. */
export function fixturePath(name: string): string {
  return join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', name);
}

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

/** Full scale of integer PCM samples by wavefile bit-depth code. */
const INTEGER_FULL_SCALE: Record<string, number> = { '16': 32768, '24': 8388608, '32': 2147483648 };

async function parseWav(path: string): Promise<WavData> {
  const wav = new wavefile.WaveFile(await readFile(path));
  const fmt = wav.fmt as { sampleRate: number; numChannels: number };
  const { sampleRate, numChannels } = fmt;
  // Scaling the raw integers here is ~30× faster than wavefile's toBitDepth('32f')
  // (40 ms instead of 1.3 s for 10 s of speech), which keeps the suite quick.
  let scale: (v: number) => number;
  if (wav.bitDepth === '8') scale = (v) => (v - 128) / 128; // 8-bit WAV is unsigned
  else if (INTEGER_FULL_SCALE[wav.bitDepth]) {
    const full = INTEGER_FULL_SCALE[wav.bitDepth];
    scale = (v) => v / full;
  } else if (wav.bitDepth === '32f' || wav.bitDepth === '64') scale = (v) => v;
  else {
    wav.toBitDepth('32f'); // A-law, µ-law, ADPCM, odd depths: slow but general
    scale = (v) => v;
  }
  const raw = wav.getSamples(false, Float64Array) as unknown as Float64Array | Float64Array[];
  const perChannel = numChannels === 1 ? [raw as Float64Array] : (raw as Float64Array[]);
  const channels = perChannel.map((src) => {
    const out = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = scale(src[i]);
    return out;
  });
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
export function encodeOpusFrames(pcm48k: Float32Array, channels: 1 | 2 = 1, bitrateOrOptions: number | EncodeOptions = {}): EncodedInput[] {
  const options = typeof bitrateOrOptions === 'number' ? { bitrate: bitrateOrOptions } : bitrateOrOptions;
  const frameSamples = options.frameSamples ?? 960;
  const start = options.startPosition ?? 0;
  const arrival = options.arrival ?? ((i: number) => i * 20 * (frameSamples / 960));
  const encoder = new OpusEncoder({ channels, bitrate: options.bitrate ?? 32000 });
  const step = frameSamples * channels;
  const out: EncodedInput[] = [];
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
