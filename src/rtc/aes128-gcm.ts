/**
 * AES-128-GCM (NIST SP 800-38D) with one cipher context per key, for SRTP
 * packets (RFC 7714: 96-bit IV, 16-byte tag): `open` decrypts what the server
 * receives, `seal` encrypts what earshot's own senders send.
 *
 * Why not Node's `createDecipheriv('aes-128-gcm')` (or `createCipheriv`):
 * Node cannot give a GCM context a new IV, so SRTP needs one per packet, and each is a native object
 * whose weak-handle clean-up is most of the main thread's scavenge pause under
 * load (~1.7 µs per packet, piled into one pause; docs/performance.md, "GC
 * pauses"). GCM is CTR-mode AES plus GHASH: here the AES is Node's own, one
 * ECB context per key that encrypts the packet's counter blocks (the
 * keystream and the tag mask) in one `update`, and GHASH is computed below
 * with Shoup's 8-bit table for the key (4 KiB, made once). No native object
 * per packet, and about half the time of the per-packet context (2.5 against
 * 4.7 µs for a 100-byte payload, measured on the reference VM).
 *
 * test/rtc/aes128-gcm.test.ts checks both directions against Node's GCM on
 * random keys, IVs, headers and payload sizes and against the published test
 * vectors, and that every flipped bit fails authentication.
 */
import { createCipheriv, type Cipher } from 'node:crypto';

/** The tag length SRTP's AEAD_AES_128_GCM uses (RFC 7714 §12), bytes. */
export const GCM_TAG_LENGTH = 16;

/** The key length of AES-128, bytes. */
export const AES_128_KEY_LENGTH = 16;

/** Payloads up to this many bytes use the context's reused counter buffer; longer ones get one of their own. */
const STAGED_PAYLOAD = 1536;

/** Multiplies the 128-bit value `v` (four big-endian 32-bit words) by x in GCM's bit order: a right shift, reduced by 0xe1 || 0^120. */
function timesX(v: Uint32Array): void {
  const reduce = v[3] & 1 ? 0xe1000000 : 0;
  v[3] = (v[3] >>> 1) | (v[2] << 31);
  v[2] = (v[2] >>> 1) | (v[1] << 31);
  v[1] = (v[1] >>> 1) | (v[0] << 31);
  v[0] = (v[0] >>> 1) ^ reduce;
}

/**
 * What a right shift by 8 bits must XOR into the top word for the byte `r`
 * shifted out: the eight single-bit reductions, combined (Shoup's "R" table).
 */
const REDUCE_BYTE = (() => {
  const table = new Int32Array(256);
  const v = new Uint32Array(4);
  for (let r = 0; r < 256; r++) {
    v.fill(0);
    v[3] = r;
    for (let k = 0; k < 8; k++) timesX(v);
    table[r] = v[0];
  }
  return table;
})();

/** Reads four bytes of `b` at `p` as a big-endian 32-bit word. */
function word(b: Uint8Array, p: number): number {
  return (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
}

/** The byte `k` (0–15) of the 128-bit value in words w0..w3. */
function byteOf(w0: number, w1: number, w2: number, w3: number, k: number): number {
  const w = k < 4 ? w0 : k < 8 ? w1 : k < 12 ? w2 : w3;
  return (w >>> (24 - 8 * (k & 3))) & 0xff;
}

/** AES-128-GCM for one key; reuse it for every packet under that key. */
export class Aes128Gcm {
  readonly #ecb: Cipher;
  /** b · H for every byte b, four words each, b's most significant bit standing for H itself. */
  readonly #table = new Int32Array(256 * 4);
  /** The counter blocks of one packet: J0 (the tag mask), then one per 16 payload bytes. */
  readonly #counters = Buffer.alloc(16 + STAGED_PAYLOAD);
  readonly #counterViews: Buffer[] = [];
  /** The lengths block of GHASH. */
  readonly #lengths = Buffer.alloc(16);
  // The GHASH state, four big-endian words.
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;

  /** `key`: 16 bytes. */
  constructor(key: Uint8Array) {
    if (key.length !== AES_128_KEY_LENGTH) throw new RangeError(`AES-128 key must be ${AES_128_KEY_LENGTH} bytes, got ${key.length}`);
    this.#ecb = createCipheriv('aes-128-ecb', key, null);
    this.#ecb.setAutoPadding(false);
    const h = this.#ecb.update(Buffer.alloc(16));
    const v = new Uint32Array([h.readUInt32BE(0), h.readUInt32BE(4), h.readUInt32BE(8), h.readUInt32BE(12)]);
    const t = this.#table;
    for (let bit = 0x80; bit >= 1; bit >>= 1) {
      t.set(v, bit * 4);
      timesX(v);
    }
    // Multiplication by H is linear: (a ⊕ b) · H = a · H ⊕ b · H.
    for (let i = 2; i <= 0x80; i *= 2) {
      for (let j = 1; j < i; j++) for (let w = 0; w < 4; w++) t[(i + j) * 4 + w] = t[i * 4 + w] ^ t[j * 4 + w];
    }
  }

  /**
   * Authenticates `packet[0, tagAt + 16)`, whose bytes `[0, aadEnd)` are the
   * additional data (the RTP header) and `[aadEnd, tagAt)` the ciphertext,
   * under the 12-byte `iv`. If the tag matches, writes the additional data and
   * then the plaintext into `out[0, tagAt)` and returns true; otherwise
   * returns false and leaves `out` as it was.
   */
  open(packet: Uint8Array, aadEnd: number, tagAt: number, iv: Uint8Array, out: Uint8Array): boolean {
    if (!(aadEnd >= 0 && aadEnd <= tagAt && tagAt + GCM_TAG_LENGTH <= packet.length && out.length >= tagAt && iv.length === 12)) {
      throw new RangeError('AES-GCM: packet bounds out of range');
    }
    this.#ghash(packet, aadEnd, tagAt);
    const keystream = this.#keystream(iv, tagAt - aadEnd);
    // Every byte of the tag is compared, whatever the first difference.
    const s0 = this.#s0;
    const s1 = this.#s1;
    const s2 = this.#s2;
    const s3 = this.#s3;
    let diff = 0;
    for (let k = 0; k < GCM_TAG_LENGTH; k++) diff |= keystream[k] ^ byteOf(s0, s1, s2, s3, k) ^ packet[tagAt + k];
    if (diff !== 0) return false;
    for (let i = 0; i < aadEnd; i++) out[i] = packet[i];
    for (let i = aadEnd, k = 16; i < tagAt; i++, k++) out[i] = packet[i] ^ keystream[k];
    return true;
  }

  /**
   * Encrypts `payload` under the 12-byte `iv`, with `out[0, aadEnd)` (already
   * written, e.g. the RTP header) as the additional data: writes the
   * ciphertext to `out[aadEnd, aadEnd + payload.length)` and the tag after
   * it, and returns the sealed length (`aadEnd + payload.length + 16`).
   * `payload` must not overlap `out`.
   */
  seal(out: Uint8Array, aadEnd: number, payload: Uint8Array, iv: Uint8Array): number {
    const tagAt = aadEnd + payload.length;
    if (!(aadEnd >= 0 && tagAt + GCM_TAG_LENGTH <= out.length && iv.length === 12)) throw new RangeError('AES-GCM: packet bounds out of range');
    const keystream = this.#keystream(iv, payload.length);
    for (let i = 0, k = 16; i < payload.length; i++, k++) out[aadEnd + i] = payload[i] ^ keystream[k];
    this.#ghash(out, aadEnd, tagAt);
    for (let k = 0; k < GCM_TAG_LENGTH; k++) out[tagAt + k] = keystream[k] ^ byteOf(this.#s0, this.#s1, this.#s2, this.#s3, k);
    return tagAt + GCM_TAG_LENGTH;
  }

  /** GHASH of `data[0, aadEnd)` as additional data and `data[aadEnd, tagAt)` as ciphertext, left in the state. */
  #ghash(data: Uint8Array, aadEnd: number, tagAt: number): void {
    this.#s0 = this.#s1 = this.#s2 = this.#s3 = 0;
    this.#absorb(data, 0, aadEnd);
    this.#absorb(data, aadEnd, tagAt);
    const lengths = this.#lengths;
    // 64-bit bit lengths; a packet is far below 2^32 bits.
    lengths.writeUInt32BE(aadEnd * 8, 4);
    lengths.writeUInt32BE((tagAt - aadEnd) * 8, 12);
    this.#absorb(lengths, 0, 16);
  }

  /** The tag mask (E(K, J0), 16 bytes) then the keystream for `payloadLength` bytes, in one ECB pass over the counter blocks. */
  #keystream(iv: Uint8Array, payloadLength: number): Buffer {
    const blocks = ((payloadLength + 15) >>> 4) + 1;
    const counters = blocks * 16 <= this.#counters.length ? this.#counters : Buffer.alloc(blocks * 16);
    // J0 = IV || 1 masks the tag; the payload's keystream starts at IV || 2.
    for (let b = 0; b < blocks; b++) {
      const o = b * 16;
      for (let k = 0; k < 12; k++) counters[o + k] = iv[k];
      counters.writeUInt32BE(b + 1, o + 12);
    }
    const input = counters === this.#counters ? (this.#counterViews[blocks] ??= counters.subarray(0, blocks * 16)) : counters;
    return this.#ecb.update(input);
  }

  /** GHASH: folds `data[from, to)` into the state, the last block zero-padded. */
  #absorb(data: Uint8Array, from: number, to: number): void {
    const t = this.#table;
    let s0 = this.#s0;
    let s1 = this.#s1;
    let s2 = this.#s2;
    let s3 = this.#s3;
    for (let p = from; p < to; p += 16) {
      if (to - p >= 16) {
        s0 ^= word(data, p);
        s1 ^= word(data, p + 4);
        s2 ^= word(data, p + 8);
        s3 ^= word(data, p + 12);
      } else {
        for (let k = 0; p + k < to; k++) {
          const b = data[p + k] << (24 - 8 * (k & 3));
          if (k < 4) s0 ^= b;
          else if (k < 8) s1 ^= b;
          else if (k < 12) s2 ^= b;
          else s3 ^= b;
        }
      }
      // s · H, Horner's rule over the bytes from the last to the first: shift by one byte (reducing), add b · H.
      let z0 = 0;
      let z1 = 0;
      let z2 = 0;
      let z3 = 0;
      for (let k = 15; k >= 0; k--) {
        if (k !== 15) {
          const r = z3 & 0xff;
          z3 = (z3 >>> 8) | (z2 << 24);
          z2 = (z2 >>> 8) | (z1 << 24);
          z1 = (z1 >>> 8) | (z0 << 24);
          z0 = (z0 >>> 8) ^ REDUCE_BYTE[r];
        }
        const i = byteOf(s0, s1, s2, s3, k) << 2;
        z0 ^= t[i];
        z1 ^= t[i + 1];
        z2 ^= t[i + 2];
        z3 ^= t[i + 3];
      }
      s0 = z0;
      s1 = z1;
      s2 = z2;
      s3 = z3;
    }
    this.#s0 = s0;
    this.#s1 = s1;
    this.#s2 = s2;
    this.#s3 = s3;
  }
}
