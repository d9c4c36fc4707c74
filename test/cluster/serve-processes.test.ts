/**
 * `earshot serve --processes 2`: one public port, two engine processes, real
 * werift publishers over loopback. The sessions spread over both engines, each
 * recording is right, requests for a session reach the engine that runs it, a
 * killed engine is replaced and its sessions end as `engine-exited` in every
 * view (statistics, events with their recordings, metrics), and SIGTERM
 * drains everything.
 */
import { fixturePath } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio, sendMany } from '../../src/client/audio-sender.js';
import { mayBeEnded } from '../helpers/sending.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { logEntries, startCli, type CliServer } from './cli-server.js';
import { listen } from '../helpers/listening.js';
import { audioSocket } from '../helpers/audio-socket.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { expectToneHeardThrough } from '../helpers/hearing.js';

const tone = fixturePath('tone-1k-48k.wav');

type PeerStats = {
  peer: string;
  session: string;
  state: string;
  endReason: string | null;
  engine: number;
  pipeline: string;
  rtp: { packetsReceived: number };
  recording: { name: string; state: string; seconds: number; bytes: number; code?: string } | null;
};
type Health = { status: string; reasons: string[]; engines: Array<{ engine: number; pid: number; state: string; ready: boolean; restarts: number }> };

let s: CliServer;
beforeAll(async () => {
  // --max-listeners 4: two per engine (the machine's limit shared out, like --max-sessions).
  s = await startCli(['--processes', '2', '--pipeline', 'raw', '--media-timeout', '3', '--max-listeners', '4']);
}, 90_000);
afterAll(async () => {
  await s?.stop();
  await s?.cleanup();
});

const get = async <T>(path: string): Promise<T> => {
  const res = await fetch(`${s.url}${path}`);
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
};
type SessionEventData = { type: string; peer: string; session: string; reason?: string; recordings?: string[] };

/** `GET /events` read as it arrives: its text so far, its session events, and a way to stop. */
async function eventStream(intervalMs: number) {
  const res = await fetch(`${s.url}/events?interval=${intervalMs}`);
  const reader = res.body!.getReader();
  let text = '';
  const read = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += Buffer.from(value).toString('utf8');
    }
  })();
  return {
    text: () => text,
    // Complete events only: the text after the last blank line may be one still arriving.
    sessions: () => text.split('\n\n').slice(0, -1).filter((e) => e.startsWith('event: session')).map((e) => JSON.parse(e.split('data: ')[1]) as SessionEventData),
    async close() {
      await reader.cancel();
      await read.catch(() => undefined);
    },
  };
}

const statsOf = (peer: string) => get<PeerStats>(`/stats/${peer}`);

/**
 * Four publishers at once in `room` of the machine at `url` (peers `prefix-1` … `prefix-4`): all
 * succeed, they land on both engines, and every one runs `pipeline`.
 */
async function expectRoomRunsOnBothEngines(url: string, room: string, prefix: string, pipeline: string): Promise<void> {
  const results = await sendMany(4, { url: `${url}/whip/${room}/${prefix}`, source: tone, seconds: 0.5 });
  expect(results.filter((r) => 'error' in r)).toEqual([]);
  const stats = await Promise.all([1, 2, 3, 4].map(async (k) => (await (await fetch(`${url}/stats/${prefix}-${k}`)).json()) as PeerStats));
  expect(new Set(stats.map((p) => p.engine))).toEqual(new Set([0, 1]));
  expect(stats.map((p) => p.pipeline)).toEqual([pipeline, pipeline, pipeline, pipeline]);
}

/** rooms.json of the machine's pipelines directory as it is on disk ({} when there is none). */
const roomsOnDisk = async () => (JSON.parse(await readFile(join(s.pipelinesDir, 'rooms.json'), 'utf8').catch(() => '{"rooms": {}}')) as { rooms: Record<string, string> }).rooms;

/** Binds `room` to `pipeline` by editing rooms.json on disk, and waits until the machine answers with it. */
async function bindOnDisk(room: string, pipeline: string): Promise<void> {
  await writeFile(join(s.pipelinesDir, 'rooms.json'), JSON.stringify({ rooms: { ...(await roomsOnDisk()), [room]: pipeline } }));
  await until(`the edit binding ${room} applied`, async () => ((await get<{ rooms: Record<string, string> }>('/rooms')).rooms[room] === pipeline ? true : undefined), 10_000);
}

const packets = (peer: string, n: number) => until(`${peer} to send ${n} packets`, async () => {
  const p = await statsOf(peer);
  return p.rtp.packetsReceived >= n && p.state !== 'ended' ? p : undefined;
});

/** The size in the WAV's data chunk header equals the bytes on disk after it: the header was finalized. */
async function finalized(file: string): Promise<boolean> {
  const bytes = await readFile(file);
  const at = bytes.indexOf('data', 12, 'latin1');
  return at > 0 && bytes.readUInt32LE(at + 4) === bytes.length - at - 8;
}

describe('earshot serve --processes 2', () => {
  it('spreads concurrent publishers over both engines, shows them all in /stats, and records each one right', async () => {
    const sending = sendMany(6, { url: `${s.url}/whip/load/peer`, source: tone, seconds: 3 });
    const live = await until('6 live peers in /stats', async () => {
      const { server, peers } = await get<{ server: { peers: number; engines: unknown[] }; peers: PeerStats[] }>('/stats');
      return peers.length === 6 && server.peers === 6 ? peers : undefined;
    });
    expect(new Set(live.map((p) => p.engine))).toEqual(new Set([0, 1]));
    const results = await sending;
    expect(results.filter((r) => 'error' in r)).toEqual([]);
    for (let k = 1; k <= 6; k++) {
      const p = await statsOf(`peer-${k}`);
      // sendAudio ends with DELETE on its Location: through the front, on the engine that ran it.
      expect(p.state).toBe('ended');
      expect(p.endReason).toBe('deleted');
      expect(p.engine).toBe(live.find((l) => l.peer === `peer-${k}`)!.engine);
      const wav = await readWav(join(s.recordingsDir, p.recording!.name));
      expect(Math.abs(wav.durationSec - 3)).toBeLessThan(0.04);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
    }
    expect((await readdir(s.recordingsDir)).filter((f) => f.startsWith('load-peer-'))).toHaveLength(6);
    // ?histogram through the front: a yes/no as on one process, a bad value 400 (not the engines' refusals read as "not found").
    // The engine's answer, with the buckets: the front's own copy of an ended peer (null here) must not win.
    expect((await get<{ latencyHistogram: { counts: number[] } | null }>('/stats/peer-1?histogram=1')).latencyHistogram?.counts.length).toBeGreaterThan(0);
    expect(await get<object>('/stats/peer-1?histogram=false')).not.toHaveProperty('latencyHistogram');
    expect((await fetch(`${s.url}/stats/peer-1?histogram=yes`)).status).toBe(400);
    // The front lists the shared directory and serves its files under signed links.
    const listing = await get<{ recordings: Array<{ name: string; url: string }> }>('/recordings');
    const first = (await statsOf('peer-1')).recording!.name;
    const one = listing.recordings.find((r) => r.name === first)!;
    const download = await fetch(`${s.url}${one.url}`);
    expect(download.status).toBe(200);
    expect(Number(download.headers.get('content-length'))).toBe((await stat(join(s.recordingsDir, one.name))).size);
  });

  it('merges the engines\' /metrics (labelled engine="…") and /events (stats of the whole machine, every engine\'s session events)', async () => {
    const events = await eventStream(100);
    await sendMany(2, { url: `${s.url}/whip/events/e`, source: tone, seconds: 1 });
    await until('stats and session events', async () => (/"processes":2/.test(events.text()) && (events.text().match(/event: session/g) ?? []).length >= 4 ? true : undefined));
    await events.close();
    const sessions = events.sessions();
    expect(sessions.filter((e) => e.peer.startsWith('e-')).map((e) => e.type).sort()).toEqual(['ended', 'ended', 'started', 'started']);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/^earshot_sessions_started_total\{engine="0"\} \d+$/m);
    expect(metrics).toMatch(/^earshot_sessions_started_total\{engine="1"\} \d+$/m);
    expect(metrics).toMatch(/^earshot_engines_up\{engine="front"\} 2$/m);
    expect(metrics.match(/^# TYPE earshot_sessions_started_total /gm)).toHaveLength(1);
    // docs/metrics.md documents every earshot_ metric of the machine, the front's included.
    const documented = await readFile(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    const names = [...metrics.matchAll(/^# TYPE (earshot_\w+) /gm)].map((m) => m[1]);
    expect(names).toContain('earshot_engine_restarts_total');
    expect(names.filter((name) => !documented.includes(`\`${name}\``))).toEqual([]);
    expect((await fetch(`${s.url}/`)).status).toBe(200); // the dashboard
    // A browser's CORS preflight for WHIP: the front's CORS headers, the engine's WHIP headers.
    const preflight = await fetch(`${s.url}/whip/room/peer`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('accept-post')).toBe('application/sdp');
  });

  it('ends a session on its engine with a DELETE through the front', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/deleted`, source: tone, loop: true, signal: controller.signal, skipDelete: true }));
    try {
      const before = await packets('deleted', 25);
      const res = await fetch(`${s.url}/whip/sessions/${before.session}`, { method: 'DELETE' });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { recordings: Array<{ name: string }> }).recordings.map((r) => r.name)).toEqual([before.recording!.name]);
      const after = await statsOf('deleted');
      expect(after).toMatchObject({ session: before.session, state: 'ended', endReason: 'deleted', engine: before.engine });
      expect(await finalized(join(s.recordingsDir, before.recording!.name))).toBe(true);
      // The session is gone: a second DELETE is the usual 404.
      expect((await fetch(`${s.url}/whip/sessions/${before.session}`, { method: 'DELETE' })).status).toBe(404);
      // The front, like an engine, has no other methods there: a POST to a session URL publishes nothing.
      const post = await fetch(`${s.url}/whip/sessions/${before.session}`, { method: 'POST', body: 'v=0', headers: { 'content-type': 'application/sdp' } });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('DELETE, OPTIONS');
      expect(((await post.json()) as { code: string }).code).toBe('EARSHOT_METHOD_NOT_ALLOWED');
      // HEAD there says what the session URL takes, not the endpoint's POST (room "sessions").
      const head = await fetch(`${s.url}/whip/sessions/${before.session}`, { method: 'HEAD' });
      expect([head.status, head.headers.get('allow')]).toEqual([405, 'DELETE, OPTIONS']);
      // A mistyped WHIP URL is no resource: 404, as on a single server, not 405 "it allows OPTIONS".
      for (const path of ['/whip/demo', '/whip/a/b/c']) {
        const mistyped = await fetch(`${s.url}${path}`, { method: 'POST', body: 'v=0', headers: { 'content-type': 'application/sdp' } });
        expect([path, mistyped.status, mistyped.headers.get('allow')]).toEqual([path, 404, null]);
      }
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('lets a WHEP listener and an audio WebSocket reach a peer through the front, on whichever engine runs it', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/heard`, source: tone, loop: true, signal: controller.signal }));
    try {
      await packets('heard', 10);
      await expectToneHeardThrough(s.url, 'heard');
      // Without an upgrade, the peer's engine answers as one process does: 426 saying how to connect, or the peer's 404.
      const plain = await fetch(`${s.url}/peers/heard/audio`);
      expect([plain.status, ((await plain.json()) as { code: string }).code, plain.headers.get('upgrade')]).toEqual([426, 'EARSHOT_BAD_REQUEST', 'websocket']);
      const nobody = await fetch(`${s.url}/peers/nobody/audio`);
      expect([nobody.status, ((await nobody.json()) as { code: string }).code]).toEqual([404, 'EARSHOT_PEER_NOT_FOUND']);
      // A peer no engine runs: the problem document, before any upgrade.
      const ws = s.url.replace(/^http/, 'ws');
      expect(await audioSocket(`${ws}/peers/nobody/audio`).outcome).toMatchObject({ open: false, status: 404 });
      // Checked as the engine's route checks it, before any lookup: names, encoding, and (the admin API being open) the Host.
      expect(await audioSocket(`${ws}/peers/${'x'.repeat(12_000)}/audio`).outcome).toMatchObject({ open: false, status: 400, body: { code: 'EARSHOT_NAME_INVALID' } });
      expect(await audioSocket(`${ws}/peers/%E0%A4%A/audio`).outcome).toMatchObject({ open: false, status: 400, body: { code: 'EARSHOT_BAD_REQUEST' } });
      expect(await audioSocket(`${ws}/peers/heard/audio`, { headers: { host: '127.rebind.example' } }).outcome).toMatchObject({ open: false, status: 403, body: { code: 'EARSHOT_HOST_NOT_ALLOWED' } });
      // The path as the engine's router decodes it: "%61udio" is the audio route, checked as such (a proxy's
      // forwarding header refuses the open admin role), not passed on to an engine as an unknown path.
      for (const path of ['/peers/heard/%61udio', '/%70eers/heard/audio', '//peers/heard/audio']) {
        expect(await audioSocket(`${ws}${path}`, { headers: { 'x-forwarded-for': '203.0.113.9' } }).outcome, path).toMatchObject({ open: false, status: 403, body: { code: 'EARSHOT_PROXY_NOT_ALLOWED' } });
      }
      // Other paths as one process answers them: a path no route has is a 404, a route without a WebSocket a 400.
      expect(await audioSocket(`${ws}/nothing-here`).outcome).toMatchObject({ open: false, status: 404, body: { code: 'EARSHOT_ROUTE_NOT_FOUND' } });
      expect(await audioSocket(`${ws}/stats`).outcome).toMatchObject({ open: false, status: 400, body: { code: 'EARSHOT_BAD_REQUEST', detail: expect.stringContaining('/stats takes no WebSocket upgrade') } });
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('refuses a body of the wrong type with 415 before reading it, as an engine does', async () => {
    // The headers announce 60 000 bytes that never come: only a check made before the body is read can answer.
    const answer = (head: string) =>
      new Promise<string>((resolve, reject) => {
        const u = new URL(s.url);
        const socket = connect(Number(u.port), u.hostname, () => socket.write(head));
        let text = '';
        socket.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (text.includes('\r\n\r\n')) {
            socket.destroy();
            resolve(text.split('\r\n')[0]);
          }
        });
        socket.on('error', reject);
        socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${head.split('\r\n')[0]} before its body`)));
      });
    const head = (method: string, path: string, type: string) => `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: 60000\r\n\r\n`;
    expect(await answer(head('POST', '/whip/demo/typed', 'text/plain'))).toBe('HTTP/1.1 415 Unsupported Media Type');
    expect(await answer(head('POST', '/whep/typed', 'application/json'))).toBe('HTTP/1.1 415 Unsupported Media Type');
    expect(await answer(head('PUT', '/rooms/typed', 'application/sdp'))).toBe('HTTP/1.1 415 Unsupported Media Type');
  });

  it('shares --max-listeners out among the engines: a peer\'s engine takes its share of listeners, then refuses', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/crowd`, source: tone, loop: true, signal: controller.signal }));
    const players: Array<Awaited<ReturnType<typeof listen>>> = [];
    try {
      await packets('crowd', 10);
      for (let i = 0; i < 2; i++) {
        const p = await listen(`${s.url}/whep/crowd`);
        players.push(p);
        expect(p.status).toBe(201);
      }
      // 4 on the machine is 2 on this engine: the third is refused though the machine has 2 to spare.
      const third = await listen(`${s.url}/whep/crowd`);
      players.push(third);
      expect(third.status).toBe(503);
      // Worded with the limit the operator set, not the engine's share of it.
      expect(third.problem).toMatchObject({ code: 'EARSHOT_LISTENERS_FULL', limit: 4, engineShare: 2 });
      expect(third.problem?.detail).toContain('its share of the server\'s 4 (--max-listeners, shared out among its 2 engine processes');
      expect(third.headers.get('retry-after')).toBeTruthy();
      // Ending one frees its place.
      expect((await fetch(players[0].location!, { method: 'DELETE' })).status).toBe(200);
      const again = await listen(`${s.url}/whep/crowd`);
      players.push(again);
      expect(again.status).toBe(201);
      // Once the peer has ended, its listener is not found, as one process answers (the front said "peer not found").
      controller.abort();
      await sending.catch(() => undefined);
      await until('the peer to end', async () => ((await (await fetch(`${s.url}/stats/crowd`)).json()) as { state?: string }).state === 'ended' || undefined);
      const ended = await fetch(again.location!, { method: 'DELETE' });
      expect(ended.status).toBe(404);
      expect(await ended.json()).toMatchObject({ code: 'EARSHOT_LISTENER_NOT_FOUND' });
      expect(await (await fetch(`${s.url}/whep/nobody/abc`, { method: 'DELETE' })).json()).toMatchObject({ code: 'EARSHOT_LISTENER_NOT_FOUND' });
    } finally {
      await Promise.all(players.map((p) => p.close().catch(() => undefined)));
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('replaces a live peer on the engine that owns it, even when the other engine is less loaded', async () => {
    const controller = new AbortController();
    const first = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/twice`, source: tone, loop: true, signal: controller.signal, skipDelete: true }));
    try {
      const a = await packets('twice', 25);
      // Load the owner with one more session, so least-loaded placement would pick the other engine.
      const other = new AbortController();
      const extra = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/extra`, source: tone, loop: true, signal: other.signal }));
      try {
        await packets('extra', 5);
        await sendAudio({ url: `${s.url}/whip/demo/twice`, source: tone, seconds: 1 });
      } finally {
        other.abort();
        await extra.catch(() => undefined);
      }
      const b = await statsOf('twice');
      expect(b.session).not.toBe(a.session);
      expect(b.engine).toBe(a.engine);
      expect(b.endReason).toBe('deleted');
      const [wa, wb] = await Promise.all([a.recording!.name, b.recording!.name].map((f) => readWav(join(s.recordingsDir, f))));
      expect(wa.durationSec).toBeGreaterThan(0.3);
      expect(await finalized(join(s.recordingsDir, a.recording!.name))).toBe(true);
      expect(Math.abs(wb.durationSec - 1)).toBeLessThanOrEqual(0.02);
    } finally {
      controller.abort();
      await first.catch(() => undefined);
    }
  });

  it('leaves out an engine that stops answering (SIGSTOP): /health says so, /metrics and new sessions do not wait for it, requests for its peers get 503 at once; once it answers it is back', async () => {
    // A peer on the engine that will stop answering.
    const controller = new AbortController();
    const held = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/held`, source: tone, loop: true, signal: controller.signal }));
    const h0 = await packets('held', 10);
    const frozenSlot = h0.engine;
    const frozen = (await get<Health>('/health')).engines[frozenSlot];
    process.kill(frozen.pid, 'SIGSTOP');
    try {
      const health = await until(`the front to find engine ${frozenSlot} silent`, async () => {
        const h = await get<Health>('/health');
        return h.engines[frozenSlot].state === 'unresponsive' ? h : undefined;
      }, 15_000);
      expect(health.status).toBe('degraded');
      expect(health.engines[frozenSlot].ready).toBe(false);
      expect(health.reasons.join('\n')).toMatch(new RegExp(`engine ${frozenSlot} has sent no report for \\d+\\.\\d s \\(hung, or starved of CPU\\): it takes no new sessions`));
      // A scrape answers with the engine that does (it waited 30 s for the frozen one; Prometheus gives up after 10 s).
      const metrics = await (await fetch(`${s.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      expect(metrics).toMatch(/^earshot_engines_up\{engine="front"\} 1$/m);
      expect(metrics).not.toMatch(new RegExp(`engine="${frozenSlot}"`));
      // Requests for its peer: 503 at once with Retry-After (each waited 30 s, then got 500).
      for (const [method, path] of [['POST', '/peers/held/recording'], ['GET', '/peers/held/audio'], ['GET', '/stats/held']] as const) {
        const res = await fetch(`${s.url}${path}`, { method, signal: AbortSignal.timeout(5_000) });
        const problem = (await res.json()) as { code: string; detail: string };
        expect([method, path, res.status, problem.code, res.headers.get('retry-after')]).toEqual([method, path, 503, 'EARSHOT_ENGINE_UNAVAILABLE', '5']);
        expect(problem.detail).toMatch(new RegExp(`engine ${frozenSlot}, which runs (peer "held"|this session), is not answering \\(no report for`));
      }
      // A DELETE of its session is passed on, for when it answers, and answered 202 at once (a client seldom repeats one).
      const deleted = await fetch(`${s.url}/whip/sessions/${h0.session}`, { method: 'DELETE', signal: AbortSignal.timeout(5_000) });
      expect(deleted.status).toBe(202);
      expect(await deleted.json()).toMatchObject({ session: h0.session, state: 'ending', detail: expect.stringMatching(new RegExp(`engine ${frozenSlot}, which runs this session, is not answering`)) });
      // New sessions go to the engine that answers (each waited 30 s on the frozen one first).
      const results = await sendMany(2, { url: `${s.url}/whip/demo/thaw`, source: tone, seconds: 0.5, signal: AbortSignal.timeout(20_000) });
      expect(results.filter((r) => 'error' in r)).toEqual([]);
      expect((await Promise.all([1, 2].map((k) => statsOf(`thaw-${k}`)))).map((p) => p.engine)).toEqual([1 - frozenSlot, 1 - frozenSlot]);
    } finally {
      process.kill(frozen.pid, 'SIGCONT');
      controller.abort();
      await held.catch(() => undefined);
    }
    await until(`engine ${frozenSlot} to answer again`, async () => ((await get<Health>('/health')).engines[frozenSlot].state === 'up' ? true : undefined), 15_000);
    expect((await get<Health>('/health')).engines[frozenSlot].ready).toBe(true);
    // Once it answered, it got the DELETE passed on, and the session is over (by that DELETE, or by the
    // media timeout of 3 s, which its timers may find past first when it wakes: either way it ended).
    const answered = await until('the engine to answer the DELETE passed on', async () => {
      const [entry] = logEntries<{ status: number }>(s.lines, 'engine answered a DELETE passed on while it did not answer');
      return entry;
    }, 15_000);
    expect([200, 404]).toContain(answered.status);
    const ended = await until('the held session to end', async () => {
      const p = await statsOf('held');
      return p.state === 'ended' ? p : undefined;
    }, 15_000);
    expect(['deleted', 'media-timeout']).toContain(ended.endReason);
  });

  it('restarts an engine killed with SIGKILL; its session ends with a readable recording and new sessions still succeed', async () => {
    const controller = new AbortController();
    const victim = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/victim`, source: tone, loop: true, signal: controller.signal, skipDelete: true }));
    const v = await packets('victim', 100); // 2 s: the WAV header has been rewritten at least once
    // Changes every engine must know, made before the kill: the restarted engine must know them too.
    const tagged = { name: 'tagged', stages: [], sinks: [{ type: 'record', template: 'tagged-{peer}' }] };
    expect((await fetch(`${s.url}/pipelines/tagged`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(tagged) })).status).toBe(201);
    expect((await fetch(`${s.url}/rooms/after`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'tagged' }) })).status).toBe(200);
    const before = await get<Health>('/health');
    const killed = before.engines[v.engine];
    type Pool = { tasksCompleted: number; busyMs: number; streamsOpened: number };
    const poolBefore = (await get<{ server: { pool: Pool } }>('/stats')).server.pool;
    process.kill(killed.pid, 'SIGKILL');
    // Right away, while that engine is down, a new session goes to the other one.
    const during = await sendAudio({ url: `${s.url}/whip/demo/during`, source: tone, seconds: 1 });
    expect(during.packetsSent).toBeGreaterThan(40);
    expect((await statsOf('during')).engine).toBe(1 - v.engine);
    controller.abort();
    await victim.catch(() => undefined);
    const health = await until('the killed engine to be back', async () => {
      const h = await get<Health>('/health');
      const e = h.engines[v.engine];
      return e.state === 'up' && e.pid !== killed.pid ? h : undefined;
    }, 60_000);
    expect(health.engines[v.engine].restarts).toBe(1);
    expect(health.status).toBe('degraded');
    expect(health.reasons.join('\n')).toMatch(new RegExp(`engine ${v.engine} exited \\(SIGKILL\\)`));
    // The metric alerts are written on says so too: the front's series, as no engine's own pool is degraded.
    expect(await (await fetch(`${s.url}/metrics`)).text()).toMatch(/^earshot_pool_degraded\{engine="front"\} 1$/m);
    // What the killed engine wrote is a valid WAV up to its last header rewrite.
    const wav = await readWav(join(s.recordingsDir, v.recording!.name));
    expect(wav.durationSec).toBeGreaterThan(0.9);
    // Both engines take sessions again.
    const results = await sendMany(4, { url: `${s.url}/whip/after/p`, source: tone, seconds: 1 });
    expect(results.filter((r) => 'error' in r)).toEqual([]);
    const after = await Promise.all([1, 2, 3, 4].map((k) => statsOf(`p-${k}`)));
    expect(new Set(after.map((p) => p.engine))).toEqual(new Set([0, 1]));
    // The room binding and the new pipeline reached the restarted engine as well.
    expect(after.map((p) => [p.pipeline, p.recording!.name])).toEqual([1, 2, 3, 4].map((k) => ['tagged', `tagged-p-${k}.wav`]));
    const del = await fetch(`${s.url}/pipelines/tagged`, { method: 'DELETE' });
    expect(del.status).toBe(409);
    expect(((await del.json()) as { code: string }).code).toBe('EARSHOT_PIPELINE_IN_USE');
    const { server } = await get<{ server: { endedBy: Record<string, number>; pool: Pool } }>('/stats');
    expect(server.endedBy['engine-exited']).toBe(1);
    // The pool's counters keep what the killed engine counted (they went back to the other engine's and
    // the new one's): 5 more streams since (during, p-1 … p-4), and more batches and busy time.
    expect(server.pool.streamsOpened).toBeGreaterThanOrEqual(poolBefore.streamsOpened + 5);
    expect(server.pool.tasksCompleted).toBeGreaterThan(poolBefore.tasksCompleted);
    expect(server.pool.busyMs).toBeGreaterThan(poolBefore.busyMs);
  });

  it('keeps the room bindings in the pipelines directory: a restart of the whole machine finds them on every engine', async () => {
    const bind = await fetch(`${s.url}/rooms/kept`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'telephony' }) });
    expect(bind.status).toBe(200);
    expect(JSON.parse(await readFile(join(s.pipelinesDir, 'rooms.json'), 'utf8')).rooms.kept).toBe('telephony');
    const again = await startCli(['--processes', '2', '--pipeline', 'raw'], { pipelinesDir: s.pipelinesDir });
    try {
      // Each engine read the file: every session in the room runs the bound pipeline, whichever engine has it.
      await expectRoomRunsOnBothEngines(again.url, 'kept', 'q', 'telephony');
    } finally {
      await again.stop();
      await again.cleanup();
    }
    expect((await fetch(`${s.url}/rooms/kept`, { method: 'DELETE' })).status).toBe(204);
  });

  it('a binding changed while an engine restarts reaches it once it is up, and the file keeps only what the machine has', async () => {
    const bind = (room: string, pipeline: string) => fetch(`${s.url}/rooms/${room}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline }) });
    expect((await bind('r7', 'telephony')).status).toBe(200);
    const before = await get<Health>('/health');
    const victim = before.engines[1];
    process.kill(victim.pid, 'SIGKILL');
    await until('engine 1 restarting', async () => {
      const e = (await get<Health>('/health')).engines[1];
      return e.state === 'starting' && e.pid !== victim.pid ? true : undefined;
    }, 10_000);
    // Made while engine 1's new process starts (it was given the bindings with r7): only engine 0 takes it now.
    expect((await fetch(`${s.url}/rooms/r7`, { method: 'DELETE' })).status).toBe(204);
    await until('engine 1 back', async () => {
      const e = (await get<Health>('/health')).engines[1];
      return e.state === 'up' && e.ready && e.pid !== victim.pid ? true : undefined;
    }, 60_000);
    expect((await bind('r8', 'telephony')).status).toBe(200);
    const file = JSON.parse(await readFile(join(s.pipelinesDir, 'rooms.json'), 'utf8')) as { rooms: Record<string, string> };
    expect(file.rooms.r7).toBeUndefined();
    expect(file.rooms.r8).toBe('telephony');
    // Both engines run r7's streams on the default pipeline again, r8's on the bound one.
    await expectRoomRunsOnBothEngines(s.url, 'r7', 'u', 'raw');
    expect((await fetch(`${s.url}/rooms/r8`, { method: 'DELETE' })).status).toBe(204);
  });

  it('applies rooms.json edited on disk on every engine, and makes a change over HTTP onto the edit', async () => {
    // Both engines run e1's streams on the pipeline the edit bound it to.
    await bindOnDisk('e1', 'telephony');
    await expectRoomRunsOnBothEngines(s.url, 'e1', 'v', 'telephony');
    // An edit the front has not seen yet, then a change over HTTP: both stay.
    await writeFile(join(s.pipelinesDir, 'rooms.json'), JSON.stringify({ rooms: { ...(await roomsOnDisk()), e2: 'telephony' } }));
    expect((await fetch(`${s.url}/rooms/e3`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'telephony' }) })).status).toBe(200);
    expect(await roomsOnDisk()).toMatchObject({ e1: 'telephony', e2: 'telephony', e3: 'telephony' });
    for (const room of ['e1', 'e2', 'e3']) expect((await fetch(`${s.url}/rooms/${room}`, { method: 'DELETE' })).status).toBe(204);
    expect(Object.keys(await roomsOnDisk()).filter((r) => r.startsWith('e'))).toEqual([]);
  });

  it('keeps a room bound on disk to a pipeline no engine has, as one process does: its streams get 404 naming it on either engine', async () => {
    await bindOnDisk('m1', 'deleted-by-hand');
    // Offers answered at the same time go to both engines (each counts the other's offer in progress).
    const offer = (peer: string) => fetch(`${s.url}/whip/m1/${peer}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
    for (const res of await Promise.all(['l1', 'l2', 'l3', 'l4'].map(offer))) {
      const problem = await expectProblem(res, { status: 404, code: 'EARSHOT_PIPELINE_NOT_FOUND' });
      expect(problem.detail).toContain('deleted-by-hand');
    }
    // Each engine answered some of them (an engine counts the offers it refuses).
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    for (const engine of ['0', '1']) {
      expect(metrics, `engine ${engine}`).toMatch(new RegExp(`^earshot_sessions_refused_total\\{(?=[^}]*code="EARSHOT_PIPELINE_NOT_FOUND")(?=[^}]*engine="${engine}")[^}]*\\} [1-9]`, 'm'));
    }
    // Bound again on disk to a pipeline they have: both engines run it.
    await bindOnDisk('m1', 'telephony');
    await expectRoomRunsOnBothEngines(s.url, 'm1', 'w', 'telephony');
    expect((await fetch(`${s.url}/rooms/m1`, { method: 'DELETE' })).status).toBe(204);
  });

  it('restarts an engine killed while pipeline files are broken on disk: it runs the version the other engine runs', async () => {
    const telephony = await get<Record<string, unknown>>('/pipelines/telephony');
    const put = await fetch(`${s.url}/pipelines/brittle`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...telephony, name: 'brittle' }) });
    expect(put.status).toBe(201);
    expect((await fetch(`${s.url}/rooms/b9`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline: 'brittle' }) })).status).toBe(200);
    const good = await readFile(join(s.pipelinesDir, 'brittle.json'), 'utf8');
    // An edit that went wrong (the engines keep the version they have), and a new file that never loaded.
    await writeFile(join(s.pipelinesDir, 'brittle.json'), '{"name": "brittle", "branches": [');
    await writeFile(join(s.pipelinesDir, 'never.json'), '{"name": "never"');
    try {
      type Listing = { invalidFiles: Array<{ file: string; previousVersionLoaded: boolean }> };
      await until('both files reported invalid', async () => ((await get<Listing>('/pipelines')).invalidFiles.length === 2 ? true : undefined), 10_000);
      const victim = (await get<Health>('/health')).engines[1];
      process.kill(victim.pid, 'SIGKILL');
      await until('engine 1 back', async () => {
        const e = (await get<Health>('/health')).engines[1];
        return e.state === 'up' && e.ready && e.pid !== victim.pid ? true : undefined;
      }, 60_000);
      // Both engines run b9's streams on the version loaded before the file broke.
      await expectRoomRunsOnBothEngines(s.url, 'b9', 'w', 'brittle');
      expect((await get<Listing>('/pipelines')).invalidFiles.map((f) => [f.file, f.previousVersionLoaded])).toEqual([
        ['brittle.json', true],
        ['never.json', false],
      ]);
    } finally {
      await writeFile(join(s.pipelinesDir, 'brittle.json'), good);
      await rm(join(s.pipelinesDir, 'never.json'), { force: true });
    }
    await until('the files fixed', async () => ((await get<{ invalidFiles: unknown[] }>('/pipelines')).invalidFiles.length === 0 ? true : undefined), 10_000);
    expect((await fetch(`${s.url}/rooms/b9`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${s.url}/pipelines/brittle`, { method: 'DELETE' })).status).toBe(204);
  });

  it('answers that the bundled pipelines are read-only, even for the default, which is in use', async () => {
    const bundled = await startCli(['--processes', '2'], { bundled: true });
    try {
      for (const name of ['default', 'podcast']) {
        const del = await fetch(`${bundled.url}/pipelines/${name}`, { method: 'DELETE' });
        expect(del.status).toBe(409);
        expect(((await del.json()) as { code: string }).code).toBe('EARSHOT_PIPELINES_READ_ONLY');
      }
    } finally {
      await bundled.stop();
      await bundled.cleanup();
    }
  });

  it('a rolling restart (SIGTERM to one engine): its session ends as shutdown, is counted as ended in /stats, and /stats/:peer still answers for it once the engine is back; stopped again at once, it is back at once', async () => {
    const controller = new AbortController();
    const live = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/drained`, source: tone, loop: true, signal: controller.signal }));
    try {
      const p = await packets('drained', 50);
      type Counts = { sessionsStarted: number; sessionsEnded: number; endedBy: Record<string, number> };
      const before = (await get<{ server: Counts }>('/stats')).server;
      const engine = (await get<Health>('/health')).engines[p.engine];
      process.kill(engine.pid, 'SIGTERM');
      const ended = await until('drained to have ended', async () => {
        const e = await statsOf('drained');
        return e.state === 'ended' ? e : undefined;
      });
      expect(ended).toMatchObject({ session: p.session, engine: p.engine, endReason: 'shutdown' });
      await until('its engine to be back', async () => {
        const e = (await get<Health>('/health')).engines[p.engine];
        return e.state === 'up' && e.pid !== engine.pid ? true : undefined;
      }, 60_000);
      // The restarted engine has forgotten it; the front kept what the engine sent when the session ended.
      const after = await statsOf('drained');
      expect(after).toMatchObject({ state: 'ended', engine: p.engine, session: p.session, endReason: 'shutdown' });
      expect(after.rtp.packetsReceived).toBe(ended.rtp.packetsReceived);
      expect(after.recording?.name).toBe(p.recording?.name);
      // Counted as ended, by shutdown: the engine's report before the drain had it started and not
      // ended, and the machine's counts kept that for good.
      const counts = (await get<{ server: Counts }>('/stats')).server;
      expect(counts.endedBy.shutdown ?? 0).toBe((before.endedBy.shutdown ?? 0) + 1);
      expect(counts.sessionsEnded).toBeGreaterThanOrEqual(before.sessionsEnded + 1);
      expect(counts.sessionsStarted).toBe(before.sessionsStarted);

      // Stopped again within seconds of its start: a drained exit is not a crash loop, so no growing delay.
      const restarted = (await get<Health>('/health')).engines[p.engine];
      process.kill(restarted.pid, 'SIGTERM');
      await until('its engine to be back again', async () => {
        const e = (await get<Health>('/health')).engines[p.engine];
        return e.state === 'up' && e.pid !== restarted.pid ? true : undefined;
      }, 60_000);
      const exits = logEntries<{ pid?: number; level?: number; code?: number; restartInMs?: number }>(s.lines, 'engine process exited; its sessions ended; restarting it').filter(
        (e) => e.pid === engine.pid || e.pid === restarted.pid,
      );
      expect(exits.map(({ pid, level, code, restartInMs }) => ({ pid, level, code, restartInMs }))).toEqual([
        { pid: engine.pid, level: 30, code: 0, restartInMs: 500 },
        { pid: restarted.pid, level: 30, code: 0, restartInMs: 500 },
      ]);
    } finally {
      controller.abort();
      await live.catch(() => undefined);
    }
  });

  it('ends a killed engine\'s sessions as engine-exited in /stats/:peer, in the ended event with their recordings, and in /metrics; the WAV covers all the audio on disk', async () => {
    const events = await eventStream(10_000);
    const endedEvents = () => events.sessions().filter((e) => e.type === 'ended' && e.peer === 'crashed');
    const exitedBefore = Number(/^earshot_sessions_ended_total\{engine="front",reason="engine-exited"\} (\d+)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1] ?? 0);
    const controller = new AbortController();
    const crashed = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/crashed`, source: tone, loop: true, signal: controller.signal, skipDelete: true }));
    try {
      // 2 s of audio: the recording has run for longer than the engine's peers report interval (1 s),
      // so the front has heard of it, and its header has been rewritten at least once.
      const c = await packets('crashed', 100);
      const { engines } = await get<Health>('/health');
      process.kill(engines[c.engine].pid, 'SIGKILL');
      const [ended] = await until('the ended event of the killed engine\'s session', async () => (endedEvents().length > 0 ? endedEvents() : undefined));
      // The event, as a session its engine ended: the reason, and the recording it wrote.
      expect(ended).toMatchObject({ session: c.session, reason: 'engine-exited', recordings: [c.recording!.name] });
      // Its statistics stay readable, like an ended session's on its engine.
      const after = await statsOf('crashed');
      expect(after).toMatchObject({ session: c.session, state: 'ended', endReason: 'engine-exited', engine: c.engine, recording: { name: c.recording!.name, state: 'failed', code: 'EARSHOT_ENGINE_EXITED' } });
      expect(after.rtp.packetsReceived).toBeGreaterThan(0);
      // Its histogram died with the engine: asked for, it is null, as for an ended peer without one.
      expect(await get<{ latencyHistogram?: unknown }>('/stats/crashed?histogram')).toMatchObject({ session: c.session, latencyHistogram: null });
      // The recording: a header that covers every byte on disk, and figures that say what the file holds.
      const file = join(s.recordingsDir, c.recording!.name);
      expect(await finalized(file)).toBe(true);
      const listed = (await get<{ recordings: Array<{ name: string; seconds: number; bytes: number }> }>('/recordings')).recordings.find((r) => r.name === c.recording!.name)!;
      expect(listed.bytes).toBe((await stat(file)).size);
      expect(after.recording).toMatchObject({ seconds: listed.seconds, bytes: listed.bytes });
      expect((await readWav(file)).durationSec).toBeCloseTo(listed.seconds, 6);
      // Counted by the front, the process that saw it end.
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^earshot_sessions_ended_total\\{engine="front",reason="engine-exited"\\} ${exitedBefore + 1}$`, 'm'));
      expect(metrics.match(/^# TYPE earshot_sessions_ended_total /gm)).toHaveLength(1);
      // Logged by the front as an engine logs a session's end, with the figures of its last report.
      const logged = logEntries<{ session?: string; engine?: number }>(s.lines, 'session ended').filter((e) => e.session === c.session && e.engine === c.engine);
      expect(logged).toEqual([expect.objectContaining({ reason: 'engine-exited', seconds: expect.any(Number), packets: expect.any(Number), lost: expect.any(Number), lossRatio: expect.any(Number), jitterMs: expect.any(Number) })]);
      expect(logged[0].seconds as number).toBeGreaterThanOrEqual(2);
      await until('the killed engine to be back', async () => ((await get<Health>('/health')).engines.every((e) => e.state === 'up') ? true : undefined), 60_000);
    } finally {
      controller.abort();
      await crashed.catch(() => undefined);
      await events.close();
    }
  });

  it('drains on SIGTERM: the front and both engines exit 0 and a live session\'s recording is finalized', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${s.url}/whip/demo/drain`, source: tone, loop: true, signal: controller.signal, skipDelete: true }));
    const d = await packets('drain', 50);
    const { engines } = await get<Health>('/health');
    const started = Date.now();
    expect(await s.stop()).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    controller.abort();
    await sending.catch(() => undefined);
    for (const e of engines) expect(() => process.kill(e.pid, 0)).toThrow(/ESRCH/);
    expect(await finalized(join(s.recordingsDir, d.recording!.name))).toBe(true);
    const wav = await readWav(join(s.recordingsDir, d.recording!.name));
    expect(wav.durationSec).toBeGreaterThan(0.9);
    expect(s.lines.some((l) => l.includes('"reason":"shutdown"') && l.includes('"peer":"drain"'))).toBe(true);
  });
});

describe('earshot serve --processes 2 --max-sessions 1', () => {
  it('holds --max-sessions for the whole machine, not per engine: a second peer is refused though the other engine has room; a reconnect is not', async () => {
    const one = await startCli(['--processes', '2', '--pipeline', 'raw', '--max-sessions', '1', '--threads', '1']);
    try {
      const offer = (peer: string) => fetch(`${one.url}/whip/demo/${peer}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
      const first = await offer('a');
      expect(first.status, await first.clone().text()).toBe(201);
      await first.text();
      // Each engine's share is ceil(1 / 2) = 1: without the machine's count, the other engine took it.
      await expectProblem(await offer('b'), { status: 503, code: 'EARSHOT_OVERLOADED', retryAfter: '5', detail: /maximum of 1 sessions \(shared out among its 2 engine processes\)/ });
      // And /health says so, for a load balancer: it read ready while the other engine had room.
      const health = (await (await fetch(`${one.url}/health`)).json()) as { ready: boolean; load?: string[] };
      expect(health.ready).toBe(false);
      expect(health.load).toContain('1 sessions on this machine, the most allowed (--max-sessions 1)');
      // The same peer again replaces its session: never held back by the count.
      const again = await offer('a');
      expect(again.status, await again.clone().text()).toBe(201);
      await again.text();
    } finally {
      await one.stop();
      await one.cleanup();
    }
  }, 90_000);
});
