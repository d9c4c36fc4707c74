/**
 * Main-thread processors: user code that consumes a stream's processed audio on
 * the main thread — an RxJS operator or an observer —
 * registered by name at runtime and attached to streams by a pipeline's
 * `processor` sink, by peer, by room, or to every stream.
 *
 * A processor is isolated like every sink (mediasoup's `safeEmit` idea): if it
 * throws or its operator errors, it alone is detached, the failure is reported
 * once (logged with peer and processor name, counted in the peer's stats) and
 * the stream, the recorder and the other processors go on.
 */
import { Observable, type Observer, type OperatorFunction, type Subscription } from 'rxjs';
import type { AudioFrame } from '../media/frames.js';
import { errors } from '../errors.js';

/** What a processor factory gets for each stream it is attached to. */
export interface ProcessorContext {
  /** Peer id of the stream (`/whip/:room/:peer`). */
  readonly peerId: string;
  /** Room id of the stream. */
  readonly roomId: string;
  /** WHIP session id. */
  readonly sessionId: string;
  /** Pipeline branch the processor reads (e.g. `main`). */
  readonly branch: string;
  /** Options from the pipeline's `processor` sink or from `attachProcessor`; `{}` if none. */
  readonly options: Readonly<Record<string, unknown>>;
  /**
   * Publishes an event (e.g. `speech-start`) on the server's `events$` with
   * the peer, room and processor name attached. Never throws.
   */
  emit(event: string, data?: unknown): void;
}

/**
 * A processor, as its factory returns it for one stream:
 * - an RxJS operator `(audio$) => Observable<unknown>`: subscribed for the
 *   stream's life; what it emits is discarded (publish results with `emit`);
 * - an observer `{ next(frame), complete?() }` (for a plain frame handler).
 */
export type ProcessorInstance = OperatorFunction<AudioFrame, unknown> | Partial<Observer<AudioFrame>>;

/** Makes a processor instance for one stream. May throw to refuse the stream (counted as a processor error). */
export type ProcessorFactory = (context: ProcessorContext) => ProcessorInstance;

/** An event a processor emitted. */
export interface ProcessorEvent {
  peerId: string;
  roomId: string;
  sessionId: string;
  processor: string;
  event: string;
  data: unknown;
  /** `Date.now()` when emitted. */
  at: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Processors registered by name. Names are case-sensitive; registering a name
 * again replaces the factory for streams attached later. A registry made with
 * a `fallback` also finds the fallback's processors (its own win on a name
 * clash): each server has its own registry over the process-wide one, so what
 * is registered on one server is not visible on another, while
 * `registerProcessor` still reaches every server.
 */
export class ProcessorRegistry {
  readonly #factories = new Map<string, ProcessorFactory>();
  readonly #fallback: ProcessorRegistry | undefined;

  constructor(options: { fallback?: ProcessorRegistry } = {}) {
    this.#fallback = options.fallback;
  }

  register(name: string, factory: ProcessorFactory): void {
    if (typeof name !== 'string' || !NAME.test(name)) throw errors.PROCESSOR_INVALID(String(name), 'the name must be 1–64 letters, digits, "_", "." or "-"');
    if (typeof factory !== 'function') throw errors.PROCESSOR_INVALID(name, 'the factory must be a function (context) => operator | observer');
    this.#factories.set(name, factory);
  }

  /** Removes a processor registered here (not one of the fallback's); false if there was none. */
  unregister(name: string): boolean {
    return this.#factories.delete(name);
  }

  has(name: string): boolean {
    return this.#factories.has(name) || (this.#fallback?.has(name) ?? false);
  }

  /** The factory, or `EARSHOT_PROCESSOR_NOT_FOUND`. */
  get(name: string): ProcessorFactory {
    const f = this.#factories.get(name) ?? (this.#fallback?.has(name) ? this.#fallback.get(name) : undefined);
    if (!f) throw errors.PROCESSOR_NOT_FOUND(name, this.names());
    return f;
  }

  names(): string[] {
    return [...new Set([...this.#factories.keys(), ...(this.#fallback?.names() ?? [])])].sort();
  }
}

/**
 * Runs one processor on `audio$` until the stream completes or the processor
 * fails; `onError` is called at most once, after which the processor is
 * detached. Returns the subscription (unsubscribe to detach it by hand).
 */
export function runProcessor(
  audio$: Observable<AudioFrame>,
  factory: ProcessorFactory,
  context: ProcessorContext,
  onError: (error: Error) => void,
): Subscription | undefined {
  let failed = false;
  const fail = (e: unknown) => {
    if (failed) return;
    failed = true;
    onError(e instanceof Error ? e : new Error(String(e)));
  };
  let instance: ReturnType<ProcessorFactory>;
  try {
    instance = factory(context);
  } catch (e) {
    fail(e);
    return undefined;
  }
  if (typeof instance === 'function') {
    let out: unknown;
    try {
      out = instance(audio$);
    } catch (e) {
      fail(e);
      return undefined;
    }
    if (!(out instanceof Observable)) {
      fail(new TypeError('the operator did not return an Observable (a frame handler must be returned as { next(frame) { … } })'));
      return undefined;
    }
    return out.subscribe({ error: fail });
  }
  if (typeof instance !== 'object' || instance === null) {
    fail(new TypeError('the factory returned neither an RxJS operator nor an observer'));
    return undefined;
  }
  return subscribeGuarded(audio$, instance, fail);
}

function subscribeGuarded(audio$: Observable<AudioFrame>, observer: Partial<Observer<AudioFrame>>, fail: (e: unknown) => void): Subscription {
  // try/catch around each callback: RxJS would otherwise rethrow asynchronously
  // (reportUnhandledError) and crash the process.
  const sub: Subscription = audio$.subscribe({
    next: (f) => {
      try {
        observer.next?.(f);
      } catch (e) {
        sub?.unsubscribe();
        fail(e);
      }
    },
    complete: () => {
      try {
        observer.complete?.();
      } catch (e) {
        fail(e);
      }
    },
  });
  return sub;
}

/** The process-wide registry: every server's own registry falls back to it. */
export const defaultProcessors = new ProcessorRegistry();

/**
 * Registers a main-thread processor by name in the process-wide registry, for
 * pipelines' `processor` sinks and `attachProcessor`. Registering a name again
 * replaces the factory for streams attached afterwards.
 */
export function registerProcessor(name: string, factory: ProcessorFactory): void {
  defaultProcessors.register(name, factory);
}
