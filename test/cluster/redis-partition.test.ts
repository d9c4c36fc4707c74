/**
 * `earshot serve --cluster redis://…` when one node is cut off from Redis
 * while clients still reach it (a network partition between the node and
 * Redis only): two real nodes, one real redis-server, node A reaching it
 * through a TCP relay the test can cut and restore, real WebRTC publishers.
 *
 * A's registry entry expires; its peer publishes again through node B and is
 * placed there. When A reaches Redis again, the peer must run once: A ends
 * its own session (reason `replaced`, recording finalized) and B's session
 * stays the peer's, in Redis and on B. A room binding and a pipeline
 * deleted through B meanwhile are gone from A too; a pipeline of A's own
 * directory, which the cluster never had, stays.
 */
import { readFile, readdir } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';
import type { CliServer } from './cli-server.js';
import { clusterViews, startNodes, stopNodes } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';

const tone = fixturePath('tone-1k-48k.wav');
const PUBLISH = 'publish-token-for-the-partition-test';
const ADMIN = 'admin-token-for-the-partition-test';
const admin = { authorization: `Bearer ${ADMIN}` };

type PeerStats = { session: string; state: string; endReason: string | null; rtp: { packetsReceived: number } };

/** A TCP relay to Redis that can be cut (every connection reset, new ones refused at once) and restored. */
interface Relay {
  port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

async function relayTo(port: number): Promise<Relay> {
  const open = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = connect(port, '127.0.0.1');
    const pair = [client, upstream];
    for (const s of pair) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        for (const other of pair) other.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut() {
      cut = true;
      for (const s of open) s.destroy();
    },
    restore() {
      cut = false;
    },
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

let redis: TestRedis;
let relay: Relay;
let nodes: CliServer[] = [];

beforeAll(async () => {
  redis = await startRedis();
  relay = await relayTo(redis.port);
  const common = ['--processes', '1', '--threads', '1', '--pipeline', 'raw', '--media-timeout', '5', '--token', PUBLISH, '--admin-token', ADMIN];
  await startNodes(
    [
      ['--cluster', `redis://127.0.0.1:${relay.port}`, '--node-id', 'node-a', ...common],
      ['--cluster', redis.url, '--node-id', 'node-b', ...common],
    ],
    nodes,
  );
  await until('both nodes registered', async () => ((await nodesSeenBy(nodes[1])).length === 2 ? true : undefined), 15_000);
}, 90_000);

afterAll(async () => {
  await stopNodes(nodes);
  await relay?.close();
  await redis?.kill();
});

const { get, nodesSeenBy, livePeer } = clusterViews(admin);
const change = (node: CliServer, method: string, path: string, body?: unknown) =>
  fetch(`${node.url}${path}`, { method, headers: { ...admin, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });

const pipelineStatus = async (node: CliServer, name: string) => (await fetch(`${node.url}/pipelines/${name}`, { headers: admin })).status;

describe('earshot serve --cluster, a node cut off from Redis', () => {
  it('runs a peer once after the partition heals: the cut-off node ends its session (replaced), the newer one on the other node stays', async () => {
    const [a, b] = nodes;
    const first = new AbortController();
    const second = new AbortController();
    const senders: Array<Promise<unknown>> = [];
    try {
      // Ties go to the receiving node: the peer runs on A.
      senders.push(sendAudio({ url: `${a.url}/whip/split/twin`, token: PUBLISH, source: tone, loop: true, skipDelete: true, rtcpTimeoutMs: 0, signal: first.signal }).catch(() => undefined));
      const onA = await livePeer(b, 'twin', 25);
      expect(onA.node).toBe('node-a');

      // A room binding and a pipeline both nodes have, which B deletes while A is cut off.
      expect((await change(b, 'PUT', '/rooms/cut', { pipeline: 'raw' })).status).toBeLessThan(300);
      expect((await change(b, 'PUT', '/pipelines/gone', { name: 'gone', stages: [], sinks: [{ type: 'stats' }] })).status).toBe(201);
      await until('A to have the binding and the pipeline', async () => ((await get<{ bound: boolean }>(a, '/rooms/cut')).bound && (await pipelineStatus(a, 'gone')) === 200 ? true : undefined), 5000);

      relay.cut();
      await until('node-a to drop out of the registry', async () => ((await nodesSeenBy(b)).some((n) => n.id === 'node-a') ? undefined : true), 15_000);
      expect((await change(b, 'DELETE', '/rooms/cut')).status).toBeLessThan(300);
      expect((await change(b, 'DELETE', '/pipelines/gone')).status).toBeLessThan(300);
      // The peer publishes again, through B: A owns nothing any more as far as the cluster knows, so it runs on B.
      senders.push(sendAudio({ url: `${b.url}/whip/split/twin`, token: PUBLISH, source: tone, loop: true, skipDelete: true, rtcpTimeoutMs: 0, signal: second.signal }).catch(() => undefined));
      const onB = await until('the peer live on node-b', async () => {
        const s = await get<PeerStats>(b, '/stats/twin').catch(() => undefined);
        return s && s.state === 'connected' && s.rtp.packetsReceived > 25 ? s : undefined;
      }, 15_000);
      // Cut off, A still runs its session: two sessions of one peer, for now.
      expect((await get<PeerStats>(a, '/stats/twin')).state).toBe('connected');

      relay.restore();
      await until('node-a registered again', async () => ((await nodesSeenBy(b)).some((n) => n.id === 'node-a') ? true : undefined), 15_000);
      // Its log says so (its GET /stats/twin answers with the live session where the cluster runs the peer).
      const ended = await until('node-a to end its session', async () => {
        for (const line of a.lines) {
          let l: { msg?: string; peer?: string; session?: string; reason?: string };
          try {
            l = JSON.parse(line) as typeof l;
          } catch {
            continue; // stderr, as it came
          }
          if (l.msg === 'session ended' && l.peer === 'twin' && l.session === onA.session) return l;
        }
        return undefined;
      }, 10_000);
      expect(ended.reason).toBe('replaced');
      expect((await get<PeerStats>(a, '/stats/twin')).session).toBe(onB.session);
      // The cluster says the peer runs on B, and B's session goes on.
      expect(await redis.command('HGET', 'earshot:peers', 'twin')).toContain(`node-b\t${onB.session}`);
      const stillB = await get<PeerStats>(b, '/stats/twin');
      expect([stillB.session, stillB.state]).toEqual([onB.session, 'connected']);
      const later = await until('B to keep receiving', async () => {
        const s = await get<PeerStats>(b, '/stats/twin');
        return s.rtp.packetsReceived > stillB.rtp.packetsReceived + 25 ? s : undefined;
      }, 5000);
      expect(later.session).toBe(onB.session);
      // A learnt the deletion it missed: both nodes have no binding.
      expect((await get<{ bound: boolean }>(a, '/rooms/cut')).bound).toBe(false);
      expect(await until('A to delete the pipeline B deleted', async () => ((await pipelineStatus(a, 'gone')) === 404 ? 404 : undefined), 5000)).toBe(404);
      // Pipelines of A's own directory that the cluster never had are A's to keep.
      expect(await pipelineStatus(a, 'podcast')).toBe(200);
      // Through either node, the peer is B's.
      expect((await livePeer(a, 'twin')).node).toBe('node-b');
      // A's recording of the time it ran is finalized: nothing it received is lost.
      const files = (await readdir(a.recordingsDir)).filter((f) => f.startsWith('split-twin-'));
      expect(files).toHaveLength(1);
      const bytes = await readFile(join(a.recordingsDir, files[0]));
      const data = bytes.indexOf('data', 12, 'latin1');
      expect(bytes.readUInt32LE(data + 4)).toBe(bytes.length - data - 8);
      expect((bytes.length - data - 8) / 96_000).toBeGreaterThan(1);
    } finally {
      first.abort();
      second.abort();
      relay.restore();
      await Promise.all(senders);
    }
  });
});
