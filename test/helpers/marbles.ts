/**
 * Frames and a scheduler for marble tests (RxJS TestScheduler) of the
 * main-thread operators and processors.
 */
import { TestScheduler } from 'rxjs/testing';
import { expect } from 'vitest';
import type { AudioFrame } from '../../src/media/frames.js';

export const LOUD = 0.1; // −20 dBFS
export const QUIET = 0.001; // −60 dBFS

/** A 20 ms mono frame at 48 kHz at frame index `i` with the given RMS. */
export function levelFrame(i: number, rms: number): AudioFrame {
  return { position: i * 960, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data: new Float32Array(960), rms, peak: rms, arrival: 0 } as AudioFrame;
}

/** A TestScheduler whose marble assertions are vitest assertions (they run in `run()`'s flush, inside the test). */
export function marbleScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

/** Frames by marble letter: upper case loud, lower case quiet, each one 20 ms frame, indexed by position in the marble. */
export function framesOf(marble: string): Record<string, AudioFrame> {
  const values: Record<string, AudioFrame> = {};
  let i = 0;
  for (const ch of marble) {
    if (!/[a-zA-Z]/.test(ch)) continue;
    values[ch] = levelFrame(i++, ch === ch.toUpperCase() ? LOUD : QUIET);
  }
  return values;
}
