/**
 * earshot's change to werift's AES-GCM SRTP decryption
 * (src/rtc/werift-srtp-gcm.ts): on packets werift itself encrypted, it gives
 * the same bytes and the same header as werift's own function, and a packet
 * that fails authentication (or carries bad padding) fails the same way.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { ProtectionProfileAeadAes128Gcm, RtpHeader, RtpPacket, SrtpSession } from 'werift';
import { describe, expect, it } from 'vitest';
import { srtpOutcome } from '../helpers/srtp-outcome.js';
// The header parser as the server runs it (werift's own takes over a minute on some tampered extension lengths).
import '../../src/rtc/werift-rtp-header.js';
import { replacesWeriftGcmDecrypt, rtpIv, weriftDecryptRtp, weriftRtpIv } from '../../src/rtc/werift-srtp-gcm.js';

interface GcmCipher {
  decryptRtp(cipherText: Buffer, rolloverCounter: number, header?: RtpHeader): [Buffer, RtpHeader];
}

const keys = {
  localMasterKey: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'),
  localMasterSalt: Buffer.from('a0a1a2a3a4a5a6a7a8a9aaab', 'hex'),
  remoteMasterKey: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'),
  remoteMasterSalt: Buffer.from('a0a1a2a3a4a5a6a7a8a9aaab', 'hex'),
};
const TAG = 16;

function sessions() {
  const sender = new SrtpSession({ keys, profile: ProtectionProfileAeadAes128Gcm });
  const receiver = new SrtpSession({ keys, profile: ProtectionProfileAeadAes128Gcm });
  const cipher = (receiver.remoteContext as unknown as { cipher: GcmCipher }).cipher;
  return { sender, receiver, cipher };
}

/** Encrypts under the given rollover counter, with werift's own cipher. */
function encryptRtp(sender: SrtpSession, h: RtpHeader, payload: Buffer, roc: number): Buffer {
  return (sender.localContext as unknown as { cipher: { encryptRtp(h: RtpHeader, payload: Buffer, roc: number): Buffer } }).cipher.encryptRtp(h, payload, roc);
}

const packets = fc.record({
  payloadType: fc.integer({ min: 0, max: 127 }),
  sequenceNumber: fc.integer({ min: 0, max: 0xffff }),
  timestamp: fc.integer({ min: 0, max: 0xffffffff }),
  ssrc: fc.integer({ min: 0, max: 0xffffffff }),
  marker: fc.boolean(),
  csrc: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 3 }),
  extensions: fc.array(fc.record({ id: fc.integer({ min: 1, max: 14 }), payload: fc.uint8Array({ minLength: 1, maxLength: 4 }) }), { maxLength: 2 }),
  payload: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  padding: fc.integer({ min: 0, max: 16 }),
});

type Packet = typeof packets extends fc.Arbitrary<infer T> ? T : never;

function header(p: Packet): RtpHeader {
  const h = new RtpHeader({ payloadType: p.payloadType, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, ssrc: p.ssrc, marker: p.marker });
  h.csrc = p.csrc;
  h.csrcLength = p.csrc.length;
  if (p.extensions.length > 0) {
    h.extension = true;
    h.extensions = p.extensions.map((e) => ({ id: e.id, payload: Buffer.from(e.payload) }));
  }
  if (p.padding > 0) {
    h.padding = true;
    h.paddingSize = p.padding;
  }
  return h;
}

/** The payload as sent: the audio bytes, then RFC 3550 padding whose last byte is its length. */
function body(p: Packet): Buffer {
  if (p.padding === 0) return Buffer.from(p.payload);
  const pad = Buffer.alloc(p.padding);
  pad[p.padding - 1] = p.padding;
  return Buffer.concat([Buffer.from(p.payload), pad]);
}

function both(cipher: GcmCipher, cipherText: Buffer, roc: number) {
  // Each parses its own header: decryption sets the padding size on it.
  const parse = () => RtpHeader.deSerialize(cipherText.subarray(0, cipherText.length - TAG));
  return {
    earshot: srtpOutcome(() => cipher.decryptRtp(cipherText, roc, parse())),
    werift: srtpOutcome(() => weriftDecryptRtp.call(cipher, cipherText, roc, parse())),
  };
}

describe("werift's AES-GCM SRTP decryption, as earshot runs it", () => {
  it('is the werift this change was written for (else it is left alone)', () => {
    expect(replacesWeriftGcmDecrypt).toBe(true);
  });

  it("gives werift's bytes and header for packets werift encrypted (CSRCs, extensions, padding, any rollover counter)", () => {
    const { sender, cipher } = sessions();
    fc.assert(
      fc.property(packets, fc.integer({ min: 0, max: 3 }), (p, roc) => {
        const h = header(p);
        const plain = Buffer.concat([h.serialize(h.serializeSize), body(p)]);
        const encrypted = encryptRtp(sender, h, body(p), roc);
        const { earshot, werift } = both(cipher, encrypted, roc);
        // A predicate, not expect(): a failing case shrinks fast and is reported as the counterexample.
        // What both give must also be the packet that was sent.
        return isDeepStrictEqual(earshot, werift) && (earshot as { bytes?: string }).bytes === plain.toString('hex') && (earshot as { header: RtpHeader }).header.paddingSize === p.padding;
      }),
      { numRuns: 300 },
    );
  });

  it('fails a tampered packet (payload, header or tag) as werift does, and a wrong rollover counter with SrtpAuthenticationError', () => {
    const { sender, cipher } = sessions();
    fc.assert(
      fc.property(packets, fc.nat(), fc.integer({ min: 1, max: 255 }), (p, at, flip) => {
        const h = header(p);
        // Under rollover counter 0 (werift's session would track its own across the runs).
        const encrypted = encryptRtp(sender, h, body(p), 0);
        const tampered = Buffer.from(encrypted);
        tampered[at % tampered.length] ^= flip;
        const { earshot, werift } = both(cipher, tampered, 0);
        const wrongRoc = both(cipher, encrypted, 1);
        const failed = { error: 'SrtpAuthenticationError', message: 'Failed to authenticate SRTP packet', srtp: true };
        // A tampered header may not even parse (werift's transport reports that as an authentication failure too).
        return isDeepStrictEqual(earshot, werift) && 'error' in (earshot as object) && isDeepStrictEqual(wrongRoc.earshot, wrongRoc.werift) && isDeepStrictEqual(wrongRoc.earshot, failed);
      }),
      { numRuns: 200 },
    );
  });

  it("gives werift's bytes for a payload longer than the decryptor's reused counter buffer (1536 bytes), and for one of each length around it", () => {
    const { sender, cipher } = sessions();
    for (const size of [1, 1500, 1520, 1536, 1537, 4000]) {
      const h = new RtpHeader({ payloadType: 111, sequenceNumber: size, timestamp: 960, ssrc: 9 });
      const payload = Buffer.alloc(size, size & 0xff);
      const { earshot, werift } = both(cipher, encryptRtp(sender, h, payload, 0), 0);
      expect(earshot).toEqual(werift);
      expect((earshot as { bytes: string }).bytes).toBe(Buffer.concat([h.serialize(h.serializeSize), payload]).toString('hex'));
    }
  });

  it('fails a packet whose padding length is 0 or longer than its payload the same way', () => {
    const { sender, cipher } = sessions();
    for (const last of [0, 200]) {
      const h = new RtpHeader({ payloadType: 111, sequenceNumber: 1, timestamp: 960, ssrc: 42 });
      h.padding = true;
      const payload = Buffer.from([1, 2, 3, last]);
      const { earshot, werift } = both(cipher, sender.encrypt(payload, h), 0);
      expect(earshot).toEqual(werift);
      expect(earshot).toMatchObject({ srtp: true });
    }
  });

  it('hands the header it checked to the parse of the decrypted packet that follows: equal to a fresh parse, and for that buffer only, once', () => {
    fc.assert(
      fc.property(packets, (p) => {
        // A receiver per packet: werift's rollover tracking expects one stream's sequence numbers.
        const { sender, receiver } = sessions();
        const h = header(p);
        const sent = Buffer.concat([h.serialize(h.serializeSize), body(p)]);
        const decrypted = receiver.decrypt(encryptRtp(sender, h, body(p), 0));
        const packet = RtpPacket.deSerialize(decrypted);
        const fresh = RtpHeader.deSerialize(Buffer.from(decrypted));
        const again = RtpHeader.deSerialize(decrypted);
        return (
          decrypted.equals(sent) &&
          isDeepStrictEqual({ ...packet.header }, { ...fresh }) &&
          isDeepStrictEqual({ ...again }, { ...fresh }) &&
          again !== packet.header &&
          packet.payload.equals(Buffer.from(p.payload))
        );
      }),
      { numRuns: 100 },
    );
  });

  it("computes werift's RTP IV (RFC 7714 §8.1) for any SSRC, rollover counter and sequence number, and refuses out-of-range ones as werift does", () => {
    const { cipher } = sessions();
    const werift = (ssrc: number, roc: number, seq: number): unknown => {
      try {
        return Buffer.from(weriftRtpIv.call(cipher, new RtpHeader({ ssrc, sequenceNumber: seq }), roc)).toString('hex');
      } catch (e) {
        return (e as Error).constructor.name;
      }
    };
    const earshot = (ssrc: number, roc: number, seq: number): unknown => {
      try {
        return rtpIv((cipher as unknown as { srtpSessionSalt: Buffer }).srtpSessionSalt, ssrc, roc, seq).toString('hex');
      } catch (e) {
        return (e as Error).constructor.name;
      }
    };
    const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 0xffffffff, 0x100000000, -1));
    fc.assert(
      fc.property(u32, u32, fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0x10000, -1)), (ssrc, roc, seq) => earshot(ssrc, roc, seq) === werift(ssrc, roc, seq)),
      { numRuns: 1000 },
    );
    expect(earshot(1, 2, 3)).not.toBe(earshot(1, 2, 4));
    expect(earshot(1, 0x100000000, 3)).toBe('RangeError');
  });

  it("writes the IV itself for werift's sessions (14-byte session salts), without werift's IV writer", () => {
    const { sender, receiver, cipher } = sessions();
    expect((cipher as unknown as { srtpSessionSalt: Buffer }).srtpSessionSalt.length).toBeGreaterThanOrEqual(12);
    // werift's writer builds an array per packet; with it unusable, decryption must still succeed.
    Object.defineProperty(cipher, 'rtpInitializationVector', {
      value: () => {
        throw new Error("werift's IV writer was called");
      },
    });
    const h = new RtpHeader({ payloadType: 111, sequenceNumber: 9, timestamp: 960, ssrc: 0x1234 });
    const payload = Buffer.from('opus frame');
    expect(receiver.decrypt(sender.encrypt(payload, h))).toEqual(Buffer.concat([h.serialize(h.serializeSize), payload]));
  });

  it('decrypts through werift’s session as before: what was sent comes out', () => {
    const { sender, receiver } = sessions();
    for (let seq = 65530; seq < 65540; seq++) {
      const h = new RtpHeader({ payloadType: 111, sequenceNumber: seq & 0xffff, timestamp: seq * 960, ssrc: 7 });
      const payload = Buffer.from(`opus ${seq}`);
      expect(receiver.decrypt(sender.encrypt(payload, h))).toEqual(Buffer.concat([h.serialize(h.serializeSize), payload]));
    }
  });
});
