/**
 * Turns a stream's encoded frames into contiguous 48 kHz PCM at media time
 * (DESIGN.md invariant 5): late or duplicate frames are dropped, lost packets
 * are concealed with Opus PLC for exactly their duration, corrupt packets are
 * concealed too, and gaps with no packets (DTX) become silence.
 */
import { OPUS_MAX_FRAME_SAMPLES, OpusDecoder, OpusPacketError } from '../../wasm/opus.js';
import type { DecodeCounters, EncodedInput } from './types.js';

export interface DecodedChunk {
  /** Media position of the first sample (48 kHz samples since stream start). */
  position: number;
  /** Interleaved samples, −1..1 (a new array the caller may keep). */
  data: Float32Array;
  arrival: number;
}

/** Longest gap filled with silence in one chunk (larger gaps are split). */
const MAX_SILENCE_CHUNK = 48000;

export class OpusStreamDecoder {
  readonly counters: DecodeCounters = { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0 };
  readonly #decoder: OpusDecoder;
  readonly #scratch: Float32Array;
  #next: number | undefined;

  constructor(readonly channels: 1 | 2) {
    this.#decoder = new OpusDecoder(channels);
    this.#scratch = new Float32Array(OPUS_MAX_FRAME_SAMPLES * channels);
  }

  /** Media position the next sample will have (undefined before the first frame). */
  get nextPosition(): number | undefined {
    return this.#next;
  }

  decode(frames: EncodedInput[], out: DecodedChunk[] = []): DecodedChunk[] {
    for (const f of frames) {
      if (this.#next !== undefined && f.position < this.#next) {
        this.counters.late++;
        continue;
      }
      if (this.#next !== undefined && f.position > this.#next) this.#silence(f.position - this.#next, f.arrival, out);
      this.#next = f.position;
      let samples: number;
      if (f.payload === null) {
        samples = this.#conceal(f.samples);
      } else {
        try {
          samples = this.#decoder.decode(f.payload, this.#scratch);
          this.counters.decoded++;
        } catch (e) {
          if (!(e instanceof OpusPacketError)) throw e;
          this.counters.corrupt++;
          samples = this.#conceal(f.samples || 960);
        }
      }
      if (samples <= 0) continue;
      out.push({ position: f.position, data: this.#scratch.slice(0, samples * this.channels), arrival: f.arrival });
      this.#next = f.position + samples;
    }
    return out;
  }

  close(): void {
    this.#decoder.close();
  }

  /** Opus PLC for `samples` (it makes up to 120 ms; the rest, if any, is silence). */
  #conceal(samples: number): number {
    const want = Math.max(0, Math.min(samples, OPUS_MAX_FRAME_SAMPLES));
    const made = this.#decoder.decode(new Uint8Array(0), this.#scratch);
    if (made < want) this.#scratch.fill(0, made * this.channels, want * this.channels);
    this.counters.concealed++;
    return want;
  }

  #silence(samples: number, arrival: number, out: DecodedChunk[]): void {
    this.counters.silenceSamples += samples;
    let position = this.#next!;
    while (samples > 0) {
      const n = Math.min(samples, MAX_SILENCE_CHUNK);
      out.push({ position, data: new Float32Array(n * this.channels), arrival });
      position += n;
      samples -= n;
    }
  }
}
