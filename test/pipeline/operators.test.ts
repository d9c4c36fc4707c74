/**
 * The `inWorkers()` operator (src/pipeline/operators.ts): stages run in one
 * worker hop, in media order, options checked when the operator is made.
 * Real workers, real audio.
 */
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, map, share, Subject, toArray, type Observable } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inWorkers, stage, stagesOf, type AudioFrame, type StageOperator } from '../../src/pipeline/operators.js';
import { EarshotError } from '../../src/errors.js';
import { bandpass, denoise, gain, highpass, resample } from '../../src/pipeline/stage-operators.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { closeDefaultPool } from '../../src/pool/default-pool.js';
import { concat as concatSamples, monoFrames } from '../helpers/audio.js';
import { fixtureModule, readFixture } from '../helpers/fixtures.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/dc-blocker-stage.js', import.meta.url));


const concat = (frames: AudioFrame[]): Float32Array => concatSamples(frames.map((f) => f.data as Float32Array));

let pool: WorkerPool;
beforeAll(async () => {
  pool = new WorkerPool({ threads: 2 });
  await pool.start();
  await pool.registerStageModule(EXAMPLE);
  await pool.registerStageModule(fixtureModule('throw-stage.js'));
});
afterAll(async () => {
  await pool.close();
  await closeDefaultPool();
});

describe('inWorkers', () => {
  it('fuses stages into one worker hop: one pool stream for three stages, three for three separate operators', async () => {
    const source = monoFrames((await readFixture('speech-48k.wav')).channels[0].subarray(0, 48000));
    const a = stage('gain', { db: -3 });
    const b = stage('dc-blocker');
    const c = stage('resample', { sampleRate: 16000 });
    const fused = inWorkers({ pool }, a, b, c);
    expect(stagesOf(fused).map((s) => s.type)).toEqual(['gain', 'dc-blocker', 'resample']);

    const opened = () => pool.stats().streamsOpened;
    const before = opened();
    const one = await lastValueFrom(from(source).pipe(fused, toArray()));
    const afterFused = opened();
    const three = await lastValueFrom(from(source).pipe(inWorkers({ pool }, a), inWorkers({ pool }, b), inWorkers({ pool }, c), toArray()));
    expect(afterFused - before).toBe(1); // one hop: one pool stream
    expect(opened() - afterFused).toBe(3); // three hops
    // Same stages, same result, whichever way they are hopped.
    expect(one.map((f) => f.sampleRate)).toEqual(three.map((f) => f.sampleRate));
    expect(concat(one)).toEqual(concat(three));
    expect(one[0].sampleRate).toBe(16000);
  });

  it('are cold, as documented: each subscription opens its own worker stream, on frames it does not share with the other; share() makes one serve both', async () => {
    const source = monoFrames((await readFixture('speech-48k.wav')).channels[0].subarray(0, 9600));
    /** The source pushed through `pipe` to two subscribers at once: what each got, and the worker streams opened. */
    const twoSubscribers = async (pipe: (frames$: Subject<AudioFrame>) => Observable<AudioFrame>) => {
      const subject = new Subject<AudioFrame>();
      const out$ = pipe(subject);
      const before = pool.stats().streamsOpened;
      const both = [lastValueFrom(out$.pipe(toArray())), lastValueFrom(out$.pipe(toArray()))];
      for (const f of source) subject.next(f);
      subject.complete();
      return { outputs: await Promise.all(both), opened: pool.stats().streamsOpened - before };
    };
    const cold = await twoSubscribers((frames$) => frames$.pipe(inWorkers({ pool }, gain({ db: -6 }))));
    const [a, b] = cold.outputs;
    expect(cold.opened).toBe(2);
    // Each got -6 dB once: the two streams' frames met in one batch, and neither processed the other's output.
    const input = concat(source);
    for (const out of [concat(a), concat(b)]) for (let k = 0; k < input.length; k += 97) expect(out[k]).toBeCloseTo(input[k] * 10 ** (-6 / 20), 6);
    expect(concat(a)).toEqual(concat(b));
    const hot = await twoSubscribers((frames$) => frames$.pipe(inWorkers({ pool }, gain({ db: -6 })), share()));
    const [c, d] = hot.outputs;
    expect(hot.opened).toBe(1);
    expect(c).toEqual(d);
    expect(concat(c)).toEqual(concat(a));
  });

  it('keeps media order and positions, and completes only after every frame came back', async () => {
    const source = monoFrames(new Float32Array(48000 * 2).fill(0.1));
    const out = await lastValueFrom(from(source).pipe(inWorkers({ pool }, stage('passthrough')), toArray()));
    expect(out.map((f) => f.position)).toEqual(source.map((f) => f.position));
  });

  it('keeps every frame of a source faster than the workers (a file read at once): nothing dropped, in order', async () => {
    // 30 s of speech as one synchronous array: far more than the 2 s a live stream may queue.
    const speech = (await readFixture('speech-48k.wav')).channels[0];
    const source = monoFrames(Float32Array.from({ length: 48000 * 30 }, (_, i) => speech[i % speech.length]));
    for (const p of [pool, undefined]) {
      // Given a started pool, and on the default pool while it starts.
      const out = await lastValueFrom(from(source).pipe(p ? inWorkers({ pool: p }, gain({ db: -6 })) : gain({ db: -6 }), toArray()));
      expect(out).toHaveLength(source.length);
      out.forEach((f, i) => expect(f.position).toBe(i * 960));
      const k = 1234;
      expect(out[k].data[7]).toBeCloseTo(source[k].data[7] * 10 ** (-6 / 20), 5);
    }
  });

  it('opens no worker stream when unsubscribed before its pool is ready (a cold pool, or the microtask after subscribing)', async () => {
    const frames = monoFrames(new Float32Array(9600).fill(0.25));
    const cold = new WorkerPool({ threads: 1, spareWorker: false });
    try {
      for (const p of [cold, pool]) {
        const before = p.stats().streamsOpened;
        // switchMap's pattern: a new inner stream replaces the one before at once.
        from(frames).pipe(inWorkers({ pool: p }, gain({ db: -6 }))).subscribe().unsubscribe();
        await p.start();
        await new Promise((r) => setTimeout(r, 50));
        expect(p.stats().streamsOpened - before).toBe(0);
        expect(p.streamCount).toBe(0);
      }
    } finally {
      await cold.close();
    }
  });

  it('errors its output when its pool is closed under it, after the frames pushed before', async () => {
    const own = new WorkerPool({ threads: 1, spareWorker: false });
    await own.start();
    const source = new Subject<AudioFrame>();
    const out: AudioFrame[] = [];
    const ended = new Promise<unknown>((resolve) => source.pipe(inWorkers({ pool: own }, gain({ db: -6 }))).subscribe({ next: (f) => out.push(f), error: resolve, complete: () => resolve('completed') }));
    const frames = monoFrames(new Float32Array(960 * 10).fill(0.25));
    for (const f of frames.slice(0, 5)) source.next(f);
    await new Promise((r) => setTimeout(r, 50)); // the operator's worker stream is open
    await own.close();
    for (const f of frames.slice(5)) source.next(f); // after the close: not processed, and said so
    const error = await ended;
    expect(String(error)).toMatch(/the worker pool was closed/);
    // The pool's own code, not a failing stage's.
    expect(error).toMatchObject({ code: 'EARSHOT_SHUTTING_DOWN' });
    expect(out).toHaveLength(5);
  });

  it('closed before its workers have started: the frames given before still come out, and the output completes as its source did', async () => {
    const cold = new WorkerPool({ threads: 1, spareWorker: false });
    const frames = monoFrames(new Float32Array(960 * 4).fill(0.25));
    const out: AudioFrame[] = [];
    // A source that gives its frames at once, held by the operator while the pool starts.
    const ended = new Promise<unknown>((resolve) => from(frames).pipe(inWorkers({ pool: cold }, gain({ db: -6 }))).subscribe({ next: (f) => out.push(f), error: resolve, complete: () => resolve('completed') }));
    await cold.close(); // at once: the workers are still starting
    const end = await ended;
    // Not a failed start (EARSHOT_INTERNAL "a DSP worker failed to start"), and no frame lost.
    expect(out.map((f) => f.position)).toEqual(frames.map((f) => f.position));
    expect(out[0].data[0]).toBeCloseTo(0.25 * 10 ** (-6 / 20), 4);
    // The source completed before the drain, so the output completes (as docs/library.md says), not errors.
    expect(end).toBe('completed');
    // And a pool closed before anything started it refuses to start, with the same code.
    const never = new WorkerPool({ threads: 1, spareWorker: false });
    await never.close();
    await expect(never.start()).rejects.toMatchObject({ code: 'EARSHOT_SHUTTING_DOWN' });
  });

  it('delivers every frame processed before a stage failed, in order, then the error: also when they came in one batch', async () => {
    const source = monoFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 150));
    // A source that gives all its frames at once (`from(array)`) puts up to 100 in one batch: the failure falls in the first or the second.
    for (const at of [1, 5, 40, 99, 101, 150]) {
      const out: AudioFrame[] = [];
      const error = await new Promise<unknown>((resolve) =>
        from(source)
          .pipe(inWorkers({ pool }, gain({ db: 0 }), stage('throw', { afterChunks: at })))
          .subscribe({ next: (f) => out.push(f), error: resolve, complete: () => resolve('completed') }),
      );
      expect(String(error), `failing at chunk ${at}`).toMatch(new RegExp(`throw stage: chunk ${at}$`));
      expect(out.map((f) => f.position), `failing at chunk ${at}`).toEqual(source.slice(0, at - 1).map((f) => f.position));
      expect(concat(out)).toEqual(concat(source.slice(0, at - 1)));
    }
  });

  it('checks built-in stage options against the stage definition when the operator is made, not when audio flows', () => {
    expect(() => gain({ db: 100 })).toThrow(new TypeError('gain(): db: must be a number from -60 to 60, got 100'));
    expect(() => resample({ sampleRate: 16000, quality: 11 })).toThrow(TypeError);
    expect(() => stage('highpass', { frequency: 80, slope: 2 })).toThrow('highpass(): slope: unknown option "slope"; allowed: frequency, q');
    expect(() => denoise({ mix: 0.2, vadThreshold: 0.7 })).not.toThrow();
    expect(stagesOf(inWorkers(denoise(), highpass({ frequency: 80 })))).toEqual([{ type: 'denoise' }, { type: 'highpass', frequency: 80 }]);
  });

  it('checks a stage\'s rules across options when the operator is made: bandpass takes one form, whole, its edges in order', () => {
    expect(() => bandpass({ lowFrequency: 3000, highFrequency: 300 })).toThrow(new TypeError('bandpass(): highFrequency: 300 is not allowed; use a number above "lowFrequency" (3000)'));
    expect(() => bandpass({ frequency: 1000, lowFrequency: 300, highFrequency: 3000 } as never)).toThrow(
      new TypeError('bandpass(): "bandpass" needs either "frequency" (and optionally "q"), or "lowFrequency" and "highFrequency"; it got both forms'),
    );
    expect(() => bandpass({ lowFrequency: 300 } as never)).toThrow(new TypeError('bandpass(): highFrequency: missing; "bandpass" with "lowFrequency" needs "highFrequency" too'));
    expect(() => bandpass({ q: 2 } as never)).toThrow(/^bandpass\(\): frequency: missing/);
    expect(() => stage('bandpass', {})).toThrow(/it got neither$/);
    // The schema's problems come first, alone (a refused value is not also a missing form).
    expect(() => bandpass({ frequency: 0 })).toThrow(new TypeError('bandpass(): frequency: must be a number above 0, got 0'));
    // What depends on the frames' rate is judged when they come: 20 kHz is fine at 48 kHz.
    expect(stagesOf(bandpass({ lowFrequency: 300, highFrequency: 20000 }))).toEqual([{ type: 'bandpass', lowFrequency: 300, highFrequency: 20000 }]);
    expect(stagesOf(bandpass({ frequency: 1000, q: 2 }))).toEqual([{ type: 'bandpass', frequency: 1000, q: 2 }]);
  });

  it('refuses a chain the frames\' format does not allow with EARSHOT_OPTION_INVALID naming the stage option, before any worker stream opens', async () => {
    const frames = monoFrames(new Float32Array(960 * 5).fill(0.1));
    const failure = async (op: StageOperator) => {
      const before = pool.stats().streamsOpened;
      const error = await lastValueFrom(from(frames).pipe(op, toArray())).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(pool.stats().streamsOpened).toBe(before);
      return error;
    };
    const cases: Array<[StageOperator, string, RegExp]> = [
      // At or above half the rate: judged by the frames' rate, 48 kHz here.
      // Named as the caller wrote it, not as an options.highpass.frequency the caller never wrote.
      [inWorkers({ pool }, highpass({ frequency: 30000 })), 'highpass.frequency', /^The option frequency of the stage "highpass" is refused for the 48000 Hz .*30000 is not allowed; use a number above 0 and below 24000/],
      [inWorkers({ pool }, resample({ sampleRate: 16000 }), bandpass({ lowFrequency: 300, highFrequency: 9000 })), 'bandpass.highFrequency', /below 8000/],
      [inWorkers({ pool }, resample({ sampleRate: 16000 }), denoise()), 'denoise', /denoise needs 48000 Hz audio but gets 16000 Hz here/],
      [inWorkers({ pool }, resample({ sampleRate: 22050 }), stage('reframe', { durationMs: 10 })), 'reframe.durationMs', /220\.5 samples/],
      [inWorkers({ pool }, stage('reverb')), 'reverb', /^"reverb" is not a stage type: the stage "reverb" is neither built in nor from a module registered on its pool/],
    ];
    for (const [op, option, message] of cases) {
      const error = await failure(op);
      expect(error, option).toBeInstanceOf(EarshotError);
      expect(error, option).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option } });
      expect((error as Error).message, option).toMatch(message);
    }
    // Two operators one after the other: the second is named as written, not as one stage of an inWorkers(…).
    const apart = await lastValueFrom(from(frames).pipe(inWorkers({ pool }, resample({ sampleRate: 16000 })), inWorkers({ pool }, denoise()), toArray())).catch((e: unknown) => e);
    expect(apart).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', message: expect.stringMatching(/^The stage "denoise" is refused for the 16000 Hz .*audio it gets: denoise needs 48000 Hz/) });
    // A registered custom stage is the workers' to judge, and so is what follows it.
    expect(await lastValueFrom(from(frames).pipe(inWorkers({ pool }, stage('dc-blocker'), gain({ db: -6 })), toArray()))).toHaveLength(5);
  });

  it('rejects a non-stage argument with a TypeError', () => {
    expect(() => inWorkers({ pool }, (() => null) as never)).toThrow(TypeError);
  });

  it('rejects a first argument that is neither a stage operator nor its options, naming it, rather than leaving it out', () => {
    const notStage = /^inWorkers: argument 0 is not a stage operator/;
    // The factory instead of the operator (`denoise` for `denoise()`): it ran only gain before.
    expect(() => inWorkers(denoise as never, gain({ db: -6 }))).toThrow(notStage);
    // A plain RxJS operator: dropped before.
    expect(() => inWorkers(map((f: AudioFrame) => f) as never, gain({ db: -6 }))).toThrow(TypeError);
    expect(() => inWorkers(map((f: AudioFrame) => f) as never, gain({ db: -6 }))).toThrow(notStage);
    // Options-like objects that are not the options: before, `chosen.start is not a function` once audio flowed.
    expect(() => inWorkers({ pool: 5 } as never, gain({ db: -6 }))).toThrow(new TypeError('inWorkers: argument 0 is not a stage operator nor valid options: pool: must be a WorkerPool, got 5'));
    expect(() => inWorkers({ pol: pool } as never, gain({ db: -6 }))).toThrow('unknown option "pol"; allowed: pool');
    expect(() => inWorkers(new Date() as never, gain({ db: -6 }))).toThrow(notStage);
    // A later argument is named by its place among all the arguments, options included.
    expect(() => inWorkers({ pool }, gain({ db: -6 }), denoise as never)).toThrow(/^inWorkers: argument 2 is not a stage operator/);
    // The options themselves still pass, empty or with a pool.
    expect(stagesOf(inWorkers({}, gain({ db: -6 }))).map((s) => s.type)).toEqual(['gain']);
    expect(stagesOf(inWorkers({ pool: undefined }, gain({ db: -6 }))).map((s) => s.type)).toEqual(['gain']);
    expect(stagesOf(inWorkers({ pool }, gain({ db: -6 }))).map((s) => s.type)).toEqual(['gain']);
  });

  it('takes the WorkerPool of another copy of the package (an application and a library of its own may each install one)', async () => {
    // A second instance of the module: its class is not this one's, as in a second installed copy.
    const another = new URL('../../src/pool/worker-pool.ts?another-copy', import.meta.url).href;
    const { WorkerPool: OtherPool } = (await import(another)) as typeof import('../../src/pool/worker-pool.js');
    expect(OtherPool).not.toBe(WorkerPool);
    const other = new OtherPool({ threads: 1 });
    try {
      const source = monoFrames(new Float32Array(4800).fill(0.5));
      const out = await lastValueFrom(from(source).pipe(inWorkers({ pool: other as unknown as WorkerPool }, gain({ db: -6 })), toArray()));
      expect(concat(out).length).toBe(4800);
      expect(concat(out)[100]).toBeCloseTo(0.5 * 10 ** (-6 / 20), 4);
    } finally {
      await other.close();
    }
  });
});

/** Compiled by `tsc -p .`, never run: bandpass's options type takes its two forms and nothing between. */
export function bandpassFormsAreTyped(): void {
  bandpass({ frequency: 1000 });
  bandpass({ frequency: 1000, q: 2 });
  bandpass({ lowFrequency: 300, highFrequency: 3400 });
  // @ts-expect-error both forms
  bandpass({ frequency: 1000, lowFrequency: 300, highFrequency: 3000 });
  // @ts-expect-error half of the edge form
  bandpass({ lowFrequency: 300 });
  // @ts-expect-error q belongs to the centre form
  bandpass({ q: 2, lowFrequency: 300, highFrequency: 3000 });
  // @ts-expect-error neither
  bandpass({});
}
