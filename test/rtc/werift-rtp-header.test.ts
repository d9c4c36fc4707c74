/**
 * earshot's replacement for werift's RTP header parser gives what werift's own
 * gives, field for field, on headers of every shape a sender may use (CSRCs,
 * RFC 8285 one- and two-byte extensions, other profiles, padding, marker, all
 * payload types), fails where werift's fails (and where an extension block
 * runs past the packet, which werift reads on past), and is the one werift calls.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { RtpHeader, RtpPacket } from 'werift';
import { describe, expect, it } from 'vitest';
import { replacesWerift, rtpHeaderDeSerialize, rtpHeaderUpTo, weriftDeSerialize } from '../../src/rtc/werift-rtp-header.js';

/** An RTP packet's bytes: header fields, CSRCs, an extension block and payload/padding chosen freely. */
const packetBytes = fc
  .record({
    version: fc.integer({ min: 0, max: 3 }),
    marker: fc.boolean(),
    payloadType: fc.integer({ min: 0, max: 127 }),
    seq: fc.integer({ min: 0, max: 0xffff }),
    ts: fc.integer({ min: 0, max: 0xffffffff }),
    ssrc: fc.integer({ min: 0, max: 0xffffffff }),
    csrc: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 15 }),
    extension: fc.option(
      fc.record({
        profile: fc.constantFrom(0xbede, 0x1000, 0x0000, 0x8000),
        // The block's words as random bytes: parsers must walk whatever a sender wrote.
        body: fc.uint8Array({ maxLength: 64 }).map((b) => b.subarray(0, b.length - (b.length % 4))),
      }),
      { nil: undefined },
    ),
    payload: fc.uint8Array({ maxLength: 40 }),
    padding: fc.integer({ min: 0, max: 255 }),
  })
  .map((p) => {
    const ext = p.extension ? Buffer.concat([Buffer.from([p.extension.profile >> 8, p.extension.profile & 0xff, (p.extension.body.length / 4) >> 8, (p.extension.body.length / 4) & 0xff]), p.extension.body]) : Buffer.alloc(0);
    const head = Buffer.alloc(12 + 4 * p.csrc.length);
    head[0] = (p.version << 6) | (p.padding > 0 ? 0x20 : 0) | (p.extension ? 0x10 : 0) | p.csrc.length;
    head[1] = (p.marker ? 0x80 : 0) | p.payloadType;
    head.writeUInt16BE(p.seq, 2);
    head.writeUInt32BE(p.ts, 4);
    head.writeUInt32BE(p.ssrc, 8);
    p.csrc.forEach((c, i) => head.writeUInt32BE(c, 12 + 4 * i));
    const pad = p.padding > 0 ? Buffer.concat([Buffer.alloc(p.padding - 1), Buffer.from([p.padding])]) : Buffer.alloc(0);
    return Buffer.concat([head, ext, Buffer.from(p.payload), pad]);
  });

/** The outcome of a parse: the header's fields, or that it threw (werift's errors on short input are incidental TypeErrors and RangeErrors; every caller treats any error as a bad packet). */
function outcome(parse: (b: Buffer) => RtpHeader, bytes: Buffer): unknown {
  try {
    const h = parse(bytes);
    return { ...h, extensions: h.extensions.map((e) => ({ id: e.id, payload: Buffer.from(e.payload).toString('hex') })) };
  } catch (e) {
    return { threw: e instanceof Error };
  }
}

/** Whether `bytes` has a complete extension header whose block claims more bytes than follow it. */
function extensionRunsPastEnd(bytes: Buffer): boolean {
  if (bytes.length < 12 || (bytes[0] & 0x10) === 0) return false;
  const at = 12 + 4 * (bytes[0] & 0x0f);
  return bytes.length >= at + 4 && at + 4 + bytes.readUInt16BE(at + 2) * 4 > bytes.length;
}

describe("werift's RTP header parser, replaced", () => {
  it('is in place: werift 0.25 reads bits through strings, and RtpHeader.deSerialize is now ours', () => {
    expect(replacesWerift).toBe(true);
    expect(RtpHeader.deSerialize).toBe(rtpHeaderDeSerialize);
    expect(rtpHeaderDeSerialize).not.toBe(weriftDeSerialize);
  });

  it('gives the same header as werift for every generated packet', () => {
    fc.assert(
      fc.property(packetBytes, (bytes) => {
        expect(outcome(rtpHeaderDeSerialize, bytes)).toEqual(outcome(weriftDeSerialize, bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('fails where werift fails on truncated headers, and also where the extension block runs past the end (werift reads on past it)', () => {
    let pastEnd = 0;
    fc.assert(
      fc.property(packetBytes, fc.nat(), (bytes, cut) => {
        const truncated = bytes.subarray(0, cut % (bytes.length + 1));
        if (extensionRunsPastEnd(truncated)) {
          pastEnd++;
          expect(outcome(rtpHeaderDeSerialize, truncated)).toEqual({ threw: true });
        } else {
          expect(outcome(rtpHeaderDeSerialize, truncated)).toEqual(outcome(weriftDeSerialize, truncated));
        }
      }),
      { numRuns: 2000 },
    );
    expect(pastEnd).toBeGreaterThan(10); // the cuts do reach into extension blocks (46–64 of 2000 in eight runs)
  });

  it('parses the header of the bytes before an SRTP auth tag as werift parses a view of them (rtpHeaderUpTo)', () => {
    fc.assert(
      fc.property(packetBytes, fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes, tag) => {
        const packet = Buffer.concat([bytes, tag]);
        const upTo = outcome((raw) => rtpHeaderUpTo(raw, bytes.length), packet);
        const view = outcome(weriftDeSerialize, packet.subarray(0, bytes.length));
        // Where werift fails, this fails too (a block past the end throws here, werift reads on).
        if ('threw' in (upTo as object)) return 'threw' in (view as object) || extensionRunsPastEnd(bytes);
        // An extension element running past the end: this reads the tag's bytes where werift's view ends, and both
        // claim a payload past the end, which the SRTP context refuses (werift's too: NaN or past the end).
        const offset = (h: unknown) => (h as { payloadOffset?: number }).payloadOffset;
        if (offset(upTo)! > bytes.length) return 'threw' in (view as object) || !(offset(view)! <= bytes.length);
        return isDeepStrictEqual(upTo, view);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses at once a header that claims a larger extension block than the packet holds', () => {
    // 100 bytes claiming the largest block RTP can express (65535 words): a sender's mistake or an attack.
    const bytes = Buffer.alloc(100);
    bytes[0] = 0x90; // version 2, extension bit
    bytes[1] = 111;
    bytes.writeUInt16BE(0xbede, 12);
    bytes.writeUInt16BE(0xffff, 14);
    expect(() => rtpHeaderDeSerialize(bytes)).toThrow(/RTP header extension block of 262140 bytes runs past the end of the 100-byte packet/);
    // Within the packet, the same block parses.
    bytes.writeUInt16BE(2, 14);
    expect(rtpHeaderDeSerialize(bytes).payloadOffset).toBe(12 + 4 + 8);
  });

  it('is what werift uses for a whole packet: a browser-like Opus packet with three extensions', () => {
    const header = new RtpHeader({ payloadType: 111, sequenceNumber: 65535, timestamp: 4294966336, ssrc: 0x1234abcd, marker: true, extension: true, extensions: [{ id: 1, payload: Buffer.from([0x85]) }, { id: 2, payload: Buffer.from([1, 2, 3]) }, { id: 3, payload: Buffer.from([0, 7]) }] });
    const wire = new RtpPacket(header, Buffer.from([0xfc, 0xff, 0xfe])).serialize();
    const parsed = RtpPacket.deSerialize(wire);
    expect(outcome(() => parsed.header, wire)).toEqual(outcome(weriftDeSerialize, wire));
    expect(parsed.header.extensions.map((e) => [e.id, [...e.payload]])).toEqual([[1, [0x85]], [2, [1, 2, 3]], [3, [0, 7]]]);
    expect([...parsed.payload]).toEqual([0xfc, 0xff, 0xfe]);
  });
});
