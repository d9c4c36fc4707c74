/**
 * The client's data channel over real loopback WebRTC: a werift publisher
 * opens a channel in its WHIP offer, hears the stream's events (speaking,
 * levels, recording state, processors' events and answers), paced to at most
 * 10 messages a second, and what it sends reaches `events$` and processors,
 * within the size and rate limits, without costing the audio anything.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import { WhipClient } from '../../src/client/whip-client.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { sendAudio, type SendResult } from '../../src/client/audio-sender.js';
import { ProcessorRegistry, type AudioFrame, type PeerStatsSnapshot, type ProcessorContext, type ProcessorEvent } from '../../src/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectComplete } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** A message as the client got it: the parsed JSON and when it arrived (performance.now()). */
type Received = { at: number; message: Record<string, unknown> };

const processors = new ProcessorRegistry();
/**
 * Answers `{ ask }` with `{ answer }`, `{ burst: n }` with n numbered messages at once, and
 * `{ probe }` with what `send` returned for data JSON has no form for (and for null, which
 * it has); emits an event on its first frame.
 */
processors.register('echo', (ctx: ProcessorContext) => {
  const sub = ctx.messages$.subscribe((m) => {
    const msg = m as { ask?: unknown; burst?: number; probe?: unknown };
    if (msg && typeof msg === 'object' && 'ask' in msg) ctx.send({ answer: msg.ask });
    if (msg && typeof msg === 'object' && typeof msg.burst === 'number') for (let i = 0; i < msg.burst; i++) ctx.send({ n: i });
    if (msg && typeof msg === 'object' && 'probe' in msg) ctx.send({ probed: [ctx.send(undefined), ctx.send(() => 1), ctx.send(Symbol('s')), ctx.send(null)] });
  });
  let first = true;
  return {
    next(f: AudioFrame) {
      if (first) ctx.emit('first-frame', { position: f.position });
      first = false;
    },
    complete: () => sub.unsubscribe(),
  };
});

let t: TestServer | undefined;
async function server(): Promise<TestServer> {
  t ??= await startServer({
    processors,
    extraPipelines: [{ name: 'chat', stages: [{ type: 'denoise' }], sinks: [{ type: 'record' }, { type: 'stats' }, { type: 'processor', name: 'echo' }] }],
  });
  return t;
}
afterAll(async () => t?.close());

/** Messages of a received list, batches unpacked, in order. */
function unpacked(received: Received[]): Array<Record<string, unknown>> {
  return received.flatMap((r) => (r.message.type === 'batch' ? (r.message.messages as Array<Record<string, unknown>>) : [r.message]));
}

/** The most channel messages that arrived within any 1 s. */
function mostInOneSecond(received: Received[]): number {
  let most = 0;
  for (let i = 0, j = 0; i < received.length; i++) {
    while (received[i].at - received[j].at >= 1000) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/**
 * Publishes `seconds` of speech (past the fixture's 10.8 s: silence) at twice
 * real time with a data channel; `onOpen` runs when the channel opens. An
 * aborted `signal` ends the session early.
 */
async function publish(url: string, seconds: number, onOpen: (channel: RTCDataChannel, received: Received[]) => void, signal?: AbortSignal): Promise<{ sent: SendResult; received: Received[] }> {
  const received: Received[] = [];
  const sent = await sendAudio({
    url,
    source: fixturePath('speech-48k.wav'),
    seconds,
    speed: 2,
    signal,
    dataChannel: (channel) => {
      channel.onMessage.subscribe((data) => received.push({ at: performance.now(), message: JSON.parse(String(data)) as Record<string, unknown> }));
      channel.stateChanged.subscribe((state) => {
        if (state === 'open') onOpen(channel, received);
      });
    },
  });
  return { sent, received };
}

const statsOf = async (url: string, peer: string) => (await (await fetch(`${url}/stats/${peer}`)).json()) as PeerStatsSnapshot;

describe('data channel', () => {
  it('sends speaking turns, levels with VAD, recording state and processor events, at most 10 messages in any second', async () => {
    const s = await server();
    // 12 s: the speech, then a second of silence, so its last turn ends before the session does.
    const { sent, received } = await publish(`${s.url}/whip/dc/ann?pipeline=chat`, 12, () => undefined);
    const stats = await expectComplete(s.url, 'ann', sent);

    const messages = unpacked(received);
    for (const m of messages) expect(m.v).toBe(1);
    expect(messages[0]).toMatchObject({ type: 'hello', peer: 'ann', room: 'dc', session: stats.session, pipeline: 'chat' });
    const speaking = messages.filter((m) => m.type === 'speaking');
    // Speech turns alternate, starting with a start, at increasing media times within the speech.
    expect(speaking.length).toBeGreaterThanOrEqual(2);
    speaking.forEach((m, i) => expect(m.speaking).toBe(i % 2 === 0));
    const times = speaking.map((m) => m.at as number);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times[times.length - 1]).toBeLessThanOrEqual(11_000);
    // Every turn the statistics counted; one that began in the last moments before the session
    // ended may not have been sent (the channel closes with the session).
    const starts = speaking.filter((m) => m.speaking).length;
    expect(stats.audio.speechSegments - starts).toBeGreaterThanOrEqual(0);
    expect(stats.audio.speechSegments - starts).toBeLessThanOrEqual(1);

    const levels = messages.filter((m) => m.type === 'level');
    // 12 s of media at 2× take ~6 s: a reading every 200 ms, some coalesced or batched.
    expect(levels.length).toBeGreaterThanOrEqual(5);
    for (const l of levels) {
      expect(l.rmsDbfs).toBeTypeOf('number');
      expect(l.peakDbfs as number).toBeGreaterThanOrEqual(l.rmsDbfs as number);
      expect(l.vad === null || (typeof l.vad === 'number' && l.vad >= 0 && l.vad <= 1)).toBe(true);
    }
    expect(levels.some((l) => (l.rmsDbfs as number) > -50 && typeof l.vad === 'number')).toBe(true);

    expect(messages).toContainEqual(expect.objectContaining({ type: 'recording', state: 'started', recording: stats.recording!.name, branch: 'main' }));
    expect(messages).toContainEqual(expect.objectContaining({ type: 'event', processor: 'echo', event: 'first-frame', data: { position: 0 } }));

    expect(mostInOneSecond(received)).toBeLessThanOrEqual(10);
    expect(stats.dataChannel).toMatchObject({ state: 'closed', label: 'earshot', sent: messages.length, sends: received.length, received: 0 });
    expect(stats.dataChannel.droppedOut).toEqual({ tooLarge: 0, unserializable: 0, queueFull: 0, closed: expect.any(Number) });
  });

  it("delivers the client's messages to events$ and to a processor, whose answer comes back; oversized, binary and flooding messages are dropped and counted, the audio untouched", async () => {
    const s = await server();
    const events: ProcessorEvent[] = [];
    const sub = s.server.events$.subscribe((e) => {
      if (e.peerId === 'bob' && e.event === 'client-message') events.push(e);
    });
    // The operators' live event stream, read meanwhile: processor events, but no client messages.
    const sse = new AbortController();
    const live = await fetch(`${s.url}/events?interval=10000`, { signal: sse.signal });
    let liveText = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of live.body as AsyncIterable<Uint8Array>) liveText += decoder.decode(chunk, { stream: true });
      } catch {
        // aborted
      }
    })();
    const isBurst = (m: Record<string, unknown>) => m.type === 'message' && typeof m.data === 'object' && m.data !== null && 'n' in m.data;
    // Sends (at most 60 s of media) until the processor's answers have arrived, then ends the session.
    const stop = new AbortController();
    let step: Promise<void> | undefined;
    const { sent, received } = await publish(
      `${s.url}/whip/dc/bob?pipeline=chat`,
      60,
      (channel, heard) => {
        channel.send(JSON.stringify({ ask: 'ping' }));
        channel.send('plain words');
        channel.send('x'.repeat(16 * 1024 + 1)); // over 16 KiB
        channel.send(Buffer.from([1, 2, 3])); // binary
        // Far more than 50 in a second: the excess is dropped.
        for (let i = 0; i < 200; i++) channel.send(JSON.stringify({ flood: i }));
        step = (async () => {
          try {
            await new Promise((r) => setTimeout(r, 1500));
            // The processor sends 300 messages at once (one tick): none is dropped, they arrive batched, in order.
            channel.send(JSON.stringify({ burst: 300 }));
            await until('the 300 answers', () => (unpacked(heard).filter(isBurst).length === 300 ? true : undefined));
            await new Promise((r) => setTimeout(r, 500)); // some more audio after the flood
          } finally {
            stop.abort();
          }
        })();
      },
      stop.signal,
    );
    await step;
    sub.unsubscribe();
    await until('the processor event on GET /events', () => (liveText.includes('"first-frame"') ? true : undefined), 10_000);
    sse.abort();
    await reading;
    expect(liveText).not.toContain('client-message');
    const stats = await expectComplete(s.url, 'bob', sent);
    expect(stats.recording).toMatchObject({ state: 'stopped', droppedFrames: 0, gapFrames: 0 });
    expect(Math.abs(stats.recording!.seconds - sent.mediaSeconds)).toBeLessThanOrEqual(0.04);

    // events$: the JSON parsed, the text as it is, then the flood as far as the rate limit lets it:
    // the 48 left of the 50 in reserve at once, then a few as the reserve refills.
    expect(events[0]).toMatchObject({ peerId: 'bob', roomId: 'dc', sessionId: stats.session, processor: 'earshot', event: 'client-message', data: { ask: 'ping' } });
    expect(events[1].data).toBe('plain words');
    const flood = events.slice(2).filter((e) => typeof e.data === 'object' && e.data !== null && 'flood' in e.data).map((e) => (e.data as { flood: number }).flood);
    expect(flood.slice(0, 48)).toEqual(Array.from({ length: 48 }, (_, i) => i));
    expect(flood).toEqual([...flood].sort((x, y) => x - y));
    const dc = stats.dataChannel;
    expect(dc.droppedIn.tooLarge).toBe(1);
    expect(dc.droppedIn.binary).toBe(1);
    expect(dc.droppedIn.rateLimited).toBe(200 - flood.length);
    expect(dc.droppedIn.rateLimited).toBeGreaterThan(100);
    expect(dc.received).toBe(events.length);

    const messages = unpacked(received);
    expect(messages).toContainEqual({ v: 1, type: 'message', processor: 'echo', data: { answer: 'ping' }, at: expect.any(Number) });
    const burst = messages.filter(isBurst);
    expect(burst.map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(dc.droppedOut.queueFull).toBe(0);
    // 300 messages at once: a handful of channel messages, not 300.
    const carriers = received.filter((r) => r.message.type === 'batch' && (r.message.messages as Array<Record<string, unknown>>).some((m) => m.type === 'message'));
    expect(carriers.length).toBeGreaterThanOrEqual(1);
    expect(carriers.length).toBeLessThanOrEqual(3);
    expect(mostInOneSecond(received)).toBeLessThanOrEqual(10);
  });

  it("refuses a processor's send of data JSON has no form for (undefined, a function, a symbol): false, counted, nothing sent", async () => {
    const s = await server();
    const isProbed = (m: Record<string, unknown>) => m.type === 'message' && typeof m.data === 'object' && m.data !== null && 'probed' in m.data;
    const stop = new AbortController();
    let step: Promise<void> | undefined;
    const { sent, received } = await publish(
      `${s.url}/whip/dc/eve?pipeline=chat`,
      60,
      (channel, heard) => {
        channel.send(JSON.stringify({ probe: true }));
        step = (async () => {
          try {
            await until('the answer to the probe', () => (unpacked(heard).some(isProbed) ? true : undefined));
          } finally {
            stop.abort();
          }
        })();
      },
      stop.signal,
    );
    await step;
    const stats = await expectComplete(s.url, 'eve', sent);
    // Only send(null) went out (null is JSON), then the answer with what each send returned.
    const answers = unpacked(received).filter((m) => m.type === 'message');
    expect(answers.map((m) => m.data)).toEqual([null, { probed: [false, false, false, true] }]);
    expect(stats.dataChannel.droppedOut).toMatchObject({ unserializable: 3, tooLarge: 0, queueFull: 0 });
  });

  it('reports a recording stopped and started over the API on the channel', async () => {
    const s = await server();
    const recordingMessages = (received: Received[]) => unpacked(received).filter((m) => m.type === 'recording');
    // Sends until the three changes have arrived (at most 60 s of media), then ends the session.
    const stop = new AbortController();
    let step: Promise<void> | undefined;
    const { received } = await publish(
      `${s.url}/whip/dc/cy?pipeline=chat`,
      60,
      (_channel, heard) => {
        step = (async () => {
          try {
            await until('the recording to start', async () => ((await statsOf(s.url, 'cy')).recording?.state === 'recording' ? true : undefined));
            expect((await fetch(`${s.url}/peers/cy/recording`, { method: 'DELETE' })).status).toBe(200);
            const res = await fetch(`${s.url}/peers/cy/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'cy-second' }) });
            expect(res.status).toBe(201);
            await until('the three recording messages', () => (recordingMessages(heard).length >= 3 ? true : undefined));
          } finally {
            stop.abort();
          }
        })();
      },
      stop.signal,
    );
    await step;
    const recording = recordingMessages(received);
    expect(recording.map((m) => [m.state, m.recording])).toEqual([
      ['started', expect.stringMatching(/\.wav$/)],
      ['stopped', recording[0].recording],
      ['started', 'cy-second.wav'],
    ]);
    expect(recording[1].seconds as number).toBeGreaterThan(0);
  });

  it('lets a client program with a data channel exit once sendAudio resolves: nothing of the connection is left open', async () => {
    // The sender offered with werift's default bundle policy, which opened a second transport for the
    // channel's section; that transport's UDP socket outlived the connection and the program never exited.
    const s = await server();
    const dir = await mkdtemp(join(tmpdir(), 'earshot-dc-exit-'));
    try {
      const script = join(dir, 'send.mts');
      await writeFile(
        script,
        [
          `import { sendAudio } from ${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'index.ts')).href)};`,
          `const r = await sendAudio({ url: ${JSON.stringify(`${s.url}/whip/dc/exits`)}, source: ${JSON.stringify(fixturePath('speech-48k.wav'))}, seconds: 1, speed: 5, dataChannel: () => {} });`,
          `console.log('sent', r.packetsSent);`,
        ].join('\n'),
      );
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = await Promise.race([
        new Promise<number | null>((resolve) => child.once('exit', resolve)),
        sleep(30_000).then(() => 'still running' as const),
      ]);
      child.kill('SIGKILL');
      expect(out).toMatch(/sent 50/);
      expect(exited).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('uses the first channel a client opens and closes a second one, without failing the client (werift threw "channel not found" on its ACK)', async () => {
    const s = await server();
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    const pc = new RTCPeerConnection(iceConfig({ hostAddresses: ['127.0.0.1'] }));
    const whip = new WhipClient();
    try {
      pc.addTransceiver('audio', { direction: 'sendonly' });
      const channels = [pc.createDataChannel('first'), pc.createDataChannel('second')];
      const states = channels.map(() => [] as string[]);
      channels.forEach((c, i) => c.stateChanged.subscribe((state) => void states[i].push(state)));
      const firstMessages: string[] = [];
      channels[0].onMessage.subscribe((m) => void firstMessages.push(String(m)));
      await pc.setLocalDescription(await pc.createOffer());
      disableImplicitStun(pc, []);
      await iceGatheringComplete(pc);
      const { answer, sessionUrl } = await whip.publish(`${s.url}/whip/dc/two`, pc.localDescription!.sdp);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await until('the first channel to say hello', async () => (firstMessages.some((m) => m.includes('"hello"')) ? true : undefined), 10_000);
      await until('the second channel to be closed', async () => (states[1].includes('closed') ? true : undefined), 10_000);
      // The client's werift saw the server's ACK for the channel it kept only: nothing was thrown.
      await sleep(500);
      expect(uncaught).toEqual([]);
      expect(states[0]).toContain('open');
      expect(channels[0].readyState).toBe('open');
      expect(((await statsOf(s.url, 'two')) as { dataChannel?: { label: string | null } }).dataChannel?.label).toBe('first');
      await whip.end(sessionUrl);
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
      await pc.close().catch(() => undefined);
    }
  });

  it('answers a client without a data channel as before: no channel in the answer or the stats', async () => {
    const s = await server();
    const sent = await sendAudio({ url: `${s.url}/whip/dc/dee?pipeline=chat`, source: fixturePath('speech-48k.wav'), seconds: 2, speed: 5 });
    const stats = await expectComplete(s.url, 'dee', sent);
    expect(stats.dataChannel).toEqual({ state: 'none', label: null, sent: 0, sends: 0, received: 0, droppedIn: { tooLarge: 0, rateLimited: 0, binary: 0 }, droppedOut: { tooLarge: 0, unserializable: 0, queueFull: 0, closed: 0 } });
  });
});
