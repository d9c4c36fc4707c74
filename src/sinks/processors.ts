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
  /**
   * Messages the client sends on its data channel (a WHIP offer with
   * `pc.createDataChannel()`): parsed JSON, or the text when it is not JSON.
   * Hot: only messages from when you subscribe; completes when the stream
   * ends; never emits for a client without a data channel. A handler that
   * throws detaches the processor, as a throwing frame handler does.
   */
  readonly messages$: Observable<unknown>;
  /**
   * Sends `data` to the client on its data channel, as
   * `{"v":1,"type":"message","processor":<name>,"data":<data>,"at":<ms>}`
   * (see docs/data-channel.md): queued and paced with the stream's other
   * messages (at most 10 per second, batched). Returns false, never throws,
   * when it cannot: no data channel, `data` that JSON cannot carry
   * (`undefined`, a function, a symbol, a BigInt, a cycle; send `null` for
   * "no data"), a message over 16 KiB or over the client's
   * `a=max-message-size`, or the queue full.
   */
  send(data: unknown): boolean;
}

/**
 * The client's data channel as processors see it (the server's client feed,
 * core/client-feed.ts, provides it to a stream's processors).
 */
export interface ProcessorClientLink {
  /** The client's messages for processor `processor`; a subscriber that throws is reported through `onError`. */
  messages$(processor: string, onError: (error: Error) => void): Observable<unknown>;
  /** Queues `data` from `processor` for the client; false if it cannot (never throws). */
  send(processor: string, data: unknown): boolean;
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

/** Rate and channels of the audio a processor stage gets or emits. */
export interface ProcessorStageFormat {
  sampleRate: number;
  channels: number;
  /** 'f32' unless a `format` worker stage before it made the frames 16-bit. */
  sampleFormat: 'f32' | 's16';
}

/** What a processor factory gets when the processor runs as a pipeline stage. */
export interface ProcessorStageContext extends ProcessorContext {
  /** The format of the frames the stage gets (the worker stages' output, or the previous processor stage's). */
  readonly input: Readonly<ProcessorStageFormat>;
  /** The format its frames must have: the input's, unless the registration's `outputFormat` says otherwise. */
  readonly output: Readonly<ProcessorStageFormat>;
}

/**
 * A processor stage, as its factory returns it for one stream:
 * - an RxJS operator `(frames$) => Observable<AudioFrame>`: what it emits is
 *   the branch's audio from there on (it may emit later, fewer or more frames;
 *   media positions are the frames' own `position`);
 * - an object `{ map(frame) }`: a synchronous function from each frame to the
 *   frame that replaces it.
 * Emitted frames must have the stage's `output` rate and channels.
 */
export type ProcessorStageInstance = OperatorFunction<AudioFrame, AudioFrame> | { map(frame: AudioFrame): AudioFrame };

/** Makes a processor stage for one stream. May throw to refuse (the stage is detached, see `registerProcessor`). */
export type ProcessorStageFactory = (context: ProcessorStageContext) => ProcessorStageInstance;

/** How a processor registers as a pipeline stage. */
export interface ProcessorStageOptions {
  /**
   * The format of the frames the stage emits, from the format it gets and its
   * pipeline options, when it changes rate or channels (a recording's header
   * is written in it). Omitted members keep the input's. Without it, the
   * stage must emit frames in the format it gets.
   */
  outputFormat?(input: Readonly<ProcessorStageFormat>, options: Readonly<Record<string, unknown>>): { sampleRate?: number; channels?: 1 | 2 };
}

/** Options of `registerProcessor` / `ProcessorRegistry.register`. */
export interface RegisterProcessorOptions {
  /**
   * Also usable as a pipeline stage (`{ "type": "processor", "name": … }` in a
   * branch's `stages`): the factory then gets a `ProcessorStageContext` and
   * returns a `ProcessorStageInstance`, whose frames become the branch's
   * audio. `true`, or the stage's options (its output format).
   */
  stage?: boolean | ProcessorStageOptions;
}

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
  /** Processors registered as stages, with their stage options. */
  readonly #stages = new Map<string, ProcessorStageOptions>();
  readonly #fallback: ProcessorRegistry | undefined;

  constructor(options: { fallback?: ProcessorRegistry } = {}) {
    this.#fallback = options.fallback;
  }

  /**
   * Registers `factory` as `name`. With `{ stage: true }` (or stage options)
   * the processor can also be a pipeline stage whose output is the branch's
   * audio (see `RegisterProcessorOptions`).
   */
  register(name: string, factory: ProcessorFactory, options?: RegisterProcessorOptions & { stage?: false }): void;
  register(name: string, factory: ProcessorStageFactory, options: RegisterProcessorOptions & { stage: true | ProcessorStageOptions }): void;
  register(name: string, factory: ProcessorFactory | ProcessorStageFactory, options?: RegisterProcessorOptions): void;
  register(name: string, factory: ProcessorFactory | ProcessorStageFactory, options: RegisterProcessorOptions = {}): void {
    if (typeof name !== 'string' || !NAME.test(name)) throw errors.PROCESSOR_INVALID(String(name), 'the name must be 1–64 letters, digits, "_", "." or "-"');
    if (typeof factory !== 'function') throw errors.PROCESSOR_INVALID(name, 'the factory must be a function (context) => operator | observer');
    const stage = options?.stage;
    if (stage !== undefined && typeof stage !== 'boolean' && (typeof stage !== 'object' || stage === null)) {
      throw errors.PROCESSOR_INVALID(name, '"stage" must be true, false or { outputFormat(input, options) }');
    }
    if (typeof stage === 'object' && stage.outputFormat !== undefined && typeof stage.outputFormat !== 'function') {
      throw errors.PROCESSOR_INVALID(name, '"stage.outputFormat" must be a function (input, options) => { sampleRate?, channels? }');
    }
    this.#factories.set(name, factory as ProcessorFactory);
    if (stage) this.#stages.set(name, stage === true ? {} : { ...stage });
    else this.#stages.delete(name);
  }

  /** Removes a processor registered here (not one of the fallback's); false if there was none. */
  unregister(name: string): boolean {
    this.#stages.delete(name);
    return this.#factories.delete(name);
  }

  /** The processor is registered as a stage (here, or in the fallback when not registered here). */
  isStage(name: string): boolean {
    if (this.#factories.has(name)) return this.#stages.has(name);
    return this.#fallback?.isStage(name) ?? false;
  }

  /** Stage options of a processor registered as a stage, or `EARSHOT_PROCESSOR_NOT_FOUND`. */
  stageOptions(name: string): ProcessorStageOptions | undefined {
    if (this.#factories.has(name)) return this.#stages.get(name);
    return this.#fallback?.has(name) ? this.#fallback.stageOptions(name) : undefined;
  }

  /** Names of the processors usable as stages. */
  stageNames(): string[] {
    return this.names().filter((n) => this.isStage(n));
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
  /** The processor finished: the operator's output completed, or the observer's `complete()` returned. */
  onComplete?: () => void,
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
    return out.subscribe({ error: fail, complete: () => onComplete?.() });
  }
  if (typeof instance !== 'object' || instance === null) {
    fail(new TypeError('the factory returned neither an RxJS operator nor an observer'));
    return undefined;
  }
  // A stage's `{ map(frame) }` used as a sink: it sees every frame, its results are discarded.
  const stageMap = (instance as { map?: unknown }).map;
  if (typeof stageMap === 'function' && typeof instance.next !== 'function') {
    return subscribeGuarded(audio$, { next: (f) => void stageMap.call(instance, f) }, fail, onComplete);
  }
  return subscribeGuarded(audio$, instance, fail, onComplete);
}

function subscribeGuarded(audio$: Observable<AudioFrame>, observer: Partial<Observer<AudioFrame>>, fail: (e: unknown) => void, onComplete?: () => void): Subscription {
  /** The observer is done: it completed, or it threw (and is failed). */
  let finished = false;
  // try/catch around each callback: RxJS would otherwise rethrow asynchronously
  // (reportUnhandledError) and crash the process.
  const sub: Subscription = audio$.subscribe({
    next: (f) => {
      try {
        observer.next?.(f);
      } catch (e) {
        finished = true;
        sub?.unsubscribe();
        fail(e);
      }
    },
    complete: () => {
      finished = true;
      try {
        observer.complete?.();
      } catch (e) {
        fail(e);
        return;
      }
      onComplete?.();
    },
  });
  // Detached before its stream ended (detach(), the server closing it): its complete() is its one place
  // to release what it opened (a socket, a messages$ subscription), as an operator's teardown is.
  sub.add(() => {
    if (finished) return;
    finished = true;
    try {
      observer.complete?.();
    } catch {
      // Detached already: nothing of it runs any more, and there is no one left to tell.
    }
  });
  return sub;
}

/** The process-wide registry: every server's own registry falls back to it. */
export const defaultProcessors = new ProcessorRegistry();

/**
 * Registers a main-thread processor by name in the process-wide registry, for
 * pipelines' `processor` sinks and `attachProcessor`. Registering a name again
 * replaces the factory for streams attached afterwards.
 *
 * With `{ stage: true }` it can also be a pipeline stage (`{ "type":
 * "processor", "name": … }` in a branch's `stages`) whose output frames are the
 * branch's audio: later processor stages, the recording, the stats, processor
 * sinks and subscribers get them. A stage that throws, errors or emits frames
 * of the wrong format is detached and counted like a processor sink, and the
 * branch goes on with the audio it got (or, for a stage that changes the
 * format, silence in its output format, so the recording keeps its format
 * and media time).
 */
export function registerProcessor(name: string, factory: ProcessorFactory, options?: RegisterProcessorOptions & { stage?: false }): void;
export function registerProcessor(name: string, factory: ProcessorStageFactory, options: RegisterProcessorOptions & { stage: true | ProcessorStageOptions }): void;
export function registerProcessor(name: string, factory: ProcessorFactory | ProcessorStageFactory, options?: RegisterProcessorOptions): void;
export function registerProcessor(name: string, factory: ProcessorFactory | ProcessorStageFactory, options?: RegisterProcessorOptions): void {
  defaultProcessors.register(name, factory, options);
}
