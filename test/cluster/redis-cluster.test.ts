/**
 * `earshot serve --cluster redis://…`: three real nodes (each a front with
 * one engine process, started by the CLI) on one real redis-server, all on
 * loopback, publishing real audio over WebRTC. Placement by load across
 * nodes, recordings right on the owner, DELETE and downloads through any
 * node, a browser-shaped client, WHEP and audio WebSockets through a node
 * that does not run the peer, cluster-wide peer replacement, shared
 * pipelines and rooms, Redis killed and restarted, a node killed, a node drained.
 */
import { fixturePath } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio, sendMany } from '../../src/client/audio-sender.js';
import { mayBeEnded } from '../helpers/sending.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { audioSocket } from '../helpers/audio-socket.js';
import { expectToneHeardThrough } from '../helpers/hearing.js';
import { listen } from '../helpers/listening.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import type { CliServer } from './cli-server.js';
import { clusterViews, recordingsOf as recordingsIn, startNodes, stopNodes, type ClusterPeer } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';
import { expectProblem } from '../helpers/problems.js';

const tone = fixturePath('tone-1k-48k.wav');
const PUBLISH = 'publish-token-for-the-cluster-test';
const ADMIN = 'admin-token-for-the-cluster-test';
const admin = { authorization: `Bearer ${ADMIN}` };

type Recording = { name: string; seconds: number; gapFrames: number; droppedFrames: number; state: string };

let redis: TestRedis;
let nodes: CliServer[] = [];
/** Node id → its CLI server (ids are `<hostname>-<port>`). */
const byId = new Map<string, CliServer>();

beforeAll(async () => {
  redis = await startRedis();
  const args = ['--cluster', redis.url, '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--media-timeout', '3', '--token', PUBLISH, '--admin-token', ADMIN, '--drain-timeout', '10'];
  await startNodes([args, args, args], nodes);
  const views = await until('every node to see all three', async () => {
    const list = await nodesSeenBy(nodes[0]);
    return list.length === 3 ? list : undefined;
  });
  for (const v of views) byId.set(v.id, nodes.find((n) => n.url === v.url)!);
}, 90_000);

afterAll(async () => {
  await stopNodes(nodes);
  await redis?.kill();
});


const { get, nodesSeenBy, livePeer } = clusterViews(admin);
const idOf = (node: CliServer) => [...byId].find(([, n]) => n === node)![0];

/**
 * Peers published through the first node, one after another, until one runs on node `id` (each
 * goes to the least-loaded node): that peer (undefined after 6), and the sends, which go on until
 * `controller` aborts them. For the tests that stop or freeze a node under a live peer.
 */
async function publishUntilOn(id: string, room: string, prefix: string, controller: AbortController, options: { skipDelete?: boolean } = {}) {
  const sending: Array<Promise<unknown>> = [];
  for (let i = 0; i < 6; i++) {
    const peer = `${prefix}${i}`;
    sending.push(sendAudio({ url: `${nodes[0].url}/whip/${room}/${peer}`, token: PUBLISH, source: tone, loop: true, rtcpTimeoutMs: 0, signal: controller.signal, ...options }).catch(() => undefined));
    if ((await livePeer(nodes[0], peer)).node === id) return { peer, sending };
  }
  return { peer: undefined, sending };
}
const recordingsOf = (prefix: string) => recordingsIn(nodes, prefix);
async function finalized(file: string): Promise<boolean> {
  const bytes = await readFile(file);
  const at = bytes.indexOf('data', 12, 'latin1');
  return at > 0 && bytes.readUInt32LE(at + 4) === bytes.length - at - 8;
}
/** The node front's own count of offers refused with `code`, as its /metrics says (0 before the first). */
async function frontRefusals(node: CliServer, code: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`, { headers: admin })).text();
  const line = text.split('\n').find((l) => l.startsWith(`earshot_sessions_refused_total{engine="front",code="${code}"} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}
/** A POST any node must refuse before negotiating (the offer is never parsed). */
const rawPost = (node: CliServer, path: string) =>
  fetch(`${node.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${PUBLISH}`, 'content-type': 'application/sdp' }, body: 'v=0\r\n' });

describe('earshot serve --cluster (3 nodes, one Redis)', () => {
  it('lists every node in /cluster/nodes, through any node', async () => {
    for (const node of nodes) {
      const list = await nodesSeenBy(node);
      expect(list.map((n) => n.url).sort()).toEqual(nodes.map((n) => n.url).sort());
      expect(list.every((n) => n.state === 'up' && n.accepting && n.ageMs < 3000)).toBe(true);
    }
    // Admin only: the access layer's default.
    expect((await fetch(`${nodes[0].url}/cluster/nodes`)).status).toBe(401);
    expect((await fetch(`${nodes[0].url}/cluster/nodes`, { headers: { authorization: `Bearer ${PUBLISH}` } })).status).toBe(403);
  });

  it('places a POST on the least-loaded node, records it right there, and ends a session with a DELETE through another node', async () => {
    const controller = new AbortController();
    const first = mayBeEnded(sendAudio({ url: `${nodes[0].url}/whip/load/first`, token: PUBLISH, source: tone, loop: true, skipDelete: true, signal: controller.signal }));
    try {
      const f = await livePeer(nodes[0], 'first', 25);
      const owner = byId.get(f.node)!;
      // The owner's heartbeat shows its session: the next POST to it goes elsewhere.
      await until('the owner to report its session', async () => ((await nodesSeenBy(owner)).find((n) => n.id === f.node)?.sessions === 1 ? true : undefined));
      const second = await sendAudio({ url: `${owner.url}/whip/load/second`, token: PUBLISH, source: tone, seconds: 2 });
      expect(second.sessionUrl.startsWith(`${owner.url}/whip/sessions/`)).toBe(true);
      const placed = await recordingsOf('load-second-');
      expect(placed).toHaveLength(1);
      expect(placed[0].node).not.toBe(owner);
      const wav = await readWav(join(placed[0].node.recordingsDir, placed[0].files[0]));
      expect(Math.abs(wav.durationSec - 2)).toBeLessThan(0.04);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
      expect(await finalized(join(placed[0].node.recordingsDir, placed[0].files[0]))).toBe(true);

      // DELETE of `first` through a node that does not run it.
      const other = nodes.find((n) => n !== owner)!;
      const res = await fetch(`${other.url}/whip/sessions/${f.session}`, { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } });
      expect(res.status).toBe(200);
      const ended = (await res.json()) as { peer: string; recordings: Recording[] };
      expect(ended.peer).toBe('first');
      expect(ended.recordings.map((r) => r.name)).toEqual([f.recording!.name]);
      expect(await finalized(join(owner.recordingsDir, f.recording!.name))).toBe(true);
      expect((await fetch(`${other.url}/whip/sessions/${f.session}`, { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } })).status).toBe(404);
      // The ended peer's statistics through every node: no node owns it now, the one that ran it remembers it.
      for (const via of nodes) {
        const doc = await get<{ peer: string; state: string; endReason: string; session: string; rtp: { packetsReceived: number } }>(via, '/stats/first');
        expect({ peer: doc.peer, state: doc.state, endReason: doc.endReason, session: doc.session }).toEqual({ peer: 'first', state: 'ended', endReason: 'deleted', session: f.session });
        expect(doc.rtp.packetsReceived).toBeGreaterThanOrEqual(25);
      }
      await expectProblem(await fetch(`${other.url}/stats/never-was`, { headers: admin }), { status: 404, code: 'EARSHOT_PEER_NOT_FOUND' });

      // Recordings of every node, listed and downloaded through any node.
      const listing = await get<{ recordings: Array<{ name: string; node: string; bytes: number; download: string; url: string }> }>(other, '/cluster/recordings');
      const entry = listing.recordings.find((r) => r.name === f.recording!.name)!;
      expect(entry.node).toBe(f.node);
      const viaOther = await fetch(`${other.url}${entry.download}`, { headers: admin });
      expect(viaOther.status).toBe(200);
      const bytes = Buffer.from(await viaOther.arrayBuffer());
      expect(bytes.equals(await readFile(join(owner.recordingsDir, entry.name)))).toBe(true);
      // The signed link is relative: it works without a token through whichever node the client reaches
      // (the compose file's public URLs, http://earshot-N:8080, are not reachable by clients).
      expect(entry.url).toMatch(/^\/cluster\/recordings\/[^?]+\?expires=\d+&signature=[\w-]+$/);
      // Whichever node is asked, the owner too, answers with the file itself: no redirect to follow.
      for (const via of nodes) {
        const signed = await fetch(`${via.url}${entry.url}`, { redirect: 'manual' });
        expect(signed.status).toBe(200);
        expect(Buffer.from(await signed.arrayBuffer()).equals(bytes)).toBe(true);
        const withToken = await fetch(`${via.url}${entry.download}`, { headers: { ...admin, range: 'bytes=0-11' }, redirect: 'manual' });
        expect(withToken.status).toBe(206);
        expect(Buffer.from(await withToken.arrayBuffer()).equals(bytes.subarray(0, 12))).toBe(true);
      }
      expect((await fetch(`${owner.url}${entry.url.replace(/signature=[\w-]+/, 'signature=AAAA')}`, { redirect: 'manual' })).status).toBe(401);
      // A forged signature opens nothing (the owner checks it), and neither does the path without a token.
      const forged = await fetch(`${other.url}${entry.url.replace(/signature=[\w-]+/, 'signature=AAAA')}`);
      expect(forged.status).toBe(401);
      await forged.arrayBuffer();
      expect((await fetch(`${other.url}${entry.download}`)).status).toBe(401);
    } finally {
      controller.abort();
      await first.catch(() => undefined);
    }
  });

  it('serves a browser-shaped client (CORS preflight, Origin, no redirects) on another node than the one it POSTs to, and merges the statistics of both nodes', async () => {
    const ORIGIN = 'https://app.example';
    const controller = new AbortController();
    // A loaded node: the POSTs it receives are placed on the other nodes.
    const load = mayBeEnded(sendAudio({ url: `${nodes[2].url}/whip/browser/load`, token: PUBLISH, source: tone, loop: true, skipDelete: true, signal: controller.signal }));
    try {
      const l = await livePeer(nodes[2], 'load', 25);
      const entry = byId.get(l.node)!;
      await until('the loaded node, and only it, to report a session', async () => {
        const list = await nodesSeenBy(entry);
        return list.length === 3 && list.every((n) => n.sessions === (n.id === l.node ? 1 : 0)) ? true : undefined;
      });

      // The preflight a page on another origin makes before its POST.
      const preflight = await fetch(`${entry.url}/whip/browser/b1`, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
      expect(preflight.status).toBeLessThan(300);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
      expect(preflight.headers.get('access-control-allow-methods')).toMatch(/POST/);
      expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toMatch(/authorization/);
      await preflight.arrayBuffer();
      const browserPost = (body: string) =>
        fetch(`${entry.url}/whip/browser/b1`, {
          method: 'POST',
          redirect: 'manual',
          headers: { origin: ORIGIN, authorization: `Bearer ${PUBLISH}`, 'content-type': 'application/sdp' },
          body,
        });

      // Chromium's own offer (RED, CN, DTMF, header extensions) is answered through the forwarding node.
      const chrome = await browserPost(chromeLikeOffer());
      expect(chrome.status).toBe(201);
      expect(chrome.headers.get('access-control-allow-origin')).toBe('*');
      expect(chrome.headers.get('access-control-expose-headers')).toMatch(/Location/);
      const chromeLocation = chrome.headers.get('location') ?? '';
      expect(chromeLocation).toMatch(/^\/whip\/sessions\/[^/]+$/);
      expect(await chrome.text()).toMatch(/a=rtpmap:111 opus\/48000\/2/);
      const chromeOn = await until('the Chromium-shaped session in /cluster/stats', async () =>
        (await get<{ peers: ClusterPeer[] }>(nodes[0], '/cluster/stats')).peers.find((p) => p.peer === 'b1' && p.state !== 'ended')?.node);
      expect(chromeOn).not.toBe(l.node);
      const third = nodes.find((n) => n !== entry && n !== byId.get(chromeOn))!;
      const gone = await fetch(new URL(chromeLocation, third.url), { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } });
      expect(gone.status).toBe(200);
      await gone.arrayBuffer();

      // A real publisher with the same signaling (fetch, no redirects, an Origin): media flows to the node that answered.
      let location = '';
      const sent = sendAudio({
        url: `${entry.url}/whip/browser/b1`,
        source: tone,
        seconds: 3,
        skipDelete: true,
        signaling: async (offer) => {
          const res = await browserPost(offer);
          expect(res.status).toBe(201);
          expect(res.headers.get('content-type')).toMatch(/^application\/sdp/);
          expect(res.headers.get('access-control-allow-origin')).toBe('*');
          location = res.headers.get('location') ?? '';
          return res.text();
        },
      });
      const b = await livePeer(nodes[0], 'b1', 25);
      expect(b.node).not.toBe(l.node);
      const owner = byId.get(b.node)!;
      const last = nodes.find((n) => n !== entry && n !== owner)!;

      // The cluster's statistics, through the one node that runs nothing: both sessions, each with its node, counts summed.
      const stats = await get<{ server: { peers: number; sessionsStarted: number; nodes: Array<{ node: string; peers: number; reachable: boolean; state: string }> }; peers: ClusterPeer[] }>(last, '/cluster/stats');
      const live = stats.peers.filter((p) => p.state !== 'ended');
      expect(live.map((p) => [p.peer, p.node]).sort()).toEqual([['b1', b.node], ['load', l.node]].sort());
      expect(stats.server.peers).toBe(2);
      expect(stats.server.nodes.map((n) => n.node).sort()).toEqual([...byId.keys()].sort());
      expect(stats.server.nodes.every((n) => n.reachable && n.state === 'up')).toBe(true);
      expect(Object.fromEntries(stats.server.nodes.map((n) => [n.node, n.peers]))).toEqual(Object.fromEntries([...byId.keys()].map((id) => [id, id === l.node || id === b.node ? 1 : 0])));
      const own = await Promise.all(nodes.map((n) => get<{ server: { sessionsStarted: number } }>(n, '/stats')));
      expect(stats.server.sessionsStarted).toBe(own.reduce((sum, o) => sum + o.server.sessionsStarted, 0));

      const result = await sent;
      expect(result.packetsSent).toBeGreaterThan(140);
      expect(location).toMatch(/^\/whip\/sessions\/[^/]+$/);
      // DELETE of the Location through the third node: neither the one POSTed to nor the owner.
      const res = await fetch(new URL(location, last.url), { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } });
      expect(res.status).toBe(200);
      const [rec] = ((await res.json()) as { recordings: Recording[] }).recordings;
      expect(rec.gapFrames).toBe(0);
      const wav = await readWav(join(owner.recordingsDir, rec.name));
      expect(Math.abs(wav.durationSec - 3)).toBeLessThan(0.04);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
      expect(await finalized(join(owner.recordingsDir, rec.name))).toBe(true);
    } finally {
      controller.abort();
      await load.catch(() => undefined);
    }
  });

  it('lets a WHEP listener and an audio WebSocket reach a peer through a node that does not run it', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${nodes[0].url}/whip/demo/heard`, source: tone, loop: true, token: PUBLISH, signal: controller.signal }));
    try {
      const live = await livePeer(nodes[0], 'heard', 10);
      const other = nodes.find((n) => idOf(n) !== live.node)!;
      // Through the other node: WHEP forwarded to the owner, whose answer carries its media addresses; the WebSocket upgrade spliced to it.
      await expectToneHeardThrough(other.url, 'heard', admin);
      // /cluster/stats lists the listener with the node that runs it and that node's own engine slot, through any node.
      const player = await listen(`${other.url}/whep/heard`, { headers: admin });
      try {
        expect(player.status).toBe(201);
        for (const via of nodes) {
          const { server } = await get<{ server: { listeners: Array<{ peer: string; node?: string; engine?: number }>; pool: { streamsPerThread: Record<string, number> } } }>(via, '/cluster/stats');
          expect(server.listeners.filter((l) => l.peer === 'heard')).toEqual([expect.objectContaining({ node: live.node, engine: 0 })]);
          expect(Object.keys(server.pool.streamsPerThread).some((key) => key.startsWith(`${live.node}:0:`))).toBe(true);
        }
      } finally {
        await player.close();
      }

      // Without the admin token: refused before any upgrade, by the node asked.
      expect(await audioSocket(`${other.url.replace(/^http/, 'ws')}/peers/heard/audio`).outcome).toMatchObject({ open: false, status: 401 });
      // Nor does it learn whether a peer is live: a peer no node runs is the same 401.
      expect(await audioSocket(`${other.url.replace(/^http/, 'ws')}/peers/nobody/audio`).outcome).toMatchObject({ open: false, status: 401, body: { code: 'EARSHOT_UNAUTHORIZED' } });
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('replaces a live peer on the node that runs it, whichever node the second POST reaches', async () => {
    const controller = new AbortController();
    const first = mayBeEnded(sendAudio({ url: `${nodes[0].url}/whip/repl/twice`, token: PUBLISH, source: tone, loop: true, skipDelete: true, signal: controller.signal }));
    try {
      const a = await livePeer(nodes[0], 'twice', 25);
      const elsewhere = nodes.find((n) => n !== byId.get(a.node))!;
      const second = await sendAudio({ url: `${elsewhere.url}/whip/repl/twice`, token: PUBLISH, source: tone, seconds: 1 });
      expect(second.packetsSent).toBeGreaterThan(40);
      const found = await recordingsOf('repl-twice-');
      // Both sessions ran on the owner: never two nodes for one peer.
      expect(found.map((f) => f.node)).toEqual([byId.get(a.node)]);
      expect(found[0].files).toHaveLength(2);
    } finally {
      controller.abort();
      await first.catch(() => undefined);
    }
    // While another placement of the peer holds its cluster-wide lock (here: taken by hand in Redis), every node says PEER_BUSY.
    expect(await redis.command('SET', 'earshot:lock:busy', 'someone-else', 'PX', '10000', 'NX')).toBe('+OK\r\n');
    for (const node of nodes) {
      const res = await rawPost(node, '/whip/repl/busy');
      expect([res.status, res.headers.get('retry-after'), ((await res.json()) as { code: string }).code]).toEqual([409, '1', 'EARSHOT_PEER_BUSY']);
    }
    // Counted where they were refused: each node's front, in /metrics and /stats (no engine saw these offers).
    for (const node of nodes) {
      expect(await frontRefusals(node, 'EARSHOT_PEER_BUSY')).toBe(1);
      expect((await get<{ server: { refusedBy: Record<string, number> } }>(node, '/stats')).server.refusedBy.EARSHOT_PEER_BUSY).toBe(1);
    }
    await redis.command('DEL', 'earshot:lock:busy');
    // With the lock free the offer is placed (and refused by the engine for what it is: no usable offer).
    const free = await rawPost(nodes[0], '/whip/repl/busy');
    expect([400, 422]).toContain(free.status);
    expect(((await free.json()) as { code: string }).code).not.toBe('EARSHOT_PEER_BUSY');
  });

  it('answers GET /stats/:peer with the live session on another node, not an ended one this node remembers', async () => {
    // The first session ends on node 0 (a POST wins ties on its own node), the second runs on node 2.
    const firstRun = await sendAudio({ url: `${nodes[0].url}/whip/moved/hopper`, token: PUBLISH, source: tone, seconds: 1 });
    expect(firstRun.packetsSent).toBeGreaterThan(40);
    const ended = await get<{ state: string; node?: string }>(nodes[0], '/stats/hopper');
    expect(ended.state).toBe('ended');
    const controller = new AbortController();
    const second = mayBeEnded(sendAudio({ url: `${nodes[2].url}/whip/moved/hopper`, token: PUBLISH, source: tone, loop: true, signal: controller.signal }));
    try {
      const live = await livePeer(nodes[2], 'hopper', 10);
      expect(live.node).not.toBe(idOf(nodes[0]));
      // Every node, node 0 included, answers with the live session where it runs.
      for (const node of nodes) {
        const doc = await get<{ state: string; session: string }>(node, '/stats/hopper');
        expect([node.url, doc.state]).toEqual([node.url, 'connected']);
        expect(doc.session).toBe(live.session);
      }
    } finally {
      controller.abort();
      await second.catch(() => undefined);
    }
  });

  it('shares pipelines and room bindings: a change through one node (a new pipeline, an update, a deletion) is used by the others', async () => {
    const pipeline = (template: string) => ({ name: 'shared', stages: [], sinks: [{ type: 'record', template }, { type: 'stats' }] });
    const put = await fetch(`${nodes[0].url}/pipelines/shared`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(pipeline('shared-{peer}')) });
    expect(put.status).toBe(201);
    const bind = await fetch(`${nodes[1].url}/rooms/sharedroom`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'shared' }) });
    expect(bind.status).toBe(200);
    for (const node of nodes) {
      await until(`the room binding on ${node.url}`, async () => ((await get<{ pipeline: string }>(node, '/rooms/sharedroom')).pipeline === 'shared' ? true : undefined), 10_000);
    }
    const results = await sendMany(3, { url: `${nodes[2].url}/whip/sharedroom/s`, token: PUBLISH, source: tone, seconds: 1 });
    expect(results.filter((r) => 'error' in r)).toEqual([]);
    const found = await recordingsOf('shared-s-');
    expect(found.flatMap((f) => f.files).sort()).toEqual(['shared-s-1.wav', 'shared-s-2.wav', 'shared-s-3.wav']);
    // The pipeline was PUT through node 0 only: recordings made by it on other nodes prove they have it.
    expect(found.filter((f) => f.node !== nodes[0]).length).toBeGreaterThan(0);

    // An update through another node replaces it everywhere.
    const update = await fetch(`${nodes[1].url}/pipelines/shared`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(pipeline('updated-{peer}')) });
    expect(update.status).toBe(200);
    for (const node of nodes) {
      await until(`the update on ${node.url}`, async () => (JSON.stringify(await get<unknown>(node, '/pipelines/shared')).includes('updated-{peer}') ? true : undefined), 10_000);
    }
    const again = await sendMany(3, { url: `${nodes[0].url}/whip/sharedroom/u`, token: PUBLISH, source: tone, seconds: 1 });
    expect(again.filter((r) => 'error' in r)).toEqual([]);
    const updated = await recordingsOf('updated-u-');
    expect(updated.flatMap((f) => f.files).sort()).toEqual(['updated-u-1.wav', 'updated-u-2.wav', 'updated-u-3.wav']);
    expect(updated.filter((f) => f.node !== nodes[1]).length).toBeGreaterThan(0);
    expect(await recordingsOf('shared-u-')).toEqual([]);

    // Deletions through a third node: the binding, then the pipeline, are gone on every node.
    const unbind = await fetch(`${nodes[2].url}/rooms/sharedroom`, { method: 'DELETE', headers: admin });
    expect(unbind.status).toBeLessThan(300);
    const removed = await fetch(`${nodes[2].url}/pipelines/shared`, { method: 'DELETE', headers: admin });
    expect(removed.status).toBeLessThan(300);
    for (const node of nodes) {
      await until(`the deletions on ${node.url}`, async () => {
        const [room, doc] = await Promise.all([get<{ bound: boolean }>(node, '/rooms/sharedroom'), fetch(`${node.url}/pipelines/shared`, { headers: admin })]);
        return !room.bound && doc.status === 404 ? true : undefined;
      }, 10_000);
    }
  });

  it('without Redis: a live session keeps recording, new POSTs get 503 EARSHOT_CLUSTER_UNAVAILABLE; with Redis back, placements work again', async () => {
    const controller = new AbortController();
    const steady = mayBeEnded(sendAudio({ url: `${nodes[1].url}/whip/outage/steady`, token: PUBLISH, source: tone, loop: true, skipDelete: true, signal: controller.signal }));
    let killed = false;
    try {
      const s = await livePeer(nodes[1], 'steady', 25);
      const owner = byId.get(s.node)!;
      // A room binding the cluster has before Redis loses everything.
      const bound = await fetch(`${nodes[0].url}/rooms/kept`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'raw' }) });
      expect(bound.status).toBeLessThan(300);
      await until('every node to have the binding', async () => ((await Promise.all(nodes.map((n) => get<{ bound: boolean }>(n, '/rooms/kept')))).every((r) => r.bound) ? true : undefined), 5000);
      // And a pipeline, stored through another node.
      const keptPipeline = await fetch(`${nodes[2].url}/pipelines/keptpipe`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'keptpipe', stages: [], sinks: [{ type: 'stats' }] }) });
      expect(keptPipeline.status).toBe(201);
      await until('every node to have the pipeline', async () => ((await Promise.all(nodes.map((n) => fetch(`${n.url}/pipelines/keptpipe`, { headers: admin })))).every((r) => r.status === 200) ? true : undefined), 5000);
      await redis.kill();
      killed = true;
      const unavailableBefore = await frontRefusals(nodes[0], 'EARSHOT_CLUSTER_UNAVAILABLE');
      await expectProblem(await rawPost(nodes[0], '/whip/outage/new'), { status: 503, code: 'EARSHOT_CLUSTER_UNAVAILABLE', retryAfter: '2' });
      expect(await frontRefusals(nodes[0], 'EARSHOT_CLUSTER_UNAVAILABLE')).toBe(unavailableBefore + 1);
      expect((await fetch(`${nodes[0].url}/cluster/nodes`, { headers: admin })).status).toBe(503);
      // Pipeline and room changes are refused too, on every node: made on one node only, they would never reach the others.
      const change = (node: CliServer, method: string, path: string, body?: unknown) =>
        fetch(`${node.url}${path}`, { method, headers: { ...admin, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const outagePipeline = { name: 'outage', stages: [], sinks: [{ type: 'stats' }] };
      for (const node of [nodes[0], nodes[2]]) {
        await until(`${node.url} to notice Redis is gone`, async () => (((await (await fetch(`${node.url}/health`)).json()) as { cluster: { redis: string } }).cluster.redis === 'down' ? true : undefined), 5000);
        for (const [method, path, body] of [['PUT', '/pipelines/outage', outagePipeline], ['DELETE', '/pipelines/telephony'], ['PUT', '/rooms/outage', { pipeline: 'raw' }], ['DELETE', '/rooms/outage']] as const) {
          const res = await change(node, method, path, body);
          expect([method, path, res.status, res.headers.get('retry-after'), ((await res.json()) as { code: string }).code]).toEqual([method, path, 503, '2', 'EARSHOT_CLUSTER_UNAVAILABLE']);
        }
        // Nothing changed on the node either.
        expect((await fetch(`${node.url}/pipelines/outage`, { headers: admin })).status).toBe(404);
        expect((await fetch(`${node.url}/pipelines/telephony`, { headers: admin })).status).toBe(200);
        expect((await get<{ bound: boolean }>(node, '/rooms/outage')).bound).toBe(false);
      }
      const health = (await (await fetch(`${nodes[0].url}/health`)).json()) as { status: string; ready: boolean; cluster: { redis: string } };
      expect(health).toMatchObject({ status: 'degraded', ready: false, cluster: { redis: 'down' } });
      // The live session goes on: its packets keep arriving on its node.
      const before = (await get<{ rtp: { packetsReceived: number } }>(owner, '/stats/steady')).rtp.packetsReceived;
      await new Promise((r) => setTimeout(r, 1000));
      const during = (await get<{ rtp: { packetsReceived: number } }>(owner, '/stats/steady')).rtp.packetsReceived;
      expect(during - before).toBeGreaterThan(35);

      await redis.start(); // empty: nothing was persisted
      killed = false;
      await until('all three nodes registered again', async () => ((await nodesSeenBy(nodes[0])).length === 3 ? true : undefined), 15_000);
      // The nodes wrote their binding back into the empty Redis: a node that starts now gets it too.
      await until('the room binding back in Redis', async () => ((await redis.command('HGET', 'earshot:rooms', 'kept')).includes('raw') ? true : undefined), 5000);
      for (const n of nodes) expect((await get<{ bound: boolean }>(n, '/rooms/kept')).bound).toBe(true);
      // And the cluster's pipelines, not only the bindings.
      expect(await redis.command('HGET', 'earshot:pipelines', 'keptpipe')).toContain('"name":"keptpipe"');
      for (const n of nodes) expect((await fetch(`${n.url}/pipelines/keptpipe`, { headers: admin })).status).toBe(200);
      // With Redis back, a change through one node reaches the others again.
      const created = await fetch(`${nodes[0].url}/pipelines/outage`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'outage', stages: [], sinks: [{ type: 'stats' }] }) });
      expect(created.status).toBe(201);
      await until('the new pipeline on another node', async () => ((await fetch(`${nodes[2].url}/pipelines/outage`, { headers: admin })).status === 200 ? true : undefined), 10_000);
      const after = await sendAudio({ url: `${nodes[0].url}/whip/outage/after`, token: PUBLISH, source: tone, seconds: 1 });
      expect(after.packetsSent).toBeGreaterThan(40);
      // The owner wrote its live session back: a DELETE through another node finds it.
      const other = nodes.find((n) => n !== owner)!;
      const res = await until('the session to be known again', async () => {
        const r = await fetch(`${other.url}/whip/sessions/${s.session}`, { method: 'DELETE', headers: { authorization: `Bearer ${PUBLISH}` } });
        return r.status === 200 ? r : undefined;
      }, 5000);
      const [rec] = ((await res.json()) as { recordings: Recording[] }).recordings;
      // Nothing lost while Redis was away: no gap, no dropped frame.
      expect(rec.gapFrames).toBe(0);
      expect(rec.droppedFrames).toBe(0);
      const wav = await readWav(join(owner.recordingsDir, rec.name));
      expect(Math.abs(wav.durationSec - rec.seconds)).toBeLessThan(0.03);
      expect(wav.durationSec).toBeGreaterThan(1.5);
    } finally {
      controller.abort();
      await steady.catch(() => undefined);
      // A failure above must not leave the later tests without Redis.
      if (killed) await redis.start();
    }
  });

  it('does not wait 30 s for a frozen node: a read of its peer through another node is refused within seconds, /cluster/stats answers without it', async () => {
    const frozen = nodes[2];
    const id = idOf(frozen);
    const controller = new AbortController();
    const { peer: held, sending } = await publishUntilOn(id, 'frozen', 'held', controller);
    expect(held).toBeDefined();
    frozen.child.kill('SIGSTOP');
    try {
      // It still listens (the kernel accepts connections) and is still registered, but answers nothing.
      const started = Date.now();
      const [stats, cluster] = await Promise.all([fetch(`${nodes[0].url}/stats/${held}`, { headers: admin }), fetch(`${nodes[1].url}/cluster/stats`, { headers: admin })]);
      // The read timeout between nodes is 5 s; before it, both waited for the 30 s of a forwarded POST.
      expect(Date.now() - started).toBeLessThan(10_000);
      await expectProblem(stats, { status: 503, code: 'EARSHOT_ENGINE_UNAVAILABLE', detail: new RegExp(`cluster node "${id}" did not answer`) });
      expect(stats.headers.get('retry-after')).toBe('1');
      expect(cluster.status).toBe(200);
    } finally {
      frozen.child.kill('SIGCONT');
      controller.abort();
      await Promise.all(sending);
    }
    // Woken, it joins again (its entry expired meanwhile) and takes sessions, for the tests after this one.
    await until('the woken node back in the registry', async () => ((await nodesSeenBy(nodes[0])).some((n) => n.id === id && n.state === 'up') ? true : undefined), 20_000);
  });

  it('drops a SIGKILLed node from /cluster/nodes within the TTL; new POSTs still succeed, and its peers publish again at once on another node', async () => {
    const victim = nodes[2];
    const id = idOf(victim);
    const controller = new AbortController();
    const { peer: doomed, sending } = await publishUntilOn(id, 'afterkill', 'doomed', controller, { skipDelete: true });
    expect(doomed).toBeDefined();
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    // Its registry entry outlives it by up to 5 s; the peer's owner refusing connections is enough to
    // place it elsewhere (it got 503 EARSHOT_OVERLOADED "no node in the cluster has room" until then).
    const again = await sendAudio({ url: `${nodes[0].url}/whip/afterkill/${doomed}`, token: PUBLISH, source: tone, seconds: 0.5 });
    expect(again.packetsSent).toBe(25);
    expect(Date.now() - killedAt).toBeLessThan(4000);
    controller.abort();
    await Promise.all(sending);
    await until('the killed node to drop out', async () => ((await nodesSeenBy(nodes[0])).some((n) => n.id === id) ? undefined : true), 10_000);
    const gone = Date.now() - killedAt;
    expect(gone).toBeLessThan(5000 + 1000);
    const results = await sendMany(2, { url: `${nodes[0].url}/whip/afterkill/k`, token: PUBLISH, source: tone, seconds: 1 });
    expect(results.filter((r) => 'error' in r)).toEqual([]);
  });

  it('drains: the node stops taking sessions, lets its live one finish, finalizes, leaves the cluster and exits 0', async () => {
    const controller = new AbortController();
    const live = sendAudio({ url: `${nodes[0].url}/whip/drain/d1`, token: PUBLISH, source: tone, seconds: 3, signal: controller.signal });
    try {
      const d = await livePeer(nodes[0], 'd1', 10);
      const draining = byId.get(d.node)!;
      const survivor = [nodes[0], nodes[1]].find((n) => n !== draining)!;
      const exit = new Promise<number | null>((resolve) => draining.child.once('exit', (code) => resolve(code)));
      const res = await fetch(`${draining.url}/admin/drain`, { method: 'POST', headers: admin });
      expect(res.status).toBe(202);
      await until('the node to show as draining', async () => ((await nodesSeenBy(survivor)).find((n) => n.id === d.node)?.state === 'draining' ? true : undefined), 5000);
      // A POST to the draining node is placed on the other one.
      await sendAudio({ url: `${draining.url}/whip/drain/d2`, token: PUBLISH, source: tone, seconds: 0.5 });
      expect((await recordingsOf('drain-d2-')).map((f) => f.node)).toEqual([survivor]);
      // The live session ends by itself (its sender's DELETE), then the node goes.
      await live;
      expect(await exit).toBe(0);
      const [file] = (await recordingsOf('drain-d1-'))[0].files;
      expect(await finalized(join(draining.recordingsDir, file))).toBe(true);
      const wav = await readWav(join(draining.recordingsDir, file));
      expect(Math.abs(wav.durationSec - 3)).toBeLessThan(0.04);
      // It left the registry itself, without waiting for the TTL.
      expect((await nodesSeenBy(survivor)).map((n) => n.id)).toEqual([idOf(survivor)]);
    } finally {
      controller.abort();
      await live.catch(() => undefined);
    }
  });
});
