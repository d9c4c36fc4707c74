/**
 * Work a flood of WHIP offers can hold is bounded: placement of one peer is
 * atomic, sessions that never connect count against a limit and go away after
 * the connect timeout, and refusals for load say when to come back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { expectProblem } from '../helpers/problems.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const udpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
const post = (peer: string) =>
  fetch(`${t!.url}/whip/flood/${peer}`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('placement of a peer', () => {
  it('is atomic: concurrent POSTs for one peer leave one session and no orphan sockets', async () => {
    t = await startServer({ connectTimeoutMs: 30_000 });
    const before = udpSockets();
    const responses = await Promise.all(Array.from({ length: 6 }, () => post('same')));
    const statuses = responses.map((r) => r.status);
    const created = responses.filter((r) => r.status === 201);
    const busy = responses.filter((r) => r.status === 409);
    for (const r of responses) await r.arrayBuffer();
    expect(created.length, `statuses ${statuses.join(',')}`).toBeGreaterThanOrEqual(1);
    expect(created.length + busy.length).toBe(6);
    for (const r of busy) expect(r.headers.get('retry-after')).toBe('1');
    const stats = t.server.core.stats();
    expect(stats.peers).toBe(1);
    // Every created session is either the live one or one it replaced: none is left running unseen.
    expect(stats.sessionsStarted - stats.sessionsEnded).toBe(1);
    expect(stats.refusedBy.EARSHOT_PEER_BUSY ?? 0).toBe(busy.length);
    const live = t.server.core.peers.get('same')!;
    await t.server.core.endSession(live.session.id, 'deleted');
    await until('every UDP socket of the sessions to close', () => udpSockets() <= before);
    expect(udpSockets()).toBeLessThanOrEqual(before);
  });
});

describe('sessions that never connect', () => {
  it('are limited by maxPendingSessions (503 EARSHOT_OVERLOADED with Retry-After) and release their sockets at the connect timeout', async () => {
    t = await startServer({ maxPendingSessions: 3, connectTimeoutMs: 1500 });
    const before = udpSockets();
    for (let i = 0; i < 3; i++) {
      const res = await post(`ghost-${i}`);
      expect(res.status).toBe(201);
      await res.text();
    }
    await expectProblem(await post('ghost-3'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5', detail: /not connected/ });
    // The connect timeout ends them: their sockets close and new offers are admitted again.
    await until('the pending sessions to time out', () => t!.server.core.stats().peers === 0);
    expect(t.server.core.stats().endedBy['connect-timeout']).toBe(3);
    await until('their sockets to close', () => udpSockets() <= before);
    const again = await post('ghost-4');
    expect(again.status).toBe(201);
    await again.text();
  });

  it('count against maxSessions while they are being answered', async () => {
    t = await startServer({ maxSessions: 2, maxPendingSessions: 100, connectTimeoutMs: 30_000 });
    const responses = await Promise.all(Array.from({ length: 5 }, (_, i) => post(`burst-${i}`)));
    const statuses = responses.map((r) => r.status).sort();
    for (const r of responses) await r.arrayBuffer();
    expect(statuses).toEqual([201, 201, 503, 503, 503]);
    expect(t.server.core.stats().peers).toBe(2);
    for (const r of responses.filter((x) => x.status === 503)) expect(r.headers.get('retry-after')).toBe('5');
  });
});
