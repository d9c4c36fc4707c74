/**
 * earshot's AES-128-GCM with one context per key (src/rtc/aes128-gcm.ts),
 * both directions: the published test vectors, Node's own GCM on random
 * inputs, and a failed tag for any changed bit.
 */
import { createCipheriv } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Aes128Gcm, GCM_TAG_LENGTH } from '../../src/rtc/aes128-gcm.js';

const hex = (s: string) => Buffer.from(s, 'hex');

/** aad || ciphertext || tag, as an SRTP packet lays them out. */
function sealed(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plain: Uint8Array): Buffer {
  const c = createCipheriv('aes-128-gcm', key, iv);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([aad, body, c.getAuthTag()]);
}

/** The decryptor's output for a sealed packet, or null if it refused the tag. */
function open(d: Aes128Gcm, packet: Buffer, aadLength: number, iv: Uint8Array): Buffer | null {
  const tagAt = packet.length - GCM_TAG_LENGTH;
  const out = Buffer.alloc(tagAt, 0xee);
  return d.open(packet, aadLength, tagAt, iv, out) ? out : null;
}

/** What `seal` writes for `aad` and `plain`: aad || ciphertext || tag, in a buffer with room to spare that must stay untouched. */
function sealedBy(c: Aes128Gcm, aad: Uint8Array, plain: Uint8Array, iv: Uint8Array): Buffer {
  const out = Buffer.alloc(aad.length + plain.length + GCM_TAG_LENGTH + 8, 0xee);
  out.set(aad);
  const end = c.seal(out, aad.length, plain, iv);
  expect(end).toBe(aad.length + plain.length + GCM_TAG_LENGTH);
  expect(out.subarray(end).every((b) => b === 0xee)).toBe(true);
  return out.subarray(0, end);
}

describe('AES-128-GCM with one context per key', () => {
  // The AES-128 cases of the GCM specification (McGrew and Viega, test cases 1–4), also NIST's.
  const K3 = 'feffe9928665731c6d6a8f9467308308';
  const IV3 = 'cafebabefacedbaddecaf888';
  const P3 = 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255';
  const C3 = '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985';
  const vectors = [
    { name: '1 (nothing but the tag)', key: '00000000000000000000000000000000', iv: '000000000000000000000000', aad: '', plain: '', cipher: '', tag: '58e2fccefa7e3061367f1d57a4e7455a' },
    { name: '2 (one zero block)', key: '00000000000000000000000000000000', iv: '000000000000000000000000', aad: '', plain: '00000000000000000000000000000000', cipher: '0388dace60b6a392f328c2b971b2fe78', tag: 'ab6e47d42cec13bdf53a67b21257bddf' },
    { name: '3 (four blocks)', key: K3, iv: IV3, aad: '', plain: P3, cipher: C3, tag: '4d5c2af327cd64a62cf35abd2ba6fab4' },
    { name: '4 (partial blocks, 20 bytes of AAD)', key: K3, iv: IV3, aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2', plain: P3.slice(0, 120), cipher: C3.slice(0, 120), tag: '5bc94fbc3221a5db94fae95ae7121a47' },
  ];
  for (const v of vectors) {
    it(`decrypts the specification's test case ${v.name}`, () => {
      const packet = Buffer.concat([hex(v.aad), hex(v.cipher), hex(v.tag)]);
      expect(open(new Aes128Gcm(hex(v.key)), packet, v.aad.length / 2, hex(v.iv))?.toString('hex')).toBe(v.aad + v.plain);
    });
    it(`encrypts the specification's test case ${v.name}`, () => {
      expect(sealedBy(new Aes128Gcm(hex(v.key)), hex(v.aad), hex(v.plain), hex(v.iv)).toString('hex')).toBe(v.aad + v.cipher + v.tag);
    });
  }

  it("seals as Node's GCM does for any key, IV, header and payload size, reusing one context per key for both directions", () => {
    const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
    fc.assert(
      fc.property(bytes(16, 16), fc.array(fc.tuple(bytes(12, 12), bytes(0, 72), bytes(0, 400)), { minLength: 1, maxLength: 4 }), (key, packets) => {
        const c = new Aes128Gcm(key);
        return packets.every(([iv, aad, plain]) => {
          const mine = sealedBy(c, aad, plain, iv);
          return mine.equals(sealed(key, iv, aad, plain)) && open(c, Buffer.from(mine), aad.length, iv)?.equals(Buffer.concat([aad, plain])) === true;
        });
      }),
      { numRuns: 400 },
    );
  });

  it("gives Node's GCM plaintext for any key, IV, header and payload size, reusing one decryptor per key", () => {
    const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
    fc.assert(
      fc.property(bytes(16, 16), fc.array(fc.tuple(bytes(12, 12), bytes(0, 72), bytes(0, 400)), { minLength: 1, maxLength: 4 }), (key, packets) => {
        const d = new Aes128Gcm(key);
        return packets.every(([iv, aad, plain]) => open(d, sealed(key, iv, aad, plain), aad.length, iv)?.equals(Buffer.concat([aad, plain])) === true);
      }),
      { numRuns: 400 },
    );
  });

  it('seals and decrypts payloads longer than its reused counter buffer, and of each length around it', () => {
    const key = hex(K3);
    const iv = hex(IV3);
    const aad = Buffer.alloc(12, 7);
    const d = new Aes128Gcm(key);
    for (const size of [1535, 1536, 1537, 1552, 1553, 5000, 17]) {
      const plain = Buffer.alloc(size);
      for (let i = 0; i < size; i++) plain[i] = (i * 31 + size) & 0xff;
      expect(open(d, sealed(key, iv, aad, plain), aad.length, iv)?.equals(Buffer.concat([aad, plain]))).toBe(true);
      expect(sealedBy(d, aad, plain, iv).equals(sealed(key, iv, aad, plain))).toBe(true);
    }
  });

  it('refuses a packet with any one bit changed (header, payload or tag), or under another IV or key, and leaves the output untouched', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ minLength: 12, maxLength: 40 }), fc.uint8Array({ maxLength: 200 }), fc.nat(), (key, iv, aad, plain, at) => {
        const packet = sealed(key, iv, aad, plain);
        const d = new Aes128Gcm(key);
        const bit = at % (packet.length * 8);
        const tampered = Buffer.from(packet);
        tampered[bit >> 3] ^= 1 << (bit & 7);
        const otherIv = Buffer.from(iv);
        otherIv[at % 12] ^= 0x80;
        const otherKey = Buffer.from(key);
        otherKey[at % 16] ^= 1;
        const out = Buffer.alloc(packet.length - GCM_TAG_LENGTH, 0xee);
        const refused = !d.open(tampered, aad.length, packet.length - GCM_TAG_LENGTH, iv, out);
        return (
          refused &&
          out.every((b) => b === 0xee) &&
          open(d, packet, aad.length, otherIv) === null &&
          open(new Aes128Gcm(otherKey), packet, aad.length, iv) === null &&
          open(d, packet, aad.length, iv) !== null
        );
      }),
      { numRuns: 300 },
    );
  });

  it('refuses keys that are not 16 bytes and bounds outside the packet with RangeError', () => {
    expect(() => new Aes128Gcm(Buffer.alloc(32))).toThrow(RangeError);
    const d = new Aes128Gcm(Buffer.alloc(16));
    const packet = Buffer.alloc(40);
    expect(() => d.open(packet, 12, 30, Buffer.alloc(12), Buffer.alloc(40))).toThrow(RangeError);
    expect(() => d.open(packet, 20, 10, Buffer.alloc(12), Buffer.alloc(40))).toThrow(RangeError);
    expect(() => d.open(packet, 12, 24, Buffer.alloc(8), Buffer.alloc(40))).toThrow(RangeError);
    expect(() => d.open(packet, 12, 24, Buffer.alloc(12), Buffer.alloc(10))).toThrow(RangeError);
    expect(() => d.seal(Buffer.alloc(40), 12, Buffer.alloc(13), Buffer.alloc(12))).toThrow(RangeError);
    expect(() => d.seal(Buffer.alloc(40), 12, Buffer.alloc(4), Buffer.alloc(8))).toThrow(RangeError);
  });
});
