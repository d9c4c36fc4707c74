/**
 * The isolation of processors on the main thread (marble tests with the RxJS
 * TestScheduler, and plain Subjects): a failing one is detached and reported
 * once; the stream and the other sinks go on. And the processor registry.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY, Subject, map, type Observable } from 'rxjs';
import type { AudioFrame } from '../../src/media/frames.js';
import { runProcessor, ProcessorRegistry, type ProcessorContext } from '../../src/sinks/processors.js';
import { framesOf, LOUD, levelFrame as frame, marbleScheduler as scheduler } from '../helpers/marbles.js';

describe('processor isolation', () => {
  const context = (emitted: unknown[] = []): ProcessorContext => ({
    peerId: 'p',
    roomId: 'r',
    sessionId: 's',
    branch: 'main',
    options: {},
    emit: (event, data) => emitted.push({ event, data }),
    messages$: EMPTY,
    send: () => false,
  });

  it('detaches an operator processor that errors, reports it once, and leaves other subscribers running', () => {
    const errorsSeen: string[] = [];
    const seen: number[] = [];
    scheduler().run(({ hot, expectObservable }) => {
      const values = framesOf('abcde');
      const audio$ = hot('-a-b-c-d-e-|', values);
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
    });
    // After run(), which has flushed the virtual time: run() hands back what its callback
    // returns without calling it, so assertions in a returned function would never run.
    expect(seen).toEqual([0, 960]);
    expect(errorsSeen).toEqual(['bad frame']);
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

  it("calls an observer's complete() once when it is detached before its stream ends (its one place to release what it opened)", () => {
    const audio$ = new Subject<AudioFrame>();
    const completes: string[] = [];
    const observer = (name: string, failAt?: number) => () => ({
      next(f: AudioFrame) {
        if (f.position === failAt) throw new Error('broke');
      },
      complete: () => void completes.push(name),
    });
    const detached = runProcessor(audio$, observer('detached'), context(), () => undefined)!;
    const broken = runProcessor(audio$, observer('broken', 960), context(), () => undefined)!;
    runProcessor(audio$, observer('to-the-end'), context(), () => undefined);
    audio$.next(frame(0, LOUD));
    detached.unsubscribe();
    expect(completes).toEqual(['detached']);
    audio$.next(frame(1, LOUD));
    // One that threw is failed, not completed, even when its subscription is let go afterwards.
    broken.unsubscribe();
    audio$.complete();
    detached.unsubscribe();
    expect(completes).toEqual(['detached', 'to-the-end']);
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
