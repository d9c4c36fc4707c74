/** Encodes PCM into 20 ms Opus frames as the ingest would hand them to a worker. */
import { OpusEncoder } from '../../wasm/opus.js';
import type { EncodedInput } from '../../src/dsp/types.js';

export function encodeOpusFrames(pcm: Float32Array, channels: 1 | 2 = 1, bitrate = 32000): EncodedInput[] {
  const enc = new OpusEncoder({ channels, bitrate });
  const frame = 960 * channels;
  const out: EncodedInput[] = [];
  for (let i = 0; i + frame <= pcm.length; i += frame) {
    out.push({ position: i / channels, payload: enc.encode(pcm.subarray(i, i + frame)), samples: 960, arrival: 0 });
  }
  enc.close();
  return out;
}

export function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
