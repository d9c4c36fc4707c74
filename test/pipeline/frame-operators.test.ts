/**
 * Marble tests (RxJS TestScheduler) for the main-thread frame operators:
 * ordering, completion and error semantics of speechSegments.
 */
import { describe, expect, it } from 'vitest';
import { speechSegments, type SpeechEvent } from '../../src/pipeline/frame-operators.js';
import type { AudioFrame } from '../../src/media/frames.js';
import { framesOf, LOUD, levelFrame as frame, marbleScheduler as scheduler, QUIET } from '../helpers/marbles.js';

describe('speechSegments', () => {
  it('emits speech-start once speech lasted minSpeechMs and speech-end after the hangover, in order', () => {
    scheduler().run(({ cold, expectObservable }) => {
      // a..c quiet, D..I loud (120 ms), j..r quiet (180 ms): start needs 40 ms, end needs 100 ms of silence.
      const marble = 'abcDEFGHIjklmnopqr|';
      const src = cold(marble, framesOf(marble));
      const out = src.pipe(speechSegments({ thresholdDb: -40, minSpeechMs: 40, hangoverMs: 100 }));
      // Start confirmed at E (D+E = 40 ms); end confirmed at n (j..n = 100 ms of silence).
      expectObservable(out).toBe('----s--------e----|', {
        s: { type: 'speech-start', time: 0.06 },
        e: { type: 'speech-end', time: 0.18, duration: 0.12 },
      } satisfies Record<string, SpeechEvent>);
    });
  });

  it('ignores a blip shorter than minSpeechMs and a pause shorter than the hangover', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const marble = 'aBcdEFGhIJKl|';
      const src = cold(marble, framesOf(marble));
      // B alone is 20 ms (< 40 ms); the pause h is 20 ms (< 100 ms hangover): one segment from E, ended by completion.
      expectObservable(src.pipe(speechSegments({ minSpeechMs: 40, hangoverMs: 100 }))).toBe('-----s------(e|)', {
        s: { type: 'speech-start', time: 0.08 },
        e: { type: 'speech-end', time: 0.24, duration: 0.16 },
      });
    });
  });

  it('closes an open segment when the stream completes and forwards errors without a closing event', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const values = framesOf('ABC');
      expectObservable(cold('ABC|', values).pipe(speechSegments({ minSpeechMs: 20 }))).toBe('s--(e|)', {
        s: { type: 'speech-start', time: 0 },
        e: { type: 'speech-end', time: 0.06, duration: 0.06 },
      });
      expectObservable(cold('AB#', values, new Error('boom')).pipe(speechSegments({ minSpeechMs: 20 }))).toBe('s-#', { s: { type: 'speech-start', time: 0 } }, new Error('boom'));
    });
  });

  it('uses the denoise speech flag when asked to', () => {
    scheduler().run(({ cold, expectObservable }) => {
      const f = (i: number, speech: boolean): AudioFrame => ({ ...frame(i, QUIET), speech });
      const src = cold('abcd|', { a: f(0, false), b: f(1, true), c: f(2, true), d: f(3, false) });
      expectObservable(src.pipe(speechSegments({ by: 'vad', minSpeechMs: 40, hangoverMs: 20 }))).toBe('--se|', {
        s: { type: 'speech-start', time: 0.02 },
        e: { type: 'speech-end', time: 0.06, duration: 0.04 },
      });
    });
  });

  it('keeps its times when the rate changes mid-segment (positions count samples at each frame\'s rate)', () => {
    scheduler().run(({ cold, expectObservable }) => {
      // 20 ms frames: quiet then loud at 48 kHz, the stream goes on at 16 kHz (a rebuilt stream, a stage that
      // changed its output), loud then quiet: speech from 0.04 s to 0.10 s.
      const at16k = (i: number, rms: number): AudioFrame => ({ ...frame(i, rms), position: i * 320, sampleRate: 16000, data: new Float32Array(320) });
      const src = cold('abCDEfgh|', { a: frame(0, QUIET), b: frame(1, QUIET), C: frame(2, LOUD), D: frame(3, LOUD), E: at16k(4, LOUD), f: at16k(5, QUIET), g: at16k(6, QUIET), h: at16k(7, QUIET) });
      expectObservable(src.pipe(speechSegments({ minSpeechMs: 40, hangoverMs: 40 }))).toBe('---s--e-|', {
        s: { type: 'speech-start', time: 0.04 },
        e: { type: 'speech-end', time: 0.1, duration: 0.06 },
      });
    });
  });

  it('rejects bad options up front, as every library option: EARSHOT_OPTION_INVALID naming the option as the caller wrote it', () => {
    const invalid = (option: string, message: RegExp) => expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', extensions: { option }, message: expect.stringMatching(message) });
    expect(() => speechSegments({ by: 'loudness' as 'vad' })).toThrow(invalid('by', /must be one of energy, vad, got "loudness"/));
    expect(() => speechSegments({ thresholdDb: Number.NaN })).toThrow(invalid('thresholdDb', /from -120 to 0 dBFS/));
    expect(() => speechSegments({ minSpeechMs: -5 })).toThrow(invalid('minSpeechMs', /from 0 to 60000 ms, got -5$/));
    expect(() => speechSegments({ thresholdDb: 10n as unknown as number })).toThrow(invalid('thresholdDb', /from -120 to 0 dBFS, got 10$/));
    // A misspelt option was taken and ignored.
    expect(() => speechSegments({ hangover: 500 } as never)).toThrow(invalid('hangover', /is not an option of speechSegments\(\) \(did you mean hangoverMs\?\)/));
    expect(() => speechSegments({ by: 'vad', thresholdDb: -50, minSpeechMs: 0, hangoverMs: 200 })).not.toThrow();
  });
});
