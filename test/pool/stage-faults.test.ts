/**
 * Faults in worker stages never turn into silent loss: a hung stage gets its
 * worker replaced and its stream ended, a stage that keeps crashing its worker
 * is quarantined, and the streams that shared the worker lose no frames.
 * Real workers, real stage modules (test/fixtures/modules).
 */
import { from, lastValueFrom, toArray } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { inWorkers, stage } from '../../src/pipeline/operators.js';
import type { StageSpec } from '../../src/dsp/types.js';
import type { AudioFrame } from '../../src/media/frames.js';
import type { EarshotError } from '../../src/errors.js';
import { WorkerPool, type PoolStream, type WorkerPoolHealth } from '../../src/pool/worker-pool.js';
import { encodeOpusFrames, monoFrames } from '../helpers/audio.js';
import { fixtureModule, readFixture } from '../helpers/fixtures.js';

let pool: WorkerPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

interface Watched {
  handle: PoolStream;
  out: AudioFrame[];
  errors: Array<{ message: string; error?: EarshotError }>;
}

function open(p: WorkerPool, stages: StageSpec[]): Watched {
  const w: Watched = { handle: undefined as unknown as PoolStream, out: [], errors: [] };
  w.handle = p.openStream({ channels: 1, branches: [{ stages }] }, { onFrames: (_b, f) => w.out.push(...f), onError: (message, error) => w.errors.push({ message, error }) });
  return w;
}

/** Pushes `count` frames of the tone to every stream at real-time pace (20 ms), sampling health on the way. */
async function feed(p: WorkerPool, streams: Watched[], count: number): Promise<WorkerPoolHealth[]> {
  const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * count));
  const seen: WorkerPoolHealth[] = [];
  for (const f of frames) {
    for (const s of streams) s.handle.push({ ...f, arrival: performance.now() });
    seen.push(p.health());
    await new Promise((r) => setTimeout(r, 20));
  }
  return seen;
}

/** Every sample of `count` frames, once, in media order, without a gap. */
function expectComplete(out: AudioFrame[], count: number): void {
  expect(out.reduce((n, f) => n + f.data.length, 0)).toBe(count * 960);
  expect(out[0].position).toBe(0);
  for (let i = 1; i < out.length; i++) expect(out[i].position).toBe(out[i - 1].position + out[i - 1].data.length);
}

describe('a stage that hangs', () => {
  it.each([
    ['a spare worker', true],
    ['a worker started anew', false],
  ])('gets its worker replaced and its stream ended, while a stream on the same worker keeps every frame (on %s)', async (_, spareWorker) => {
    // One thread puts both streams on the same worker; a deep queue keeps a slow worker start from dropping frames.
    pool = new WorkerPool({ threads: 1, batchIntervalMs: 10, taskTimeoutMs: 300, maxQueuedFrames: 1000, spareWorker });
    await pool.start();
    await pool.registerStageModule(fixtureModule('hang-stage.js'));
    const healthy = open(pool, [{ type: 'gain', db: 0 }]);
    const hung = open(pool, [{ type: 'gain', db: 0 }, { type: 'hang', afterChunks: 10, forMs: 15_000 }]);
    const seen = await feed(pool, [healthy, hung], 60);
    await healthy.handle.close();
    await hung.handle.close();

    expect(hung.errors).toHaveLength(1);
    const [{ message, error }] = hung.errors;
    expect(error?.code).toBe('EARSHOT_STAGE_TIMEOUT');
    expect(message).toMatch(/^EARSHOT_STAGE_TIMEOUT: stage "hang" \(branch 0, stage 1\) of pool stream s\d+ made no progress for 300 ms \(the stage timeout: --stage-timeout \/ stageTimeoutMs, a WorkerPool's taskTimeoutMs\)/);
    // And what the watchdog measured: a blocked stage has had (next to) no CPU.
    expect(message).toMatch(/ The watchdog saw no progress for \d+ ms, ~\d+ ms of it on a CPU \(taskTimeoutMs 300\)\.$/);
    expect(message).toContain(hung.handle.id);

    expectComplete(healthy.out, 60);
    expect(healthy.handle.lost).toBe(0);
    expect(healthy.handle.dropped).toBe(0);
    expect(healthy.handle.workers).toHaveLength(2); // rebuilt on the replacement worker

    const stats = pool.stats();
    expect(stats).toMatchObject({ tasksTimedOut: 1, workerRestarts: 1, workerCrashes: 0, streamsQuarantined: 1, tasksFailed: 1, framesLost: expect.any(Number) });
    // Degraded from the fault on, and still within the window afterwards.
    const firstDegraded = seen.findIndex((h) => h.status === 'degraded');
    expect(firstDegraded).toBeGreaterThan(0);
    expect(seen.slice(firstDegraded).every((h) => h.status === 'degraded')).toBe(true);
    // Without a spare, the streams wait for the new worker, and health says so.
    if (!spareWorker) expect(seen.some((h) => h.reasons.some((r) => /1 of 1 DSP worker restarting/.test(r)))).toBe(true);
    const health = pool.health();
    expect(health.status).toBe('degraded');
    expect(health.workerRestarts).toBe(1);
    expect(health.lastRestartAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(health.quarantined).toEqual([{ stream: hung.handle.id, stage: 'hang', reason: 'timeout', message, at: expect.any(String) }]);
    expect(health.reasons.join('\n')).toContain('EARSHOT_STAGE_TIMEOUT');
  }, 60_000);

  it('errors the output of inWorkers with EARSHOT_STAGE_TIMEOUT, naming the chain', async () => {
    pool = new WorkerPool({ threads: 1, batchIntervalMs: 10, taskTimeoutMs: 300 });
    await pool.start();
    await pool.registerStageModule(fixtureModule('hang-stage.js'));
    const frames = monoFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 20));
    const run = lastValueFrom(from(frames).pipe(inWorkers({ pool }, stage('hang', { afterChunks: 2, forMs: 15_000 })), toArray()));
    const error = await run.then(() => expect.fail('the output completed'), (e: unknown) => e);
    expect(error).toMatchObject({ code: 'EARSHOT_STAGE_TIMEOUT', statusCode: 500 });
    expect((error as Error).message).toMatch(/^inWorkers\(hang\): stage "hang" .* made no progress for 300 ms/);
  });

  it('fails the pipeline check of a stage that hangs while being created, and checks the other setups', async () => {
    pool = new WorkerPool({ threads: 1, taskTimeoutMs: 300 });
    await pool.start();
    await pool.registerStageModule(fixtureModule('hang-stage.js'));
    const [fine, stuck, alsoFine] = await pool.checkSetups([
      { channels: 1, branches: [{ stages: [{ type: 'hang' }] }] },
      { channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'hang', inCreate: true }] }] },
      { channels: 1, branches: [{ stages: [{ type: 'gain', db: -3 }] }] },
    ]);
    expect(fine).toBeNull();
    expect(stuck).toMatch(/stage "hang" \(branch 1, stage 0\) was still being created after 300 ms/);
    expect(alsoFine).toBeNull();
    expect(pool.stats().tasksTimedOut).toBe(1);
    expect(pool.health().status).toBe('degraded');
  }, 60_000);
});

describe('a stage that crashes its worker', () => {
  it.each([
    ['', undefined],
    [', its frames handed back before the crash (earlyOutputMs 0)', 0],
  ])('is quarantined after maxStreamCrashes crashes, while a stream on the same worker keeps every frame%s', async (_, earlyOutputMs) => {
    // With earlyOutputMs 0 the healthy stream's share of each batch is delivered before the crashing stream runs:
    // the crash must neither re-send nor lose what was delivered.
    pool = new WorkerPool({ threads: 1, batchIntervalMs: 10, maxStreamCrashes: 2, maxQueuedFrames: 1000, ...(earlyOutputMs === undefined ? {} : { earlyOutputMs }) });
    await pool.start();
    await pool.registerStageModule(fixtureModule('exit-stage.js'));
    const healthy = open(pool, []);
    const crashing = open(pool, [{ type: 'exit', afterChunks: 5, code: 7 }]);
    await feed(pool, [healthy, crashing], 60);
    await healthy.handle.close();
    await crashing.handle.close();

    expect(crashing.errors).toHaveLength(1);
    const [{ message, error }] = crashing.errors;
    expect(error?.code).toBe('EARSHOT_STAGE_CRASHED');
    expect(message).toMatch(/^EARSHOT_STAGE_CRASHED: stage "exit" \(branch 0, stage 0\) of pool stream s\d+ crashed its worker 2 times \(last: worker exited with code: 7\); stream quarantined/);
    expect(crashing.handle.lost).toBeGreaterThan(0); // the batch of its first crash, then the rest of its queue

    expectComplete(healthy.out, 60);
    expect(healthy.handle.lost).toBe(0);
    expect(healthy.handle.dropped).toBe(0);
    // Rebuilt after each crash; a replacement that died in its first batch delivered nothing, so 2 or 3 workers.
    expect(healthy.handle.workers.length).toBeGreaterThanOrEqual(2);
    expect(new Set(healthy.handle.workers).size).toBe(healthy.handle.workers.length);

    expect(pool.stats()).toMatchObject({ workerCrashes: 2, workerRestarts: 2, tasksTimedOut: 0, streamsQuarantined: 1, tasksFailed: 2 });
    const health = pool.health();
    expect(health.status).toBe('degraded');
    expect(health.quarantined).toMatchObject([{ stream: crashing.handle.id, stage: 'exit', reason: 'crashes' }]);
    // The first crash is reported too: one crash is not yet a quarantine.
    expect(health.reasons.some((r) => /stage "exit" .* crashed its worker \(worker exited with code: 7\).*restarts/.test(r))).toBe(true);
  }, 60_000);

  it('gets its workers back after a replacement died while it started (Piscina then replaces none): the next crash strands no stream', async () => {
    pool = new WorkerPool({ threads: 1, batchIntervalMs: 10, maxQueuedFrames: 1000, maxStreamCrashes: 10 });
    await pool.start();
    await pool.registerStageModule(fixtureModule('exit-stage.js'));
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 200));
    const crashing = open(pool, [{ type: 'exit', afterChunks: 20 }]);
    const before = new Set(pool.workerThreads.map((t) => t.threadId));
    let killed = false;
    for (const f of frames) {
      crashing.handle.push({ ...f, arrival: performance.now() });
      // The first crash starts a replacement: it dies while it starts (OOM, a thread limit, a failed WASM load).
      const fresh = killed ? undefined : pool.workerThreads.find((t) => t.threadId !== -1 && !before.has(t.threadId));
      if (fresh) {
        killed = true;
        void fresh.terminate();
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(killed).toBe(true);
    // Every crash after that found a worker: the stream ran to its end and closes.
    const state = await Promise.race([crashing.handle.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('close() still pending after 10 s'), 10_000))]);
    expect(state).toBe('closed');
    expect(crashing.handle.workers.length).toBeGreaterThanOrEqual(3);
    // And the pool is back to its slot's worker and the spare.
    const deadline = Date.now() + 10_000;
    while (pool.workerThreads.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(pool.workerThreads.length).toBe(2);
    expect(pool.health().reasons.some((r) => /not replaced; starting/.test(r))).toBe(true);
  }, 60_000);

  it('reports a stage module that kills its worker on import as unusable, and keeps serving', async () => {
    pool = new WorkerPool({ threads: 1 });
    await pool.start();
    await expect(pool.registerStageModule(fixtureModule('exits-on-import.js'))).rejects.toMatchObject({
      code: 'EARSHOT_STAGE_MODULE_INVALID',
      message: expect.stringMatching(/importing it crashed the worker \(worker exited with code: 3\)/),
    });
    const s = open(pool, [{ type: 'gain', db: 0 }]);
    await feed(pool, [s], 5);
    await s.handle.close();
    expectComplete(s.out, 5);
  }, 60_000);
});

describe('pool health', () => {
  it('is ok without faults, and ok again once the window after a fault has passed', async () => {
    pool = new WorkerPool({ threads: 1, healthWindowMs: 300 });
    await pool.start();
    expect(pool.health()).toEqual({ status: 'ok', reasons: [], workerRestarts: 0, lastRestartAt: null, quarantined: [] });
    await pool.workerThreads[0].terminate();
    await until(() => pool!.health().workerRestarts === 1);
    expect(pool.health().status).toBe('degraded');
    await until(() => pool!.health().status === 'ok');
    expect(pool.health()).toMatchObject({ status: 'ok', reasons: [], workerRestarts: 1 });
    // And the replacement serves.
    const s = open(pool, []);
    await feed(pool, [s], 5);
    await s.handle.close();
    expectComplete(s.out, 5);
  }, 60_000);
});

describe('WorkerPool fault options', () => {
  it('are validated up front with a RangeError naming the option', () => {
    expect(() => new WorkerPool({ taskTimeoutMs: 10 })).toThrow(/options\.taskTimeoutMs/);
    expect(() => new WorkerPool({ taskTimeoutMs: Number.NaN })).toThrow(RangeError);
    expect(() => new WorkerPool({ maxStreamCrashes: 0 })).toThrow(/options\.maxStreamCrashes/);
    expect(() => new WorkerPool({ maxStreamCrashes: 1.5 })).toThrow(RangeError);
    expect(() => new WorkerPool({ healthWindowMs: -1 })).toThrow(/options\.healthWindowMs/);
    expect(() => new WorkerPool({ earlyOutputMs: -1 })).toThrow('options.earlyOutputMs must be a number from 0 to 600000 (ms), got -1');
    expect(() => new WorkerPool({ spareWorker: 'yes' as unknown as boolean })).toThrow(/options\.spareWorker/);
  });
});

async function until(condition: () => boolean, ms = 30_000): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; ) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not met in time');
}
