/**
 * The worker pool: batching keeps the task count independent of the stream
 * count, and a stream survives the death of its worker.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { OpusEncoder } from '../../wasm/opus.js';
import { concat, encodeOpusFrames } from '../helpers/audio.js';
import { fixtureModule, readFixture } from '../helpers/fixtures.js';

let pool: WorkerPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/** Feeds `streams` streams with 40 frames each at real-time pace; returns tasks used, outputs and the streams' errors. */
async function feed(p: WorkerPool, streams: number) {
  const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 40));
  const outputs = Array.from({ length: streams }, () => [] as AudioFrame[]);
  // Collected, not thrown: the pool calls handlers inside a guard that turns a throw into a warning.
  const errors: string[] = [];
  const handles = outputs.map((out) => p.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => out.push(...f), onError: (m) => void errors.push(m) }));
  const before = p.stats().tasksCompleted;
  for (const f of frames) {
    for (const h of handles) h.push({ ...f, arrival: performance.now() });
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all(handles.map((h) => h.close()));
  return { tasks: p.stats().tasksCompleted - before, outputs, handles, errors };
}

describe('WorkerPool', () => {
  it('sends at most one task per worker per tick however many streams there are, and packs light streams onto one worker', async () => {
    pool = new WorkerPool({ threads: 2, batchIntervalMs: 10 });
    await pool.start();
    const few = await feed(pool, 2);
    const many = await feed(pool, 40);
    expect([...few.errors, ...many.errors]).toEqual([]);
    for (const out of [...few.outputs, ...many.outputs]) expect(out.reduce((n, f) => n + f.data.length, 0)).toBe(40 * 960);
    // 40 streams × 40 frames = 1600 frames; without batching that would be 1600 tasks.
    expect(many.tasks).toBeLessThan(1600 / 4);
    // Two light streams are packed onto one worker: one task per push (40), plus the setup and the close.
    expect(few.tasks).toBeLessThanOrEqual(40 + 4);
    // Forty, opened at once before their load is measured, are spread over both: at most one task per worker per tick.
    expect(many.tasks).toBeLessThanOrEqual(2 * (40 + 4));
  });

  it('arms its batch timer only when something waits: one per isolated frame, not another after each batch', async () => {
    pool = new WorkerPool({ threads: 1, spareWorker: false });
    await pool.start();
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 10));
    const out: AudioFrame[] = [];
    const h = pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => out.push(...f), onError: () => {} });
    // Each timer is a wake of the main thread; count the ones the pool sets.
    const realSetTimeout = globalThis.setTimeout;
    let armed = 0;
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      if (new Error().stack?.includes('worker-pool')) armed++;
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    try {
      // Ten frames 40 ms apart: each batch is back long before the next frame.
      for (const f of frames) {
        h.push({ ...f, arrival: performance.now() });
        await new Promise((r) => realSetTimeout(r, 40));
      }
      await h.close();
    } finally {
      spy.mockRestore();
    }
    expect(out.reduce((n, f) => n + f.data.length, 0)).toBe(10 * 960);
    // One per frame and one for the close; a timer re-armed after every batch made it ~21.
    expect(armed).toBeLessThanOrEqual(11);
    expect(armed).toBeGreaterThanOrEqual(10);
  });

  it('sends frames that waited for a busy worker as soon as it is free, not a tick later; other frames wait for their tick', async () => {
    pool = new WorkerPool({ threads: 1, spareWorker: false, taskTimeoutMs: 20_000 });
    await pool.start();
    await pool.registerStageModule(fixtureModule('hang-stage.js'));
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 3));
    const out: AudioFrame[] = [];
    // The pool's batch ticks are held here and run only when the test says: no tick runs by itself.
    const realSetTimeout = globalThis.setTimeout;
    const held: Array<() => void> = [];
    const parked: NodeJS.Timeout[] = [];
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      if (!/src[\\/]pool[\\/]worker-pool\.ts/.test(new Error().stack ?? '')) return realSetTimeout(fn, ms); // not vi.waitFor's own timers
      held.push(fn);
      const t = realSetTimeout(() => {}, 2 ** 30);
      parked.push(t);
      return t;
    }) as typeof setTimeout);
    const tick = () => held.pop()?.();
    const samples = () => out.reduce((n, f) => n + f.data.length, 0);
    const sleep = (ms: number) => new Promise((r) => realSetTimeout(r, ms));
    // The first chunk sleeps its worker for 600 ms (a long batch), the rest pass through.
    const h = pool.openStream({ channels: 1, branches: [{ stages: [{ type: 'hang', afterChunks: 1, forMs: 600, block: true }] }] }, { onFrames: (_b, f) => out.push(...f), onError: () => {} });
    try {
      h.push({ ...frames[0], arrival: performance.now() });
      expect(held).toHaveLength(1);
      tick(); // frame 0 leaves; its worker is busy for 600 ms
      h.push({ ...frames[1], arrival: performance.now() });
      tick(); // the worker is busy: frame 1 stays behind
      expect(held).toHaveLength(1); // the tick re-armed for it
      // No further tick runs, yet frame 1 arrives: it left when frame 0's batch landed.
      await vi.waitFor(() => expect(samples()).toBe(2 * 960), { timeout: 10_000, interval: 20 });
      // A frame that never waited for a busy worker waits for its tick, as before.
      h.push({ ...frames[2], arrival: performance.now() });
      await sleep(300);
      expect(samples()).toBe(2 * 960);
      tick();
      await vi.waitFor(() => expect(samples()).toBe(3 * 960), { timeout: 10_000, interval: 20 });
    } finally {
      spy.mockRestore();
      for (const t of parked) clearTimeout(t);
      while (held.length > 0) tick(); // the tick still armed runs, so the close below is sent
    }
    await h.close();
  });

  it("hands back a long batch's finished streams while its later streams still run (earlyOutputMs); off, they wait for the last", async () => {
    /** Two streams on one worker, one frame each in one batch: the first blocks its worker 300 ms, the second 600 ms. */
    const run = async (earlyOutputMs: number | undefined) => {
      pool = new WorkerPool({ threads: 1, spareWorker: false, taskTimeoutMs: 20_000, ...(earlyOutputMs === undefined ? {} : { earlyOutputMs }) });
      await pool.start();
      await pool.registerStageModule(fixtureModule('hang-stage.js'));
      const [frame] = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960));
      // What the pool had finished when each stream's frames arrived: the batch still in flight, or landed.
      const seen: Array<{ stream: string; samples: number; tasksCompleted: number }> = [];
      const open = (name: string, forMs: number) =>
        pool!.openStream(
          { channels: 1, branches: [{ stages: [{ type: 'hang', afterChunks: 1, forMs, block: true }] }] },
          { onFrames: (_b, f) => void seen.push({ stream: name, samples: f.reduce((n, x) => n + x.data.length, 0), tasksCompleted: pool!.stats().tasksCompleted }), onError: () => {} },
        );
      const first = open('first', 300);
      const second = open('second', 600);
      const before = pool.stats().tasksCompleted;
      first.push({ ...frame, arrival: performance.now() });
      second.push({ ...frame, arrival: performance.now() });
      await vi.waitFor(() => expect(seen.map((s) => s.stream)).toEqual(['first', 'second']), { timeout: 10_000, interval: 20 });
      await Promise.all([first.close(), second.close()]);
      await pool.close();
      pool = undefined;
      expect(seen.map((s) => s.samples)).toEqual([960, 960]);
      // Counted from the batch that carried both frames (the streams' setup rode in it too).
      return seen.map((s) => s.tasksCompleted - before);
    };
    // Default (4 ms): the first stream's frame arrives while the batch is still in flight, the second's once it lands.
    expect(await run(undefined)).toEqual([0, 1]);
    // Turned off: both arrive when the whole batch lands.
    expect(await run(600_000)).toEqual([1, 1]);
  });

  describe("a silent talker's comfort-noise updates (quietHoldMs)", () => {
    /**
     * Two seconds of digital silence sent as a browser with `usedtx=1` does:
     * every packet of more than 2 bytes, and the first DTX frame (≤ 2 bytes) of
     * each run. Returns the frames and where each update (a frame after a gap) is.
     */
    function silentTalker(): { frames: EncodedFrame[]; updates: number[] } {
      const encoder = new OpusEncoder({ dtx: true });
      const frames: EncodedFrame[] = [];
      const updates: number[] = [];
      let inDtx = false;
      try {
        for (let i = 0; i < 100; i++) {
          const payload = encoder.encode(new Float32Array(960));
          if (payload.length <= 2) {
            if (inDtx) continue;
            inDtx = true;
          } else {
            if (inDtx && frames.length > 0) updates.push(frames.length);
            inDtx = false;
          }
          frames.push({ position: i * 960, payload, samples: 960, arrival: 0 });
        }
      } finally {
        encoder.close();
      }
      return { frames, updates };
    }

    it('wait for a batch their worker runs anyway, or for the hold: every sample arrives, in order, the pause as silence', async () => {
      const hold = 2000; // the longest allowed: the test's own waits stay well inside it
      pool = new WorkerPool({ threads: 1, spareWorker: false, quietHoldMs: hold });
      await pool.start();
      const { frames, updates } = silentTalker();
      expect(updates.length).toBeGreaterThanOrEqual(3);
      const [u1, u2, u3] = updates;
      const tone = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 2));
      // What each stream received, and how many batches had landed when it did.
      const talker: AudioFrame[] = [];
      const landed = { talker: [] as number[], other: [] as number[] };
      const talkerStream = pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => void (talker.push(...f), landed.talker.push(pool!.stats().tasksCompleted)), onError: () => {} });
      const other = pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: () => void landed.other.push(pool!.stats().tasksCompleted), onError: () => {} });
      const received = () => talker.reduce((n, f) => n + f.data.length, 0);
      const endOf = (i: number) => frames[i].position + 960;
      // What was pushed, and its arrival then: others hold the same frame objects (listeners to the encoded frames).
      const pushed: Array<{ frame: EncodedFrame; arrival: number }> = [];
      const push = (from: number, to: number) => {
        for (const f of frames.slice(from, to)) {
          const frame = { ...f, arrival: performance.now() };
          pushed.push({ frame, arrival: frame.arrival });
          talkerStream.push(frame);
        }
      };
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

      // Up to the first update of the pause: nothing is held, not even that update.
      push(0, u1 + 1);
      await vi.waitFor(() => expect(received()).toBe(endOf(u1)), { timeout: 10_000, interval: 20 });
      expect(pool.stats().framesHeld).toBe(0);
      // The DTX frame after it, the second update and its DTX frame are held: no batch leaves for them.
      push(u1 + 1, u2 + 2);
      expect(pool.stats().framesHeld).toBe(3);
      await sleep(300);
      expect(received()).toBe(endOf(u1));
      // Another stream's frame makes a batch: the held frames ride in it.
      other.push({ ...tone[0], arrival: performance.now() });
      await vi.waitFor(() => expect(received()).toBe(endOf(u2 + 1)), { timeout: 10_000, interval: 20 });
      expect(landed.other).toHaveLength(1);
      expect(landed.talker.at(-1)).toBe(landed.other[0]);

      // The third update and its DTX frame, with nothing else to ride with: they wait for the hold.
      const pushedAt = performance.now();
      push(u2 + 2, u3 + 2);
      expect(pool.stats().framesHeld).toBe(5);
      await vi.waitFor(() => expect(received()).toBe(endOf(u3 + 1)), { timeout: hold + 10_000, interval: 20 });
      // Their latency counts from the end of the hold, not from their arrival.
      const update = talker.find((f) => f.position === frames[u3].position);
      expect(update).toBeDefined();
      expect(update!.arrival - pushedAt).toBeGreaterThanOrEqual(hold - 5);

      await Promise.all([talkerStream.close(), other.close()]);
      // Every sample of the two seconds up to the last frame sent, once, in order; the gaps are silence.
      expect(talker.map((f) => f.position)).toEqual(talker.map((_, i) => talker.slice(0, i).reduce((n, f) => n + f.data.length, 0)));
      expect(received()).toBe(endOf(u3 + 1));
      const pause = concat(talker.map((f) => f.data as Float32Array)).subarray(endOf(u1 + 1), frames[u2].position);
      expect(pause.every((v) => v === 0)).toBe(true);
      // The held frames' latency was counted from the hold's end on copies: the pushed frames are as they were.
      expect(pushed.every((p) => p.frame.arrival === p.arrival)).toBe(true);
    });

    it('with quietHoldMs 0, an update goes to its worker at once', async () => {
      pool = new WorkerPool({ threads: 1, spareWorker: false, quietHoldMs: 0 });
      await pool.start();
      const { frames, updates } = silentTalker();
      const out: AudioFrame[] = [];
      const h = pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => out.push(...f), onError: () => {} });
      for (const f of frames.slice(0, updates[1] + 1)) h.push({ ...f, arrival: performance.now() });
      await vi.waitFor(() => expect(out.reduce((n, f) => n + f.data.length, 0)).toBe(frames[updates[1]].position + 960), { timeout: 10_000, interval: 20 });
      expect(pool.stats().framesHeld).toBe(0);
      await h.close();
    });
  });

  it("staggers the workers' batch ticks: two workers' batches leave half an interval apart", async () => {
    pool = new WorkerPool({ threads: 2, batchIntervalMs: 20, spareWorker: false });
    await pool.start();
    const [frame] = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960));
    // Denoised streams fill one worker with seven, the eighth goes to the other (see slot placement).
    const streams = Array.from({ length: 8 }, () => pool!.openStream({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] }, { onFrames: () => {}, onError: () => {} }));
    await vi.waitFor(() => expect(pool!.stats().queuedFrames).toBe(0));
    await new Promise((r) => setTimeout(r, 100)); // the setups are done: no tick is armed
    const first = streams[0];
    const other = streams.find((h) => h.workers[0] !== first.workers[0]);
    expect(other).toBeDefined();
    // When each worker's next batch is due, read from the timers the pool arms for them.
    const due: number[] = [];
    const realSetTimeout = globalThis.setTimeout;
    const spy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const at = performance.now(); // before the stack is read: that takes milliseconds here
      if (/src[\\/]pool[\\/]worker-pool\.ts/.test(new Error().stack ?? '')) due.push(at + (ms ?? 0));
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    try {
      first.push({ ...frame, arrival: performance.now() });
      other!.push({ ...frame, arrival: performance.now() });
    } finally {
      spy.mockRestore();
    }
    expect(due).toHaveLength(2);
    const apart = (((due[1] - due[0]) % 20) + 20) % 20;
    // Half of 20 ms, give or take each timer's rounding to whole milliseconds.
    expect(Math.abs(apart - 10)).toBeLessThanOrEqual(1.5);
    await Promise.all(streams.map((h) => h.close()));
  });

  it('refuses a stream opened while close() drains (it would never be processed), and drains the open ones', async () => {
    pool = new WorkerPool({ threads: 1, batchIntervalMs: 10 });
    await pool.start();
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 20));
    const out: AudioFrame[] = [];
    const first = pool.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => out.push(...f), onError: () => {} });
    for (const f of frames) first.push({ ...f, arrival: performance.now() });
    const closing = pool.close();
    expect(() => pool!.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: () => {}, onError: () => {} })).toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN', message: expect.stringMatching(/WorkerPool is closed/) }));
    // Typed, as every refusal of a closed pool: EARSHOT_SHUTTING_DOWN.
    await expect(pool.registerStageModule(fixtureModule('strict-options.js'))).rejects.toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN', message: expect.stringMatching(/WorkerPool is closed: no stage module/) }));
    expect(pool.close()).toBe(closing); // one close, however often asked
    await closing;
    await expect(pool.checkSetups([{ channels: 1, branches: [{ stages: [] }] }])).rejects.toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN' }));
    expect(out).toHaveLength(20);
    pool = undefined;
  });

  it('says when every stream is closed (streamsClosed), counting streams opened meanwhile, or gives up after its timeout', async () => {
    pool = new WorkerPool({ threads: 1, batchIntervalMs: 10 });
    await pool.start();
    expect(await pool.streamsClosed(10)).toBe(true); // none open
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 10));
    const out: AudioFrame[] = [];
    const open = () => pool!.openStream({ channels: 1, branches: [{ stages: [] }] }, { onFrames: (_b, f) => out.push(...f), onError: () => {} });
    const a = open();
    for (const f of frames) a.push({ ...f, arrival: performance.now() });
    expect(await pool.streamsClosed(50)).toBe(false); // its owner keeps it open
    const idle = pool.streamsClosed(5000);
    // A chain's next hop: opened while the first drains, closed once it has.
    const b = open();
    void a.close().then(() => b.close());
    expect(await idle).toBe(true);
    expect(pool.streamCount).toBe(0);
    expect(out).toHaveLength(10);
  });

  it('keeps a stream going on a new worker when its worker dies, at the right media time', async () => {
    pool = new WorkerPool({ threads: 2, batchIntervalMs: 10 });
    await pool.start();
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 60));
    const out: AudioFrame[] = [];
    const errors: string[] = [];
    const formats: unknown[] = [];
    const h = pool.openStream(
      { channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] },
      { onFrames: (_b, f) => out.push(...f), onError: (m) => void errors.push(m), onFormats: (f) => void formats.push(f) },
    );
    for (let i = 0; i < 60; i++) {
      h.push({ ...frames[i], arrival: performance.now() });
      if (i === 25) {
        const victim = pool.workerThreads.find((w) => w.threadId === h.workers[0])!;
        await victim.terminate();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await h.close();
    expect(errors).toEqual([]); // one death is below the quarantine limit: the stream goes on, it does not end
    expect(h.workers).toHaveLength(2);
    expect(h.workers[1]).not.toBe(h.workers[0]);
    // Frames keep their media positions: strictly increasing, ending at the last frame's end.
    for (let i = 1; i < out.length; i++) expect(out[i].position).toBeGreaterThanOrEqual(out[i - 1].position + out[i - 1].data.length);
    const last = out[out.length - 1];
    expect(last.position + last.data.length).toBe(60 * 960);
    expect(pool.stats().tasksFailed).toBeLessThanOrEqual(1);
    // The format was reported when the stream started and again when its new worker rebuilt it.
    expect(formats).toEqual([[{ sampleRate: 48000, channels: 1, sampleFormat: 'f32' }], [{ sampleRate: 48000, channels: 1, sampleFormat: 'f32' }]]);
  });

  it("reports each branch's output format when a stream starts, before its first frames", async () => {
    pool = new WorkerPool({ threads: 1, spareWorker: false });
    await pool.start();
    const frames = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 960 * 5));
    const events: string[] = [];
    let reported: unknown;
    const h = pool.openStream(
      { channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'upmix' }, { type: 'format', sampleFormat: 's16' }] }] },
      {
        onFormats: (f) => {
          events.push('formats');
          reported = f;
        },
        onFrames: (b, f) => events.push(`frames ${b}: ${f[0].sampleRate} Hz × ${f[0].channels}`),
        onError: (m) => events.push(`error: ${m}`),
      },
    );
    for (const f of frames) h.push({ ...f, arrival: performance.now() });
    await h.close();
    expect(reported).toEqual([
      { sampleRate: 48000, channels: 1, sampleFormat: 'f32' },
      { sampleRate: 16000, channels: 2, sampleFormat: 's16' },
    ]);
    expect(events[0]).toBe('formats');
    expect(events.filter((e) => e === 'formats')).toHaveLength(1);
    expect(events).toContain('frames 1: 16000 Hz × 2');
    expect(events.filter((e) => e.startsWith('error'))).toEqual([]);
  });
});
