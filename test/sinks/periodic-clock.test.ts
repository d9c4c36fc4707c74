/**
 * One timer for many periodic tasks (media/periodic-clock.ts): tasks are
 * spread over a few slots of the period, the tasks of a slot run in the same
 * event-loop turn, the timer fires only at slots that have tasks and stops
 * when none is left, and a loop that was blocked catches up by one run per
 * task, not one per period missed. The recording writers (WAV here) flush
 * through it; the sessions' timeout checks run on a one-slot clock.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PeriodicClock } from '../../src/media/periodic-clock.js';
import { WavFileWriter } from '../../src/sinks/wav-file-writer.js';
import type { RecordingFileHandle } from '../../src/sinks/file-writes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Numbers event-loop turns: whatever runs in one synchronous stretch gets the same number. */
function turns(): () => number {
  let turn = 0;
  let pending = false;
  return () => {
    if (!pending) {
      pending = true;
      setImmediate(() => {
        turn++;
        pending = false;
      });
    }
    return turn;
  };
}

describe('PeriodicClock', () => {
  it('spreads tasks over its slots, runs a slot\'s tasks in one turn, once a period each', async () => {
    const clock = new PeriodicClock(200, 50); // 4 slots of 50 ms
    expect(clock.slots).toBe(4);
    const turn = turns();
    const runs: Array<Array<{ turn: number; at: number }>> = Array.from({ length: 8 }, () => []);
    const stops = runs.map((list) => clock.add(() => list.push({ turn: turn(), at: performance.now() })));
    await sleep(200 * 3 + 100);
    for (const stop of stops) stop();
    // Each task ran once a period: 3 periods (and the start of a 4th), not more.
    for (const list of runs) {
      expect(list.length).toBeGreaterThanOrEqual(3);
      expect(list.length).toBeLessThanOrEqual(4);
      for (let i = 1; i < list.length; i++) expect(list[i].at - list[i - 1].at).toBeGreaterThan(150);
    }
    // 8 tasks in 4 slots (the least crowded each time): task i and task i + 4 share a slot, so
    // they ran in the same turns; over the first 3 periods that is at most 12 turns for all 8.
    for (let i = 0; i < 4; i++) for (let k = 0; k < 3; k++) expect(runs[i + 4][k].turn).toBe(runs[i][k].turn);
    expect(new Set(runs.flatMap((list) => list.slice(0, 3).map((r) => r.turn))).size).toBeLessThanOrEqual(12);
    expect(clock.size).toBe(0);
  });

  it('arms its timer only for slots that have tasks, and not at all once empty', async () => {
    const clock = new PeriodicClock(400, 40); // 10 slots
    const spy = vi.spyOn(globalThis, 'setTimeout');
    try {
      let runs = 0;
      const stop = clock.add(() => runs++);
      await sleep(400 * 3 + 60);
      const armed = spy.mock.calls.filter(([, ms]) => typeof ms === 'number' && ms <= 400).length;
      stop();
      expect(runs).toBeGreaterThanOrEqual(3);
      // One task: one timer per run (plus the first), not one per slot (10 a period).
      expect(armed).toBeLessThanOrEqual(runs + 2);
      const wait = sleep(100);
      spy.mockClear();
      await wait;
      expect(spy.mock.calls.filter(([, ms]) => typeof ms === 'number' && ms <= 400)).toEqual([]);
      // Emptied, it starts again for a new task.
      let again = 0;
      const stop2 = clock.add(() => again++);
      await sleep(450);
      stop2();
      expect(again).toBe(1);
    } finally {
      spy.mockRestore();
    }
  });

  it('lets a task remove itself while it runs, and keeps the others of its slot running', async () => {
    const clock = new PeriodicClock(60, 100); // 1 slot: every task in one turn
    const runs = [0, 0, 0];
    const stops: Array<() => void> = [];
    stops[0] = clock.add(() => runs[0]++);
    stops[1] = clock.add(() => {
      runs[1]++;
      if (runs[1] === 2) stops[1]();
    });
    stops[2] = clock.add(() => runs[2]++);
    for (const deadline = Date.now() + 5000; runs[0] < 5 && Date.now() < deadline; ) await sleep(10);
    stops[0]();
    stops[2]();
    expect(runs[1]).toBe(2);
    expect(runs[2]).toBe(runs[0]);
    expect(clock.size).toBe(0);
  });

  it('after the event loop was blocked for several periods, runs each task once to catch up, not once per period missed', async () => {
    const clock = new PeriodicClock(100, 25); // 4 slots
    const runs = [0, 0, 0, 0];
    const stops = runs.map((_, i) => clock.add(() => runs[i]++));
    await sleep(130);
    const before = [...runs];
    const until = performance.now() + 550; // 5.5 periods without a turn
    while (performance.now() < until);
    await sleep(60);
    const caughtUp = runs.map((n, i) => n - before[i]);
    for (const stop of stops) stop();
    // Within 60 ms after the block: the late slot, the last period's slots (one of which may be
    // the late one again) and the next regular turn: at most 3 runs each, not one per period missed (5).
    for (const n of caughtUp) {
      expect(n).toBeGreaterThanOrEqual(1);
      expect(n).toBeLessThanOrEqual(3);
    }
  });

  it('as the sessions\' checks use it (one slot): runs every task each period, lets a task remove itself mid-run, stops when empty and starts again', async () => {
    const clock = new PeriodicClock(20, 20);
    const runs = [0, 0, 0];
    const remove: Array<() => void> = [];
    remove[0] = clock.add(() => runs[0]++);
    remove[1] = clock.add(() => {
      runs[1]++;
      if (runs[1] === 2) remove[1](); // as a session that ends inside its own check
    });
    remove[2] = clock.add(() => runs[2]++);
    for (const deadline = Date.now() + 5000; runs[0] < 4 && Date.now() < deadline; ) await sleep(5);
    expect(runs[0]).toBeGreaterThanOrEqual(4);
    // Removed during its second run: never ran again, and the task after it kept running.
    expect(runs[1]).toBe(2);
    expect(runs[2]).toBeGreaterThanOrEqual(runs[0] - 1);
    remove[0]();
    remove[2]();
    expect(clock.size).toBe(0);
    // Emptied, its timer was stopped; registering again starts one again.
    let again = 0;
    const stop = clock.add(() => again++);
    for (const deadline = Date.now() + 5000; again < 1 && Date.now() < deadline; ) await sleep(5);
    expect(again).toBeGreaterThanOrEqual(1);
    stop();
  });

  it('refuses a period that is not a positive number', () => {
    expect(() => new PeriodicClock(0)).toThrow(RangeError);
    expect(() => new PeriodicClock(Number.NaN)).toThrow(RangeError);
  });
});

describe('WAV writers flushing through the shared clock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'earshot-flush-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a flush period that is not a positive number before it creates the file', async () => {
    const path = join(dir, 'never.wav');
    await expect(WavFileWriter.create(path, { sampleRate: 16000, channels: 1, headerIntervalMs: 0 })).rejects.toThrow(/headerIntervalMs must be a positive number/);
    await expect(open(path, 'r')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('twenty recordings write their audio in the turns of four slots a period, not one turn each, and every file is complete', async () => {
    const turn = turns();
    const dataWrites: number[] = [];
    const openCounting = async (path: string): Promise<RecordingFileHandle> => {
      const fh = await open(path, 'wx');
      return {
        write: (buffer, offset, length, position) => {
          if (position > 0) dataWrites.push(turn());
          return fh.write(buffer, offset, length, position);
        },
        truncate: (length) => fh.truncate(length),
        close: () => fh.close(),
      };
    };
    // A 400 ms period: 4 slots of 100 ms.
    const writers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => WavFileWriter.create(join(dir, `r${i}.wav`), { sampleRate: 16000, channels: 1, headerIntervalMs: 400, openFile: openCounting })),
    );
    const second = new Float32Array(16000).fill(0.25);
    for (let k = 0; k < 3; k++) {
      for (const w of writers) w.append(second.subarray(0, 6400)); // 400 ms each
      await sleep(400);
    }
    await sleep(50);
    const distinct = new Set(dataWrites).size;
    expect(dataWrites.length).toBeGreaterThanOrEqual(40); // 20 writers, at least 2 periods each
    // Three periods at 4 slots each: 12 turns (a 13th for a slot caught at the edge; a few more if
    // a write waited for its file's previous one on a slow disk). A timer per writer: ~60.
    expect(distinct).toBeLessThanOrEqual(20);
    await Promise.all(writers.map((w) => w.close()));
    for (const w of writers) expect(w.durationSeconds).toBeCloseTo(1.2, 6);
  });
});
