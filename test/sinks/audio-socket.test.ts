/**
 * The WebSocket framing shared by the `websocket` sink and
 * `GET /peers/:peer/audio`, over a real loopback WebSocket: the wire
 * encodings (s16 as given or quantized, f32 from 16-bit frames), frames
 * without floats skipped by an f32 stream, and the bounded queue while no
 * socket is attached — the oldest audio dropped and counted (with the speech
 * events queued before it), `start.at` where the kept audio begins. A long
 * pause, delivered at once, waits as its length and arrives whole.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { AudioFrame } from '../../src/media/frames.js';
import { sharedZerosF32, sharedZerosS16 } from '../../src/media/shared-zeros.js';
import { AudioSocketStream, closeWhenDrained } from '../../src/sinks/audio-socket.js';

let wss: WebSocketServer;
let url: string;
beforeAll(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => wss.close(() => r())));

/** A connected pair: earshot's side (the client socket here) and everything the server side received, until it closes. */
async function pair() {
  const received: Array<Record<string, unknown> | Buffer> = [];
  // In an object: a promise resolved with a promise would wait for it.
  const serverSide = new Promise<{ closed: Promise<void> }>((resolve) =>
    wss.once('connection', (s) => {
      s.on('message', (data, isBinary) => received.push(isBinary ? Buffer.from(data as Buffer) : (JSON.parse(String(data)) as Record<string, unknown>)));
      resolve({ closed: new Promise((closed) => s.once('close', () => closed())) });
    }),
  );
  const socket = new WebSocket(url);
  await new Promise((r) => socket.once('open', r));
  return { socket, received, closed: (await serverSide).closed };
}

/** Attaches `stream` to a new connection, ends it with `reason`, and returns what the server side received once it closed. */
async function deliverRest(stream: AudioSocketStream, reason: string): Promise<Array<Record<string, unknown> | Buffer>> {
  const c = await pair();
  stream.attach(c.socket);
  stream.end(reason);
  await closeWhenDrained(c.socket, stream);
  await c.closed;
  return c.received;
}

/** Each message as the test reads it: a binary one by its first sample (the frame's number), a text one by its type. */
const kindsOf = (received: Array<Record<string, unknown> | Buffer>) => received.map((m) => (Buffer.isBuffer(m) ? new Int16Array(Uint8Array.from(m).buffer)[0] : m.type));

const identity = { session: 's1', peer: 'alice', room: 'demo', pipeline: 'p', branch: 'main', expected: { sampleRate: 16000, channels: 1 } };

function frame(position: number, data: Float32Array | Int16Array, extra: Partial<AudioFrame> = {}): AudioFrame {
  return { position, sampleRate: 16000, channels: 1, sampleFormat: data instanceof Int16Array ? 's16' : 'f32', data, rms: 0, peak: 0, arrival: 0, ...extra };
}

describe('AudioSocketStream', () => {
  it('sends s16 as given or quantized, f32 from 16-bit frames, and skips frames without floats in f32', async () => {
    const a = await pair();
    const s16 = new AudioSocketStream({ ...identity, sampleFormat: 's16' });
    s16.attach(a.socket);
    s16.write(frame(0, Int16Array.from({ length: 320 }, (_, i) => i - 160)), undefined);
    s16.write(frame(320, new Float32Array(320).fill(0.5)), undefined);
    s16.end('deleted');
    await closeWhenDrained(a.socket, s16);
    await a.closed;
    const [start, first, second, end] = a.received;
    const { expected: _, ...who } = identity;
    expect(start).toEqual({ type: 'start', ...who, format: { sampleRate: 16000, channels: 1, sampleFormat: 's16', frameMs: 20 }, at: 0 });
    expect(Array.from(new Int16Array(Uint8Array.from(first as Buffer).buffer))).toEqual(Array.from({ length: 320 }, (_, i) => i - 160));
    expect(new Set(new Int16Array(Uint8Array.from(second as Buffer).buffer))).toEqual(new Set([Math.round(0.5 * 32767)]));
    expect(end).toEqual({ type: 'end', reason: 'deleted', frames: 2, sentFrames: 2, droppedFrames: 0 });

    const b = await pair();
    const f32 = new AudioSocketStream({ ...identity, sampleFormat: 'f32' });
    f32.attach(b.socket);
    f32.write(frame(0, new Int16Array(320).fill(-16384)), undefined);
    f32.write(frame(320, new Int16Array(320).fill(1)), undefined, false); // its floats were left out: not for an f32 reader
    f32.end('deleted');
    await closeWhenDrained(b.socket, f32);
    await b.closed;
    expect(b.received).toHaveLength(3);
    expect(new Set(new Float32Array(Uint8Array.from(b.received[1] as Buffer).buffer))).toEqual(new Set([-0.5]));
    expect(b.received[2]).toMatchObject({ type: 'end', frames: 1 });
  });

  it('an f32 stream counts the speech of a frame it skips (its floats left out): its turn starts at the frame an s16 stream\'s does', async () => {
    const starts: unknown[] = [];
    for (const sampleFormat of ['s16', 'f32'] as const) {
      const s = new AudioSocketStream({ ...identity, sampleFormat });
      // Speech from frame 0; the first two came without floats (an f32 reader joined mid-batch).
      for (let k = 0; k < 6; k++) s.write(frame(k * 320, new Int16Array(320).fill(1000), { speech: true }), undefined, k >= 2);
      const received = await deliverRest(s, 'deleted');
      starts.push((received.find((m) => !Buffer.isBuffer(m) && m.type === 'speech-start') as { at: number } | undefined)?.at);
    }
    // The third speech frame in a row (frame 2, at 40 ms) starts the turn for both; the f32 one started it at frame 4.
    expect(starts).toEqual([0.04, 0.04]);
    // Decided on a frame the f32 reader skipped: said with the first audio it gets (frame 4), not before its start.
    const late = new AudioSocketStream({ ...identity, sampleFormat: 'f32' });
    for (let k = 0; k < 8; k++) late.write(frame(k * 320, new Int16Array(320).fill(1000), { speech: true }), undefined, k >= 4);
    const received = (await deliverRest(late, 'deleted')).filter((m) => !Buffer.isBuffer(m)) as Array<{ type: string; at?: number }>;
    expect(received.map((m) => [m.type, m.at])).toEqual([['start', 0.08], ['speech-start', 0.08], ['speech-end', 0.16], ['end', undefined]]);
  });

  it('while no socket is attached, keeps the newest frames (events queued before a dropped frame go with it); start.at is where the kept audio begins', async () => {
    let dropping = 0;
    const s = new AudioSocketStream({ ...identity, sampleFormat: 's16', queueFrames: 4, onDropping: () => dropping++ });
    // Speech from frame 6 on: its start (decided at frame 8) is queued before frame 8, which is kept.
    for (let k = 0; k < 10; k++) s.write(frame(k * 320, new Int16Array(320).fill(k), { vad: k >= 6 ? 0.9 : 0.1, speech: k >= 6 }), undefined);
    expect(s.counters).toMatchObject({ frames: 10, droppedFrames: 6, queuedFrames: 4, sentFrames: 0 });
    expect(dropping).toBe(1);
    const received = await deliverRest(s, 'shutdown');
    // Still speaking when the stream ends: the turn closes where the audio does.
    expect(kindsOf(received)).toEqual(['start', 6, 7, 'speech-start', 8, 9, 'speech-end', 'end']);
    expect(received[0]).toMatchObject({ at: 0.12 });
    expect(received[3]).toEqual({ type: 'speech-start', at: 0.16 });
    expect(received[6]).toEqual({ type: 'speech-end', at: 0.2 });
    expect(received[7]).toEqual({ type: 'end', reason: 'shutdown', frames: 10, sentFrames: 4, droppedFrames: 6 });

    // Speech in frames 0–2: its start (queued before frame 2) is dropped with that frame. The talker still
    // counts as speaking (it takes 15 quiet frames to stop), so the connection hears it start where its audio does.
    const early = new AudioSocketStream({ ...identity, sampleFormat: 's16', queueFrames: 4 });
    for (let k = 0; k < 10; k++) early.write(frame(k * 320, new Int16Array(320).fill(k), { vad: k < 3 ? 0.9 : 0.1, speech: k < 3 }), undefined);
    const fromEarly = await deliverRest(early, 'shutdown');
    expect(kindsOf(fromEarly)).toEqual(['start', 'speech-start', 6, 7, 8, 9, 'speech-end', 'end']);
    expect(fromEarly[1]).toEqual({ type: 'speech-start', at: 0.12 });
  });

  it('a connection that starts mid-speech hears the speech start where its audio does, so that its speech-end has a pair', async () => {
    const s = new AudioSocketStream({ ...identity, sampleFormat: 's16' });
    const a = await pair();
    s.attach(a.socket);
    // Speech from frame 2 on: its start goes out on the first connection, which then closes.
    for (let k = 0; k < 6; k++) s.write(frame(k * 320, new Int16Array(320).fill(k), { vad: k >= 2 ? 0.9 : 0.1, speech: k >= 2 }), undefined);
    a.socket.close();
    await a.closed;
    s.detach();
    expect(a.received.filter((m) => !Buffer.isBuffer(m)).map((m) => (m as { type: string }).type)).toEqual(['start', 'speech-start']);
    // The talker goes on, then stops (15 quiet frames end a turn), while no socket is attached.
    for (let k = 6; k < 30; k++) s.write(frame(k * 320, new Int16Array(320).fill(k), { vad: k < 9 ? 0.9 : 0.1, speech: k < 9 }), undefined);
    const texts = (await deliverRest(s, 'deleted')).filter((m): m is Record<string, unknown> => !Buffer.isBuffer(m));
    expect(texts.map((m) => m.type)).toEqual(['start', 'speech-start', 'speech-end', 'end']);
    expect(texts[0]).toMatchObject({ at: 0.12, resumedAt: 0.12 });
    expect(texts[1]).toEqual({ type: 'speech-start', at: 0.12 });
  });

  it('a stream that ends mid-speech closes the turn where its audio ends, before `end`', async () => {
    const s = new AudioSocketStream({ ...identity, sampleFormat: 's16' });
    // Speech from frame 1 on, to the last of 8 frames.
    for (let k = 0; k < 8; k++) s.write(frame(k * 320, new Int16Array(320).fill(k), { vad: k >= 1 ? 0.9 : 0.1, speech: k >= 1 }), undefined);
    const received = await deliverRest(s, 'deleted');
    expect(kindsOf(received)).toEqual(['start', 0, 1, 2, 'speech-start', 3, 4, 5, 6, 7, 'speech-end', 'end']);
    expect(received[10]).toEqual({ type: 'speech-end', at: 0.16 });
    // Not speaking at the end: no extra event.
    const quiet = new AudioSocketStream({ ...identity, sampleFormat: 's16' });
    for (let k = 0; k < 3; k++) quiet.write(frame(k * 320, new Int16Array(320).fill(k), { vad: 0.1, speech: false }), undefined);
    expect(kindsOf(await deliverRest(quiet, 'deleted'))).toEqual(['start', 0, 1, 2, 'end']);
  });

  it('a listener that joins while the talker speaks (`speaking`) hears the speech start with its first audio, and its end', async () => {
    const s = new AudioSocketStream({ ...identity, sampleFormat: 's16', speaking: { speaking: true, run: 0 } });
    const c = await pair();
    s.attach(c.socket);
    // The listener's first frames are speech (from frame 50 of the stream), then 15 quiet ones end the turn.
    for (let k = 50; k < 70; k++) s.write(frame(k * 320, new Int16Array(320).fill(k), { vad: k < 53 ? 0.9 : 0.1, speech: k < 53 }), undefined);
    s.end('deleted');
    await closeWhenDrained(c.socket, s);
    await c.closed;
    const texts = c.received.filter((m): m is Record<string, unknown> => !Buffer.isBuffer(m));
    expect(texts.map((m) => m.type)).toEqual(['start', 'speech-start', 'speech-end', 'end']);
    expect(texts[0]).toMatchObject({ at: 1 });
    expect(texts[1]).toEqual({ type: 'speech-start', at: 1 });
    // 15 quiet frames after frame 52: the turn ends at frame 67.
    expect(texts[2]).toEqual({ type: 'speech-end', at: (67 * 320) / 16000 });
    expect(kindsOf(c.received)[1]).toBe('speech-start');
    // Joined 10 quiet frames into the branch's hangover: the turn ends 5 frames later, where the branch's does.
    const late = new AudioSocketStream({ ...identity, sampleFormat: 's16', speaking: { speaking: true, run: 10 } });
    for (let k = 0; k < 8; k++) late.write(frame(k * 320, new Int16Array(320).fill(k), { vad: 0.1, speech: false }), undefined);
    expect(kindsOf(await deliverRest(late, 'deleted'))).toEqual(['start', 'speech-start', 0, 1, 2, 3, 'speech-end', 4, 5, 6, 7, 'end']);
  });

  it('sends a 20-minute pause whole, however it arrives: every sample of it, nothing dropped, the sound after it at its place', async () => {
    // As a worker delivers a pause: in 1 s frames of shared zeros, all at once (1,200 frames, past the queue's 250).
    const a = await pair();
    const s = new AudioSocketStream({ ...identity, sampleFormat: 's16' });
    s.attach(a.socket);
    const before = Int16Array.from({ length: 320 }, (_, i) => i + 1);
    const after = Int16Array.from({ length: 320 }, (_, i) => -i - 1);
    s.write(frame(0, before, { peak: 1 }), undefined);
    for (let k = 0; k < 1200; k++) s.write(frame(320 + k * 16000, sharedZerosF32(16000)), sharedZerosS16(16000));
    const resume = 320 + 1200 * 16000;
    s.write(frame(resume, after, { peak: 1 }), undefined);
    expect(s.counters.droppedFrames).toBe(0);
    s.end('deleted');
    await closeWhenDrained(a.socket, s, 60_000);
    await a.closed;
    const audio = Buffer.concat(a.received.filter((m): m is Buffer => Buffer.isBuffer(m)));
    expect(audio.length).toBe(2 * (resume + 320));
    const samples = new Int16Array(audio.buffer, audio.byteOffset, audio.length / 2);
    expect(Array.from(samples.subarray(0, 320))).toEqual(Array.from(before));
    expect(samples.subarray(320, resume).every((v) => v === 0)).toBe(true);
    expect(Array.from(samples.subarray(resume))).toEqual(Array.from(after));
    expect(a.received[a.received.length - 1]).toEqual({ type: 'end', reason: 'deleted', frames: 1202, sentFrames: 1202, droppedFrames: 0 });
  });

  it('while no socket is attached, a run of silence takes one place in the queue and is dropped whole, every frame of it counted', async () => {
    const s = new AudioSocketStream({ ...identity, sampleFormat: 'f32', queueFrames: 3 });
    const zeros = (k: number) => frame(k * 320, new Float32Array(320));
    s.write(frame(0, new Float32Array(320).fill(0.25), { peak: 0.25 }), undefined);
    for (let k = 1; k <= 100; k++) s.write(zeros(k), undefined);
    s.write(frame(101 * 320, new Float32Array(320).fill(0.5), { peak: 0.5 }), undefined);
    expect(s.counters).toMatchObject({ frames: 102, droppedFrames: 0, queuedFrames: 102 });
    // Two more places taken: the oldest item goes (the first frame), then the run, its 100 frames with it.
    for (let k = 102; k <= 103; k++) s.write(zeros(k), undefined);
    expect(s.counters).toMatchObject({ frames: 104, droppedFrames: 1, queuedFrames: 103 });
    s.write(frame(104 * 320, new Float32Array(320).fill(0.75), { peak: 0.75 }), undefined);
    expect(s.counters).toMatchObject({ frames: 105, droppedFrames: 101, queuedFrames: 4 });
    const c = await pair();
    s.attach(c.socket);
    s.end('shutdown');
    await closeWhenDrained(c.socket, s);
    await c.closed;
    const firsts = c.received.map((m) => (Buffer.isBuffer(m) ? [new Float32Array(Uint8Array.from(m).buffer)[0], m.length / 4] : m.type));
    expect(firsts).toEqual(['start', [0.5, 320], [0, 640], [0.75, 320], 'end']);
    expect(c.received[0]).toMatchObject({ at: 2.02 });
    expect(c.received[4]).toEqual({ type: 'end', reason: 'shutdown', frames: 105, sentFrames: 4, droppedFrames: 101 });
  });
});
