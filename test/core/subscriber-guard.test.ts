/**
 * An application subscriber that throws is reported once, stays subscribed,
 * and never reaches RxJS's unhandled-error path (an uncaughtException); the
 * operators' own subscribers and the source's errors behave as in plain RxJS.
 */
import { config, firstValueFrom, map, Subject, throwError } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { guardSubscribers } from '../../src/core/subscriber-guard.js';

const unhandled = vi.fn();
beforeEach(() => {
  unhandled.mockReset();
  config.onUnhandledError = unhandled;
});
afterEach(() => {
  config.onUnhandledError = null;
});

describe('guardSubscribers', () => {
  it('reports the first exception of a subscriber with the value, and keeps delivering to it', () => {
    const source = new Subject<number>();
    const report = vi.fn();
    const seen: number[] = [];
    guardSubscribers(source, report).subscribe((n) => {
      seen.push(n);
      throw new Error(`bad ${n}`);
    });
    source.next(1);
    source.next(2);
    expect(seen).toEqual([1, 2]);
    expect(report).toHaveBeenCalledTimes(1);
    expect(report).toHaveBeenCalledWith(expect.objectContaining({ message: 'bad 1' }), 1);
    expect(unhandled).not.toHaveBeenCalled();
  });

  it('reports each throwing subscriber once; the others are not disturbed', () => {
    const source = new Subject<string>();
    const report = vi.fn();
    const guarded = guardSubscribers(source, report);
    const good: string[] = [];
    guarded.subscribe(() => {
      throw new Error('first');
    });
    guarded.subscribe((v) => good.push(v));
    guarded.subscribe({
      next() {
        throw 'not an Error';
      },
    });
    source.next('a');
    source.next('b');
    expect(good).toEqual(['a', 'b']);
    expect(report.mock.calls.map(([e]) => (e as Error).message)).toEqual(['first', 'not an Error']);
    expect(unhandled).not.toHaveBeenCalled();
  });

  it('keeps the guard through .pipe()', () => {
    const source = new Subject<number>();
    const report = vi.fn();
    guardSubscribers(source, report)
      .pipe(map((n) => n * 2))
      .subscribe(() => {
        throw new Error('piped');
      });
    source.next(21);
    expect(report).toHaveBeenCalledWith(expect.objectContaining({ message: 'piped' }), 42);
    expect(unhandled).not.toHaveBeenCalled();
  });

  it('guards complete and error callbacks, and calls an observer object with itself as this', () => {
    const source = new Subject<number>();
    const report = vi.fn();
    const observer = {
      total: 0,
      next(n: number) {
        this.total += n;
      },
      complete() {
        throw new Error(`done at ${this.total}`);
      },
    };
    guardSubscribers(source, report).subscribe(observer);
    source.next(3);
    source.complete();
    expect(observer.total).toBe(3);
    expect(report).toHaveBeenCalledWith(expect.objectContaining({ message: 'done at 3' }), undefined);

    const failing = vi.fn();
    guardSubscribers(throwError(() => new Error('source failed')), report).subscribe({
      error: (e: Error) => {
        failing(e.message);
        throw new Error('error handler failed');
      },
    });
    expect(failing).toHaveBeenCalledWith('source failed');
    expect(report).toHaveBeenLastCalledWith(expect.objectContaining({ message: 'error handler failed' }), expect.objectContaining({ message: 'source failed' }));
    expect(unhandled).not.toHaveBeenCalled();
  });

  it('leaves RxJS subscribers (firstValueFrom, operators) as RxJS has them', async () => {
    const source = new Subject<number>();
    const report = vi.fn();
    const first = firstValueFrom(guardSubscribers(source, report));
    source.next(7);
    await expect(first).resolves.toBe(7);
    const failing = firstValueFrom(guardSubscribers(throwError(() => new Error('handled by the promise')), report));
    await expect(failing).rejects.toThrow('handled by the promise');
    expect(report).not.toHaveBeenCalled();
  });

  it('reports an error that ends the chain of a subscriber without an error callback (an operator threw), instead of rethrowing it', async () => {
    const source = new Subject<number>();
    const report = vi.fn();
    const seen: number[] = [];
    guardSubscribers(source, report)
      .pipe(
        map((v) => {
          if (v === 2) throw new Error('operator bug');
          return v;
        }),
      )
      .subscribe((v) => seen.push(v));
    source.next(1);
    source.next(2);
    source.next(3);
    // RxJS ends the chain at the error; the error is reported, marked as having ended it.
    expect(seen).toEqual([1]);
    expect(report).toHaveBeenCalledTimes(1);
    expect(report).toHaveBeenCalledWith(expect.objectContaining({ message: 'operator bug' }), undefined, true);
    guardSubscribers(throwError(() => new Error('nobody listens')), report).subscribe(() => {});
    expect(report).toHaveBeenLastCalledWith(expect.objectContaining({ message: 'nobody listens' }), undefined, true);
    await new Promise((r) => setTimeout(r, 20)); // RxJS rethrows unhandled errors on a timer
    expect(unhandled).not.toHaveBeenCalled();
  });
});
