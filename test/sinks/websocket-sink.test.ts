/**
 * The `websocket` sink over real loopback WebRTC against a real WebSocket
 * server (`ws`) started here: `sendAudio` publishes a fixture, the pipeline
 * resamples to 16 kHz and streams it; the server sees the start message, the
 * PCM of the whole send (duration and pitch intact), the end message and the
 * Authorization header from the environment, which appears nowhere in
 * statistics, events or logs. Then the faults: a server that is down at first
 * (frames wait, reconnects counted), one that drops the connection (a new
 * start with `resumedAt`), and one that never reads (bounded queue, drops
 * counted, another stream's recording complete).
 */
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { sendAudio } from '../../src/client/audio-sender.js';
import type { PeerStatsSnapshot, ProcessorEvent } from '../../src/index.js';
import { dominantFrequency } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectComplete, FAST, mayBeEnded } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const TOKEN = `asr-secret-${Math.random().toString(36).slice(2)}`;
/** One 20 ms frame: the tolerance on durations. */
const FRAME_SECONDS = 0.02;

interface Connection {
  url: string;
  headers: IncomingHttpHeaders;
  texts: Array<Record<string, unknown>>;
  /** Every message in order: parsed JSON for text, the bytes for binary. */
  messages: Array<Record<string, unknown> | Buffer>;
  socket: WebSocket;
  closed: Promise<void>;
}

/** A WebSocket server on 127.0.0.1 that keeps what each connection sent (or, with `read: false`, never reads). */
async function asrServer(options: { port?: number; read?: boolean; onMessage?(c: Connection): void } = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: options.port ?? 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const connections: Connection[] = [];
  wss.on('connection', (socket, req) => {
    let closed!: () => void;
    const c: Connection = { url: req.url ?? '', headers: req.headers, texts: [], messages: [], socket, closed: new Promise((r) => (closed = r)) };
    connections.push(c);
    socket.on('close', () => closed());
    if (options.read === false) {
      // Stop reading at the TCP level: the kernel buffers fill, then the sender's socket backs up.
      (socket as unknown as { _socket: { pause(): void } })._socket.pause();
      return;
    }
    socket.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (isBinary) c.messages.push(Buffer.from(buf));
      else {
        const json = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
        c.texts.push(json);
        c.messages.push(json);
      }
      options.onMessage?.(c);
    });
  });
  return {
    port: (wss.address() as AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** The server's first connection, once it has closed. */
function firstConnectionClosed(server: { connections: Connection[] }, what: string, timeoutMs?: number): Promise<Connection> {
  return until(what, async () => {
    const conn = server.connections[0];
    if (!conn) return undefined;
    await conn.closed;
    return conn;
  }, timeoutMs);
}

/** A loopback port nothing listens on (for a server that comes up later). */
async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

function samplesOf(c: Connection): Int16Array {
  const bin = c.messages.filter((m): m is Buffer => Buffer.isBuffer(m));
  const all = Buffer.concat(bin);
  return new Int16Array(all.buffer, all.byteOffset, all.length / 2);
}

function toFloat(s: Int16Array): Float32Array {
  return Float32Array.from(s, (v) => v / 32768);
}

const logLines: string[] = [];
const events: ProcessorEvent[] = [];
let t: TestServer;
let asr: Awaited<ReturnType<typeof asrServer>>;
let dropper: Awaited<ReturnType<typeof asrServer>>;
let stuck: Awaited<ReturnType<typeof asrServer>>;
let latePort: number;
/** Nothing listens here until a test starts a server, after the sink's first attempt failed. */
let lastChancePort: number;
/** Nothing ever listens here. */
let deadPort: number;

beforeAll(async () => {
  process.env.EARSHOT_SINK_TEST_ASR_TOKEN = TOKEN;
  asr = await asrServer();
  // Closes the first connection after 25 frames: the sink must reconnect and resume.
  let closedOne = false;
  dropper = await asrServer({
    onMessage: (c) => {
      if (!closedOne && c.messages.filter((m) => Buffer.isBuffer(m)).length === 25) {
        closedOne = true;
        c.socket.close(1012, 'restarting');
      }
    },
  });
  stuck = await asrServer({ read: false });
  latePort = await freePort();
  lastChancePort = await freePort();
  deadPort = await freePort();
  const sink = (port: number, extra: Record<string, unknown> = {}) => ({ type: 'websocket', url: `ws://127.0.0.1:${port}/v1/listen?model=test`, ...extra });
  const resample16k = [{ type: 'resample', sampleRate: 16000 }];
  // Every line the server logs, at debug: none may carry the token.
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  t = await startServer({
    logger: pino({ level: 'debug' }, destination),
    extraPipelines: [
      { name: 'asr16', stages: resample16k, sinks: [sink(asr.port, { headers: { Authorization: 'Bearer ${EARSHOT_SINK_TEST_ASR_TOKEN}', 'X-Client': 'earshot-test' } }), { type: 'stats' }] },
      { name: 'asr-vad', stages: [{ type: 'denoise' }, ...resample16k], sinks: [sink(asr.port), { type: 'stats' }] },
      { name: 'asr-late', stages: resample16k, sinks: [sink(latePort, { reconnectDelayMs: 100, reconnectMaxDelayMs: 200 })] },
      { name: 'asr-drop', stages: resample16k, sinks: [sink(dropper.port, { reconnectDelayMs: 50 })] },
      // 48 kHz stereo floats (384 kB/s) into a server that never reads: the kernel's buffers (a few MB on loopback) fill within seconds.
      { name: 'asr-stuck', channels: 2, stages: [], sinks: [sink(stuck.port, { format: 'f32', queueFrames: 25 })] },
      { name: 'rec', stages: [], sinks: [{ type: 'record' }] },
      // A backoff longer than any send here: only the attempt the session's end makes can reach the server.
      { name: 'asr-last-chance', stages: resample16k, sinks: [sink(lastChancePort, { reconnectDelayMs: 600_000, reconnectMaxDelayMs: 600_000 })] },
      { name: 'asr-dead', stages: resample16k, sinks: [sink(deadPort, { reconnectDelayMs: 100, reconnectMaxDelayMs: 200 })] },
      { name: 'asr-env', stages: [], sinks: [sink(asr.port, { headers: { Authorization: 'Bearer ${EARSHOT_SINK_TEST_NOT_SET}' } })] },
    ],
  });
  t.server.events$.subscribe((e) => events.push(e));
});
afterAll(async () => {
  await t?.close();
  await Promise.all([asr?.close(), dropper?.close(), stuck?.close()]);
  delete process.env.EARSHOT_SINK_TEST_ASR_TOKEN;
});

async function statsOf(peer: string): Promise<PeerStatsSnapshot> {
  const res = await fetch(`${t.url}/stats/${peer}`);
  expect(res.status).toBe(200);
  return (await res.json()) as PeerStatsSnapshot;
}

describe('websocket sink', () => {
  it('streams the 16 kHz s16 audio of the whole send: start, PCM of the sent duration and pitch, end; the token reaches the server and nothing else', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/tone?pipeline=asr16`, source: fixturePath('tone-1k-48k.wav'), speed: FAST });
    await expectComplete(t.url, 'tone', sent);
    const c = await until('the sink to close its connection', async () => {
      const conn = asr.connections.find((x) => x.texts[0]?.peer === 'tone');
      if (!conn) return undefined;
      await conn.closed;
      return conn;
    });
    expect(asr.connections.filter((x) => x.texts[0]?.peer === 'tone')).toHaveLength(1);
    expect(c.url).toBe('/v1/listen?model=test');
    expect(c.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(c.headers['x-client']).toBe('earshot-test');

    const stats = await statsOf('tone');
    const [start] = c.texts;
    expect(start).toEqual({
      type: 'start',
      session: stats.session,
      peer: 'tone',
      room: 'demo',
      pipeline: 'asr16',
      branch: 'main',
      format: { sampleRate: 16000, channels: 1, sampleFormat: 's16', frameMs: 20 },
      at: 0,
    });
    expect(c.messages[0]).toBe(start);
    const binary = c.messages.filter((m) => Buffer.isBuffer(m));
    // One 20 ms frame at 16 kHz, 16-bit; the resampler's delay (48 samples) cut from the first and sent last.
    expect(binary[0].length).toBe((320 - 48) * 2);
    for (const b of binary.slice(1, -1)) expect(b.length).toBe(320 * 2);
    expect(binary.at(-1)!.length).toBe(48 * 2);
    const pcm = samplesOf(c);
    expect(Math.abs(pcm.length / 16000 - sent.mediaSeconds)).toBeLessThanOrEqual(2 * FRAME_SECONDS);
    expect(Math.abs(dominantFrequency(toFloat(pcm), 16000) - 1000)).toBeLessThanOrEqual(2);

    const end = c.messages[c.messages.length - 1];
    expect(end).toEqual({ type: 'end', reason: 'deleted', frames: binary.length, sentFrames: binary.length, droppedFrames: 0 });
    expect(stats.websockets).toEqual([
      expect.objectContaining({ branch: 'main', url: 'ws://127.0.0.1:' + asr.port + '/v1/listen', sampleFormat: 's16', frames: binary.length, sentFrames: binary.length, droppedFrames: 0, reconnects: 0, connections: 1 }),
    ]);
    // The connection has closed: the ended peer's figures say so (they read `closing` for ever before).
    const closed = await until('the ended peer to show its sink closed', async () => {
      const w = (await statsOf('tone')).websockets[0];
      return w?.state === 'closed' ? w : undefined;
    });
    expect(closed).toMatchObject({ sentFrames: binary.length, queuedFrames: 0 });

    // The secret went into the connection request only.
    const everything = [
      await (await fetch(`${t.url}/stats`)).text(),
      await (await fetch(`${t.url}/stats/tone`)).text(),
      await (await fetch(`${t.url}/metrics`)).text(),
      JSON.stringify(events),
      ...logLines,
    ].join('\n');
    expect(everything).toContain('/v1/listen');
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain('model=test');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(Number(/^earshot_websocket_frames_sent_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(binary.length);
  });

  it('speech events from the denoise stage come in order with the audio, and agree with the statistics', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/talker?pipeline=asr-vad`, source: fixturePath('speech-48k.wav'), speed: FAST });
    await expectComplete(t.url, 'talker', sent);
    const c = await until('the talker connection to close', async () => {
      const conn = asr.connections.find((x) => x.texts[0]?.peer === 'talker');
      if (!conn) return undefined;
      await conn.closed;
      return conn;
    });
    const stats = await statsOf('talker');
    // Where each event sits in the stream: media time of the audio sent before it.
    let seconds = 0;
    const speech: Array<{ type: string; at: number; position: number }> = [];
    for (const m of c.messages) {
      if (Buffer.isBuffer(m)) seconds += m.length / 2 / 16000;
      else if (m.type === 'speech-start' || m.type === 'speech-end') speech.push({ type: m.type, at: m.at as number, position: seconds });
    }
    expect(speech.length).toBeGreaterThanOrEqual(2);
    speech.forEach((e, i) => {
      expect(e.type).toBe(i % 2 === 0 ? 'speech-start' : 'speech-end');
      // Sent just before the frame that decided it, which starts at `at`.
      expect(Math.abs(e.position - e.at)).toBeLessThanOrEqual(1e-6);
      if (i > 0) expect(e.at).toBeGreaterThan(speech[i - 1].at);
    });
    // The same debounced decision as the statistics' `speaking`.
    expect(speech.filter((e) => e.type === 'speech-start')).toHaveLength(stats.audio.speechSegments);
    expect(seconds).toBeCloseTo(sent.mediaSeconds, 1);
  });

  it('a server that is down at first: frames wait in the queue, the sink retries (counted) and then delivers the whole send', async () => {
    const controller = new AbortController();
    // Real time, so the stream is still running when the server comes up.
    const sending = sendAudio({ url: `${t.url}/whip/demo/late?pipeline=asr-late`, source: fixturePath('tone-1k-48k.wav'), signal: controller.signal });
    const waiting = await until('the sink to retry', async () => {
      const s = await statsOf('late');
      return s.websockets[0]?.reconnects >= 1 ? s.websockets[0] : undefined;
    });
    expect(waiting.connections).toBe(0);
    expect(waiting.lastError).toMatch(/ECONNREFUSED/);
    const late = await asrServer({ port: latePort });
    try {
      const sent = await sending;
      const c = await firstConnectionClosed(late, 'the late connection to close');
      expect(c.texts[0]).toMatchObject({ type: 'start', peer: 'late', at: 0, format: { sampleRate: 16000, sampleFormat: 's16' } });
      expect(c.texts[0]).not.toHaveProperty('resumedAt'); // its first connection: nothing was sent before
      const pcm = samplesOf(c);
      expect(Math.abs(pcm.length / 16000 - sent.mediaSeconds)).toBeLessThanOrEqual(2 * FRAME_SECONDS);
      expect(c.texts[c.texts.length - 1]).toMatchObject({ type: 'end', droppedFrames: 0 });
      const s = (await statsOf('late')).websockets[0];
      expect(s).toMatchObject({ droppedFrames: 0, connections: 1 });
      expect(s.reconnects).toBeGreaterThanOrEqual(1);
      const mine = events.filter((e) => e.peerId === 'late').map((e) => e.event);
      expect(mine).toContain('websocket-unavailable');
      expect(mine).toContain('websocket-reconnected');
    } finally {
      controller.abort();
      await late.close();
    }
  });

  it('a connection the server drops: the sink reconnects with a new start whose resumedAt is where the audio resumes', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/dropped?pipeline=asr-drop`, source: fixturePath('tone-1k-48k.wav'), speed: 2 });
    const [first, second] = await until('two connections, both closed', async () => {
      const conns = dropper.connections.filter((x) => x.texts[0]?.peer === 'dropped');
      if (conns.length < 2) return undefined;
      await Promise.all(conns.map((x) => x.closed));
      return conns;
    });
    const firstSamples = samplesOf(first).length;
    // 25 frames of 20 ms, the first short by the resampler's delay (48 samples).
    expect(firstSamples).toBeGreaterThanOrEqual(25 * 320 - 48);
    expect(first.texts[0]).toMatchObject({ type: 'start', at: 0 });
    expect(first.texts[0]).not.toHaveProperty('resumedAt');
    const start2 = second.texts[0];
    expect(start2).toMatchObject({ type: 'start', peer: 'dropped', session: first.texts[0].session });
    expect(start2.resumedAt).toBe(start2.at);
    // It resumes after what the first connection got (frames in flight when it closed are lost, nothing else) ...
    expect(start2.resumedAt as number).toBeGreaterThanOrEqual(firstSamples / 16000 - 1e-9);
    // ... and the audio from there runs to the end of the send.
    const endAt = (start2.resumedAt as number) + samplesOf(second).length / 16000;
    expect(Math.abs(endAt - sent.mediaSeconds)).toBeLessThanOrEqual(2 * FRAME_SECONDS);
    expect(second.texts[second.texts.length - 1]).toMatchObject({ type: 'end', reason: 'deleted', droppedFrames: 0 });
    const s = (await statsOf('dropped')).websockets[0];
    expect(s).toMatchObject({ connections: 2, reconnects: 1, droppedFrames: 0 });
  });

  it('a server that never reads: the queue stays bounded, the oldest frames are dropped and counted, and another stream is recorded completely', async () => {
    const [stuckSent, otherSent] = await Promise.all([
      sendAudio({ url: `${t.url}/whip/demo/stuck?pipeline=asr-stuck`, source: fixturePath('tone-1k-48k.wav'), loop: true, seconds: 24, speed: 6 }),
      sendAudio({ url: `${t.url}/whip/demo/other?pipeline=rec`, source: fixturePath('tone-1k-48k.wav'), loop: true, seconds: 24, speed: 6 }),
    ]);
    // The stuck stream itself lost nothing before its sinks, and its session ended without waiting for the socket.
    await expectComplete(t.url, 'stuck', stuckSent);
    const s = await until('the stuck session to end', async () => {
      const st = await statsOf('stuck');
      return st.state === 'ended' ? st : undefined;
    });
    const w = s.websockets[0];
    expect(w.frames).toBe(Math.round(stuckSent.mediaSeconds / 0.02));
    expect(w.droppedFrames).toBeGreaterThan(0);
    expect(w.queuedFrames).toBeLessThanOrEqual(25);
    expect(w.sentFrames + w.droppedFrames + w.queuedFrames).toBe(w.frames);
    expect(events.filter((e) => e.peerId === 'stuck' && e.event === 'websocket-dropping')).toHaveLength(1);
    expect(stuck.connections).toHaveLength(1);

    const other = await expectComplete(t.url, 'other', otherSent);
    expect(Math.abs(other.recordings[0].seconds - otherSent.mediaSeconds)).toBeLessThanOrEqual(FRAME_SECONDS);
  });

  it('a sink waiting out its backoff when the session ends tries once more at once, and delivers the queue and the end message', async () => {
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/demo/last?pipeline=asr-last-chance`, source: fixturePath('tone-1k-48k.wav'), seconds: 1.5, signal: controller.signal });
    await until('the first attempt to fail', async () => {
      const w = (await statsOf('last')).websockets[0];
      return w?.state === 'waiting' ? w : undefined;
    });
    const late = await asrServer({ port: lastChancePort });
    try {
      const sent = await sending;
      const c = await firstConnectionClosed(late, 'the connection made at the end to close', 10_000);
      expect(c.texts[0]).toMatchObject({ type: 'start', peer: 'last', at: 0 });
      expect(Math.abs(samplesOf(c).length / 16000 - sent.mediaSeconds)).toBeLessThanOrEqual(2 * FRAME_SECONDS);
      expect(c.texts[c.texts.length - 1]).toMatchObject({ type: 'end', reason: 'deleted', droppedFrames: 0 });
      const w = await until('the sink to close', async () => {
        const x = (await statsOf('last')).websockets[0];
        return x.state === 'closed' ? x : undefined;
      });
      expect(w).toMatchObject({ connections: 1, reconnects: 1, droppedFrames: 0, queuedFrames: 0 });
      expect(w.sentFrames).toBe(w.frames);
    } finally {
      controller.abort();
      await late.close();
    }
  });

  it('audio that never reached the server by the end of the session is counted as dropped, not left uncounted in the queue', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/dead?pipeline=asr-dead`, source: fixturePath('tone-1k-48k.wav'), seconds: 1 });
    const w = await until('the sink to close', async () => {
      const x = (await statsOf('dead')).websockets[0];
      return x?.state === 'closed' ? x : undefined;
    }, 10_000);
    // Every frame of the send (the resampler's tail may add a short one).
    expect(w.frames).toBeGreaterThanOrEqual(Math.round(sent.mediaSeconds / 0.02));
    expect(w).toMatchObject({ sentFrames: 0, queuedFrames: 0, connections: 0 });
    expect(w.droppedFrames).toBe(w.frames);
    expect(w.lastError).toMatch(/ECONNREFUSED/);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(Number(/^earshot_websocket_frames_dropped_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(w.frames);
  });

  it('a header naming an environment variable that is not set refuses the session before it starts (EARSHOT_SINK_ENV_MISSING)', async () => {
    const err = await sendAudio({ url: `${t.url}/whip/demo/noenv?pipeline=asr-env`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.2 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/EARSHOT_SINK_ENV_MISSING|EARSHOT_SINK_TEST_NOT_SET/);
    // The server's problem document comes whole with the client's error: what to set, and where it is named.
    expect(err).toMatchObject({ code: 'EARSHOT_SINK_ENV_MISSING', status: 500, problem: { variable: 'EARSHOT_SINK_TEST_NOT_SET', path: '/sinks/0/headers/Authorization' } });
    expect((await fetch(`${t.url}/stats/noenv`)).status).toBe(404);
  });

  it('server shutdown: the sink sends its end message (reason "shutdown") before the server is closed', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${t.url}/whip/demo/lastone?pipeline=asr16`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal, skipDelete: true }));
    try {
      const c = await until('audio from the last stream', () => {
        const conn = asr.connections.find((x) => x.texts[0]?.peer === 'lastone');
        return conn && conn.messages.length > 10 ? conn : undefined;
      });
      // The last test: it closes the server (afterAll's close then does nothing).
      await t.close();
      await c.closed;
      expect(c.messages[c.messages.length - 1]).toMatchObject({ type: 'end', reason: 'shutdown', droppedFrames: 0 });
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });
});
