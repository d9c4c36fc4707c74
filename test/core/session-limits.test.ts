/**
 * Work a flood of WHIP offers can hold is bounded: placement of one peer is
 * atomic, sessions that never connect count against a limit and go away after
 * the connect timeout, one client cannot take every place of that limit, and
 * refusals for load say when to come back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer, weriftOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { expectProblem } from '../helpers/problems.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const udpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
const post = (peer: string, body = chromeLikeOffer()) =>
  fetch(`${t!.url}/whip/flood/${peer}`, { method: 'POST', body, headers: { 'content-type': 'application/sdp' } });

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
    // One client here: its own limit (10) is above the server's, which is what this test reaches.
    t = await startServer({ maxPendingSessions: 3, maxPendingSessionsPerClient: 10, connectTimeoutMs: 1500 });
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

  it('make /health say ready: false while the server holds maxSessions, with the reason, and ready again once one ends', async () => {
    t = await startServer({ maxSessions: 1, maxPendingSessions: 100, connectTimeoutMs: 30_000 });
    const health = async () => (await (await fetch(`${t!.url}/health`)).json()) as { ready: boolean; load?: string[] };
    expect(await health()).toMatchObject({ ready: true });
    const first = await post('alice');
    expect(first.status).toBe(201);
    await first.text();
    expect(await health()).toEqual(expect.objectContaining({ ready: false, load: [expect.stringMatching(/1 sessions, the most allowed \(--max-sessions 1\)/)] }));
    await expectProblem(await post('bob'), { status: 503, code: 'EARSHOT_OVERLOADED' });
    await t.server.core.endSession(t.server.core.peers.get('alice')!.session.id, 'deleted');
    expect(await health()).toMatchObject({ ready: true });
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

describe('a peer publishing again', () => {
  it('takes no second place against maxSessions: beside its replacement, another peer gets the last place', async () => {
    t = await startServer({ maxSessions: 2, maxPendingSessions: 100, connectTimeoutMs: 30_000 });
    const first = await post('alice');
    expect(first.status).toBe(201);
    await first.text();
    // alice replaces her session while carol asks for the second place.
    const responses = await Promise.all([post('alice'), post('carol')]);
    for (const r of responses) await r.arrayBuffer();
    expect(responses.map((r) => r.status)).toEqual([201, 201]);
    expect(t.server.core.stats().peers).toBe(2);
    // Full now: a third peer is refused.
    await expectProblem(await post('dave'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5' });
  });
});

describe('an offer that can never be accepted', () => {
  it('gets its own error at a limit (400, 422), not a 503 with Retry-After that a client would retry for ever', async () => {
    t = await startServer({ maxSessions: 1, maxPendingSessions: 100, connectTimeoutMs: 30_000 });
    const first = await post('alice');
    expect(first.status).toBe(201);
    await first.text();
    await expectProblem(await post('bob', 'this is not SDP'), { status: 400, code: 'EARSHOT_SDP_INVALID' });
    await expectProblem(await post('bob', ''), { status: 400, code: 'EARSHOT_SDP_INVALID' });
    const pcmu = await weriftOffer({ mimeType: 'audio/PCMU', clockRate: 8000 });
    try {
      await expectProblem(await post('bob', pcmu.sdp), { status: 422, code: 'EARSHOT_NO_OPUS_AUDIO' });
    } finally {
      await pcmu.pc.close();
    }
    // A good offer is the one told to come back.
    await expectProblem(await post('bob'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5' });
    expect(t.server.core.refusedBy()).toMatchObject({ EARSHOT_SDP_INVALID: 2, EARSHOT_NO_OPUS_AUDIO: 1, EARSHOT_OVERLOADED: 1 });
  });
});

describe('sessions that never connect, per client', () => {
  // Offers whose ICE never completes (nobody answers the chromeLikeOffer's candidate): pending until the connect timeout.
  const from = (client: string) => (peer: string) => t!.server.core.publish('flood', peer, chromeLikeOffer(), { client });

  it('one client holds at most maxPendingSessionsPerClient of them; other clients, reconnects and ended sessions are not held back', async () => {
    t = await startServer({ maxPendingSessions: 20, maxPendingSessionsPerClient: 2, connectTimeoutMs: 30_000 });
    const core = t.server.core;
    const a = from('client-a');
    await a('a-0');
    await a('a-1');
    await expect(a('a-2')).rejects.toMatchObject({ code: 'EARSHOT_TOO_MANY_PENDING', statusCode: 503, extensions: { limit: 2 } });
    // The pending places are not all taken: another client publishes.
    await from('client-b')('b-0');
    // A quick reconnect publishes the peer again: it replaces the client's own pending session, it needs no place of its own.
    const again = await a('a-1');
    expect(core.peers.get('a-1')!.session).toBe(again);
    // A pending session that ends frees its client's place.
    await core.endSession(core.peers.get('a-0')!.session.id, 'deleted');
    await a('a-3');
    // Without a client (a program calling publish itself) only the totals count.
    for (let i = 0; i < 3; i++) await core.publish('flood', `n-${i}`, chromeLikeOffer());
    expect(core.refusedBy().EARSHOT_TOO_MANY_PENDING).toBe(1);
  });

  it('lets a client reconnect its own pending peer when every pending place is taken: the replacement takes no new place', async () => {
    t = await startServer({ maxPendingSessions: 3, maxPendingSessionsPerClient: 2, connectTimeoutMs: 30_000 });
    const core = t.server.core;
    const [a, b] = [from('client-a'), from('client-b')];
    await a('a-0');
    await a('a-1');
    await b('b-0');
    await expect(from('client-c')('c-0')).rejects.toMatchObject({ code: 'EARSHOT_OVERLOADED', statusCode: 503 });
    // Below its own limit or at it, a client publishing its pending peer again replaces that session.
    const [b0, a1] = [await b('b-0'), await a('a-1')];
    expect([core.peers.get('b-0')!.session, core.peers.get('a-1')!.session]).toEqual([b0, a1]);
    expect(core.pendingSessions()).toBe(3);
    await expect(b('b-1')).rejects.toMatchObject({ code: 'EARSHOT_OVERLOADED', statusCode: 503 });
  });

  it('counts offers still being answered: concurrent offers from one client get only its share', async () => {
    t = await startServer({ maxPendingSessions: 20, maxPendingSessionsPerClient: 2, connectTimeoutMs: 30_000 });
    const c = from('client-c');
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => c(`c-${i}`)));
    const refused = results.filter((r) => r.status === 'rejected').map((r) => (r.reason as { code: string }).code);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(refused).toEqual(['EARSHOT_TOO_MANY_PENDING', 'EARSHOT_TOO_MANY_PENDING', 'EARSHOT_TOO_MANY_PENDING']);
  });

  it('over HTTP: a flood from one address cannot lock out a publisher at another address (503 EARSHOT_TOO_MANY_PENDING with Retry-After for the flood)', async () => {
    // Dual stack: a client of 127.0.0.1 and one of ::1 are two addresses on one machine.
    t = await startServer({
      host: '::',
      token: 'PUBTOKEN123',
      adminToken: 'ADMINTOKEN456',
      iceHostAddresses: ['127.0.0.1'],
      maxPendingSessions: 4,
      maxPendingSessionsPerClient: 3,
      connectTimeoutMs: 30_000,
    });
    const port = new URL(t.url).port;
    const offer = (host: string, peer: string) =>
      fetch(`http://${host}:${port}/whip/flood/${peer}`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: 'Bearer PUBTOKEN123' } });
    // More offers than there are pending places, as the audit sent: before the per-client limit they took all 4.
    for (let i = 0; i < 3; i++) {
      const res = await offer('127.0.0.1', `ghost-${i}`);
      expect(res.status).toBe(201);
      await res.text();
    }
    for (let i = 3; i < 6; i++) {
      await expectProblem(await offer('127.0.0.1', `ghost-${i}`), { status: 503, code: 'EARSHOT_TOO_MANY_PENDING', retryAfter: '5', detail: /--max-pending-sessions-per-client/ });
    }
    const other = await offer('[::1]', 'legit');
    expect(other.status).toBe(201);
    await other.text();
    expect(t.server.core.stats().refusedBy).toEqual({ EARSHOT_TOO_MANY_PENDING: 3 });
  });

  it('connected sessions do not count: a client whose sessions connected may start more', async () => {
    t = await startServer({ maxPendingSessions: 20, maxPendingSessionsPerClient: 1, connectTimeoutMs: 30_000 });
    const stop = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/flood/talker`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: stop.signal });
    try {
      await until('the talker to connect', () => t!.server.core.peers.get('talker')?.session.state === 'connected');
      const res = await post('ghost');
      expect(res.status).toBe(201);
      await res.text();
      await expectProblem(await post('ghost-2'), { status: 503, code: 'EARSHOT_TOO_MANY_PENDING', retryAfter: '5' });
    } finally {
      stop.abort();
      await sending.catch(() => undefined);
    }
  });
});
