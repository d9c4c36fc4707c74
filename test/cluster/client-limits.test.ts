/**
 * The per-client limits hold behind a front: engines of `--processes N` and
 * the nodes of a cluster see requests come from the front or from another
 * node, never from the client, so the front says who the client is. One
 * client that floods offers that never connect gets its share and no more,
 * and a publisher at another address still gets a session. The front's own
 * event streams are bounded as a single process's are. Behind a reverse
 * proxy listed in `--trust-proxy`, the client is the one the proxy names.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fetchFrom, openFrom, stalledGet, type OpenResponse } from '../helpers/from-address.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { until } from '../helpers/until.js';
import { sparseWav } from '../helpers/wav-files.js';
import { startCli, type CliServer } from './cli-server.js';
import { startNodes, stopNodes } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';

const PUBLISH = 'publish-token-for-the-limits-test';
const ADMIN = 'admin-token-for-the-limits-test';
const COMMON = ['--token', PUBLISH, '--admin-token', ADMIN, '--pipeline', 'raw', '--connect-timeout', '60'];

/** A reverse proxy's address (listed in --trust-proxy where a test says so), and a client's that connects directly. */
const PROXY = '127.0.0.5';
const DIRECT = '127.0.0.6';

/**
 * An offer whose ICE never completes (nobody answers its candidate): pending until the connect timeout.
 * `forwardedFor`: the client a proxy at `address` forwards it for (its `X-Forwarded-For`).
 */
const offerFrom = (address: string, node: CliServer, peer: string, forwardedFor?: string) =>
  fetchFrom(address, `${node.url}/whip/flood/${peer}`, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}`, ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) },
    body: chromeLikeOffer(),
  });

/** The offers a server counts as refused: `/stats`' figures, and the metric's series with a count. */
async function refusals(server: CliServer): Promise<{ total: number; byCode: Record<string, number>; series: string[] }> {
  const auth = { authorization: `Bearer ${ADMIN}` };
  const stats = (await (await fetch(`${server.url}/stats`, { headers: auth })).json()) as { server: { sessionsRefused: number; refusedBy: Record<string, number> } };
  const metrics = await (await fetch(`${server.url}/metrics`, { headers: auth })).text();
  const series = metrics
    .split('\n')
    .filter((l) => l.startsWith('earshot_sessions_refused_total{') && !l.endsWith(' 0'))
    .map((l) => l.slice('earshot_sessions_refused_total{'.length).replace('} ', ' '));
  return { total: stats.server.sessionsRefused, byCode: stats.server.refusedBy, series };
}

let servers: CliServer[] = [];
let redis: TestRedis | undefined;
afterEach(async () => {
  await stopNodes(servers);
  servers = [];
  await redis?.kill();
  redis = undefined;
});

describe('sessions pending per client behind a front', () => {
  it('--processes 2: the machine\'s per-client limit, shared out among the engines, counts the client and not the front', async () => {
    // Per engine: 3 pending in all, 2 from one client.
    servers.push(await startCli([...COMMON, '--processes', '2', '--max-pending-sessions', '6', '--max-pending-sessions-per-client', '4']));
    const [front] = servers;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await offerFrom('127.0.0.2', front, `ghost-${i}`);
      statuses.push(res.status);
      await res.text();
    }
    expect(statuses).toEqual([201, 201, 201, 201]);
    for (let i = 4; i < 7; i++) {
      const refused = await offerFrom('127.0.0.2', front, `ghost-${i}`);
      // The machine's limit as the operator set it (4), not an engine's share of it (2).
      expect(await refused.clone().json()).toMatchObject({ limit: 4, detail: expect.stringContaining('maximum of 4 pending sessions (shared out among its 2 engine processes: 2 from one client at each, up to 4 on the machine)') });
      await expectProblem(refused, { status: 503, code: 'EARSHOT_TOO_MANY_PENDING', retryAfter: '5' });
    }
    // Each of the three was offered to both engines, and both refused it: three refusals, not six, and
    // counted by the front, which gave the client the answer.
    expect(await refusals(front)).toEqual({ total: 3, byCode: { EARSHOT_TOO_MANY_PENDING: 3 }, series: ['engine="front",code="EARSHOT_TOO_MANY_PENDING" 3'] });
    // Refused by the front itself, before any engine sees them (a wrong type, too large, a bad name): counted
    // there once each, as one process counts them; a missing token is not.
    const post = (path: string, body: string, type = 'application/sdp', auth = true) =>
      fetch(`${front.url}${path}`, { method: 'POST', body, headers: { 'content-type': type, ...(auth ? { authorization: `Bearer ${PUBLISH}` } : {}) } });
    expect((await post('/whip/flood/typed', 'v=0', 'text/plain')).status).toBe(415);
    expect((await post('/whip/flood/large', 'v=0\r\n'.padEnd(200_000, 'a'))).status).toBe(413);
    expect((await post('/whip/flood/bad%20name', chromeLikeOffer())).status).toBe(400);
    expect((await post('/whip/flood/anonymous', chromeLikeOffer(), 'application/sdp', false)).status).toBe(401);
    expect((await refusals(front)).byCode).toEqual({ EARSHOT_TOO_MANY_PENDING: 3, EARSHOT_UNSUPPORTED_MEDIA_TYPE: 1, EARSHOT_BODY_TOO_LARGE: 1, EARSHOT_NAME_INVALID: 1 });
    // Two of the six pending places are left, and they are not the flood's.
    for (const [address, peer] of [['127.0.0.3', 'legit'], ['127.0.0.4', 'other']]) {
      const res = await offerFrom(address, front, peer);
      expect(res.status, await res.text()).toBe(201);
    }
    // All six taken: the next is refused for the machine's limit, 6, not an engine's 3.
    const full = await offerFrom('127.0.0.7', front, 'late');
    expect(await full.clone().json()).toMatchObject({ limit: 6, of: 'pending', detail: expect.stringContaining('already has 6 sessions that have not connected yet (shared out among its 2 engine processes)') });
    await expectProblem(full, { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5' });
  }, 120_000);

  it('--cluster: an offer forwarded to another node counts against its client there, not against the node that forwarded it (nor the proxy in front of it)', async () => {
    redis = await startRedis();
    const cluster = ['--cluster', redis.url, '--processes', '1', '--threads', '1'];
    // Node A runs one session at most: once it has it, every offer A takes is forwarded to B. A is behind a
    // reverse proxy (--trust-proxy): the client it names to B is the one the proxy forwards for.
    await startNodes([[...COMMON, ...cluster, '--max-sessions', '1', '--trust-proxy', PROXY], [...COMMON, ...cluster, '--max-pending-sessions-per-client', '2']], servers);
    const [a, b] = servers;
    const admin = { authorization: `Bearer ${ADMIN}` };
    const peersOn = async (node: CliServer) => ((await (await fetch(`${node.url}/stats`, { headers: admin })).json()) as { peers: Array<{ peer: string }> }).peers.map((p) => p.peer);
    await until('both nodes to see each other', async () => {
      const res = await fetch(`${a.url}/cluster/nodes`, { headers: admin });
      return ((await res.json()) as { nodes: unknown[] }).nodes.length === 2 ? true : undefined;
    });
    // Fill A (an offer may be placed on B instead: then another, from an address of its own).
    for (let i = 0; (await peersOn(a)).length < 1; i++) {
      expect(i).toBeLessThan(5);
      const res = await offerFrom('127.0.0.9', a, `filler-${i}`);
      expect(res.status, await res.text()).toBe(201);
      await until(`filler-${i} in the statistics of the node that runs it`, async () => ((await peersOn(a)).includes(`filler-${i}`) || (await peersOn(b)).includes(`filler-${i}`) ? true : undefined));
    }
    // The cluster knows A is full (its record says not ready), so B ranks first and the client hears B's
    // answer: without this wait, an offer placed while A's record still said ready heard A's full engine.
    await until('A to be seen as full', async () => {
      const { nodes } = (await (await fetch(`${b.url}/cluster/nodes`, { headers: admin })).json()) as { self: string; nodes: Array<{ id: string; url: string; ready: boolean }> };
      const self = ((await (await fetch(`${a.url}/cluster/nodes`, { headers: admin })).json()) as { self: string }).self;
      return nodes.find((n) => n.id === self)?.ready === false ? true : undefined;
    });
    // A's /health says why, with the limit the operator set (an engine holds its share of it).
    const aLoad = ((await (await fetch(`${a.url}/health`)).json()) as { load?: string[] }).load;
    expect(aLoad).toContainEqual(expect.stringMatching(/^engine 0: 1 sessions, the most allowed \(its share, 1, of --max-sessions 1\)$/));
    // The flood, through the proxy and A, all placed on B: B gives its client two places.
    for (let i = 0; i < 2; i++) {
      const res = await offerFrom(PROXY, a, `ghost-${i}`, '198.51.100.2');
      expect(res.status, await res.text()).toBe(201);
    }
    const refused = await offerFrom(PROXY, a, 'ghost-2', '198.51.100.2');
    expect(refused.status, await refused.text()).toBe(503);
    // Another publisher through the proxy and A gets a place on B: B counted the flood against its client,
    // not against A nor the proxy.
    const legit = await offerFrom(PROXY, a, 'legit', '198.51.100.3');
    expect(legit.status, await legit.text()).toBe(201);
    expect(await peersOn(b)).toEqual(expect.arrayContaining(['ghost-0', 'ghost-1', 'legit']));
    // One offer was refused, once, by the node the client asked (A's full engine refused the others too,
    // before B took them): the cluster counts the answers clients got.
    const [onA, onB] = [await refusals(a), await refusals(b)];
    expect([onA.total, onB.total]).toEqual([1, 0]);
    expect(onA.series).toEqual([expect.stringMatching(/^engine="front",code="EARSHOT_TOO_MANY_PENDING" 1$/)]);
  }, 180_000);
});

describe('downloads through another node of a cluster', () => {
  it('count against their client on the node that has the recording, not against the node that forwarded them', async () => {
    redis = await startRedis();
    const cluster = ['--cluster', redis.url, '--processes', '1', '--threads', '1'];
    await startNodes([[...COMMON, ...cluster], [...COMMON, ...cluster, '--max-downloads-per-client', '1']], servers);
    const [a, b] = servers;
    const admin = { authorization: `Bearer ${ADMIN}` };
    // B's recording: 96 MiB of silence, more than the loopback connections (client to A, A to B) buffer,
    // so a client that stops reading holds its download on B.
    await sparseWav(join(b.recordingsDir, 'long.wav'), 96 * 1024 * 1024);
    const bId = await until('A to see B', async () => {
      const { nodes } = (await (await fetch(`${a.url}/cluster/nodes`, { headers: admin })).json()) as { nodes: Array<{ id: string; url: string }> };
      return nodes.find((n) => n.url === b.url)?.id;
    });
    const held: Socket[] = [];
    const download = async (from: string, node: CliServer, path: string) => {
      const { status, socket } = await stalledGet(from, node.url, path, admin);
      held.push(socket);
      return status;
    };
    try {
      const throughA = `/cluster/recordings/${encodeURIComponent(bId)}/long.wav`;
      expect(await download('127.0.0.2', a, throughA)).toBe(200);
      // Another client through A has a download of its own on B (B counted both as A before)…
      expect(await download('127.0.0.3', a, throughA)).toBe(200);
      // …and each client has its one: through A, or straight from B.
      expect(await download('127.0.0.2', a, throughA)).toBe(429);
      expect(await download('127.0.0.3', b, '/recordings/long.wav')).toBe(429);
      expect(await download('127.0.0.4', b, '/recordings/long.wav')).toBe(200);
    } finally {
      for (const s of held) s.destroy();
    }
  }, 120_000);
});

describe('the front of --processes 2, behind a reverse proxy it believes (--trust-proxy)', () => {
  // One server for both tests (each start is seconds of engine start-up): one event stream per client,
  // three in all; 2 pending sessions per client on each engine.
  let front: CliServer;
  beforeAll(async () => {
    front = await startCli([...COMMON, '--processes', '2', '--trust-proxy', PROXY, '--max-event-streams-per-client', '1', '--max-event-streams', '3', '--max-pending-sessions-per-client', '4']);
  }, 60_000);
  afterAll(() => stopNodes(front ? [front] : []));
  const admin = { authorization: `Bearer ${ADMIN}` };

  it('limits event streams per client and in all (429 EARSHOT_TOO_MANY_EVENT_STREAMS), each client behind the proxy on its own; HEAD /events answers at once', async () => {
    const opened: OpenResponse[] = [];
    const stream = async (address: string, forwardedFor?: string) => {
      const res = await openFrom(address, `${front.url}/events`, { headers: { ...admin, ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) } });
      opened.push(res);
      return res;
    };
    try {
      const head = await fetch(`${front.url}/events`, { method: 'HEAD', headers: admin });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect((await stream('127.0.0.2')).status).toBe(200);
      const again = await stream('127.0.0.2');
      expect(again.status).toBe(429);
      await expectProblem(await again.whole(), { status: 429, code: 'EARSHOT_TOO_MANY_EVENT_STREAMS', retryAfter: '5', detail: /--max-event-streams-per-client/ });
      // Behind the proxy: one client's second stream is refused, another client's is not.
      expect((await stream(PROXY, '198.51.100.2')).status).toBe(200);
      const proxiedAgain = await stream(PROXY, '198.51.100.2');
      expect(proxiedAgain.status).toBe(429);
      await proxiedAgain.whole();
      // The same client named in RFC 7239's Forwarded (a proxy that sends only that) is the same client.
      const standard = await openFrom(PROXY, `${front.url}/events`, { headers: { ...admin, forwarded: 'for="198.51.100.2:5000";proto=https' } });
      opened.push(standard);
      expect(standard.status).toBe(429);
      await standard.whole();
      expect((await stream(PROXY, '198.51.100.3')).status).toBe(200);
      const full = await stream('127.0.0.4');
      expect(full.status).toBe(429);
      await expectProblem(await full.whole(), { status: 429, code: 'EARSHOT_TOO_MANY_EVENT_STREAMS', retryAfter: '5', detail: /--max-event-streams\b(?!-)/ });
    } finally {
      for (const r of opened) r.close();
    }
  });

  it('names each client behind the proxy to the engines for the pending-session limit, and logs it; a client that connects directly is counted as itself', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await offerFrom(PROXY, front, `flood-${i}`, '198.51.100.2');
      expect(res.status, await res.text()).toBe(201);
    }
    await expectProblem(await offerFrom(PROXY, front, 'flood-4', '198.51.100.2'), { status: 503, code: 'EARSHOT_TOO_MANY_PENDING', retryAfter: '5' });
    // Another client behind the same proxy, and one that claims to be the flood's client without coming through it.
    for (const [from, peer, forwardedFor] of [[PROXY, 'legit', '198.51.100.3'], [DIRECT, 'direct', '198.51.100.2']]) {
      const res = await offerFrom(from, front, peer, forwardedFor);
      expect(res.status, await res.text()).toBe(201);
    }
    expect(front.lines.some((l) => l.includes('"incoming request"') && l.includes('"url":"/whip/flood/legit"') && l.includes('"remoteAddress":"198.51.100.3"'))).toBe(true);
  });
});
