/**
 * Reads a WAV file (any PCM or float encoding, any rate, any channel count) and
 * returns 48 kHz float PCM with 1 or 2 channels, ready for the Opus encoder.
 */
import { readFile } from 'node:fs/promises';
import wavefile from 'wavefile';
import { loadSpeex, SpeexResampler } from '../../wasm/speex.js';
import { EarshotError } from '../errors.js';

export interface PcmSource {
  sampleRate: 48000;
  /** One array per channel (1 or 2), −1..1. */
  channels: Float32Array[];
}

const unreadable = (file: string, why: string) =>
  new EarshotError('EARSHOT_WAV_UNREADABLE', 400, 'Unreadable WAV file', `Cannot use ${file}: ${why}. Give a PCM or float WAV file (convert others with e.g. "sox in.mp3 out.wav").`);

/** Loads `file` and converts it to 48 kHz with `channels` channels (default: 1 for mono files, 2 otherwise). */
export async function readWavSource(file: string, channels?: 1 | 2): Promise<PcmSource> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw unreadable(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  let wav: InstanceType<typeof wavefile.WaveFile>;
  try {
    wav = new wavefile.WaveFile(buf);
  } catch (e) {
    throw unreadable(file, `not a WAV file (${(e as Error).message})`);
  }
  // Copy the format out: toBitDepth() rebuilds the file and resets this object.
  const fmt = { ...(wav.fmt as { sampleRate: number; numChannels: number }) };
  if (!(fmt.sampleRate >= 1000 && fmt.sampleRate <= 384000)) throw unreadable(file, `sample rate ${fmt.sampleRate} Hz is out of range`);
  let planes: Float32Array[];
  try {
    wav.toBitDepth('32f'); // normalizes any integer depth to −1..1 floats
    const raw = wav.getSamples(false, Float32Array) as unknown as Float32Array | Float32Array[];
    planes = fmt.numChannels === 1 ? [raw as Float32Array] : (raw as Float32Array[]);
  } catch (e) {
    throw unreadable(file, `unsupported encoding (${(e as Error).message})`);
  }
  if (planes.length === 0 || planes[0].length === 0) throw unreadable(file, 'it holds no audio');
  return toSource(planes, fmt.sampleRate, channels ?? (planes.length === 1 ? 1 : 2));
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
