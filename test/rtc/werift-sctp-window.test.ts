/**
 * The data-channel receive window (src/rtc/werift-sctp-window.ts) on werift's
 * own SCTP association: chunks a peer sends beyond the window, or beyond the
 * chunks an association may hold unassembled, are dropped (RFC 9260 §6.2),
 * where werift alone keeps them all; a chunk that fills a gap is always taken,
 * so a stalled stream completes and the window opens again.
 */
import { RTCSctpTransport } from 'werift';
import { describe, expect, it } from 'vitest';
import { guardCounts } from '../../src/rtc/guard-counts.js';
import { MAX_HELD_CHUNKS, weriftReceiveDataChunk } from '../../src/rtc/werift-sctp-window.js';

const FIRST = 2;
const LAST = 1;
const WEBRTC_BINARY = 53;

interface Association {
  advertisedRwnd: number;
  lastReceivedTsn: number;
  inboundStreams: Record<number, { reassembly: Array<{ userData: Buffer }> }>;
  onReceive: { subscribe(fn: (streamId: number, ppId: number, data: Buffer) => void): unknown };
  receiveDataChunk(chunk: object): void;
}

/** A werift SCTP association as after its INIT (the peer's first TSN is 1000), on a DTLS transport that sends nothing. */
function association(): Association {
  const transport = new RTCSctpTransport();
  const dtls = { id: `dtls-${Math.random()}`, sendData: async () => {}, onStateChange: { subscribe: () => ({ unSubscribe() {} }) } };
  (transport as unknown as { setDtlsTransport(d: unknown): void }).setDtlsTransport(dtls);
  const sctp = (transport as unknown as { sctp: Association }).sctp;
  sctp.lastReceivedTsn = 999;
  return sctp;
}

const chunk = (tsn: number, flags: number, bytes: number, streamSeqNum = 0) => ({ tsn, flags, streamId: 0, streamSeqNum, protocol: WEBRTC_BINARY, userData: Buffer.alloc(bytes, tsn & 255) });

const held = (a: Association) => Object.values(a.inboundStreams).reduce((n, s) => ({ chunks: n.chunks + s.reassembly.length, bytes: n.bytes + s.reassembly.reduce((b, c) => b + c.userData.length, 0) }), { chunks: 0, bytes: 0 });

describe('the SCTP receive window (data channels)', () => {
  it('keeps at most the window of a message that never ends, where werift alone keeps all of it', () => {
    const window = association().advertisedRwnd;
    const send = (a: Association, receive: (c: object) => void) => {
      receive.call(a, chunk(1000, FIRST, 1200));
      for (let i = 1; i < 2000; i++) receive.call(a, chunk(1000 + i, 0, 1200)); // 2.4 MB, no last fragment
    };
    const guarded = association();
    const before = guardCounts.sctpChunksDropped;
    send(guarded, guarded.receiveDataChunk);
    expect(held(guarded).bytes).toBeLessThanOrEqual(window);
    expect(held(guarded).bytes).toBeGreaterThan(window - 1200);
    expect(guardCounts.sctpChunksDropped - before).toBe(2000 - held(guarded).chunks);
    const alone = association();
    send(alone, weriftReceiveDataChunk! as (c: object) => void);
    expect(held(alone)).toEqual({ chunks: 2000, bytes: 2_400_000 });
  });

  it(`keeps at most ${MAX_HELD_CHUNKS} chunks unassembled, however small`, () => {
    const a = association();
    a.receiveDataChunk(chunk(1000, FIRST, 1));
    for (let i = 1; i < 10_000; i++) a.receiveDataChunk(chunk(1000 + i, 0, 1));
    expect(held(a).chunks).toBe(MAX_HELD_CHUNKS);
  });

  it('takes a chunk that fills a gap while the window is spent: the held messages are delivered in order, and the window opens', () => {
    const a = association();
    const window = a.advertisedRwnd;
    const delivered: number[] = [];
    a.onReceive.subscribe((_s, _p, data) => delivered.push(data[0]));
    // Ordered one-chunk messages; the first (TSN 1000) is lost, so the rest wait for it.
    const count = Math.floor(window / 1200);
    for (let i = 1; i <= count; i++) a.receiveDataChunk(chunk(1000 + i, FIRST | LAST, 1200, i));
    expect(delivered).toEqual([]);
    // The window is spent: a new TSN is dropped (its sender sends it again later)…
    a.receiveDataChunk(chunk(1001 + count, FIRST | LAST, 1200, count + 1));
    expect(held(a).chunks).toBe(count);
    // …but the lost first one, below the largest TSN, is taken: everything is delivered, in order.
    a.receiveDataChunk(chunk(1000, FIRST | LAST, 1200, 0));
    expect(delivered).toEqual(Array.from({ length: count + 1 }, (_, i) => (1000 + i) & 255));
    expect(a.advertisedRwnd).toBe(window);
    // The dropped one, sent again, now fits.
    a.receiveDataChunk(chunk(1001 + count, FIRST | LAST, 1200, count + 1));
    expect(delivered).toHaveLength(count + 2);
  });
});
