/**
 * Marble tests (RxJS TestScheduler) for the main-thread operators: ordering,
 * completion and error semantics of speechSegments, and the isolation of
 * processors (a failing one is detached once; the stream and other sinks go on).
 */
import { describe, expect, it } from 'vitest';
import { Subject, map, type Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { speechSegments, type SpeechEvent } from '../../src/pipeline/frame-operators.js';
import type { AudioFrame } from '../../src/pipeline/operators.js';
import { runProcessor, ProcessorRegistry, type ProcessorContext } from '../../src/sinks/processors.js';

/** A 20 ms mono frame at 48 kHz at frame index `i` with the given RMS. */
function frame(i: number, rms: number): AudioFrame {
  return { position: i * 960, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data: new Float32Array(960), rms, peak: rms, arrival: 0 } as AudioFrame;
}

const LOUD = 0.1; // −20 dBFS
const QUIET = 0.001; // −60 dBFS

function scheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

/** Frames by marble letter: L loud, q quiet, each one 20 ms frame, indexed by position in the marble. */
function framesOf(marble: string): Record<string, AudioFrame> {
  const values: Record<string, AudioFrame> = {};
  let i = 0;
  for (const ch of marble) {
    if (!/[a-zA-Z]/.test(ch)) continue;
    values[ch] = frame(i++, ch === ch.toUpperCase() ? LOUD : QUIET);
  }
  return values;
}

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

  it('rejects bad options up front', () => {
    expect(() => speechSegments({ by: 'loudness' as 'vad' })).toThrow(RangeError);
    expect(() => speechSegments({ thresholdDb: Number.NaN })).toThrow(/thresholdDb/);
  });
});

describe('processor isolation', () => {
  const context = (emitted: unknown[] = []): ProcessorContext => ({
    peerId: 'p',
    roomId: 'r',
    sessionId: 's',
    branch: 'main',
    options: {},
    emit: (event, data) => emitted.push({ event, data }),
  });

  it('detaches an operator processor that errors, reports it once, and leaves other subscribers running', () => {
    scheduler().run(({ hot, expectObservable }) => {
      const values = framesOf('abcde');
      const audio$ = hot('-a-b-c-d-e-|', values);
      const errorsSeen: string[] = [];
      const seen: number[] = [];
      runProcessor(
        audio$,
        () => (frames$: Observable<AudioFrame>) =>
          frames$.pipe(
            map((f) => {
              if (f.position === 2 * 960) throw new Error('bad frame');
              seen.push(f.position);
              return f;
            }),
          ),
        context(),
        (e) => errorsSeen.push(e.message),
      );
      // Another sink on the same stream sees every frame and the completion.
      expectObservable(audio$.pipe(map((f) => f.position / 960))).toBe('-a-b-c-d-e-|', { a: 0, b: 1, c: 2, d: 3, e: 4 });
      return () => {
        expect(seen).toEqual([0, 960]);
        expect(errorsSeen).toEqual(['bad frame']);
      };
    });
  });

  it('detaches an observer that throws after the first failure and never calls it again', () => {
    const audio$ = new Subject<AudioFrame>();
    const calls: number[] = [];
    const errorsSeen: Error[] = [];
    const other: number[] = [];
    audio$.subscribe((f) => other.push(f.position));
    runProcessor(
      audio$,
      () => ({
        next(f) {
          calls.push(f.position);
          if (calls.length === 2) throw new TypeError('observer broke');
        },
      }),
      context(),
      (e) => errorsSeen.push(e),
    );
    for (let i = 0; i < 4; i++) audio$.next(frame(i, LOUD));
    audio$.complete();
    expect(calls).toEqual([0, 960]);
    expect(errorsSeen.map((e) => e.message)).toEqual(['observer broke']);
    expect(other).toEqual([0, 960, 1920, 2880]);
  });

  it('reports a factory that throws, or returns something unusable, without subscribing', () => {
    const audio$ = new Subject<AudioFrame>();
    const errorsSeen: string[] = [];
    expect(runProcessor(audio$, () => { throw new Error('no'); }, context(), (e) => errorsSeen.push(e.message))).toBeUndefined();
    expect(runProcessor(audio$, () => 42 as never, context(), (e) => errorsSeen.push(e.message))).toBeUndefined();
    expect(runProcessor(audio$, () => (() => 'not an observable') as never, context(), (e) => errorsSeen.push(e.message))).toBeUndefined();
    expect(errorsSeen).toEqual(['no', expect.stringMatching(/neither/), expect.stringMatching(/did not return an Observable/)]);
    expect(audio$.observed).toBe(false);
  });

  it('passes completion to observers and emits events through the context', () => {
    const audio$ = new Subject<AudioFrame>();
    const emitted: unknown[] = [];
    let completed = false;
    runProcessor(
      audio$,
      (ctx) => ({
        next: (f) => ctx.emit('frame', f.position),
        complete: () => {
          completed = true;
        },
      }),
      context(emitted),
      () => {},
    );
    audio$.next(frame(0, LOUD));
    audio$.complete();
    expect(emitted).toEqual([{ event: 'frame', data: 0 }]);
    expect(completed).toBe(true);
  });

  it('registry: validates names and factories, and names the registered ones when one is missing', () => {
    const reg = new ProcessorRegistry();
    reg.register('asr', () => ({}));
    expect(() => reg.register('bad name!', () => ({}))).toThrow(expect.objectContaining({ code: 'EARSHOT_PROCESSOR_INVALID' }));
    expect(() => reg.register('x', 'nope' as never)).toThrow(expect.objectContaining({ code: 'EARSHOT_PROCESSOR_INVALID' }));
    expect(() => reg.get('asr2')).toThrow(expect.objectContaining({ code: 'EARSHOT_PROCESSOR_NOT_FOUND', message: expect.stringMatching(/registered: asr/) }));
    expect(reg.names()).toEqual(['asr']);
  });
});
