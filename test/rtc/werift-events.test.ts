/**
 * earshot's change to werift's per-packet events (src/rtc/werift-events.ts):
 * a leaned event calls its subscribers exactly as werift's own `execute` does
 * (same calls, same order, queuing subscribers and their errors included),
 * and a real peer connection's receive path is leaned once it connects, with
 * every packet still arriving.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Event } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { WebRTCHandler } from '../../src/index.js';
import { iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { isLean, leanEvent, leansWeriftEvents, receivePathEvents } from '../../src/rtc/werift-events.js';
import { fixturePath } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';

type AnyEvent = Event<unknown[]>;

/** Subscribes the same mix of subscribers to `ev`, logging their calls into `log`. */
function wire(ev: AnyEvent, log: string[]): void {
  ev.subscribe((...args) => log.push(`a(${args.map(String).join(',')})`));
  // Unsubscribes itself on its second call: the loop in progress must not change.
  let calls = 0;
  const off = ev.subscribe((...args) => {
    log.push(`b(${args.length})`);
    if (++calls === 2) off.unSubscribe();
  });
  ev.queuingSubscribe(async (...args) => {
    log.push(`q1 start(${args.length})`);
    await new Promise((r) => setTimeout(r, 1));
    log.push('q1 end');
  });
  ev.queuingSubscribe(async (...args) => {
    log.push(`q2(${String(args[0])})`);
    if (args[0] === 'boom') throw new Error('queued failure');
  });
  ev.onerror = (e) => log.push(`onerror(${(e as Error).message})`);
  ev.subscribe(() => log.push('c'));
}

async function drive(ev: AnyEvent, log: string[]): Promise<void> {
  ev.execute();
  log.push('returned');
  ev.execute(1, 'x', null);
  log.push('returned');
  ev.execute('boom');
  log.push('returned');
  await new Promise((r) => setTimeout(r, 20));
  ev.complete();
  ev.execute('after complete');
  log.push('done');
}

describe("werift's per-packet events, as earshot runs them", () => {
  it('is the werift this change was written for (else it is left alone)', () => {
    expect(leansWeriftEvents).toBe(true);
  });

  it("calls the subscribers as werift's own execute does: synchronous ones in order, then the queuing ones, errors to onerror, nothing after complete", async () => {
    const original = new Event() as AnyEvent;
    const lean = new Event() as AnyEvent;
    const expected: string[] = [];
    const actual: string[] = [];
    wire(original, expected);
    wire(lean, actual);
    expect(leanEvent(lean)).toBe(true);
    expect(isLean(lean)).toBe(true);
    expect(isLean(original)).toBe(false);
    await drive(original, expected);
    await drive(lean, actual);
    expect(actual).toEqual(expected);
    // The log is what werift does, so the comparison compares something.
    expect(expected.slice(0, 6)).toEqual(['a()', 'b(0)', 'c', 'q1 start(0)', 'returned', 'a(1,x,null)']);
    expect(expected).toContain('onerror(queued failure)');
    expect(expected.at(-1)).toBe('done');
  });

  it('runs no queuing part when there is no queuing subscriber, and an event that has none behaves the same', () => {
    const ev = new Event() as AnyEvent;
    const seen: unknown[][] = [];
    ev.subscribe((...args) => seen.push(args));
    leanEvent(ev);
    ev.execute({ n: 1 }, [2]);
    expect(seen).toEqual([[{ n: 1 }, [2]]]);
  });

  it('leaves alone what is not a werift event, and an event leaned already', () => {
    const ev = new Event();
    expect(leanEvent(ev)).toBe(true);
    const leaned = ev.execute;
    expect(leanEvent(ev)).toBe(false);
    expect(ev.execute).toBe(leaned);
    for (const other of [undefined, null, {}, { execute: () => {} }, 'event']) expect(leanEvent(other)).toBe(false);
  });
});

describe('the receive path of a real peer connection', () => {
  let handler: WebRTCHandler | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await handler?.close();
    handler = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('is leaned once connected (ICE protocol, ICE connection, DTLS transport, track), and every packet still arrives', async () => {
    dir = await mkdtemp(join(tmpdir(), 'earshot-events-'));
    handler = new WebRTCHandler({ recordingsDir: join(dir, 'rec'), iceHostAddresses: ['127.0.0.1'], mediaTimeoutMs: 1000 });
    await handler.ready();
    const pc = handler.createPeerConnection('lobby', 'erin');
    const sending = sendAudio({
      url: 'custom:',
      hostAddresses: ['127.0.0.1'],
      source: fixturePath('tone-1k-48k.wav'),
      seconds: 1.5,
      signaling: async (offer) => {
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
        await iceGatheringComplete(pc);
        return pc.localDescription!.sdp;
      },
    });
    const h = handler;
    await until('10 packets received', () => ((h.getAllAudioStatistics().erin?.rtp.packetsReceived ?? 0) >= 10 ? true : undefined), 10_000, 20);
    const leanedWhileSending = receivePathEvents(pc).map(isLean);
    const sent = await sending;
    expect(leanedWhileSending.length).toBeGreaterThanOrEqual(4);
    expect(leanedWhileSending.every(Boolean)).toBe(true);
    await until('every packet received', () => (h.getAudioStatistics('erin').rtp.packetsReceived === sent.packetsSent ? true : undefined), 5_000);
    expect(h.getAudioStatistics('erin').rtp.packetsReceived).toBe(75);
  });
});
