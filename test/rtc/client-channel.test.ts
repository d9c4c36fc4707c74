/**
 * The server side of a client's data channel (rtc/data-channel.ts) over a
 * real werift pair on loopback: what waits before the channel opens and what
 * is dropped when too much waits, levels coalescing, batches in order, and
 * messages refused for their size or form.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import { ClientChannel, MAX_MESSAGE_BYTES, MAX_PENDING_BYTES, type PutResult } from '../../src/rtc/data-channel.js';
import { iceConfig } from '../../src/rtc/ice-config.js';
import { until } from '../helpers/until.js';
import { negotiate } from '../helpers/werift-pair.js';

type Message = Record<string, unknown>;

const peers: RTCPeerConnection[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((pc) => pc.close().catch(() => undefined)));
});

/**
 * A client peer with a channel and a server peer whose `ClientChannel`
 * takes it. `before` runs on the server channel before the client's channel
 * opens; `maxMessageSize` is the client's `a=max-message-size` (werift's
 * default: 64 KiB). Returns what the client receives (channel messages as
 * parsed, and their sizes in bytes).
 */
async function connect(before: (server: ClientChannel) => void = () => undefined, maxMessageSize?: number) {
  const ice = iceConfig({ hostAddresses: ['127.0.0.1'] });
  const client = new RTCPeerConnection({ ...ice, ...(maxMessageSize === undefined ? {} : { maxMessageSize }) });
  const server = new RTCPeerConnection(ice);
  peers.push(client, server);
  const heard: Message[] = [];
  const sizes: number[] = [];
  const inbound: unknown[] = [];
  const channel = new ClientChannel(true, { onMessage: (m) => inbound.push(m) });
  before(channel);
  server.onDataChannel.subscribe((ch) => channel.attach(ch));
  const clientChannel: RTCDataChannel = client.createDataChannel('test');
  clientChannel.onMessage.subscribe((m) => {
    heard.push(JSON.parse(String(m)) as Message);
    sizes.push(Buffer.byteLength(String(m)));
  });
  await negotiate(client, server);
  await until('the channel to open', () => (channel.state === 'open' ? true : undefined), 10_000, 20);
  return { channel, clientChannel, heard, sizes, inbound };
}

/** The messages received, batches unpacked. */
const unpacked = (heard: Message[]) => heard.flatMap((m) => (m.type === 'batch' ? (m.messages as Message[]) : [m]));

describe('client channel', () => {
  it('keeps what is put before the channel opens; when more than 256 KiB waits, drops the oldest droppable messages, never a state change', async () => {
    // 300 events of about 1 kB (i of four digits: all of one size) after 10 state changes: ~300 kB.
    const event = (i: number) => ({ type: 'event', i: 1000 + i, pad: 'y'.repeat(1000) });
    const bytes = (m: Message) => Buffer.byteLength(JSON.stringify({ v: 1, ...m }));
    const kept = Math.floor((MAX_PENDING_BYTES - 10 * bytes({ type: 'speaking', i: 0 })) / bytes(event(0)));
    expect(kept).toBeLessThan(300);
    const { channel, heard } = await connect((server) => {
      for (let i = 0; i < 10; i++) server.put({ type: 'speaking', i });
      for (let i = 0; i < 300; i++) server.put(event(i), { droppable: true });
    });
    await until('every waiting message', () => (unpacked(heard).length === 10 + kept ? true : undefined), 10_000, 20);
    const got = unpacked(heard);
    expect(got.filter((m) => m.type === 'speaking').map((m) => m.i)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    // The newest events that fit: the oldest were dropped.
    expect(got.filter((m) => m.type === 'event').map((m) => m.i)).toEqual(Array.from({ length: kept }, (_, i) => 1000 + 300 - kept + i));
    expect(got.every((m) => m.v === 1)).toBe(true);
    expect(channel.stats()).toMatchObject({ state: 'open', label: 'test', sent: 10 + kept, droppedOut: { queueFull: 300 - kept } });
    // 256 KiB leave in batches of up to 64 KiB, not one by one.
    expect(channel.stats().sends).toBeLessThanOrEqual(6);
  });

  it('absorbs a burst put in one tick on an open channel: 300 short messages all arrive, in order, in a few sends', async () => {
    const { channel, heard } = await connect();
    for (let i = 0; i < 300; i++) expect(channel.put({ type: 'message', processor: 'p', data: { n: i }, at: 0 }, { droppable: true })).toBe('queued');
    await until('the 300 messages', () => (unpacked(heard).length === 300 ? true : undefined), 10_000, 20);
    expect(unpacked(heard).map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(channel.stats()).toMatchObject({ sent: 300, droppedOut: { queueFull: 0 } });
    expect(channel.stats().sends).toBeLessThanOrEqual(3);
  });

  it('coalesces keyed messages: only the newest level waits', async () => {
    const { channel, heard } = await connect();
    for (let i = 0; i < 5; i++) channel.put({ type: 'level', i }, { key: 'level' });
    channel.put({ type: 'speaking', speaking: true });
    await until('the messages', () => (unpacked(heard).length === 2 ? true : undefined), 10_000, 20);
    expect(unpacked(heard)).toEqual([
      { v: 1, type: 'level', i: 4 },
      { v: 1, type: 'speaking', speaking: true },
    ]);
    expect(channel.stats().sends).toBe(1);
  });

  it('refuses a message over 16 KiB or not serializable as JSON, counting it, and sends the rest', async () => {
    const { channel, heard } = await connect();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(channel.put({ type: 'message', data: 'x'.repeat(MAX_MESSAGE_BYTES) })).toBe('too-large');
    expect(channel.put({ type: 'message', data: 1n })).toBe('unserializable');
    expect(channel.put({ type: 'message', data: circular })).toBe('unserializable');
    expect(channel.put({ type: 'message', data: 'fine' })).toBe('queued');
    await until('the message', () => (heard.length > 0 ? true : undefined), 10_000, 20);
    expect(heard).toEqual([{ v: 1, type: 'message', data: 'fine' }]);
    expect(channel.stats().droppedOut).toEqual({ tooLarge: 1, unserializable: 2, queueFull: 0, closed: 0 });
  });

  it("keeps to the client's a=max-message-size: a larger message is refused as too large, one that waited for the channel is dropped as such, batches stay within it", async () => {
    const LIMIT = 8 * 1024;
    const big = { type: 'message', data: 'x'.repeat(LIMIT) };
    let early: PutResult | undefined;
    const { channel, heard, sizes } = await connect((server) => (early = server.put(big)), LIMIT);
    // Put before the channel opened, when the client's limit was not known yet.
    expect(early).toBe('queued');
    expect(channel.put(big)).toBe('too-large');
    for (let i = 0; i < 20; i++) channel.put({ type: 'event', i, pad: 'y'.repeat(1000) });
    await until('the 20 events', () => (unpacked(heard).length === 20 ? true : undefined), 10_000, 20);
    expect(unpacked(heard).map((m) => m.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    // 20 kB of events leave in batches the client accepts.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(LIMIT);
    expect(channel.stats().droppedOut).toEqual({ tooLarge: 2, unserializable: 0, queueFull: 0, closed: 0 });
  });

  it('counts what is put after it closed, and stays quiet', async () => {
    const { channel } = await connect();
    channel.close();
    expect(channel.put({ type: 'speaking', speaking: false })).toBe('closed');
    expect(channel.stats()).toMatchObject({ state: 'closed', droppedOut: { closed: 1 } });
  });

  it('without a data channel in the offer, discards everything without counting', () => {
    const channel = new ClientChannel(false, { onMessage: () => undefined });
    expect(channel.put({ type: 'speaking', speaking: true })).toBe('none');
    expect(channel.stats()).toEqual({ state: 'none', label: null, sent: 0, sends: 0, received: 0, droppedIn: { tooLarge: 0, rateLimited: 0, binary: 0 }, droppedOut: { tooLarge: 0, unserializable: 0, queueFull: 0, closed: 0 } });
  });
});
