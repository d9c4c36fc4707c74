/**
 * A hostile or broken peer must not crash the server, end other sessions or
 * grow its memory without bound. One server, one good publisher streaming a
 * tone in real time for the whole file, and real datagrams over loopback
 * against other sessions' UDP ports: junk of every size and first byte
 * (werift demultiplexes STUN, DTLS and RTP/RTCP by it), malformed STUN, DTLS
 * garbage, from a stranger's address before and after the handshake; then,
 * from an authenticated peer, malformed RTP (SRTP the test seals itself) and
 * RTCP. The good session must receive and record every packet it sent; the
 * hostile session's malformed packets are dropped uncounted and its good ones
 * still counted. vitest fails the file on any uncaught exception or unhandled
 * rejection, which in `earshot serve` would end or mark the process.
 *
 * Fail without their fixes: the bounded DTLS fragment buffer
 * (src/rtc/werift-dtls-fragments.ts), and STUN requests answered only when
 * they authenticate (src/rtc/werift-stun-auth.ts). Every other case passed
 * before the fixes too and is kept as proof that the server survives it.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DtlsSocket, Message, RTCDtlsTransport } from 'werift';
import { sendAudio, type SendResult } from '../../src/client/audio-sender.js';
import type { PeerStatsSnapshot } from '../../src/index.js';
import { MAX_FRAGMENTS } from '../../src/rtc/werift-dtls-fragments.js';
import { MAX_SSRC_STATES } from '../../src/rtc/werift-srtp-context.js';
import { fixturePath } from '../helpers/fixtures.js';
import { hostilePeer, stranger, type HostilePeer } from '../helpers/hostile-peer.js';
import { expectComplete } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

let t: TestServer;
const stopGood = new AbortController();
let good: Promise<SendResult>;

beforeAll(async () => {
  t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] } });
  // Real time, looping until the last test stops it: it publishes through every case.
  good = sendAudio({ url: `${t.url}/whip/demo/good`, source: fixturePath('tone-1k-48k.wav'), loop: true, seconds: 120, signal: stopGood.signal });
  await until('the good publisher', async () => ((await stats('good'))?.rtp.packetsReceived ?? 0) > 0 || undefined);
});
afterAll(async () => {
  stopGood.abort();
  await good.catch(() => undefined);
  await t?.close();
});

async function stats(peer: string): Promise<PeerStatsSnapshot | undefined> {
  const res = await fetch(`${t.url}/stats/${peer}`);
  return res.ok ? ((await res.json()) as PeerStatsSnapshot) : undefined;
}

/** The good session received more packets while `action` ran: it kept publishing alongside. */
async function goodGoesOn(action: () => Promise<void>): Promise<void> {
  const before = (await stats('good'))!.rtp.packetsReceived;
  await action();
  await until('the good session to receive on', async () => ((await stats('good'))!.rtp.packetsReceived > before ? true : undefined));
}

/** Random datagrams of every size, and of every first byte werift demultiplexes on. */
function junk(): Buffer[] {
  const out: Buffer[] = [];
  for (const n of [0, 1, 2, 20, 100, 1500]) for (let k = 0; k < 3; k++) out.push(randomBytes(n));
  for (const first of [0, 1, 2, 3, 20, 21, 22, 23, 25, 63, 128, 129, 160, 191, 200, 255]) {
    for (const n of [1, 2, 5, 12, 13, 14, 20, 40, 100]) {
      const b = randomBytes(n);
      b[0] = first;
      out.push(b);
    }
  }
  return out;
}

const MAGIC_COOKIE = 0x2112a442;

/** A STUN message: `type`, the header's length as given, and `body` as it is. */
function stun(type: number, length: number, body: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(length, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  randomBytes(12).copy(header, 8);
  return Buffer.concat([header, body]);
}

/** Malformed STUN: lengths beyond the data, attributes of every kind with wrong lengths, unknown comprehension-required ones, bad MESSAGE-INTEGRITY, another ufrag. */
function badStun(): Buffer[] {
  const out = [stun(0x0001, 100, Buffer.alloc(0)), stun(0x0001, 0xfffc, Buffer.alloc(8))];
  // USERNAME, MESSAGE-INTEGRITY, FINGERPRINT, XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, ICE-CONTROLLED/-ING, PRIORITY, USE-CANDIDATE, ERROR-CODE, unknown required ones.
  for (const type of [0x0006, 0x0008, 0x8028, 0x0020, 0x0001, 0x8029, 0x802a, 0x0024, 0x0025, 0x0009, 0x7fff, 0x0003]) {
    for (const len of [0, 1, 3, 4, 8, 20, 0xffff]) {
      const attribute = Buffer.concat([Buffer.from([type >> 8, type & 0xff, len >> 8, len & 0xff]), randomBytes(Math.min(len, 12))]);
      for (const messageType of [0x0001, 0x0101, 0x0111]) out.push(stun(messageType, attribute.length, attribute));
    }
  }
  const request = new Message(1, 0);
  request.setAttribute('USERNAME', 'nobody:else');
  request.setAttribute('PRIORITY', 12345);
  request.setAttribute('ICE-CONTROLLING', 1n);
  request.addMessageIntegrity(Buffer.from('not the password'));
  request.addFingerprint();
  out.push(request.bytes);
  return out;
}

/** A DTLS record of `type` at `epoch` (DTLS 1.2), its length field `length`. */
function dtlsRecord(type: number, epoch: number, fragment: Buffer, length = fragment.length): Buffer {
  const header = Buffer.alloc(13);
  header[0] = type;
  header[1] = 0xfe;
  header[2] = 0xfd;
  header.writeUInt16BE(epoch, 3);
  header.writeUInt16BE(length, 11);
  return Buffer.concat([header, fragment]);
}

/** A handshake message fragment: type, claimed length, sequence, offset and fragment length as given. */
function handshake(type: number, length: number, offset: number, fragmentLength: number, body: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header[0] = type;
  header.writeUIntBE(length, 1, 3);
  header.writeUIntBE(offset, 6, 3);
  header.writeUIntBE(fragmentLength, 9, 3);
  return Buffer.concat([header, body]);
}

function badDtls(): Buffer[] {
  return [
    dtlsRecord(22, 0, randomBytes(20), 0xffff),
    dtlsRecord(22, 0, Buffer.alloc(0), 40),
    dtlsRecord(22, 0, handshake(1, 0xffffff, 0, 0xffffff, randomBytes(30))),
    dtlsRecord(22, 0, handshake(1, 0xffffff, 0xfffffe, 1, randomBytes(1))),
    dtlsRecord(22, 0, handshake(1, 10, 0, 10, randomBytes(10))),
    dtlsRecord(22, 1, randomBytes(60)),
    dtlsRecord(23, 1, randomBytes(60)),
    dtlsRecord(20, 0, Buffer.from([1])),
    dtlsRecord(21, 0, Buffer.from([2, 40])),
    dtlsRecord(21, 1, randomBytes(40)),
    Buffer.concat([dtlsRecord(22, 0, randomBytes(20)), dtlsRecord(22, 0, randomBytes(5), 500)]),
  ];
}

async function sendAll(send: (b: Buffer) => Promise<void>, datagrams: Buffer[]): Promise<void> {
  // A pause now and then: a burst beyond the socket's receive buffer would be dropped by the kernel, unread.
  for (let i = 0; i < datagrams.length; i++) {
    await send(datagrams[i]);
    if (i % 20 === 19) await sleep(1);
  }
}

/** What the guards on werift turned away so far, by guard (`earshot_rtc_guarded_total` in /metrics). */
async function guarded(): Promise<Record<string, number>> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^earshot_rtc_guarded_total\{guard="(\w+)"\} (\d+)$/gm)) counts[m[1]] = Number(m[2]);
  return counts;
}

/** Packets of `peer`'s session received so far. */
async function received(peer: string): Promise<number> {
  return (await stats(peer))!.rtp.packetsReceived;
}

/**
 * A binding request as a peer of `answer`'s session sends it (RFC 8445 §7.2.2): USERNAME
 * `<server ufrag>:<ours>`, USE-CANDIDATE unless `nominate` is false, signed with `key` (none:
 * unsigned). The caller may spoil any part.
 */
function bindingRequest(username: string | undefined, key: Buffer | undefined, nominate = true): Message {
  const request = new Message(1, 0);
  if (username !== undefined) request.setAttribute('USERNAME', username);
  request.setAttribute('PRIORITY', 1853817087);
  request.setAttribute('ICE-CONTROLLING', 1n);
  if (nominate) request.setAttribute('USE-CANDIDATE', null);
  if (key) request.addMessageIntegrity(key);
  request.addFingerprint();
  return request;
}

/** What the server's answer says it is: its ICE ufrag and password. */
function iceCredentials(answer: string): { ufrag: string; pwd: string } {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(answer)?.[1];
  const pwd = /^a=ice-pwd:(\S+)/m.exec(answer)?.[1];
  if (!ufrag || !pwd) throw new Error('the answer has no ICE credentials');
  return { ufrag, pwd };
}

describe('a hostile or broken peer', () => {
  let h: HostilePeer;

  it('STUN requests that do not authenticate are not answered, nor nominate the sender, before the client connects; an authentic one is answered', async () => {
    const answered = new Set<string>();
    const socket = dgram.createSocket('udp4');
    socket.on('message', (data) => answered.add(data.subarray(8, 20).toString('hex')));
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const sent: Record<string, string> = {};
    const before = await guarded();
    try {
      const peer = await hostilePeer(`${t.url}/whip/demo/stunned`, async (address, answer) => {
        const { ufrag, pwd } = iceCredentials(answer);
        const key = Buffer.from(pwd, 'utf8');
        const requests: Record<string, Message> = {
          unsigned: bindingRequest(`${ufrag}:stranger`, undefined),
          'no username': bindingRequest(undefined, key),
          'another ufrag': bindingRequest(`not${ufrag}:stranger`, key),
          'a wrong password': bindingRequest(`${ufrag}:stranger`, Buffer.from(`${pwd}x`, 'utf8')),
          // Not nominating: whoever knows the password is the client, and may take the session.
          authentic: bindingRequest(`${ufrag}:stranger`, key, false),
        };
        for (const [name, request] of Object.entries(requests)) {
          sent[name] = request.transactionId.toString('hex');
          await new Promise<void>((r) => socket.send(request.bytes, address[1], address[0], () => r()));
        }
        // The server reads its socket in order: once the last is answered, the others would have been.
        await until('the authentic request to be answered', async () => (answered.has(sent.authentic) ? true : undefined));
      });
      // The stranger's USE-CANDIDATE did not take the session: its own client connected and publishes.
      await peer.close();
    } finally {
      socket.close();
    }
    expect(Object.entries(sent).filter(([, id]) => answered.has(id)).map(([name]) => name)).toEqual(['authentic']);
    // Counted for operators: the four that did not authenticate.
    expect((await guarded()).stun_unauthenticated - before.stun_unauthenticated).toBe(4);
  });

  it('datagrams from a stranger before and after the handshake (junk, malformed STUN, DTLS garbage): the session connects, and goes on', async () => {
    await goodGoesOn(async () => {
      h = await hostilePeer(`${t.url}/whip/demo/hostile`, async (address) => {
        const s = await stranger(address);
        await sendAll(s.send, [...junk(), ...badStun(), ...badDtls()]);
        s.close();
      });
      const s = await stranger(h.address);
      await sendAll(s.send, [...junk(), ...badStun(), ...badDtls()]);
      s.close();
      // And the same from the peer's own address.
      await sendAll(h.send, [...junk(), ...badStun(), ...badDtls()]);
    });
    const s = (await stats('hostile'))!;
    // Why it ended, if it did: the reason and the guards' counts (random junk whose first byte was 24–63 did, before dtls-record-guard.ts).
    expect(s.state, `ended as ${String(s.endReason)}; guards: ${JSON.stringify(await guarded())}`).toBe('connected');
  });

  it('a forged closure alert from the peer\'s own address (plaintext, at epoch 0 or 1) does not end the session; counted', async () => {
    const before = await guarded();
    await goodGoesOn(async () => {
      for (const epoch of [0, 1]) {
        // close_notify and user_canceled at warning level, as plaintext: werift took these as the peer's.
        for (const alert of [[1, 0], [1, 90]]) {
          await h.send(dtlsRecord(21, epoch, Buffer.from(alert)));
          await h.send(dtlsRecord(21, epoch, Buffer.concat([Buffer.from(alert), randomBytes(24)])));
        }
      }
      await sleep(300);
    });
    const s = (await stats('hostile'))!;
    expect(s.state, `ended as ${String(s.endReason)}`).toBe('connected');
    expect((await guarded()).dtls_alert_unauthenticated - (before.dtls_alert_unauthenticated ?? 0)).toBe(8);
  });

  it('a record of a content type werift does not handle (not 20–23), from a stranger or the peer\'s address, does not end the session; counted', async () => {
    // werift took any record it had no case for (not 20–23) as an alert, and closed: random datagrams did so now and then.
    const before = await guarded();
    const s = await stranger(h.address);
    await goodGoesOn(async () => {
      for (const type of [24, 25, 63]) {
        await s.send(dtlsRecord(type, 0, Buffer.from([1, 0])));
        await h.send(dtlsRecord(type, 1, randomBytes(24)));
      }
      // After a handshake record, as one datagram.
      await h.send(Buffer.concat([dtlsRecord(22, 0, randomBytes(20)), dtlsRecord(40, 0, Buffer.from([1, 0]))]));
      await sleep(300);
    });
    s.close();
    const after = (await stats('hostile'))!;
    expect(after.state, `ended as ${String(after.endReason)}`).toBe('connected');
    expect((await guarded()).dtls_record_unknown - (before.dtls_record_unknown ?? 0)).toBe(7);
  });

  it('records of a type werift does not handle, and plaintext closure alerts, sprayed at a session\'s port while it connects (its DTLS handshake included) do not stop it; counted', async () => {
    // Every DTLS transport's state changes in this process, the server's and the test client's.
    const changes: string[] = [];
    const transport = RTCDtlsTransport.prototype as unknown as { setState(this: { state: string }, state: string, emit?: boolean): void };
    const setState = transport.setState;
    transport.setState = function (state, emit) {
      changes.push(`${this.state} → ${state}`);
      setState.call(this, state, emit);
    };
    const before = await guarded();
    let spraying = true;
    let spray: Promise<void> = Promise.resolve();
    let peer: HostilePeer;
    try {
      peer = await hostilePeer(`${t.url}/whip/demo/sprayed`, async (address) => {
        const s = await stranger(address);
        spray = (async () => {
          while (spraying) {
            await s.send(dtlsRecord(25, 0, Buffer.from([1, 0])));
            await s.send(dtlsRecord(21, 0, Buffer.from([1, 0])));
            await sleep(1);
          }
          s.close();
        })();
      });
      await sleep(300);
    } finally {
      spraying = false;
      await spray;
      transport.setState = setState;
    }
    const s = (await stats('sprayed'))!;
    expect(s.state, `ended as ${String(s.endReason)}`).toBe('connected');
    // werift took each for a closure alert: the server's transport read 'closed' in the middle of its handshake.
    expect(changes.filter((c) => c.endsWith('closed'))).toEqual([]);
    // Dropped from the moment the DTLS socket existed (before it, werift's ICE had nowhere to hand them).
    const after = await guarded();
    expect(after.dtls_record_unknown - (before.dtls_record_unknown ?? 0)).toBeGreaterThan(50);
    expect(after.dtls_alert_unauthenticated - (before.dtls_alert_unauthenticated ?? 0)).toBeGreaterThan(50);
    await peer.close();
  });

  it('DTLS handshake fragments that never complete a message are kept bounded', async () => {
    // werift keeps every such fragment, from anyone, as long as the session lives (werift-dtls-fragments.ts).
    let kept = 0;
    const socket = DtlsSocket.prototype as unknown as { handleFragmentHandshake(this: { bufferFragmentedHandshakes: unknown[] }, m: unknown[]): unknown[] };
    const handle = socket.handleFragmentHandshake;
    socket.handleFragmentHandshake = function (m) {
      const result = handle.call(this, m);
      kept = Math.max(kept, this.bufferFragmentedHandshakes.length);
      return result;
    };
    const before = await guarded();
    try {
      const fragment = dtlsRecord(22, 0, handshake(1, 0xffffff, 0, 1100, randomBytes(1100)));
      const s = await stranger(h.address);
      await goodGoesOn(() => sendAll(s.send, Array.from({ length: 4 * MAX_FRAGMENTS }, () => fragment)));
      s.close();
    } finally {
      socket.handleFragmentHandshake = handle;
    }
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(MAX_FRAGMENTS);
    // 4 × MAX_FRAGMENTS sent, at most MAX_FRAGMENTS kept: the rest counted as dropped (a datagram the kernel lost is neither).
    const dropped = (await guarded()).dtls_fragment_dropped - before.dtls_fragment_dropped;
    expect(dropped).toBeGreaterThanOrEqual(2 * MAX_FRAGMENTS);
    expect(dropped).toBeLessThanOrEqual(4 * MAX_FRAGMENTS);
    expect((await stats('hostile'))!.state).toBe('connected');
  });

  it('malformed RTP from the authenticated peer is dropped uncounted; odd but well-formed RTP is counted; the session goes on', async () => {
    let seq = 1000;
    let ts = 0;
    const header = (byte0: number, payloadType = 111, ssrc = h.ssrc) => {
      const x = Buffer.alloc(12);
      x[0] = byte0;
      x[1] = payloadType;
      x.writeUInt16BE(seq++ & 0xffff, 2);
      x.writeUInt32BE((ts += 960) >>> 0, 4);
      x.writeUInt32BE(ssrc >>> 0, 8);
      return x;
    };
    const opus = Buffer.from([0xf8, 0xff, 0xfe]);
    const malformed: Array<[Buffer, number]> = [];
    for (let i = 0; i < 10; i++) {
      malformed.push(
        // 15 CSRCs claimed, 2 present.
        [Buffer.concat([header(0x8f), randomBytes(8)]), 12],
        // A one-byte-header extension block of 256 KiB claimed.
        [Buffer.concat([header(0x90), Buffer.from([0xbe, 0xde, 0xff, 0xff]), randomBytes(8)]), 16],
        // Padding of 0 bytes, and more than the payload.
        [Buffer.concat([header(0xa0), Buffer.from([0xf8, 1, 2, 0])]), 12],
        [Buffer.concat([header(0xa0), Buffer.from([0xf8, 1, 2, 200])]), 12],
      );
    }
    const before = await received('hostile');
    const guardedBefore = await guarded();
    await goodGoesOn(async () => {
      for (const [rtp, headerEnd] of malformed) await h.sendRtp(rtp, headerEnd);
    });
    expect(await received('hostile')).toBe(before);
    // Counted for operators as failing SRTP's checks (a datagram the kernel lost is not: 40 sent).
    const unauthenticated = (await guarded()).srtp_unauthenticated - guardedBefore.srtp_unauthenticated;
    expect(unauthenticated).toBeGreaterThanOrEqual(36);
    expect(unauthenticated).toBeLessThanOrEqual(malformed.length);

    await goodGoesOn(async () => {
      const odd: Buffer[] = [];
      // A zero-length payload, and padding that is the whole payload.
      odd.push(header(0x80), Buffer.concat([header(0xa0), Buffer.from([0, 0, 0, 4])]));
      // Every Opus TOC byte with codes 0–3 as they come, short and absurd frame counts (code 3 with 48 frames: 120 ms).
      for (let toc = 0; toc < 256; toc++) {
        odd.push(Buffer.concat([header(0x80), Buffer.from([toc]), randomBytes(20)]));
        odd.push(Buffer.concat([header(0x80), Buffer.from([toc | 3, 0x80 | 48, 0]), randomBytes(60)]));
        odd.push(Buffer.concat([header(0x80), Buffer.from([toc, 0xff, 0xff])]));
      }
      // A payload type that was not negotiated.
      for (let i = 0; i < 10; i++) odd.push(Buffer.concat([header(0x80, 96), opus]));
      // A new SSRC every packet.
      for (let i = 0; i < 300; i++) odd.push(Buffer.concat([header(0x80, 111, 0x10000 + i), opus]));
      // Sequence numbers and timestamps that leap both ways.
      for (const [dSeq, dTs] of [[30000, 0], [-30000, 0], [0, 0x7fffffff], [0, -0x7fffffff], [1, -96000], [40000, 0x80000000]]) {
        seq += dSeq;
        ts += dTs;
        for (let i = 0; i < 3; i++) odd.push(Buffer.concat([header(0x80), opus]));
      }
      await sendAll((b) => h.sendRtp(b, 12), odd);
    });
    await until('the odd packets to be counted', async () => ((await received('hostile')) > before ? true : undefined));
    expect((await stats('hostile'))!.state).toBe('connected');
    // Of the 300 new SSRCs, the session keeps state for the first MAX_SSRC_STATES − 1 (its own is one): the others' packets are counted.
    const notKept = (await guarded()).srtp_packet_not_kept - guardedBefore.srtp_packet_not_kept;
    expect(notKept).toBeGreaterThan(200);
    expect(notKept).toBeLessThanOrEqual(300 - (MAX_SSRC_STATES - 1));
  });

  it('malformed RTCP from the authenticated peer (lengths beyond the data, unknown types, BYE, report counts beyond the data, SDES garbage, NACK, PLI), and RTCP-shaped datagrams that do not authenticate (counted): the session goes on', async () => {
    const rtcp = (packetType: number, count: number, words: number, body: Buffer) => {
      const x = Buffer.alloc(8);
      x[0] = 0x80 | count;
      x[1] = packetType;
      x.writeUInt16BE(words, 2);
      x.writeUInt32BE(h.ssrc, 4);
      return Buffer.concat([x, body]);
    };
    const packets = [
      rtcp(200, 0, 200, randomBytes(20)),
      rtcp(210, 0, 3, randomBytes(8)),
      rtcp(203, 1, 1, Buffer.alloc(0)),
      rtcp(200, 31, 6, randomBytes(20)),
      rtcp(201, 31, 1, Buffer.alloc(0)),
      rtcp(202, 5, 4, Buffer.from([1, 200, 65, 66, 7, 0, 0, 0, 9, 9, 9, 9])),
      rtcp(205, 1, 3, Buffer.from([0, 0, 0, 1, 0, 5, 0xff, 0xff])),
      rtcp(206, 1, 2, Buffer.from([0, 0, 0, 1])),
      rtcp(201, 0, 0, Buffer.alloc(0)),
      Buffer.concat([rtcp(201, 0, 1, Buffer.alloc(0)), randomBytes(50)]),
    ];
    for (let i = 0; i < 200; i++) packets.push(Buffer.concat([Buffer.from([0x80 | (i & 31), 192 + (i % 16), 0, i % 8]), randomBytes(4 + (i % 40))]));
    const guardedBefore = await guarded();
    await goodGoesOn(() => sendAll(h.sendRtcp, packets));
    // Sealed by the peer's own SRTCP, every one of them authenticates: none counted.
    expect((await guarded()).srtcp_unauthenticated).toBe(guardedBefore.srtcp_unauthenticated);
    // RTCP-shaped datagrams from the peer's address that do not authenticate: a forged tag, a flipped byte, too short.
    const forged: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      forged.push(Buffer.concat([rtcp(200, 0, 6, randomBytes(24)), randomBytes(16), Buffer.from([0x80, 0, 0, i + 1])]));
      forged.push(Buffer.concat([rtcp(201, 0, 1, Buffer.alloc(0)), randomBytes(8)]));
    }
    await goodGoesOn(() => sendAll(h.send, forged));
    const unauthenticated = (await guarded()).srtcp_unauthenticated - guardedBefore.srtcp_unauthenticated;
    expect(unauthenticated).toBeGreaterThanOrEqual(36);
    expect(unauthenticated).toBeLessThanOrEqual(forged.length);
    const before = await received('hostile');
    for (let i = 0; i < 5; i++) {
      const rtp = Buffer.concat([Buffer.alloc(12), Buffer.from([0xf8, 0xff, 0xfe])]);
      rtp[0] = 0x80;
      rtp[1] = 111;
      rtp.writeUInt16BE(0x7f00 + i, 2);
      rtp.writeUInt32BE(h.ssrc, 8);
      await h.sendRtp(rtp, 12);
    }
    await until('the session to count packets after the RTCP', async () => ((await received('hostile')) > before ? true : undefined));
    expect((await stats('hostile'))!.state).toBe('connected');
    await h.close();
  });

  it('the good session received and recorded every packet it sent', async () => {
    stopGood.abort();
    const sent = await good;
    const final = await until('the good recording to stop', async () => {
      const s = await stats('good');
      return s?.recordings.length && s.recordings.every((r) => r.state === 'stopped') ? s : undefined;
    });
    expect(final.state).toBe('ended');
    await expectComplete(t.url, 'good', sent);
  });
});
