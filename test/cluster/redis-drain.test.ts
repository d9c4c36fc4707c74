/**
 * `earshot serve --cluster redis://…` stopped with SIGTERM, as `docker stop`
 * and Kubernetes stop it: three real nodes (separate processes, one engine
 * each) on one real redis-server, real WebRTC publishers on loopback.
 *
 * - A node with a live session: it shows as draining, new POSTs (through it
 *   or through another node) go to the other nodes, the live session finishes
 *   by itself and its recording is finalized, the node leaves the registry and
 *   exits 0.
 * - A node whose publisher never stops: `--drain-timeout` ends the session,
 *   the recording is still finalized and holds every packet received, the
 *   node exits 0.
 *
 * The nodes get different `--drain-timeout`s, so each test drains its own node.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';
import type { CliServer } from './cli-server.js';
import { clusterViews, recordingsOf as recordingsIn, startNodes, stopNodes } from './cluster-api.js';
import { startRedis, type TestRedis } from './redis-server.js';

const tone = fixturePath('tone-1k-48k.wav');
const PUBLISH = 'publish-token-for-the-drain-test';
const ADMIN = 'admin-token-for-the-drain-test';
const admin = { authorization: `Bearer ${ADMIN}` };

type LogLine = { msg?: string; peer?: string; reason?: string; packets?: number; recordings?: string[]; sessions?: number; timeoutMs?: number };

let redis: TestRedis;
/** Drained with live sessions that end by themselves (a timeout they never reach). */
let patient: CliServer;
/** Drained with a publisher that never stops (`--drain-timeout 1`). */
let hasty: CliServer;
/** Stays up: the cluster seen from outside. */
let survivor: CliServer;
let nodes: CliServer[] = [];
const ids = new Map<CliServer, string>();

beforeAll(async () => {
  redis = await startRedis();
  const common = ['--cluster', redis.url, '--processes', '1', '--threads', '1', '--pipeline', 'raw', '--media-timeout', '3', '--token', PUBLISH, '--admin-token', ADMIN];
  await startNodes(['60', '1', '60'].map((timeout) => [...common, '--drain-timeout', timeout]), nodes);
  [patient, hasty, survivor] = nodes;
  const views = await until('every node to see all three', async () => {
    const list = await nodesSeenBy(survivor);
    return list.length === 3 ? list : undefined;
  });
  for (const v of views) ids.set(nodes.find((n) => n.url === v.url)!, v.id);
}, 90_000);

afterAll(async () => {
  await stopNodes(nodes);
  await redis?.kill();
});

const cluster = clusterViews(admin);
const nodesSeenBy = cluster.nodesSeenBy;
const livePeer = (peer: string, minPackets: number) => cluster.livePeer(survivor, peer, minPackets);
const exitOf = (node: CliServer) => new Promise<number | null>((resolve) => node.child.once('exit', (code) => resolve(code)));
const recordingsOf = (prefix: string) => recordingsIn(nodes, prefix);
/** The WAV's RIFF and data sizes both match the file: the header was rewritten when the recording ended. */
async function headerRight(file: string): Promise<boolean> {
  const bytes = await readFile(file);
  const at = bytes.indexOf('data', 12, 'latin1');
  return bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.readUInt32LE(4) === bytes.length - 8 && at > 0 && bytes.readUInt32LE(at + 4) === bytes.length - at - 8;
}
/** The node's JSON log lines (its engines' included). */
const logOf = (node: CliServer): LogLine[] =>
  node.lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });

describe('earshot serve --cluster stopped with SIGTERM', () => {
  it('drains: shows as draining, sends new POSTs elsewhere, lets the live session finish, finalizes it, leaves the registry and exits 0', async () => {
    const id = ids.get(patient)!;
    // An idle cluster: the node that receives the POST keeps it (ties go to it, no hop).
    const live = sendAudio({ url: `${patient.url}/whip/term/t1`, token: PUBLISH, source: tone, seconds: 4 });
    try {
      const t = await livePeer('t1', 10);
      expect(t.node).toBe(id);
      const exit = exitOf(patient);
      patient.child.kill('SIGTERM');
      await until('the node to show as draining', async () => {
        const n = (await nodesSeenBy(survivor)).find((x) => x.id === id);
        return n?.state === 'draining' && !n.accepting && !n.ready ? true : undefined;
      }, 5000);
      // New sessions, whether the POST reaches the draining node or another one, run elsewhere.
      await sendAudio({ url: `${patient.url}/whip/term/n1`, token: PUBLISH, source: tone, seconds: 0.5 });
      await sendAudio({ url: `${survivor.url}/whip/term/n2`, token: PUBLISH, source: tone, seconds: 0.5 });
      for (const prefix of ['term-n1-', 'term-n2-']) {
        const placed = await recordingsOf(prefix);
        expect(placed).toHaveLength(1);
        expect(placed[0].node).not.toBe(patient);
      }
      // The live session ends by itself (its publisher's DELETE reaches the draining node), then the node goes.
      const sent = await live;
      expect(await exit).toBe(0);
      const [found] = await recordingsOf('term-t1-');
      expect(found.node).toBe(patient);
      const file = join(patient.recordingsDir, found.files[0]);
      expect(await headerRight(file)).toBe(true);
      const wav = await readWav(file);
      expect(Math.abs(wav.durationSec - 4)).toBeLessThan(0.04);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
      const ended = logOf(patient).find((l) => l.msg === 'session ended' && l.peer === 't1')!;
      expect(ended).toMatchObject({ reason: 'deleted', packets: sent.packetsSent });
      expect(logOf(patient).find((l) => l.msg === 'cluster: draining')).toMatchObject({ sessions: 1, timeoutMs: 60_000 });
      // It left the registry itself: its entry would otherwise stay for the 5 s TTL.
      expect((await nodesSeenBy(survivor)).map((n) => n.id)).not.toContain(id);
    } finally {
      await live.catch(() => undefined);
    }
  });

  it('ends a session still sending when --drain-timeout runs out; its recording is finalized with every packet received; exits 0', async () => {
    const id = ids.get(hasty)!;
    const controller = new AbortController();
    const forever = sendAudio({ url: `${hasty.url}/whip/term/f1`, token: PUBLISH, source: tone, loop: true, skipDelete: true, signal: controller.signal }).then(
      () => 'finished',
      (e: unknown) => e,
    );
    try {
      const f = await livePeer('f1', 25);
      expect(f.node).toBe(id);
      const exit = exitOf(hasty);
      hasty.child.kill('SIGTERM');
      expect(await exit).toBe(0);
      // The publisher never stopped by itself: the node ended the session, and told it so (DTLS close_notify).
      expect(await forever).toMatchObject({ code: 'EARSHOT_WHIP_SESSION_LOST', message: expect.stringMatching(/^The server closed the connection/) });
      const ended = logOf(hasty).find((l) => l.msg === 'session ended' && l.peer === 'f1')!;
      expect(ended.reason).toBe('shutdown');
      expect(logOf(hasty).find((l) => l.msg === 'cluster: draining')).toMatchObject({ sessions: 1, timeoutMs: 1000 });
      const file = join(hasty.recordingsDir, ended.recordings![0]);
      expect(await headerRight(file)).toBe(true);
      const wav = await readWav(file);
      // Every packet that arrived is in the file (20 ms each), and it went on recording while the node drained.
      expect(Math.abs(wav.durationSec - ended.packets! * 0.02)).toBeLessThan(0.04);
      expect(ended.packets!).toBeGreaterThan(f.rtp.packetsReceived);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
      expect((await nodesSeenBy(survivor)).map((n) => n.id)).toEqual([ids.get(survivor)]);
    } finally {
      controller.abort();
      await forever;
    }
  });
});
