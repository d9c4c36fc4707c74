/**
 * `earshot serve --cluster redis://…` and Redis data no single node looks
 * after: two real nodes on one real redis-server, real WebRTC publishers.
 *
 * - Redis loses the cluster's data while the nodes stay connected to it
 *   (`FLUSHALL`, `FLUSHDB`, eviction): no reconnection says so, yet every
 *   node must write back what it runs and the cluster's configuration, as
 *   after a Redis restart, and no node places a session until they have.
 * - A node is SIGKILLed: it never removes what it owned; the live node does,
 *   once its registry entry has expired, so that entries of node ids that
 *   never return (one per pod) do not pile up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { mayBeEnded } from '../helpers/sending.js';
import { until } from '../helpers/until.js';
import type { CliServer } from './cli-server.js';
import { clusterViews, startNodes, stopNodes } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';

const PUBLISH = 'publish-token-for-the-data-loss-test';
const ADMIN = 'admin-token-for-the-data-loss-test';
const admin = { authorization: `Bearer ${ADMIN}` };
const { get, nodesSeenBy, livePeer } = clusterViews(admin);

let redis: TestRedis;
const nodes: CliServer[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const common = ['--cluster', redis.url, '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--media-timeout', '5', '--token', PUBLISH, '--admin-token', ADMIN];
  await startNodes([['--node-id', 'node-a', ...common], ['--node-id', 'node-b', ...common]], nodes);
  await until('both nodes registered', async () => ((await nodesSeenBy(nodes[0])).length === 2 ? true : undefined), 15_000);
}, 90_000);

afterAll(async () => {
  await stopNodes(nodes);
  await redis?.kill();
});

describe('earshot serve --cluster, Redis flushed while connected', () => {
  it('writes back the live sessions, the epoch and the room bindings within seconds: the peer stays on its one node', async () => {
    const [a, b] = nodes;
    const bound = await fetch(`${a.url}/rooms/kept`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'raw' }) });
    expect(bound.status).toBeLessThan(300);
    await until('B to have the binding', async () => ((await get<{ bound: boolean }>(b, '/rooms/kept')).bound ? true : undefined), 5000);
    const controller = new AbortController();
    // Ties go to the receiving node: the peer runs on B.
    const sending = mayBeEnded(sendAudio({ url: `${b.url}/whip/kept/p2`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), loop: true, skipDelete: true, rtcpTimeoutMs: 0, signal: controller.signal }));
    try {
      const live = await livePeer(a, 'p2', 10);
      expect(live.node).toBe('node-b');
      const epoch = await redis.command('GET', 'earshot:epoch');
      expect(epoch).toMatch(/^\$\d+\r\n/);

      expect(await redis.command('FLUSHALL')).toBe('+OK\r\n');
      const flushedAt = Date.now();
      // Until every node has written back what it runs, no node places: p2 would look unowned and run twice.
      const answers = new Set<string>();
      while (Date.now() - flushedAt < 1500) {
        const res = await fetch(`${a.url}/whip/kept/p2`, { method: 'POST', headers: { authorization: `Bearer ${PUBLISH}`, 'content-type': 'application/sdp' }, body: 'v=0\r\n' });
        answers.add(`${res.status} ${((await res.json()) as { code: string }).code}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect([...answers]).toEqual(['503 EARSHOT_CLUSTER_UNAVAILABLE']);
      // Without a reconnection, only the heartbeat can notice: B writes its session back, a node the epoch and the binding.
      await until('B to write its session back', async () => ((await redis.command('HGET', 'earshot:peers', 'p2')).includes(`node-b\t${live.session}`) ? true : undefined), 8000);
      expect(await redis.command('HGET', 'earshot:sessions', live.session)).toContain('node-b');
      await until('the binding back in Redis', async () => ((await redis.command('HGET', 'earshot:rooms', 'kept')).includes('raw') ? true : undefined), 3000);
      expect(Date.now() - flushedAt).toBeLessThan(5000);
      const renewed = await redis.command('GET', 'earshot:epoch');
      expect(renewed).toMatch(/^\$\d+\r\n/);
      expect(renewed).not.toBe(epoch);
      expect(a.lines.concat(b.lines).some((l) => l.includes('Redis lost its data while connected'))).toBe(true);

      // Through A, the session is found on B again: a DELETE (or PATCH) is forwarded there, not 404.
      const res = await fetch(`${a.url}/whip/sessions/${live.session}`, { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { peer: string }).peer).toBe('p2');
      // Placements resume once the nodes have written back.
      const after = await until('a POST through A to be placed', () => sendAudio({ url: `${a.url}/whip/kept/after`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), seconds: 0.3 }).catch(() => undefined), 8000, 500);
      expect(after.packetsSent).toBeGreaterThan(10);
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  }, 30_000);

  it("removes a SIGKILLed node's ownership entries once its registry entry has expired", async () => {
    const [a, b] = nodes;
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${b.url}/whip/kept/p3`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), loop: true, skipDelete: true, rtcpTimeoutMs: 0, signal: controller.signal }));
    try {
      const live = await livePeer(a, 'p3', 10);
      // Ties go to B, which received the POST; whichever runs it is killed.
      const [owner, survivor] = live.node === 'node-b' ? [b, a] : [a, b];
      await until('the owner to own p3 in Redis', async () => ((await redis.command('HGET', 'earshot:peers', 'p3')).includes(live.node) ? true : undefined), 5000);
      owner.child.kill('SIGKILL');
      const killedAt = Date.now();
      await until("the killed node's entries to go", async () => {
        const [peer, session] = await Promise.all([redis.command('HEXISTS', 'earshot:peers', 'p3'), redis.command('HEXISTS', 'earshot:sessions', live.session)]);
        return peer === ':0\r\n' && session === ':0\r\n' ? true : undefined;
      }, 15_000);
      // Not before its entry could expire (5 s): a node that is only slow keeps what it owns.
      expect(Date.now() - killedAt).toBeGreaterThan(4000);
      expect(await redis.command('HVALS', 'earshot:sessions')).not.toContain(live.node);
      expect(await redis.command('SISMEMBER', 'earshot:nodes', survivor === a ? 'node-a' : 'node-b')).toBe(':1\r\n');
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  }, 30_000);
});
