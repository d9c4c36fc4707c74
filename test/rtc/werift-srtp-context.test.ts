/**
 * earshot's change to werift's SRTP receive context
 * (src/rtc/werift-srtp-context.ts): run side by side with werift's own
 * function on the same packet sequences, it returns or throws the same and
 * leaves the same per-SSRC rollover state, for both of werift's profiles.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpAuthenticationError, SrtpSession } from 'werift';
import { describe, expect, it } from 'vitest';
import { srtpOutcome } from '../helpers/srtp-outcome.js';
// The parser and GCM decryption as the server runs them.
import '../../src/rtc/werift-rtp-header.js';
import '../../src/rtc/werift-srtp-gcm.js';
import { MAX_SSRC_STATES, replacesWeriftContextDecrypt, weriftContextDecryptRtp } from '../../src/rtc/werift-srtp-context.js';

interface Context {
  srtpSSRCStates: Record<number, object>;
  decryptRtp(cipherText: Buffer): [Buffer, RtpHeader];
}

const PROFILES = [
  { name: 'AEAD_AES_128_GCM', profile: ProtectionProfileAeadAes128Gcm, salt: 12 },
  { name: 'AES_CM_128_HMAC_SHA1_80', profile: ProtectionProfileAes128CmHmacSha1_80, salt: 14 },
] as const;

function session(profile: number, salt: number): SrtpSession {
  const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
  const masterSalt = Buffer.from('a0a1a2a3a4a5a6a7a8a9aaabacad', 'hex').subarray(0, salt);
  return new SrtpSession({ keys: { localMasterKey: key, localMasterSalt: masterSalt, remoteMasterKey: key, remoteMasterSalt: masterSalt }, profile });
}

/** One step of a sequence: a packet with this sequence number, maybe tampered or cut short. */
const steps = fc.array(
  fc.record({
    seq: fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 65500, max: 0xffff }), fc.integer({ min: 0, max: 120 })),
    ssrc: fc.constantFrom(1, 2),
    harm: fc.constantFrom('none', 'none', 'none', 'flip', 'cut'),
    at: fc.nat(),
  }),
  { minLength: 1, maxLength: 40 },
);

describe("werift's SRTP receive context, as earshot runs it", () => {
  it('is the werift this change was written for (else it is left alone)', () => {
    expect(replacesWeriftContextDecrypt).toBe(true);
  });

  for (const { name, profile, salt } of PROFILES) {
    it(`${name}: returns or throws what werift's does, and leaves the same rollover state, packet after packet`, () => {
      fc.assert(
        fc.property(steps, (sequence) => {
          const sender = session(profile, salt);
          const earshot = session(profile, salt).remoteContext as unknown as Context;
          const werift = session(profile, salt).remoteContext as unknown as Context;
          for (const s of sequence) {
            const h = new RtpHeader({ payloadType: 111, sequenceNumber: s.seq, timestamp: s.seq * 960, ssrc: s.ssrc });
            let packet = sender.encrypt(Buffer.from(`opus ${s.seq}`), h);
            if (s.harm === 'flip') {
              packet = Buffer.from(packet);
              packet[s.at % packet.length] ^= 0x5a;
            } else if (s.harm === 'cut') packet = packet.subarray(0, s.at % 30);
            const a = srtpOutcome(() => earshot.decryptRtp(packet));
            const b = srtpOutcome(() => weriftContextDecryptRtp.call(werift, packet));
            if (!isDeepStrictEqual(a, b) || !isDeepStrictEqual(earshot.srtpSSRCStates, werift.srtpSSRCStates)) return false;
          }
          return true;
        }),
        { numRuns: 200 },
      );
    });
  }

  it('decrypts across a sequence-number wrap (the rollover counter moves on), and a failed packet leaves the state as it was', () => {
    const sender = session(ProtectionProfileAeadAes128Gcm, 12);
    const receiver = session(ProtectionProfileAeadAes128Gcm, 12);
    const context = receiver.remoteContext as unknown as Context;
    for (let n = 65530; n < 65540; n++) {
      const h = new RtpHeader({ payloadType: 111, sequenceNumber: n & 0xffff, timestamp: n * 960, ssrc: 7 });
      const payload = Buffer.from(`opus ${n}`);
      expect(receiver.decrypt(sender.encrypt(payload, h))).toEqual(Buffer.concat([h.serialize(h.serializeSize), payload]));
    }
    const before = structuredClone(context.srtpSSRCStates);
    expect(before[7]).toMatchObject({ rolloverCounter: 1, lastSequenceNumber: 3 });
    const h = new RtpHeader({ payloadType: 111, sequenceNumber: 4, timestamp: 0, ssrc: 7 });
    const bad = Buffer.from(sender.encrypt(Buffer.from('x'), h));
    bad[bad.length - 1] ^= 1;
    expect(() => receiver.decrypt(bad)).toThrow(SrtpAuthenticationError);
    expect(context.srtpSSRCStates).toEqual(before);
  });

  it('remembers the first SSRCs only: a sender with a new SSRC on every packet grows no state past the bound, and every packet still decrypts', () => {
    const sender = session(ProtectionProfileAeadAes128Gcm, 12);
    const receiver = session(ProtectionProfileAeadAes128Gcm, 12);
    const context = receiver.remoteContext as unknown as Context;
    // The publisher's own stream first, past a sequence-number wrap: its rollover counter must survive what follows.
    const own = (n: number) => new RtpHeader({ payloadType: 111, sequenceNumber: n & 0xffff, timestamp: n * 960, ssrc: 7 });
    for (let n = 65530; n < 65540; n++) receiver.decrypt(sender.encrypt(Buffer.from(`opus ${n}`), own(n)));
    for (let i = 0; i < 1000; i++) {
      const h = new RtpHeader({ payloadType: 111, sequenceNumber: i, timestamp: i * 960, ssrc: 0x10000 + i });
      const payload = Buffer.from(`opus ${i}`);
      expect(receiver.decrypt(sender.encrypt(payload, h))).toEqual(Buffer.concat([h.serialize(h.serializeSize), payload]));
    }
    expect(Object.keys(context.srtpSSRCStates).length).toBe(MAX_SSRC_STATES);
    expect(context.srtpSSRCStates[7]).toMatchObject({ rolloverCounter: 1 });
    const payload = Buffer.from('after');
    expect(receiver.decrypt(sender.encrypt(payload, own(65540)))).toEqual(Buffer.concat([own(65540).serialize(own(65540).serializeSize), payload]));
  });
});
