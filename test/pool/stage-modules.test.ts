/**
 * Custom worker stages loaded from ES modules: real workers, real modules, real
 * audio (run through `inWorkers()`, whose own tests are in test/pipeline/operators.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, toArray } from 'rxjs';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { inWorkers, stage, type AudioFrame } from '../../src/pipeline/operators.js';
import { monoFrames, rmsDb } from '../helpers/audio.js';
import { fixtureModule, readFixture } from '../helpers/fixtures.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/dc-blocker-stage.js', import.meta.url));


function concat(frames: AudioFrame[]): Float32Array {
  const out = new Float32Array(frames.reduce((n, f) => n + f.data.length, 0));
  let o = 0;
  for (const f of frames) {
    out.set(f.data as Float32Array, o);
    o += f.data.length;
  }
  return out;
}

function mean(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s / x.length;
}

let pool: WorkerPool;
beforeAll(async () => {
  pool = new WorkerPool({ threads: 2 });
  await pool.start();
});
afterAll(async () => {
  await pool.close();
});

describe('custom worker stage modules', () => {
  it('loads the DC-blocker example in every worker and runs it by name: the offset goes, the tone stays', async () => {
    expect(await pool.registerStageModule(EXAMPLE)).toEqual(['dc-blocker']);
    expect(pool.customStageTypes).toContain('dc-blocker');
    const tone = (await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 48000);
    const offset = tone.map((v) => v + 0.25);
    const out = concat(await lastValueFrom(from(monoFrames(offset)).pipe(inWorkers({ pool }, stage('dc-blocker', { cutoffHz: 20 })), toArray())));
    expect(out.length).toBe(offset.length);
    const settled = out.subarray(24000); // after 0.5 s the 20 Hz pole has settled (time constant 8 ms)
    expect(Math.abs(mean(offset))).toBeGreaterThan(0.24);
    expect(Math.abs(mean(settled))).toBeLessThan(0.001);
    expect(Math.abs(rmsDb(settled) - rmsDb(tone.subarray(24000)))).toBeLessThan(0.1);
  });

  it('skips a gap the input filled with silence past a custom stage that declares skipSilence, and processes it through one that does not', async () => {
    expect(await pool.registerStageModule(fixtureModule('silence-probe.js'))).toEqual(['probe-skips', 'probe-processes', 'probe-scribbles']);
    // Ten 20 ms frames of 0.1 with frames 3-6 missing: an 80 ms gap the input fills with zeros.
    const frames = monoFrames(new Float32Array(9600).fill(0.1)).filter((_, i) => i < 3 || i > 6);
    const levels = async (type: string) => {
      const out = concat(await lastValueFrom(from(frames).pipe(inWorkers({ pool }, stage(type)), toArray())));
      expect(out.length).toBe(9600);
      // Each probe adds 0.5 to what it processes.
      return [out[0], out[3 * 960], out[7 * 960 - 1], out[7 * 960]].map((v) => Math.round(v * 10) / 10);
    };
    expect(await levels('probe-skips')).toEqual([0.6, 0, 0, 0.6]);
    expect(await levels('probe-processes')).toEqual([0.6, 0.5, 0.5, 0.6]);
    // A stage that writes to the silence it is told to skip: the silence stays silence, here and in
    // later streams (a worker's streams share one array of zeros).
    expect(await levels('probe-scribbles')).toEqual([0.6, 0, 0, 0.6]);
    expect(await levels('probe-skips')).toEqual([0.6, 0, 0, 0.6]);
  });

  it('reports a module that throws on import, lacks a default export or reuses a built-in name, and keeps working', async () => {
    for (const [file, why] of [
      ['throws-on-import.js', /broken on purpose/],
      ['no-default.js', /no default export/],
      ['builtin-name.js', /built-in/],
      ['does-not-exist.js', /import failed/],
    ] as const) {
      await expect(pool.registerStageModule(fixtureModule(file))).rejects.toMatchObject({ code: 'EARSHOT_STAGE_MODULE_INVALID', statusCode: 422, message: expect.stringMatching(why) });
    }
    // What JavaScript may pass instead of a path or URL: the same typed refusal, not a TypeError.
    for (const odd of [5, '', null]) {
      await expect(pool.registerStageModule(odd as unknown as string)).rejects.toMatchObject({ code: 'EARSHOT_STAGE_MODULE_INVALID', message: expect.stringMatching(/neither a file path nor a file: URL/) });
    }
    // The workers are alive and still run streams.
    const out = await lastValueFrom(from(monoFrames(new Float32Array(9600).fill(0.5))).pipe(inWorkers({ pool }, stage('gain', { db: -6 })), toArray()));
    expect(out).toHaveLength(10);
    expect(out[5].data[0]).toBeCloseTo(0.5 * 10 ** (-6 / 20), 5);
  });

  it('refuses a module whose stage type another module provides, and the first module\'s stage keeps running in every worker', async () => {
    await pool.registerStageModule(fixtureModule('strict-options.js')); // provides "invert"
    await expect(pool.registerStageModule(fixtureModule('invert-twin.js'))).rejects.toMatchObject({
      code: 'EARSHOT_STAGE_MODULE_INVALID',
      message: expect.stringContaining('stage type "invert" is already provided by'),
    });
    // Both workers: two streams are spread over the two.
    const runs = await Promise.all(
      [0, 1].map(() => lastValueFrom(from(monoFrames(new Float32Array(4800).fill(0.25))).pipe(inWorkers({ pool }, stage('invert', {})), toArray()))),
    );
    for (const out of runs) expect(out[2].data[10]).toBeCloseTo(-0.25, 5); // inverted, not the twin's 0.123
  });

  it('loads a module asked for twice at once once: both callers get its stage types', async () => {
    const both = await Promise.allSettled([pool.registerStageModule(fixtureModule('decimate.js')), pool.registerStageModule(fixtureModule('decimate.js'))]);
    expect(both.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const [a, b] = both.map((r) => (r as PromiseFulfilledResult<string[]>).value);
    expect(a).toEqual(b);
    expect(pool.customStageTypes.filter((t) => a.includes(t))).toEqual(a); // listed once
  });

  it('checks a setup before use: a custom stage that rejects its options is an error naming branch and stage', async () => {
    await pool.registerStageModule(fixtureModule('strict-options.js'));
    const [ok, bad] = await pool.checkSetups([
      { channels: 1, branches: [{ stages: [{ type: 'invert' }] }] },
      { channels: 1, branches: [{ stages: [{ type: 'denoise' }, { type: 'invert', strength: 2 }] }] },
    ]);
    expect(ok).toBeNull();
    expect(bad).toMatch(/branch 0, stage 1 \(invert\).*strength/);
  });

  it('errors the output of inWorkers with the stage message when a stage cannot be built', async () => {
    const run = lastValueFrom(from(monoFrames(new Float32Array(1920))).pipe(inWorkers({ pool }, stage('invert', { strength: 3 })), toArray()));
    await expect(run).rejects.toThrow(/inWorkers\(invert\).*strength/);
    // A coded error, as every error earshot reports.
    await expect(run).rejects.toMatchObject({ code: 'EARSHOT_STAGE_FAILED', statusCode: 500, extensions: { chain: 'inWorkers(invert)' } });
  });
});
