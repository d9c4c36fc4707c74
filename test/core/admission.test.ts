/**
 * Admission by measured load: with a budget the load exceeds, new sessions get
 * 503 EARSHOT_OVERLOADED with Retry-After and /health says ready: false; the
 * sessions just admitted count before their load shows.
 */
import { availableParallelism } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { expectProblem } from '../helpers/problems.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const post = (peer: string) => fetch(`${t!.url}/whip/adm/${peer}`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
const health = async () => (await (await fetch(`${t!.url}/health`)).json()) as { ready: boolean; load?: string[] };

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('admission by measured load', () => {
  it('refuses new sessions while a running stream keeps the workers past the budget, and admits again once it ends', async () => {
    // A budget one real stream exceeds: 0.1 % of the workers' time. The publisher runs in this
    // process (it encodes Opus on the main thread), so the event-loop and process limits are left out of this test.
    t = await startServer({
      pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] },
      admission: { maxWorkerUtilization: 0.001, maxEventLoopUtilization: 1, maxProcessUtilization: 1, maxLatencyMs: 60_000, sampleMs: 100, settleMs: 100 },
    });
    // Idle (once start-up work has left the measurement window): ready.
    await until('the idle server to be ready', async () => (await health()).ready === true);
    const stream = sendAudio({ url: `${t.url}/whip/adm/running`, source: fixturePath('tone-1k-48k.wav'), seconds: 3 });
    try {
      await until('the stream to load the workers', async () => (await health()).ready === false);
      const h = await health();
      expect(h.load?.join(' ')).toMatch(/workers \d+ % busy/);
      await expectProblem(await post('late'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5', detail: /measured capacity \(workers/ });
      expect(t.server.core.stats().refusedBy.EARSHOT_OVERLOADED).toBeGreaterThanOrEqual(1);
    } finally {
      await stream;
    }
    // The stream has ended: the workers are idle again.
    await until('the server to be ready again', async () => (await health()).ready === true);
    const admitted = await post('later');
    expect(admitted.status).toBe(201);
    await admitted.text();
  });

  it("refuses while the machine's CPUs are past the budget, counting every process", async () => {
    // A budget any running machine exceeds (0.1 % busy); every other limit out of reach.
    t = await startServer({
      pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] },
      admission: { maxMachineUtilization: 0.001, maxWorkerUtilization: 1, maxEventLoopUtilization: 1, maxProcessUtilization: 1, maxLatencyMs: 60_000, sampleMs: 100, settleMs: 100 },
    });
    const stream = sendAudio({ url: `${t.url}/whip/adm/running`, source: fixturePath('tone-1k-48k.wav'), seconds: 3 });
    try {
      await until('the machine load to show', async () => (await health()).ready === false);
      expect((await health()).load?.join(' ')).toMatch(/machine CPU \d+ % busy > 0 %/);
      const state = t.server.core.stats().admission!;
      expect(state.machineUtilization).toBeGreaterThan(0);
      expect(state.machineUtilization).toBeLessThanOrEqual(1);
      // This process's CPU per stream, as a share of the machine: above nothing, below all of it.
      expect(state.machineStreamCost).toBeGreaterThan(0);
      expect(state.machineStreamCost).toBeLessThan(1);
      await expectProblem(await post('late'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5', detail: /machine CPU/ });
    } finally {
      await stream;
    }
  });

  it("refuses while earshot's own CPU time, all its threads, is past the budget of the CPUs it may use; sessions just admitted count", async () => {
    // A budget one running stream exceeds (0.1 % of the CPUs); every other limit out of reach.
    t = await startServer({
      pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] },
      admission: { maxProcessUtilization: 0.001, maxWorkerUtilization: 1, maxEventLoopUtilization: 1, maxLatencyMs: 60_000, sampleMs: 100, settleMs: 100 },
    });
    const cpus = availableParallelism() === 1 ? '1 CPU' : `${availableParallelism()} CPUs`;
    const stream = sendAudio({ url: `${t.url}/whip/adm/running`, source: fixturePath('tone-1k-48k.wav'), seconds: 3 });
    try {
      await until("earshot's load to show", async () => (await health()).ready === false);
      expect((await health()).load?.join(' ')).toMatch(new RegExp(`earshot's CPU \\d+ % of ${cpus} > 0 %`));
      const state = t.server.core.stats().admission!;
      expect(state.processUtilization).toBeGreaterThan(0);
      expect(state.processUtilization).toBeLessThanOrEqual(1);
      await expectProblem(await post('late'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5', detail: /earshot's CPU/ });
    } finally {
      await stream;
    }
    await t.close();
    // Before anything is measured, each session just admitted counts at its estimated cost: one
    // worker thread's share of the CPUs each (initialStreamCost 1), so the limit's worth is admitted.
    // No sample is taken meanwhile (sampleMs a minute), so the estimate is what counts.
    const cores = availableParallelism();
    t = await startServer({ threads: 4 * cores, admission: { initialStreamCost: 1, maxWorkerUtilization: 1, maxProcessUtilization: 0.99, sampleMs: 60_000, settleMs: 60_000 } });
    const statuses: number[] = [];
    for (let i = 0; i <= cores; i++) {
      const res = await post(`p${i}`);
      statuses.push(res.status);
      if (res.status === 503) expect(((await res.json()) as { detail: string }).detail).toMatch(new RegExp(`earshot's CPU \\d+ % of ${cpus} plus ${cores} sessions? just admitted`));
      else await res.text();
    }
    expect(statuses).toEqual([...Array.from({ length: cores }, () => 201), 503]);
  });

  it("leaves the machine's CPUs out by default (1), even when the sessions just admitted project past all of it", async () => {
    // Each new session is assumed to cost a whole core of the machine until measured, so with one
    // more session than there are cores admitted, the next projects past 100 % even on an idle
    // machine; the workers' projection stays under their limit (4 threads a core).
    const cores = availableParallelism();
    const sessions = cores + 2;
    const options = { threads: 4 * cores, admission: { initialStreamCost: 1, maxWorkerUtilization: 1, maxProcessUtilization: 1, settleMs: 60_000 } };
    t = await startServer(options);
    for (let i = 0; i < sessions; i++) {
      const res = await post(`p${i}`);
      expect(res.status, `session ${i + 1} of ${sessions}`).toBe(201);
      await res.text();
    }
    expect(t.server.core.stats().admission!.unsettledSessions).toBe(sessions);
    await t.close();
    // The same with a machine limit set: the projection refuses.
    t = await startServer({ ...options, admission: { ...options.admission, maxMachineUtilization: 0.99 } });
    const statuses: number[] = [];
    for (let i = 0; i < sessions; i++) {
      const res = await post(`p${i}`);
      statuses.push(res.status);
      await res.text();
    }
    expect(statuses.at(-1)).toBe(503);
  });

  it('admits a session while no stream runs, whatever was measured while the last one ran', async () => {
    // Any latency at all puts admission in its cautious mode (one session at a time) while a session
    // admitted in the last 10 s has not settled; nothing else can refuse.
    t = await startServer({
      pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] },
      admission: { maxWorkerUtilization: 1, maxEventLoopUtilization: 1, maxProcessUtilization: 1, maxLatencyMs: 60_000, cautionLatencyShare: 1e-6, latencyMinLoad: 1e-6, sampleMs: 100, settleMs: 10_000 },
    });
    // A short upload: it ends well within settleMs, and its frames' latency is still in the window.
    const upload = sendAudio({ url: `${t.url}/whip/adm/upload`, source: fixturePath('tone-1k-48k.wav'), seconds: 2, speed: 2 });
    try {
      await until('the upload to be measured', async () => (t!.server.core.stats().admission!.latencyP99Ms ?? 0) > 0);
      await expectProblem(await post('during'), { status: 503, code: 'EARSHOT_OVERLOADED', detail: /just admitted whose load does not show yet/ });
    } finally {
      await upload;
    }
    await until('the upload to end', async () => t!.server.core.stats().pool.streams === 0);
    const next = await post('next');
    expect(next.status).toBe(201);
    await next.text();
    // With that session running (and not settled), the caution applies again.
    await expectProblem(await post('third'), { status: 503, code: 'EARSHOT_OVERLOADED', detail: /just admitted whose load does not show yet/ });
  });

  it('admits uploads sent one after the other faster than real time: one that has ended is no longer counted as just admitted', async () => {
    // Any stream's CPU is past this budget, so a session admitted within settleMs and counted at its
    // measured cost would keep the next one out, though it has ended and nothing runs.
    t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] }, admission: { maxProcessUtilization: 0.01, sampleMs: 100, settleMs: 60_000 } });
    for (const peer of ['u1', 'u2', 'u3']) {
      const sent = await sendAudio({ url: `${t.url}/whip/adm/${peer}`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, speed: 5 });
      expect(sent.packetsSent, peer).toBe(50);
      await until('the upload to end', async () => t!.server.core.stats().pool.streams === 0);
    }
    expect(t.server.core.stats().admission!.unsettledSessions).toBe(0);
  });

  it('counts sessions just admitted at an estimated cost until their load shows', async () => {
    // Each new session is assumed to cost half a worker until measured: two fit under 90 %, a third does not.
    t = await startServer({ threads: 1, admission: { initialStreamCost: 0.5, maxWorkerUtilization: 0.9, maxProcessUtilization: 1, settleMs: 60_000 } });
    for (const peer of ['a', 'b']) {
      const res = await post(peer);
      expect(res.status).toBe(201);
      await res.text();
    }
    const third = await post('c');
    expect(third.status).toBe(503);
    expect(((await third.json()) as { detail: string }).detail).toMatch(/2 sessions just admitted/);
    const state = t.server.core.stats().admission!;
    expect(state.unsettledSessions).toBe(2);
    expect(state.ready).toBe(false);
  });

  it('near the latency limit, admits one session at a time: the next only once the last one has settled', async () => {
    // A caution threshold any real latency passes (0.06 ms), every other limit out of reach.
    const settleMs = 1500;
    t = await startServer({
      pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] },
      // The queued-frames limit too: on a loaded machine (a CI run beside other work) the running stream's queue passed it and refused the first.
      admission: { maxWorkerUtilization: 1, maxEventLoopUtilization: 1, maxProcessUtilization: 1, maxQueuedFramesPerStream: 1e6, maxLatencyMs: 60_000, cautionLatencyShare: 1e-6, latencyMinLoad: 1e-6, sampleMs: 100, settleMs },
    });
    const admission = () => t!.server.core.stats().admission!;
    const stream = sendAudio({ url: `${t.url}/whip/adm/running`, source: fixturePath('tone-1k-48k.wav'), seconds: 6 });
    try {
      // The running stream's frames show in the latency, and it has settled.
      await until('latency measured with nothing unsettled', async () => admission().latencyP99Ms !== null && admission().unsettledSessions === 0);
      const first = await post('first');
      expect(first.status, await first.clone().text()).toBe(201);
      await first.text();
      // Right after it, a second is refused: the first one's load cannot show yet.
      await expectProblem(await post('second'), {
        status: 503,
        code: 'EARSHOT_OVERLOADED',
        retryAfter: '5',
        detail: /frame latency p99 \d+ ms is past 0 ms \(0 % of the 60000 ms limit\) with 1 session just admitted/,
      });
      expect((await health()).ready).toBe(false);
      // Once the first has settled, the next is admitted.
      await until('the first session to settle', async () => admission().unsettledSessions === 0, settleMs + 5000);
      const third = await post('third');
      expect(third.status).toBe(201);
      await third.text();
    } finally {
      await stream;
    }
  });

  it('refuses for latency only while earshot is loaded: a stall at light load is not overload', async () => {
    // A latency limit every frame passes (1 µs), every other limit out of reach; the same stream
    // once with a load floor it cannot reach (100 %), once with one any stream passes.
    for (const latencyMinLoad of [1, 1e-6]) {
      t = await startServer({
        pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] },
        admission: { maxWorkerUtilization: 1, maxEventLoopUtilization: 1, maxProcessUtilization: 1, maxQueuedFramesPerStream: 1e6, maxLatencyMs: 0.001, latencyMinLoad, sampleMs: 100, settleMs: 100 },
      });
      const admission = () => t!.server.core.stats().admission!;
      const stream = sendAudio({ url: `${t.url}/whip/adm/running`, source: fixturePath('tone-1k-48k.wav'), seconds: 3 });
      try {
        // Two samples after the stream's frames show in the latency, and it has settled.
        await until('latency measured with nothing unsettled', async () => admission().latencyP99Ms !== null && admission().unsettledSessions === 0);
        await new Promise((r) => setTimeout(r, 250));
        expect(admission().latencyP99Ms!).toBeGreaterThan(0.001);
        if (latencyMinLoad === 1) {
          expect(admission().reasons).toEqual([]);
          const admitted = await post('light');
          expect(admitted.status).toBe(201);
          await admitted.text();
        } else {
          expect(admission().reasons.join(' ')).toMatch(/^frame latency p99 \d+ ms > 0\.001 ms$/);
          await expectProblem(await post('loaded'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5', detail: /frame latency p99/ });
        }
      } finally {
        await stream;
      }
      await t.close();
      t = undefined;
    }
  });

  it('rejects a budget outside 0–1 at start, naming the option', async () => {
    await expect(startServer({ admission: { maxWorkerUtilization: 1.5 } })).rejects.toThrow(/admission.maxWorkerUtilization/);
  });
});
