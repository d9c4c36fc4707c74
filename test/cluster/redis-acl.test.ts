/**
 * A cluster node whose Redis user may connect but not do what the cluster
 * needs (an ACL without scripting, here): a real node (the CLI) on a real
 * redis-server. The node must say so, not pass for healthy: `/health` not
 * ready with Redis's own error, a POST refused with
 * `EARSHOT_CLUSTER_UNAVAILABLE` naming it (not `EARSHOT_OVERLOADED`), the
 * failure logged without repeating every second. Once the ACL is fixed, the
 * node joins by itself, the connection never having dropped (a failed join
 * is retried on a timer, not only on the next reconnection): it registers
 * and applies the room bindings Redis holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { until } from '../helpers/until.js';
import { startCli, type CliServer } from './cli-server.js';
import { clusterViews, stopNodes } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';

const PUBLISH = 'publish-token-for-the-acl-test';
const ADMIN = 'admin-token-for-the-acl-test';
const admin = { authorization: `Bearer ${ADMIN}` };
const { get } = clusterViews(admin);

type Health = { status: string; ready: boolean; reasons: string[]; cluster?: { node: string; redis: string; problem?: string } };

let redis: TestRedis;
const nodes: CliServer[] = [];
let limited: CliServer;
const health = async () => (await (await fetch(`${limited.url}/health`)).json()) as Health;

beforeAll(async () => {
  redis = await startRedis();
  // Every command but scripting (the registry and the locks use EVAL), every key and channel.
  expect(await redis.command('ACL', 'SETUSER', 'limited', 'on', '>pw', '~*', '&*', '+@all', '-@scripting')).toBe('+OK\r\n');
  // A binding the cluster has, which the node applies once it joins.
  expect(await redis.command('HSET', 'earshot:rooms', 'aclroom', 'raw')).toBe(':1\r\n');
  limited = await startCli(
    ['--cluster', `redis://limited:pw@127.0.0.1:${redis.port}`, '--node-id', 'limited', '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--token', PUBLISH, '--admin-token', ADMIN],
    { startTimeoutMs: 60_000 },
  );
  nodes.push(limited);
}, 90_000);

afterAll(async () => {
  await stopNodes(nodes);
  await redis?.kill();
});

describe('a cluster node whose Redis ACL refuses scripting', () => {
  it('is not ready, says why in /health, refuses a POST with EARSHOT_CLUSTER_UNAVAILABLE naming the error, and logs it once, not every second', async () => {
    const h = await until('/health to name the refusal', async () => {
      const x = await health();
      return x.cluster?.problem ? x : undefined;
    }, 10_000);
    expect(h.ready).toBe(false);
    expect(h.status).toBe('degraded');
    expect(h.cluster).toMatchObject({ node: 'limited', redis: 'up', problem: expect.stringMatching(/NOPERM/) });
    expect(h.reasons.some((r) => r.startsWith('cluster: ') && r.includes('NOPERM') && r.includes('EARSHOT_CLUSTER_UNAVAILABLE'))).toBe(true);
    // No password, no address in a public document.
    expect(JSON.stringify(h)).not.toMatch(/pw@|127\.0\.0\.1/);

    await expectProblem(
      await fetch(`${limited.url}/whip/room/bob`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}` } }),
      { status: 503, code: 'EARSHOT_CLUSTER_UNAVAILABLE', retryAfter: '2', detail: /not registered in Redis: its heartbeat fails: NOPERM/ },
    );

    // A heartbeat a second fails; the log says so once (then once a minute).
    await new Promise((r) => setTimeout(r, 3000));
    const logged = limited.lines.filter((l) => l.includes('cluster: the heartbeat failed'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/NOPERM.*check the --cluster URL's user and its ACL/);
    expect(logged[0]).not.toContain(':pw@');
  }, 30_000);

  it('joins by itself once the ACL allows it, the connection never having dropped: registered, ready, the stored room binding applied', async () => {
    expect((await get<{ bound: boolean }>(limited, '/rooms/aclroom')).bound).toBe(false);
    expect(limited.lines.filter((l) => l.includes('cluster: joining failed')).length).toBeGreaterThan(0);
    expect(await redis.command('ACL', 'SETUSER', 'limited', '+@scripting')).toBe('+OK\r\n');
    const fixedAt = Date.now();
    const joined = await until('the node to join', async () => {
      const h = await health();
      return h.ready && !h.cluster?.problem ? h : undefined;
    }, 15_000);
    expect(joined.reasons).toEqual([]);
    expect(await redis.command('SISMEMBER', 'earshot:nodes', 'limited')).toBe(':1\r\n');
    expect((await get<{ pipeline: string }>(limited, '/rooms/aclroom')).pipeline).toBe('raw');
    expect(Date.now() - fixedAt).toBeLessThan(5000);
    expect(limited.lines.some((l) => l.includes('cluster: joined'))).toBe(true);
    // Logged once while it failed, not once a try.
    expect(limited.lines.filter((l) => l.includes('cluster: joining failed'))).toHaveLength(1);
  }, 30_000);
});

describe('a cluster node whose Redis password is wrong', () => {
  it('says Redis refuses its credentials (not "unreachable"), refuses a POST naming them, and joins once Redis takes the password', async () => {
    // A user of its own, with every right: only its password is wrong.
    expect(await redis.command('ACL', 'SETUSER', 'passworded', 'on', '>right', '~*', '&*', '+@all')).toBe('+OK\r\n');
    const wrong = await startCli(
      ['--cluster', `redis://passworded:not-the-password@127.0.0.1:${redis.port}`, '--node-id', 'wrong-password', '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--token', PUBLISH, '--admin-token', ADMIN],
      { startTimeoutMs: 60_000 },
    );
    nodes.push(wrong);
    const h = await until('/health to name the refusal', async () => {
      const x = (await (await fetch(`${wrong.url}/health`)).json()) as Health;
      return x.cluster?.problem ? x : undefined;
    }, 10_000);
    // Redis answers: it refuses the credentials, which is what to change.
    expect(h).toMatchObject({ ready: false, status: 'degraded', cluster: { node: 'wrong-password', redis: 'up', problem: expect.stringMatching(/^Redis refuses this node's credentials \(WRONGPASS .*\): check the --cluster URL's user name and password$/) } });
    expect(h.reasons.some((r) => r.startsWith('cluster: Redis refuses') && r.includes('EARSHOT_CLUSTER_UNAVAILABLE'))).toBe(true);
    expect(JSON.stringify(h)).not.toMatch(/not-the-password|127\.0\.0\.1/);
    await expectProblem(
      await fetch(`${wrong.url}/whip/room/carol`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}` } }),
      { status: 503, code: 'EARSHOT_CLUSTER_UNAVAILABLE', detail: /refuses the --cluster URL's credentials \(WRONGPASS/ },
    );
    // Logged as what it is, once (then once a minute), never as Redis being unreachable.
    expect(wrong.lines.filter((l) => l.includes("cluster: Redis refuses this node's credentials"))).toHaveLength(1);
    expect(wrong.lines.filter((l) => l.includes('Redis unreachable'))).toEqual([]);
    // The password added to the user: the node connects on its next try and joins.
    expect(await redis.command('ACL', 'SETUSER', 'passworded', '>not-the-password')).toBe('+OK\r\n');
    await until('the node to join', async () => {
      const x = (await (await fetch(`${wrong.url}/health`)).json()) as Health;
      return x.ready && !x.cluster?.problem ? x : undefined;
    }, 15_000);
  }, 60_000);
});
