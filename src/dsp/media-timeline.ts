/**
 * Where a stream's next sample belongs in media time,
 * shared by the Opus decoder and PCM input: an input that starts before that
 * position is late or a duplicate and is dropped whole (output already sent
 * can't be rewritten); one that starts after it leaves a gap that becomes
 * silence; so output duration always equals media duration.
 */
import type { DecodeCounters } from '../media/frames.js';
import { sharedZerosF32 } from '../media/shared-zeros.js';

/** A run of PCM at media time. */
export interface TimedChunk {
  /** Media position of the first sample (samples per channel since the stream started). */
  position: number;
  /**
   * Interleaved samples, −1..1. A new array per chunk, which the caller may
   * keep or modify, except in a `silent` chunk: there it is a view of zeros
   * that every silent chunk of the thread shares (read only: copy it before
   * writing to it).
   */
  data: Float32Array;
  /** Arrival (`performance.now()`, main thread) of the input that produced the chunk. */
  arrival: number;
  /** True for silence this timeline filled a gap with: `data` is all zeros (stages may skip it, see `Stage.skipSilence`). */
  silent?: boolean;
}

export class MediaTimeline {
  #next: number | undefined;

  /**
   * @param counters where `late` and `silenceSamples` are counted
   * @param channels interleaved channels of the silence chunks
   * @param maxSilence longest silence emitted as one chunk (larger gaps are split, so no array grows with the gap)
   */
  constructor(
    private readonly counters: DecodeCounters,
    private readonly channels: number,
    private readonly maxSilence: number,
  ) {}

  /** Position the next sample will have; undefined before the first input. */
  get next(): number | undefined {
    return this.#next;
  }

  /**
   * Admits an input starting at `position`. Returns false (counted as late) if
   * it can't be placed: before the next position, or not a whole non-negative
   * sample index (NaN would poison every later comparison). Otherwise appends
   * silence for any gap before it to `out` and returns true.
   */
  admit(position: number, arrival: number, out: TimedChunk[]): boolean {
    if (!Number.isSafeInteger(position) || position < 0 || (this.#next !== undefined && position < this.#next)) {
      this.counters.late++;
      return false;
    }
    if (this.#next !== undefined && position > this.#next) this.silence(this.#next, position - this.#next, arrival, out);
    return true;
  }

  /** Records that the input admitted at `position` covered `samples` samples. */
  advance(position: number, samples: number): void {
    this.#next = position + samples;
  }

  /** Appends `samples` of silence from `position`, in chunks of at most `maxSilence` (their data shared zeros, see `TimedChunk.data`). */
  silence(position: number, samples: number, arrival: number, out: TimedChunk[]): void {
    this.counters.silenceSamples += samples;
    for (let done = 0; done < samples; ) {
      const n = Math.min(samples - done, this.maxSilence);
      out.push({ position: position + done, data: sharedZerosF32(n * this.channels), arrival, silent: true });
      done += n;
    }
  }
}
