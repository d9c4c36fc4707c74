/**
 * A cluster node's identity in Redis, with real nodes (the CLI) on a real
 * redis-server. A second node started with a live node's `--node-id` stays
 * out of the cluster: it refuses new sessions, `/health` says why, and when
 * it stops it leaves the first node's entry and peers alone; it joins once
 * the first has left. A `--cluster` URL naming a database Redis does not
 * have keeps its node out, rather than joining database 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { mayBeEnded } from '../helpers/sending.js';
import { until } from '../helpers/until.js';
import { startCli, type CliServer } from './cli-server.js';
import { clusterViews, stopNodes } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';

const PUBLISH = 'publish-token-for-the-identity-test';
const ADMIN = 'admin-token-for-the-identity-test';
const admin = { authorization: `Bearer ${ADMIN}` };
const { get, nodesSeenBy } = clusterViews(admin);

let redis: TestRedis;
const nodes: CliServer[] = [];
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await stopNodes(nodes);
  await redis?.kill();
});

async function node(id: string, url = redis.url): Promise<CliServer> {
  const n = await startCli(['--cluster', url, '--node-id', id, '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--token', PUBLISH, '--admin-token', ADMIN], { startTimeoutMs: 60_000 });
  nodes.push(n);
  return n;
}

type Health = { ready: boolean; reasons: string[]; cluster?: { node: string; redis: string; problem?: string } };
const health = async (n: CliServer) => (await (await fetch(`${n.url}/health`)).json()) as Health;

describe('cluster node identity', () => {
  it('keeps a second node with a live node id out of the cluster, touching nothing of the first; it joins once the first has left', async () => {
    const first = await node('twin');
    await until('the first node to join', async () => ((await nodesSeenBy(first)).some((n) => n.id === 'twin') ? true : undefined));
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${first.url}/whip/room/ann`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal }));
    try {
      await until('ann to run on the first node', async () => ((await get<{ peers: Array<{ peer: string }> }>(first, '/cluster/stats')).peers.some((p) => p.peer === 'ann') ? true : undefined));

      const second = await node('twin');
      const refused = await until('the second node to find its id taken', async () => {
        const h = await health(second);
        return h.cluster?.problem ? h : undefined;
      });
      expect(refused.ready).toBe(false);
      expect(refused.cluster).toMatchObject({ node: 'twin', redis: 'up', problem: 'another live node holds this node id: give each node its own --node-id' });
      expect(refused.reasons).toContain('cluster: another live node holds this node id: give each node its own --node-id; this node stays out of the cluster and refuses new sessions (EARSHOT_CLUSTER_UNAVAILABLE)');
      await expectProblem(
        await fetch(`${second.url}/whip/room/bob`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}` } }),
        // Redis is reachable: the refusal says what is wrong, not that Redis cannot be reached.
        { status: 503, code: 'EARSHOT_CLUSTER_UNAVAILABLE', detail: /^This node cannot use the cluster's shared state in Redis \(.*node id "twin" is held by another live node/ },
      );
      expect(second.lines.some((l) => l.includes('another live node holds this node id'))).toBe(true);
      // The registry still names the first node, and a third node (another id) sees ann there.
      expect((await nodesSeenBy(first)).filter((n) => n.id === 'twin').map((n) => n.url)).toEqual([first.url]);

      // The second one stops: the first node's entry and its peer stay in Redis.
      expect(await second.stop()).toBe(0);
      const third = await node('third');
      await until('the third node to join', async () => ((await nodesSeenBy(third)).length === 2 ? true : undefined));
      expect((await nodesSeenBy(third)).map((n) => [n.id, n.url])).toEqual([
        ['third', third.url],
        ['twin', first.url],
      ]);
      expect((await get<{ peer: string; state: string }>(third, '/stats/ann')).state).toBe('connected');

      // Another node with the id waits; once the first leaves, it joins.
      const waiting = await node('twin');
      await until('the waiting node to find its id taken', async () => ((await health(waiting)).cluster?.problem ? true : undefined));
      controller.abort();
      await sending.catch(() => undefined);
      expect(await first.stop()).toBe(0);
      const joined = await until('the waiting node to join once the id is free', async () => {
        const h = await health(waiting);
        return h.ready && !h.cluster?.problem ? h : undefined;
      }, 20_000);
      expect(joined.reasons).toEqual([]);
      expect((await nodesSeenBy(third)).map((n) => [n.id, n.url])).toEqual([
        ['third', third.url],
        ['twin', waiting.url],
      ]);
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  }, 120_000);

  it('keeps a node whose --cluster URL names a database Redis lacks out of the cluster, rather than in database 0', async () => {
    const lost = await node('lost', `${redis.url}/99`);
    const h = await until('the node to find the database missing', async () => {
      const x = await health(lost);
      return x.cluster?.problem ? x : undefined;
    });
    expect(h.ready).toBe(false);
    // Redis answers; the node is out for another reason, which `problem` gives.
    expect(h.cluster).toMatchObject({ redis: 'up', problem: "Redis has no database 99: set the --cluster URL's database to one it has" });
    // Logged when found; the line reaches this test through the node's stdout, which may come after its /health answer.
    await until('the log line saying so', async () => (lost.lines.some((l) => l.includes('has no database 99')) ? true : undefined), 5000);
    // Database 0, where the other nodes are, never heard of it.
    expect(await redis.command('SISMEMBER', 'earshot:nodes', 'lost')).toBe(':0\r\n');
    await expectProblem(
      await fetch(`${lost.url}/whip/room/cat`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}` } }),
      { status: 503, code: 'EARSHOT_CLUSTER_UNAVAILABLE', detail: /has no database 99/ },
    );
  }, 60_000);

  it('a lone node draining refuses a new peer as leaving (503 EARSHOT_SHUTTING_DOWN), not as overloaded, and /health says it is draining', async () => {
    // Database 2: a cluster of its own, so that no other node of this file can take the peer.
    const lone = await node('lone', `${redis.url}/2`);
    await until('the node to join', async () => ((await health(lone)).ready ? true : undefined));
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${lone.url}/whip/room/dee`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), loop: true, skipDelete: true, signal: controller.signal }));
    try {
      await until('dee to run', async () => ((await get<{ peers: Array<{ peer: string }> }>(lone, '/stats')).peers.some((p) => p.peer === 'dee') ? true : undefined));
      // A session placed just now, before its engine's next load report (every 250 ms): the drain counts it
      // too (it read only the reports, found no session when none had come yet, and closed the node at once).
      const cal = await fetch(`${lone.url}/whip/room/cal`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}` } });
      expect(cal.status).toBe(201);
      const drain = await fetch(`${lone.url}/admin/drain`, { method: 'POST', headers: admin });
      expect(drain.status).toBe(202);
      expect(((await drain.json()) as { sessions: number }).sessions).toBe(2);
      const draining = await until('the node to drain', async () => {
        const h = (await (await fetch(`${lone.url}/health`)).json()) as Health & { load?: string[]; cluster?: { state: string } };
        return h.cluster?.state === 'draining' ? h : undefined;
      });
      expect(draining.ready).toBe(false);
      expect(draining.load).toContain('this node is draining: it takes no new sessions (a POST to it is forwarded to another node)');
      // Before the registry shows it draining the node is still a candidate of its own placement, and after, none
      // is left: either way the new peer is refused as leaving (before, the second was refused as overloaded).
      const refuse = async (peer: string) => {
        const res = await fetch(`${lone.url}/whip/room/${peer}`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}` } });
        await expectProblem(res, { status: 503, code: 'EARSHOT_SHUTTING_DOWN', detail: /this node is draining, and no other node of the cluster is up to take a new stream/ });
        expect(res.headers.get('retry-after')).toBe('5');
      };
      await refuse('eve');
      await until('the registry to show the node draining', async () => ((await nodesSeenBy(lone)).find((n) => n.id === 'lone')?.state === 'draining' ? true : undefined), 10_000);
      await refuse('fay');
      const metrics = await (await fetch(`${lone.url}/metrics`, { headers: admin })).text();
      // Counted as what it was, not as a load refusal.
      expect(metrics).toMatch(/earshot_sessions_refused_total\{[^}]*code="EARSHOT_SHUTTING_DOWN"[^}]*\} [1-9]/);
      expect(metrics).not.toMatch(/earshot_sessions_refused_total\{[^}]*code="EARSHOT_OVERLOADED"[^}]*\} [1-9]/);
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  }, 90_000);
});
