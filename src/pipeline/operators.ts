/**
 * RxJS operators for every worker stage, and `inWorkers()` which fuses
 * consecutive stages into one worker hop.
 *
 * Each stage operator (`denoise()`, `resample({ sampleRate: 16000 })`, …) is a
 * plain `OperatorFunction<AudioFrame, AudioFrame>`: used alone it costs one
 * worker hop. It also carries its stage declaration, so
 * `inWorkers(denoise(), highpass({ frequency: 80 }), resample({ sampleRate: 16000 }))`
 * runs all three in one hop — one pool stream, pinned to one worker (the
 * stream's affinity), PCM in, PCM out — exactly like a pipeline branch.
 *
 * Semantics (marble-tested): frames come out in media order; completion of the
 * source drains the worker (every frame already pushed comes out) and then
 * completes; an error of the source is forwarded after the drain; a stage that
 * fails in the worker errors the output with its message, after the frames it
 * processed before (stream-processor.ts, `StageFailure`); unsubscribing frees
 * the worker state.
 */
import type { Observable, OperatorFunction, Subscriber } from 'rxjs';
import { builtinStageDefinitions } from '../dsp/registry.js';
import { stageOptionProblems } from '../dsp/stage-type.js';
import type { PcmInput } from '../dsp/stream-processor.js';
import type { StageSpec } from '../dsp/types.js';
import type { AudioFrame } from '../media/frames.js';
import { EarshotError, errors } from '../errors.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { getDefaultPool, scopedPool, withDefaultPool } from '../pool/default-pool.js';
import { liftOperator } from './lift-operator.js';
import { checkStageChain } from './stage-chain-checks.js';

/** A frame of processed audio (what the sinks, processors and these operators see). */
export type { AudioFrame } from '../media/frames.js';

const STAGES = Symbol.for('earshot.stages');

/** An operator that runs worker stages; `inWorkers()` fuses several into one hop. */
export interface StageOperator extends OperatorFunction<AudioFrame, AudioFrame> {
  /** The stage declarations this operator runs, in order (as in a pipeline's `stages`). */
  readonly [STAGES]: readonly StageSpec[];
}

/** Options of `inWorkers()` when given as its first argument. */
export interface InWorkersOptions {
  /** Pool to run on. Default: the default pool (`setDefaultPool`, or one created on first use). */
  pool?: WorkerPool;
}

// The default pool lives in pool/default-pool.ts; re-exported here for the operators' users.
export { setDefaultPool, hasDefaultPool, getDefaultPool, closeDefaultPool } from '../pool/default-pool.js';

/** True if `x` is a stage operator (carries stage declarations). */
export function isStageOperator(x: unknown): x is StageOperator {
  return typeof x === 'function' && Array.isArray((x as Partial<StageOperator>)[STAGES]);
}

/** The stage declarations of a stage operator, e.g. to put them in a pipeline document. */
export function stagesOf(op: StageOperator): StageSpec[] {
  return op[STAGES].map((s) => ({ ...s }));
}

/**
 * Fuses stage operators into one worker hop. Accepts stage operators (also
 * fused ones), optionally preceded by `{ pool }`. Anything else (a stage
 * operator's factory not called, `denoise` for `denoise()`; an RxJS
 * operator; an object that is not these options) is a TypeError naming the
 * argument, rather than a stage silently left out.
 */
export function inWorkers(...args: Array<StageOperator | InWorkersOptions>): StageOperator {
  const first = args[0];
  const hasOptions = first !== undefined && !isStageOperator(first) && isOptionsObject(first);
  if (hasOptions) {
    const problem = optionsProblem(first);
    if (problem) throw new TypeError(`inWorkers: argument 0 is not a stage operator nor valid options: ${problem}`);
  }
  const options: InWorkersOptions = hasOptions ? (first as InWorkersOptions) : {};
  const stages: StageSpec[] = [];
  for (let i = hasOptions ? 1 : 0; i < args.length; i++) {
    const op = args[i];
    if (!isStageOperator(op)) throw new TypeError(`inWorkers: argument ${i} is not a stage operator (use denoise(), resample({…}), stage(type, options), …; options go first: { pool })`);
    stages.push(...op[STAGES]);
  }
  return makeStageOperator(stages, options.pool);
}

const OPTION_NAMES: ReadonlySet<string> = new Set<keyof InWorkersOptions>(['pool']);

/** A plain object (`{ … }` or `Object.create(null)`): what options look like, as opposed to a function or a class instance. */
function isOptionsObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null;
}

/** What is wrong with `options` as `InWorkersOptions`, or undefined: every key known, `pool` a WorkerPool. */
function optionsProblem(options: Record<string, unknown>): string | undefined {
  const unknown = Object.keys(options).filter((k) => !OPTION_NAMES.has(k));
  if (unknown.length > 0) return `unknown option ${unknown.map((k) => `"${k}"`).join(', ')}; allowed: ${[...OPTION_NAMES].join(', ')}`;
  const pool = options.pool;
  if (pool !== undefined && !isPool(pool)) return `pool: must be a WorkerPool, got ${describe(pool)}`;
  return undefined;
}

/**
 * A WorkerPool, or one from another copy of this package (an application and a
 * library of its own may each install one): judged by what the operators call
 * on it, as `instanceof` would refuse the other copy's class.
 */
function isPool(x: unknown): boolean {
  if (x instanceof WorkerPool) return true;
  const p = x as Partial<Record<'openStream' | 'start' | 'close', unknown>> | null;
  return typeof p === 'object' && p !== null && typeof p.openStream === 'function' && typeof p.start === 'function' && typeof p.close === 'function';
}

function describe(x: unknown): string {
  if (typeof x === 'function') return 'a function';
  if (typeof x === 'object' && x !== null) return `an object (${(x as object).constructor?.name ?? 'no prototype'})`;
  return typeof x === 'string' ? JSON.stringify(x) : String(x);
}

/**
 * A worker stage by type: built-in (options checked against its definition
 * now, its schema and its rules across options, a TypeError naming each
 * option at fault: `gain(): db: must be a number from -60 to 60, got 100`,
 * `bandpass(): highFrequency: 300 is not allowed; use a number above
 * "lowFrequency" (3000)`) or from a registered stage module (options checked
 * by its `create()` when the stream starts). What depends on the frames'
 * format (a frequency below half their rate) is checked when they come.
 */
export function stage(type: string, options: Record<string, unknown> = {}): StageOperator {
  const spec = { ...options, type };
  const definition = builtinStageDefinitions.get(type);
  const problems = definition ? stageOptionProblems(definition, spec) : [];
  if (problems.length > 0) throw new TypeError(`${type}(): ${problems.map((p) => (p.option ? `${p.option}: ${p.text}` : p.text)).join('; ')}`);
  return makeStageOperator([spec]);
}

/** Builds a stage operator for `stages` (used by the typed per-stage operators). */
export function makeStageOperator(stages: StageSpec[], pool?: WorkerPool): StageOperator {
  const frozen = stages.map((s) => Object.freeze({ ...s }));
  const op = ((source: Observable<AudioFrame>) => runInWorkers(source, frozen, pool)) as StageOperator;
  Object.defineProperty(op, STAGES, { value: Object.freeze(frozen), enumerable: false });
  return op;
}

function runInWorkers(source: Observable<AudioFrame>, stages: StageSpec[], poolOption: WorkerPool | undefined): Observable<AudioFrame> {
  // Through `lift`, as RxJS's own operators are built: a source that guards its subscribers (a
  // server's `audio$`: a throwing callback is reported, not an uncaught exception) keeps doing so
  // after this operator. A `new Observable` here lost the guard.
  return liftOperator(source, (subscriber: Subscriber<AudioFrame>) => {
    // The pool: the one given; else that of the server whose code subscribes now (a `streams$`
    // subscriber, a processor); else that of whoever delivers the first frame (a server's stream,
    // a stage operator upstream), so an operator subscribed after an `await` still runs on its
    // server's workers; else the process-wide default (default-pool.ts).
    let pool: WorkerPool | undefined = poolOption ?? scopedPool();
    let poolReady: Promise<void> | undefined;
    let stream: ReturnType<WorkerPool['openStream']> | undefined;
    let format: { sampleRate: number; channels: 1 | 2; sampleFormat: 'f32' | 's16' } | undefined;
    let failed = false;
    let ready = false;
    let unsubscribed = false;
    const early: AudioFrame[] = [];

    const fail = (e: unknown) => {
      if (failed) return;
      failed = true;
      void stream?.close();
      subscriber.error(e);
    };
    const open = (f: AudioFrame) => {
      if (f.channels !== 1 && f.channels !== 2) throw new RangeError(`inWorkers: frames must be mono or stereo, got ${f.channels} channels`);
      format = { sampleRate: f.sampleRate, channels: f.channels, sampleFormat: f.data instanceof Int16Array ? 's16' : 'f32' };
      const own = pool!;
      // What the chain refuses for this format is an option error now, not a worker's plain one later.
      checkStageChain(stages, format, own.customStageTypes);
      stream = own.openStream(
        { channels: format.channels, input: { ...format }, branches: [{ stages }] },
        {
          // Delivered as this pool's frames: a stage operator downstream without a pool of its own takes this one.
          onFrames: (_branch, frames) => {
            if (!failed) withDefaultPool(own, () => {
              for (const out of frames) subscriber.next(out);
            });
          },
          // A coded error: the pool's own (a hung or crashing stage) with the chain named, else EARSHOT_STAGE_FAILED.
          onError: (message, error) => {
            const chain = `inWorkers(${stages.map((s) => s.type).join(', ')})`;
            fail(error ? new EarshotError(error.code, error.statusCode, error.title, `${chain}: ${error.message}`, error.extensions, { cause: error }) : errors.STAGE_FAILED(chain, message));
          },
        },
        // Every frame the source gives comes out: one faster than the workers (a file read in a
        // script) waits in memory, where it already was, rather than losing all but its last 2 s.
        { lossless: true },
      );
    };
    const push = (f: AudioFrame) => {
      if (!stream) open(f);
      else if (f.sampleRate !== format!.sampleRate || f.channels !== format!.channels) {
        throw new RangeError(`inWorkers: the format changed mid-stream (${format!.sampleRate} Hz × ${format!.channels} → ${f.sampleRate} Hz × ${f.channels}); split the stream first`);
      }
      const input: PcmInput = { position: f.position, data: f.data, arrival: f.arrival };
      if (f.vad !== undefined) input.vad = f.vad;
      if (f.speech !== undefined) input.speech = f.speech;
      stream!.push(input);
    };
    // Drain, then complete or error: every frame pushed before the end comes out.
    const end = (error?: { e: unknown }) => {
      const done = () => {
        if (failed) return;
        if (error) fail(error.e);
        else subscriber.complete();
      };
      if (stream) void stream.close().then(done);
      else done();
    };

    const usePool = (chosen: WorkerPool) => {
      pool = chosen;
      poolReady = chosen.start().then(
        () => {
          // Unsubscribed while the pool started: open nothing (no one would ever close it).
          if (unsubscribed) {
            early.length = 0;
            return;
          }
          ready = true;
          try {
            for (const f of early.splice(0)) push(f);
          } catch (e) {
            fail(e);
          }
        },
        (e: unknown) => fail(e),
      );
    };
    if (pool) usePool(pool);
    const settled = () => poolReady ?? Promise.resolve();
    const sub = source.subscribe({
      next: (f) => {
        if (failed) return;
        if (!poolReady) usePool(getDefaultPool());
        if (!ready) {
          // Kept while the pool starts (~0.1–0.3 s), every one (see `lossless` above).
          early.push(f);
          return;
        }
        try {
          push(f);
        } catch (e) {
          fail(e);
        }
      },
      error: (e: unknown) => void settled().then(() => end({ e })),
      complete: () => void settled().then(() => end()),
    });
    return () => {
      unsubscribed = true;
      sub.unsubscribe();
      void stream?.close();
    };
  });
}
