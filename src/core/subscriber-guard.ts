/**
 * The observables the application subscribes to (`streams$`, `audio$`,
 * `events$`, …) with its callbacks guarded. RxJS catches an exception thrown by
 * a subscriber's callback and rethrows it on a timer, where it becomes an
 * uncaughtException that ends the process: one bug in a listener would take
 * every stream down. Guarded, it is reported once per subscriber through
 * `report` instead, and the subscriber stays subscribed (as RxJS leaves it).
 *
 * Chains built with `.pipe()` keep the guard, because operators build on
 * `lift`: `streams$.pipe(mergeMap((s) => s.audio$)).subscribe(fn)` is covered.
 * An operator of such a chain that throws (a `map`, a `tap`) sends an error
 * down the chain, which ends it, as RxJS does; a subscriber with no `error`
 * callback would have it rethrown as an uncaughtException, so that error is
 * reported too (`ended`: the chain is over). A subscriber that handles errors
 * gets them as usual. The operators' own subscribers (RxJS `Subscriber`
 * instances) are passed through untouched, so `firstValueFrom`, `mergeMap`
 * and friends behave as usual.
 */
import { Observable, Subscriber, type Observer, type Operator, type Subscription, type TeardownLogic } from 'rxjs';

/**
 * Called once per subscriber, with what its callback threw and the value it was given (undefined
 * for `complete`); or, `ended` true, with the error that ended the chain of a subscriber that has
 * no `error` callback of its own.
 */
export type SubscriberErrorReport = (error: Error, value: unknown, ended?: boolean) => void;

/** `source` with every application subscriber's callbacks guarded. */
export function guardSubscribers<T>(source: Observable<T>, report: SubscriberErrorReport): Observable<T> {
  return new GuardedObservable<T>((subscriber) => source.subscribe(subscriber), report);
}

class GuardedObservable<T> extends Observable<T> {
  readonly #report: SubscriberErrorReport;

  constructor(subscribe: ((subscriber: Subscriber<T>) => TeardownLogic) | undefined, report: SubscriberErrorReport) {
    super(subscribe);
    this.#report = report;
  }

  /** Keeps the guard through `.pipe()` (RxJS operators are built on `lift`). */
  override lift<R>(operator?: Operator<T, R>): Observable<R> {
    const lifted = new GuardedObservable<R>(undefined, this.#report);
    lifted.source = this;
    lifted.operator = operator;
    return lifted;
  }

  override subscribe(
    observerOrNext?: Partial<Observer<T>> | ((value: T) => void) | null,
    error?: ((error: unknown) => void) | null,
    complete?: (() => void) | null,
  ): Subscription {
    if (observerOrNext instanceof Subscriber) return super.subscribe(observerOrNext);
    return super.subscribe(guardObserver(observerOrNext, error, complete, this.#report));
  }
}

function guardObserver<T>(
  observerOrNext: Partial<Observer<T>> | ((value: T) => void) | null | undefined,
  error: ((error: unknown) => void) | null | undefined,
  complete: (() => void) | null | undefined,
  report: SubscriberErrorReport,
): Partial<Observer<T>> {
  const observer: Partial<Observer<T>> =
    typeof observerOrNext === 'function' || observerOrNext == null
      ? { next: observerOrNext ?? undefined, error: error ?? undefined, complete: complete ?? undefined }
      : observerOrNext;
  let reported = false;
  const guarded = <A>(callback: ((arg: A) => void) | undefined): ((arg: A) => void) | undefined =>
    callback &&
    ((arg: A) => {
      try {
        callback(arg);
      } catch (e) {
        if (reported) return;
        reported = true;
        report(e instanceof Error ? e : new Error(String(e)), arg);
      }
    });
  const next = guarded(observer.next?.bind(observer));
  // Without an `error` callback, RxJS would rethrow the error that ended the chain on a timer.
  const failed = guarded(observer.error?.bind(observer)) ?? ((e: unknown) => report(e instanceof Error ? e : new Error(String(e)), undefined, true));
  const completed = guarded<undefined>(observer.complete ? () => observer.complete?.() : undefined);
  return { next, error: failed, complete: completed && (() => completed(undefined)) };
}
