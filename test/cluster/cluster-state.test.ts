/**
 * The cluster's shared state on a real redis-server: the per-peer lock (only
 * its holder frees it), ownership that only its owner removes, a resync that
 * makes Redis say exactly what a node runs, configuration changes published to
 * the other nodes, a node id registered for one live instance at a time, node
 * placement by load with ties to the receiving node, and
 * `EARSHOT_CLUSTER_UNAVAILABLE` while Redis is away, then a rejoin; a URL
 * whose scheme does not match the port's TLS is named as the likely cause.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterState, type ConfigChange, type NodeRecord } from '../../src/cluster/cluster-state.js';
import { RedisPlacement } from '../../src/cluster/redis-placement.js';
import { isEarshotError } from '../../src/errors.js';
import { freePort, startRedis, type TestRedis } from './redis-server.js';
import { selfSignedCert } from '../helpers/tls.js';
import { until } from '../helpers/until.js';

let redis: TestRedis;
let a: ClusterState;
let b: ClusterState;
const ready = { a: 0, b: 0 };
const changes: ConfigChange[] = [];


const A = { node: 'node-a', instance: 'node-a' };
const B = { node: 'node-b', instance: 'node-b' };

const record = (id: string, load: Partial<NodeRecord> = {}): NodeRecord => ({
  id, url: `http://${id}:8080`, iceHosts: [], instance: id, state: 'up', accepting: true, ready: true,
  sessions: 0, pending: 0, workerUtilization: 0, engines: 1, startedAt: new Date().toISOString(), seenAt: Date.now(), ...load,
});

beforeAll(async () => {
  // DEBUG SLEEP stalls Redis as a slow disk or a busy script would.
  redis = await startRedis(10_000, ['--enable-debug-command', 'local']);
  const make = (name: 'a' | 'b') => new ClusterState({ url: redis.url, prefix: 'test:', onReady: () => ready[name]++, onDown: () => undefined, onChange: (c) => name === 'b' && changes.push(c) });
  a = make('a');
  b = make('b');
  a.connect();
  b.connect();
  await until('both connected', () => (a.available && b.available ? true : undefined));
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await redis?.kill();
});

describe('ClusterState on Redis', () => {
  it('locks a peer once in the whole cluster; only the holder frees it', async () => {
    const token = await a.lock('alice', A);
    const busy = await b.lock('alice', B).catch((e: unknown) => e);
    expect(isEarshotError(busy) && busy.code).toBe('EARSHOT_PEER_BUSY');
    expect(await b.holds('alice', token)).toBe(true);
    expect(await b.holds('alice', 'forged')).toBe(false);
    await b.unlock('alice', 'forged');
    expect(await a.holds('alice', token)).toBe(true);
    await a.unlock('alice', token);
    await b.unlock('alice', await b.lock('alice', B));
  });

  it('takes over a lock whose holder left the registry or restarted, not one a live node holds', async () => {
    await a.heartbeat(record('node-a'));
    const busy = async (peer: string) => (await b.lock(peer, B).then(() => 'taken', (e: unknown) => (isEarshotError(e) ? e.code : String(e))));
    // Held by the live node-a: busy.
    await a.lock('held', A);
    expect(await busy('held')).toBe('EARSHOT_PEER_BUSY');
    // node-a restarted (a new instance under the same id, registered once its old entry expired): its old placement died with it.
    expect(await redis.command('SET', 'test:node:node-a', JSON.stringify(record('node-a', { instance: 'node-a-again' })), 'PX', '5000')).toBe('+OK\r\n');
    expect(await busy('held')).toBe('taken');
    // A node killed mid-placement: its registry entry expired (5 s), its lock had 29 s to go.
    expect(await redis.command('SET', 'test:lock:orphan', 'node-gone/i1/xyz', 'PX', '29000')).toBe('+OK\r\n');
    expect(await busy('orphan')).toBe('taken');
    expect(await b.holds('orphan', 'node-gone/i1/xyz')).toBe(false);
    // Unregistered, but locked just now: a node may lock before its first heartbeat lands.
    expect(await redis.command('SET', 'test:lock:young', 'node-new/i1/xyz', 'PX', '35000')).toBe('+OK\r\n');
    expect(await busy('young')).toBe('EARSHOT_PEER_BUSY');
    // A lock whose holder it cannot tell waits for its expiry.
    expect(await redis.command('SET', 'test:lock:opaque', 'someone-else', 'PX', '35000')).toBe('+OK\r\n');
    expect(await busy('opaque')).toBe('EARSHOT_PEER_BUSY');
    await redis.command('DEL', 'test:lock:opaque');
    // The restarted node-a leaves, for the tests after this one.
    await redis.command('DEL', 'test:node:node-a');
  });

  it('registers a node id for one live instance at a time: another is told who holds it and writes nothing; only the holder deregisters it', async () => {
    expect(await b.heartbeat(record('node-x', { instance: 'x1' }))).toBeUndefined();
    await b.own('node-x', 'px', 'sx');
    // A second node started with the same id: refused, told who holds it, and out of the cluster.
    expect(await a.heartbeat(record('node-x', { instance: 'x2', url: 'http://impostor:8080' }))).toMatchObject({ instance: 'x1', url: 'http://node-x:8080' });
    expect([a.available, a.problem]).toEqual([false, 'another live node holds this node id: give each node its own --node-id']);
    await expect(a.ownerOfPeer('px')).rejects.toMatchObject({ code: 'EARSHOT_CLUSTER_UNAVAILABLE', message: expect.stringMatching(/node id "node-x" is held by another live node \(http:\/\/node-x:8080/) });
    // The same id again at the holder's own URL: most likely the holder restarted within its entry's TTL, and said so.
    await a.heartbeat(record('node-x', { instance: 'x3', url: 'http://node-x:8080' }));
    expect([a.available, a.problem]).toEqual([false, "this node id is still registered at this node's own URL, most likely by this node before it restarted: joining once that entry expires (within seconds); if it does not, another process uses this URL and id: give each node its own --node-id"]);
    await expect(a.ownerOfPeer('px')).rejects.toMatchObject({ code: 'EARSHOT_CLUSTER_UNAVAILABLE', message: expect.stringMatching(/node id "node-x" is still registered by a process at this node's own URL \(http:\/\/node-x:8080, .*expires within 5 s unless that process is still running/) });
    await a.heartbeat(record('node-x', { instance: 'x2', url: 'http://impostor:8080' }));
    // It stops: the holder's entry and what it owns stay.
    await b.deregister('node-x', 'x2');
    expect(JSON.parse(await b.nodes().then((n) => JSON.stringify(n.find((x) => x.id === 'node-x'))))).toMatchObject({ instance: 'x1' });
    expect(await b.ownerOfPeer('px')).toEqual({ node: 'node-x', session: 'sx' });
    // The holder leaves: its entry and what it owned go, and the id is free for the other.
    await b.deregister('node-x', 'x1');
    expect((await b.nodes()).some((x) => x.id === 'node-x')).toBe(false);
    expect(await b.ownerOfPeer('px')).toBeUndefined();
    expect(await a.heartbeat(record('node-x', { instance: 'x2' }))).toBeUndefined();
    expect([a.available, a.problem]).toEqual([true, undefined]);
    await a.deregister('node-x', 'x2');
  });

  it('keeps ownership that only the owning node (and session) removes, and resyncs a node to what it runs', async () => {
    await a.own('node-a', 'p1', 's1');
    await b.own('node-b', 'p1', 's2'); // replaced on another node in between: the newest owns the peer
    await a.disown('node-a', 'p1', 's1');
    expect(await b.ownerOfPeer('p1')).toEqual({ node: 'node-b', session: 's2' });
    expect(await b.ownerOfSession('s1')).toBeUndefined();
    expect(await b.ownerOfSession('s2')).toBe('node-b');
    await a.own('node-a', 'p2', 's3');
    await a.own('node-a', 'p3', 's4');
    // node-a restarted running only p4/s5: s3 and s4 are gone, p1 (node-b's) stays.
    await a.resync('node-a', [{ peer: 'p4', session: 's5' }]);
    expect([await a.ownerOfSession('s3'), await a.ownerOfSession('s4'), await a.ownerOfSession('s5')]).toEqual([undefined, undefined, 'node-a']);
    expect(await a.ownerOfPeer('p1')).toEqual({ node: 'node-b', session: 's2' });
  });

  it('resyncs a node that was cut off: a peer placed again on another live node stays there, and the node is told to end its own session', async () => {
    await a.heartbeat(record('node-b'));
    // node-a ran p5/s6 and p6/s7; meanwhile p5 published again on node-b, p6 on node-z (since gone).
    await a.own('node-b', 'p5', 's8');
    await a.own('node-z', 'p6', 's9');
    const superseded = await a.resync('node-a', [{ peer: 'p5', session: 's6' }, { peer: 'p6', session: 's7' }]);
    expect(superseded).toEqual(['s6']);
    expect(await a.ownerOfPeer('p5')).toEqual({ node: 'node-b', session: 's8' });
    expect([await a.ownerOfSession('s6'), await a.ownerOfSession('s8')]).toEqual([undefined, 'node-b']);
    expect(await a.ownerOfPeer('p6')).toEqual({ node: 'node-a', session: 's7' });
    expect(await a.ownerOfSession('s7')).toBe('node-a');
  });

  it('sweeps the ownership entries of nodes no longer registered, a slice per call; a live node\'s stay', async () => {
    await a.heartbeat(record('node-live'));
    await a.own('node-live', 'kept-peer', 'kept-session');
    // 1000 peers of a node that was killed (its entry expired): more than one sweep looks at.
    const pairs = Array.from({ length: 1000 }, (_, i) => [`dead-peer-${i}`, `node-killed\tdead-session-${i}`]).flat();
    expect(await redis.command('HSET', 'test:peers', ...pairs)).toBe(':1000\r\n');
    expect(await redis.command('HSET', 'test:sessions', 'dead-session-0', 'node-killed')).toBe(':1\r\n');
    const first = await b.sweep();
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(1000);
    await until('every entry of the killed node to go', async () => {
      await b.sweep();
      return (await redis.command('HVALS', 'test:peers')).includes('node-killed') || (await redis.command('HVALS', 'test:sessions')).includes('node-killed') ? undefined : true;
    }, 5000);
    expect(await a.ownerOfPeer('kept-peer')).toEqual({ node: 'node-live', session: 'kept-session' });
    expect(await a.ownerOfSession('kept-session')).toBe('node-live');
    await a.disown('node-live', 'kept-peer', 'kept-session');
    await a.deregister('node-live', 'node-live');
  });

  it('publishes configuration changes to the other nodes, with the stored value', async () => {
    await a.putConfig({ kind: 'pipeline', name: 'shared', from: 'node-a' }, '{"name":"shared"}');
    const change = await until('the change to reach b', () => changes.find((c) => c.name === 'shared'));
    expect(change).toEqual({ kind: 'pipeline', name: 'shared', from: 'node-a' });
    expect(await b.getConfig('pipeline', 'shared')).toBe('{"name":"shared"}');
    await a.putConfig({ kind: 'room', name: 'r1', from: 'node-a' }, 'shared');
    expect(await b.config()).toEqual({ pipelines: { shared: '{"name":"shared"}' }, rooms: { r1: 'shared' } });
  });

  it('places a new peer on the least-loaded accepting node, ties going to the receiving node; a live peer on its owner', async () => {
    await a.heartbeat(record('node-a', { sessions: 2 }));
    await a.heartbeat(record('node-b', { sessions: 1 }));
    await a.heartbeat(record('node-c', { sessions: 0, accepting: false }));
    await a.heartbeat(record('node-d', { sessions: 1, ready: false }));
    const placement = new RedisPlacement(a, 'node-a', 'node-a', () => undefined);
    const t1 = await placement.begin('new-peer');
    expect([t1.next(), t1.next(), t1.next(), t1.next()]).toEqual(['node-b', 'node-a', 'node-d', undefined]);
    t1.release();
    // node-b answering one offer counts: now it ties with node-a (2), which received the POST.
    const t2 = await placement.begin('burst-1');
    expect(t2.next()).toBe('node-b');
    const t3 = await placement.begin('burst-2');
    expect(t3.next()).toBe('node-a');
    t2.release();
    t3.release();
    await b.own('node-b', 'live', 'sx');
    const t4 = await placement.begin('live');
    expect([t4.owner, t4.next(), t4.next()]).toEqual(['node-b', 'node-b', undefined]);
    t4.release();
    await until('the lock to be freed', async () => ((await b.lock('live', B).then((t) => b.unlock('live', t)).then(() => true, () => undefined))));
  });

  it('places nothing while Redis lost the epoch a node joined under or a node holds placements after finding the data lost, nor on a node not registered', async () => {
    const joinedUnder = await a.epoch();
    const placement = new RedisPlacement(a, 'node-a', 'node-a', () => undefined, { whyUnregistered: () => 'its heartbeat fails: NOPERM', epoch: () => joinedUnder });
    const refusal = () => placement.begin('on-hold').then((t) => (t.release(), 'placed'), (e: unknown) => (isEarshotError(e) ? `${e.code}: ${e.message}` : String(e)));
    await redis.command('DEL', 'test:node:node-a');
    expect(await refusal()).toMatch(/^EARSHOT_CLUSTER_UNAVAILABLE: .*this node \("node-a"\) is not registered in Redis: its heartbeat fails: NOPERM/);
    await a.heartbeat(record('node-a'));
    await redis.command('DEL', 'test:epoch');
    expect(await refusal()).toMatch(/^EARSHOT_CLUSTER_UNAVAILABLE: .*Redis lost the cluster's data a moment ago/);
    // Another epoch (a node that noticed first set one): this node has not written back under it yet.
    await b.epoch();
    expect(await refusal()).toMatch(/Redis lost the cluster's data a moment ago/);
    await redis.command('SET', 'test:epoch', joinedUnder);
    await b.holdPlacements();
    expect(await refusal()).toMatch(/Redis lost the cluster's data a moment ago/);
    // Each refusal freed the peer's lock; the hold ends by itself.
    expect(await until('the hold to end', async () => {
      await a.heartbeat(record('node-a'));
      const r = await refusal();
      return r === 'placed' ? r : undefined;
    }, 5000)).toBe('placed');
  });

  it('frees a lock whose command timed out once Redis answers: a retry of the peer is not busy until the lock expires', async () => {
    await a.heartbeat(record('node-a'));
    // Redis stalls for 3 s; the lock's SET waits in its input, and times out here after 2 s.
    const stalled = redis.command('DEBUG', 'SLEEP', '3').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const e = await a.lock('stalled', A).catch((err: unknown) => err);
    expect(isEarshotError(e) && [e.code, e.message]).toEqual(['EARSHOT_CLUSTER_UNAVAILABLE', expect.stringMatching(/Command timed out/)]);
    await stalled;
    // Redis ran the SET when it woke: the lock was taken for a token the caller never got, by a node
    // still registered (no takeover). It is freed: a retry through any node takes it, long before 35 s.
    await a.heartbeat(record('node-a'));
    const token = await until('a retry to take the lock', () => b.lock('stalled', B).catch(() => undefined), 3000);
    await b.unlock('stalled', token);
    await a.unlock('stalled', await a.lock('stalled', A));
  });

  it('answers EARSHOT_CLUSTER_UNAVAILABLE while Redis is away, and calls onReady when it is back', async () => {
    const before = ready.a;
    await redis.kill();
    await until('a to notice', () => (a.available ? undefined : true));
    const e = await a.lock('x', A).catch((err: unknown) => err);
    expect(isEarshotError(e) && [e.code, e.statusCode]).toEqual(['EARSHOT_CLUSTER_UNAVAILABLE', 503]);
    await redis.start();
    await until('a to reconnect', () => (a.available && ready.a > before ? true : undefined), 10_000);
    await a.unlock('x', await a.lock('x', A));
  });
});

describe('ClusterState on the wrong scheme', () => {
  /** The first `onDown` reason of a ClusterState on `url`. */
  async function firstDown(url: string): Promise<string> {
    let why: string | undefined;
    const state = new ClusterState({ url, prefix: 'scheme:', onReady: () => undefined, onDown: (w) => (why ??= w), onChange: () => undefined });
    state.connect();
    try {
      return await until(`onDown for ${url}`, () => why, 10_000);
    } finally {
      await state.close();
    }
  }

  it('says rediss:// may be wrong when the TLS connection to a plain port times out', async () => {
    const why = await firstDown(redis.url.replace('redis://', 'rediss://'));
    expect(why).toBe('connect ETIMEDOUT (with rediss://, a Redis port that does not serve TLS ends this way too: then use redis://)');
  });

  it('says rediss:// may be needed when a TLS port cuts a plain connection off', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-redis-tls-'));
    const { certFile, keyFile } = selfSignedCert(dir);
    const port = await freePort();
    const server = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', certFile, '--tls-key-file', keyFile, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    try {
      await until('the TLS port listens', () => new Promise<true | undefined>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(undefined));
      }));
      const why = await firstDown(`redis://127.0.0.1:${port}`);
      expect(why).toMatch(/^(read|write) ECONNRESET \(if this Redis port serves TLS, use rediss:\/\/\)$/);
    } finally {
      server.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
