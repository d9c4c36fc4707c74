/**
 * Audio analysis for tests: read WAVs, levels, dominant frequency. Measures the
 * output the way a user would judge it, independent of the code under test.
 */
import { readFile } from 'node:fs/promises';
import wavefile from 'wavefile';

export interface WavData {
  sampleRate: number;
  /** One array per channel, −1..1. */
  channels: Float32Array[];
  durationSec: number;
}

export async function readWav(path: string): Promise<WavData> {
  const wav = new wavefile.WaveFile(await readFile(path));
  const fmt = { ...(wav.fmt as { sampleRate: number; numChannels: number }) }; // toBitDepth() resets wav.fmt
  wav.toBitDepth('32f');
  const raw = wav.getSamples(false, Float32Array) as unknown as Float32Array | Float32Array[];
  const channels = fmt.numChannels === 1 ? [raw as Float32Array] : (raw as Float32Array[]);
  return { sampleRate: fmt.sampleRate, channels, durationSec: channels[0].length / fmt.sampleRate };
}

/** RMS in dBFS (−∞ for silence). */
export function rmsDb(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return 10 * Math.log10(s / Math.max(1, x.length));
}

/**
 * Frequency with the most energy, from a Goertzel scan (1 Hz steps around the
 * coarse peak of a 10 Hz scan) over up to 0.5 s from the middle of the signal.
 */
export function dominantFrequency(x: Float32Array, rate: number, maxHz = Math.min(8000, rate / 2)): number {
  const n = Math.min(x.length, Math.floor(rate / 2)); // 0.5 s: enough for ±1 Hz on a steady tone
  const start = Math.max(0, Math.floor((x.length - n) / 2));
  const seg = x.subarray(start, start + n);
  const power = (f: number) => {
    const w = (2 * Math.PI * f) / rate;
    const coeff = 2 * Math.cos(w);
    let s1 = 0;
    let s2 = 0;
    for (let i = 0; i < seg.length; i++) {
      const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (seg.length - 1));
      const s0 = seg[i] * hann + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    return s1 * s1 + s2 * s2 - coeff * s1 * s2;
  };
  let best = 0;
  let bestP = -1;
  for (let f = 20; f <= maxHz; f += 10) {
    const p = power(f);
    if (p > bestP) [best, bestP] = [f, p];
  }
  let fine = best;
  for (let f = best - 10; f <= best + 10; f += 1) {
    const p = power(f);
    if (p > bestP) [fine, bestP] = [f, p];
  }
  return fine;
}
