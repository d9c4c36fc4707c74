/**
 * `GET /peers/:peer/audio` upgraded to a WebSocket, against the real server
 * with a peer publishing over loopback WebRTC: refusals come before the
 * upgrade as problem responses (401 without a token, 403 with the publish
 * token, 404 for an unknown peer, 426 without an upgrade, 400 for a handshake
 * that is not valid WebSocket); with the admin
 * token (header, or the browser's subprotocol form) the socket carries the
 * peer's processed audio in the sink's framing — start, 16 kHz PCM in the
 * asked encoding with the tone's pitch, end when the peer leaves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { dominantFrequency } from '../helpers/audio.js';
import { audioSocket, binaryOf } from '../helpers/audio-socket.js';
import { fixturePath } from '../helpers/fixtures.js';
import { listen } from '../helpers/listening.js';
import { rawExchange } from '../helpers/raw-http.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const ADMIN = 'admin-secret-peer-audio';
const PUBLISH = 'publish-secret-peer-audio';

let t: TestServer;
let ws: string;
beforeAll(async () => {
  t = await startServer({
    adminToken: ADMIN,
    token: PUBLISH,
    // Audio sockets and WHEP players share the listener limits.
    maxListenersPerPeer: 2,
    extraPipelines: [
      {
        name: 'listen16k',
        branches: {
          asr: { stages: [{ type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'stats' }] },
          full: { stages: [], sinks: [{ type: 'record', autoStart: false }] },
        },
      },
    ],
  });
  ws = t.url.replace(/^http/, 'ws');
});
afterAll(() => t?.close());

/** What an upgrade attempt got: the HTTP refusal (status, body), or the open socket's messages. */
const connect = (path: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}) => audioSocket(`${ws}${path}`, options);

describe('GET /peers/:peer/audio', () => {
  it('refuses before the upgrade: 401 without a token, 403 with the publish token, 404 for an unknown peer, 426 without an upgrade', async () => {
    const none = await connect('/peers/nobody/audio').outcome;
    expect(none).toMatchObject({ open: false, status: 401, body: { code: 'EARSHOT_UNAUTHORIZED' } });
    expect((none as { type: string }).type).toMatch(/^application\/problem\+json/);
    const publisher = await connect('/peers/nobody/audio', { headers: { authorization: `Bearer ${PUBLISH}` } }).outcome;
    expect(publisher).toMatchObject({ open: false, status: 403, body: { code: 'EARSHOT_FORBIDDEN' } });
    const unknown = await connect('/peers/nobody/audio', { headers: { authorization: `Bearer ${ADMIN}` } }).outcome;
    expect(unknown).toMatchObject({ open: false, status: 404, body: { code: 'EARSHOT_PEER_NOT_FOUND' } });
    // The subprotocol form of the token is checked the same way.
    const wrong = await connect('/peers/nobody/audio', { protocols: ['earshot-audio', `earshot-bearer.${Buffer.from('not-the-token').toString('base64url')}`] }).outcome;
    expect(wrong).toMatchObject({ open: false, status: 401, headers: { 'www-authenticate': 'Bearer realm="earshot", error="invalid_token"' } });
    expect(none).toMatchObject({ headers: { 'www-authenticate': 'Bearer realm="earshot"' } });
    // Only an upgrade's subprotocol carries a token: a plain request with the headers but no
    // "Connection: Upgrade" (not a WebSocket handshake) is refused, on any route.
    const admin = `earshot-bearer.${Buffer.from(ADMIN).toString('base64url')}`;
    for (const [method, path] of [['GET', '/stats'], ['PUT', '/rooms/viaproto'], ['GET', '/peers/nobody/audio']]) {
      const answer = await rawExchange(t.url, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: earshot-audio, ${admin}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
      expect(answer.split('\r\n')[0], `${method} ${path}`).toBe('HTTP/1.1 401 Unauthorized');
    }
    const plain = await fetch(`${t.url}/peers/nobody/audio`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(plain.status).toBe(404);
    expect((await fetch(`${t.url}/peers/nobody/audio`)).status).toBe(401);
  });

  it('refuses, as HTTP, subprotocols offered without "earshot-audio" (a 101 selecting none fails the client with no reason), naming none of the token', async () => {
    const token = `earshot-bearer.${Buffer.from(ADMIN).toString('base64url')}`;
    for (const protocols of [['foo'], [token]]) {
      const refused = await connect('/peers/nobody/audio', { headers: { authorization: `Bearer ${ADMIN}` }, protocols }).outcome;
      expect(refused, protocols.join()).toMatchObject({ open: false, status: 400, body: { code: 'EARSHOT_BAD_REQUEST', detail: expect.stringContaining('offer "earshot-audio"') } });
      expect(JSON.stringify(refused)).not.toContain(Buffer.from(ADMIN).toString('base64url'));
    }
  });

  it('refuses an upgrade to a route without a WebSocket with a problem document, not a socket that opens and closes', async () => {
    for (const path of ['/stats', '/events', '/health']) {
      const refused = await connect(path, { headers: { authorization: `Bearer ${ADMIN}` } }).outcome;
      expect(refused, path).toMatchObject({ open: false, status: 400, body: { code: 'EARSHOT_BAD_REQUEST', detail: `${path} takes no WebSocket upgrade: the WebSocket endpoint is GET /peers/:peer/audio (docs/websocket.md in the earshot repository).` } });
    }
    // A path no route has: as over plain HTTP.
    expect(await connect('/nothing-here').outcome).toMatchObject({ open: false, status: 404, body: { code: 'EARSHOT_ROUTE_NOT_FOUND' } });
  });

  it('streams a live peer: start, 16 kHz PCM in the asked format with the tone, and end when the peer leaves', async () => {
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/demo/speaker?pipeline=listen16k`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal });
    try {
      // Audio is flowing (half a second of it), so the listeners join a running stream.
      await until('the peer to be live', async () => {
        const res = await fetch(`${t.url}/stats/speaker`, { headers: { authorization: `Bearer ${ADMIN}` } });
        return res.ok && ((await res.json()) as { processing: { framesProcessed: number } }).processing.framesProcessed >= 25 ? true : undefined;
      });
      const upgrade = await fetch(`${t.url}/peers/speaker/audio`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(upgrade.status).toBe(426);
      const bad = await connect('/peers/speaker/audio?branch=nope', { headers: { authorization: `Bearer ${ADMIN}` } }).outcome;
      expect(bad).toMatchObject({ open: false, status: 404 });
      // A handshake that is not valid WebSocket is refused with a problem document too (RFC 6455 §4.2.1, §4.4).
      const handshake = (headers: string) => rawExchange(t.url, `GET /peers/speaker/audio HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`);
      for (const [headers, why, versions] of [
        ['Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: too-short\r\n', 'Missing or invalid Sec-WebSocket-Key header', null],
        ['Sec-WebSocket-Version: 12\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n', 'Missing or invalid Sec-WebSocket-Version header', '13, 8'],
      ] as const) {
        const answer = await handshake(headers);
        const [head, body] = answer.split('\r\n\r\n');
        expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
        expect(head).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
        expect(head.match(/\r\nSec-WebSocket-Version: ([^\r]*)/)?.[1] ?? null).toBe(versions);
        expect(JSON.parse(body)).toMatchObject({ code: 'EARSHOT_BAD_REQUEST', status: 400, detail: `The WebSocket handshake is not valid: ${why} (RFC 6455 §4.2.1).` });
      }

      // An operator's tool: the token in the Authorization header, default branch (the first) and format (s16).
      const s16 = connect('/peers/speaker/audio', { headers: { authorization: `Bearer ${ADMIN}` } });
      // A browser: the token as a subprotocol next to "earshot-audio", which the server selects; floats of the same branch.
      const f32 = connect('/peers/speaker/audio?branch=asr&format=f32', { protocols: ['earshot-audio', `earshot-bearer.${Buffer.from(ADMIN).toString('base64url')}`] });
      expect(await s16.outcome).toEqual({ open: true });
      expect(await f32.outcome).toEqual({ open: true });
      expect(f32.socket.protocol).toBe('earshot-audio');
      // Two listen already: a third (a socket or a WHEP player) waits.
      const third = await connect('/peers/speaker/audio', { headers: { authorization: `Bearer ${ADMIN}` } }).outcome;
      expect(third).toMatchObject({ open: false, status: 503, body: { code: 'EARSHOT_LISTENERS_FULL' } });
      const player = await listen(`${t.url}/whep/speaker`, { headers: { authorization: `Bearer ${ADMIN}` } });
      expect([player.status, player.problem?.code]).toEqual([503, 'EARSHOT_LISTENERS_FULL']);
      // About a second of audio each.
      await until('a second of audio on both sockets', () => (binaryOf(s16.messages).length >= 32000 && binaryOf(f32.messages).length >= 64000 ? true : undefined));

      const session = ((await (await fetch(`${t.url}/stats/speaker`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { session: string }).session;
      for (const [c, sampleFormat] of [[s16, 's16'], [f32, 'f32']] as const) {
        const start = c.messages[0] as Record<string, unknown>;
        expect(start).toMatchObject({ type: 'start', session, peer: 'speaker', room: 'demo', pipeline: 'listen16k', branch: 'asr', format: { sampleRate: 16000, channels: 1, sampleFormat, frameMs: 20 } });
        // It joined a running stream: `at` is where its audio starts.
        expect(start.at as number).toBeGreaterThan(0);
      }
      const a = binaryOf(s16.messages);
      const ints = new Int16Array(a.buffer, a.byteOffset, a.length / 2);
      expect(Math.abs(dominantFrequency(Float32Array.from(ints, (v) => v / 32768), 16000) - 1000)).toBeLessThanOrEqual(2);
      const b = binaryOf(f32.messages);
      const floats = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      expect(floats.every((v) => v >= -1 && v <= 1)).toBe(true);
      expect(Math.abs(dominantFrequency(floats, 16000) - 1000)).toBeLessThanOrEqual(2);

      // The peer leaves: each socket gets the end message, then closes.
      controller.abort();
      await sending.catch(() => undefined);
      await Promise.all([s16.closed, f32.closed]);
      for (const c of [s16, f32]) {
        const end = c.messages[c.messages.length - 1] as Record<string, unknown>;
        expect(end).toMatchObject({ type: 'end', reason: 'deleted', droppedFrames: 0 });
        expect(end.frames).toBe(c.messages.filter((m) => Buffer.isBuffer(m)).length);
      }
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('a socket that joins while the peer speaks gets its speech-start right after start, where its audio begins', async () => {
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/demo/talker?pipeline=default`, token: PUBLISH, source: fixturePath('speech-48k.wav'), loop: true, signal: controller.signal });
    const speaking = async () => {
      const res = await fetch(`${t.url}/stats/talker`, { headers: { authorization: `Bearer ${ADMIN}` } });
      return res.ok ? ((await res.json()) as { audio: { speaking: boolean | null } }).audio.speaking : null;
    };
    try {
      // Join right as a turn starts (silent, then speaking), so that it is still on when the socket opens.
      let before: boolean | null = null;
      await until('a turn to start', async () => {
        const now = await speaking();
        const started = before === false && now === true;
        before = now;
        return started ? true : undefined;
      }, 20_000);
      const c = connect('/peers/talker/audio', { headers: { authorization: `Bearer ${ADMIN}` } });
      expect(await c.outcome).toEqual({ open: true });
      await until('a few frames', () => (c.messages.filter((m) => Buffer.isBuffer(m)).length >= 5 ? true : undefined));
      const [start, next] = c.messages as Array<Record<string, unknown>>;
      expect(start).toMatchObject({ type: 'start', branch: 'main' });
      // Not 60 ms of audio later, when a tracker of its own would have decided it.
      expect(next).toEqual({ type: 'speech-start', at: start.at });
      c.socket.close();
      await c.closed;
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('ends a socket whose client answers no ping within --listener-timeout, and frees its place; one that answers stays', async () => {
    const s = await startServer({ adminToken: ADMIN, token: PUBLISH, maxListenersPerPeer: 2, listenerTimeoutMs: 1000 });
    const controller = new AbortController();
    const sending = sendAudio({ url: `${s.url}/whip/demo/pinged`, token: PUBLISH, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal }).catch(() => {});
    try {
      const url = `${s.url.replace(/^http/, 'ws')}/peers/pinged/audio`;
      const headers = { authorization: `Bearer ${ADMIN}` };
      await until('the peer to be live', async () => {
        const res = await fetch(`${s.url}/stats/pinged`, { headers });
        return res.ok && ((await res.json()) as { processing: { framesProcessed: number } }).processing.framesProcessed >= 25 ? true : undefined;
      });
      const gone = audioSocket(url, { headers, autoPong: false });
      const alive = audioSocket(url, { headers });
      expect(await gone.outcome).toEqual({ open: true });
      expect(await alive.outcome).toEqual({ open: true });
      const opened = performance.now();
      await Promise.race([gone.closed, new Promise((r) => setTimeout(r, 5000))]);
      const after = performance.now() - opened;
      // Pinged every 0.5 s: ended once a half-period passed unanswered, 0.5–1 s after it opened (and scheduling slack).
      expect(after).toBeGreaterThan(400);
      expect(after).toBeLessThan(5000);
      // Its place is free again: a third socket fits beside the one that answers.
      const third = audioSocket(url, { headers });
      expect(await third.outcome).toEqual({ open: true });
      await new Promise((r) => setTimeout(r, 1500));
      expect(alive.socket.readyState).toBe(alive.socket.OPEN);
      expect(alive.messages.filter(Buffer.isBuffer).length).toBeGreaterThan(50);
      alive.socket.close();
      third.socket.close();
    } finally {
      controller.abort();
      await sending;
      await s.close();
    }
  });
});
