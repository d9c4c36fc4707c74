/**
 * An operator's output built as RxJS builds its own operators' (`source.lift`),
 * so that what the source's class adds to its subscribers carries on past the
 * operator. A server's observables guard their subscribers' callbacks (a
 * throwing callback is reported, not turned into an uncaught exception that
 * ends the process: core/subscriber-guard.ts); an operator that returned a
 * `new Observable` dropped that guard for everything after it.
 *
 * `lift` is marked internal for RxJS 8; the guard itself rests on it, and RxJS
 * 7's operators are built on it.
 */
import type { Observable, Operator, Subscriber, TeardownLogic } from 'rxjs';

export function liftOperator<T, R>(source: Observable<T>, subscribe: (subscriber: Subscriber<R>) => TeardownLogic): Observable<R> {
  const operator: Operator<T, R> = { call: (subscriber) => subscribe(subscriber) };
  return source.lift(operator);
}
