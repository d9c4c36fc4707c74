/**
 * Lays a stream's PCM frames out at media time, the PCM counterpart of
 * OpusStreamDecoder (used when a stream is fed PCM, e.g. by the RxJS
 * operator that runs stages in the pool): a frame that starts before the
 * expected position is late or a duplicate and is dropped whole; a frame that
 * starts after it leaves a gap, filled with silence; Int16 samples become
 * floats (÷32768). So, as with Opus, output duration equals media duration.
 */
import type { DecodeCounters, SampleFormat } from '../media/frames.js';
import { MediaTimeline, type TimedChunk } from './media-timeline.js';

/** One PCM frame pushed to a stream. */
export interface PcmInput {
  /** Media position of the first sample, in samples (per channel) at the input rate since the stream started. */
  position: number;
  /**
   * Interleaved samples in the input's channel count: Float32Array −1..1 or
   * Int16Array. A Float32Array is used in place (stages may overwrite it):
   * pass a copy if you keep it. A worker always gets its own copy anyway.
   */
  data: Float32Array | Int16Array;
  /** `performance.now()` on the main thread when the frame arrived (for latency). */
  arrival: number;
  /** Voice activity 0..1 already known for the frame (kept unless a stage sets it). */
  vad?: number;
  /** Speech flag already known for the frame (kept unless a stage sets it). */
  speech?: boolean;
}

/** Format of a stream's PCM input. */
export interface PcmInputFormat {
  /** Samples per second per channel (8000–48000). */
  sampleRate: number;
  /** 1 or 2 (interleaved). */
  channels: 1 | 2;
  /**
   * Encoding of the frames' `data`: 'f32' (Float32Array, default) or 's16'
   * (Int16Array). Either array type is accepted whatever this says; it
   * documents what the producer sends.
   */
  sampleFormat?: SampleFormat;
}

/** A chunk laid out at media time, with the voice-activity fields the input brought. */
export interface PlacedChunk extends TimedChunk {
  vad?: number;
  speech?: boolean;
}

/** Longest silence emitted as one chunk: 1 s, so no array grows with a long gap. */
const MAX_SILENCE_SECONDS = 1;

export class PcmStreamInput {
  /** Live counters (the same object for the input's life): decoded = frames accepted. */
  readonly counters: DecodeCounters = { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0 };
  readonly #channels: number;
  readonly #timeline: MediaTimeline;

  constructor(readonly format: PcmInputFormat) {
    this.#channels = format.channels;
    this.#timeline = new MediaTimeline(this.counters, format.channels, format.sampleRate * MAX_SILENCE_SECONDS);
  }

  /** Media position (input rate) the next sample will have; undefined before the first frame. */
  get nextPosition(): number | undefined {
    return this.#timeline.next;
  }

  /**
   * Places `frames` (one stream, media order) and appends the resulting
   * chunks to `out`. Throws, placing none of the batch, a TypeError for data
   * that is not a Float32Array or Int16Array and a RangeError for a length
   * that is not a whole number of sample frames: those are bugs in the
   * producer, not network weather. `ends`, if given, gets `out.length` after
   * each frame (see `OpusStreamDecoder.decode`).
   */
  place(frames: readonly PcmInput[], out: PlacedChunk[] = [], ends?: number[]): PlacedChunk[] {
    const channels = this.#channels;
    // Checked before anything is placed, so a bad frame leaves the stream's position untouched.
    for (const f of frames) {
      const data = f.data;
      if (!(data instanceof Float32Array) && !(data instanceof Int16Array)) {
        throw new TypeError(`PCM input: "data" must be a Float32Array or Int16Array, got ${Object.prototype.toString.call(data)}`);
      }
      if (data.length % channels !== 0) {
        throw new RangeError(`PCM input: ${data.length} samples is not a whole number of ${channels}-channel frames`);
      }
    }
    for (const f of frames) {
      this.#placeOne(f, out);
      ends?.push(out.length);
    }
    return out;
  }

  #placeOne(f: PcmInput, out: PlacedChunk[]): void {
    const data = f.data;
    if (!this.#timeline.admit(f.position, f.arrival, out)) return;
    this.counters.decoded++;
    const samples = data.length / this.#channels;
    this.#timeline.advance(f.position, samples);
    if (samples === 0) return;
    const chunk: PlacedChunk = { position: f.position, data: data instanceof Float32Array ? this.#finite(data) : toFloat(data), arrival: f.arrival };
    if (f.vad !== undefined) chunk.vad = f.vad;
    if (f.speech !== undefined) chunk.speech = f.speech;
    out.push(chunk);
  }

  /**
   * `data`, or a copy with every sample that is not a finite number (NaN,
   * ±Infinity) made 0, counted as a corrupt frame. One such sample would
   * otherwise poison a stage's state for the rest of the stream: a filter's
   * feedback, RNNoise's recurrent state; every frame after it came out as
   * zeros. The producer's array is never changed.
   */
  #finite(data: Float32Array): Float32Array {
    let i = 0;
    while (i < data.length && Number.isFinite(data[i])) i++;
    if (i === data.length) return data;
    const copy = data.slice();
    for (; i < copy.length; i++) if (!Number.isFinite(copy[i])) copy[i] = 0;
    this.counters.corrupt++;
    return copy;
  }
}

function toFloat(data: Int16Array): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] / 32768;
  return out;
}
