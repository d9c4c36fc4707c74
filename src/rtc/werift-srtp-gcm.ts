/**
 * werift's AES-GCM SRTP decryption, without a native cipher object or a
 * zero-filled buffer per packet.
 *
 * werift negotiates AES-128-GCM first, so this is how nearly every packet a
 * browser or werift client sends is decrypted. Per packet, werift creates a
 * `Decipheriv` (Node cannot give a GCM context a new IV), whose native
 * object's clean-up is most of the main thread's scavenge pause under load,
 * then makes an empty Buffer and a new zero-filled one of the packet's size
 * (`growBufferSize`: its own ArrayBuffer, outside V8's pool). Here the
 * decryption is `Aes128Gcm` (aes128-gcm.ts), one per
 * werift cipher, made on its first packet and reused; the output is taken
 * from Node's buffer pool (`Buffer.allocUnsafe`) and the decryptor writes
 * every byte of it: the header, then the payload, exactly the bytes werift
 * writes. The IV is werift's, written into one reused buffer (`rtpIv`; werift
 * builds an array of its four fields per packet). A packet that fails
 * authentication throws the same `SrtpAuthenticationError`, which werift's
 * transport drops.
 *
 * It also hands the header it parsed and checked to the parser, for werift's
 * parse of the decrypted packet that follows (`alreadyParsed` in
 * werift-rtp-header.ts): one header parse per packet instead of two.
 *
 * The payload werift hands on is a view into that output, so a packet kept
 * keeps its 8 KiB pool slab alive; nothing earshot does holds packets for
 * long or transfers their memory (the worker pool copies the bytes into its
 * batch).
 *
 * test/rtc/werift-srtp-gcm.test.ts checks it against werift's own on packets
 * werift encrypted (CSRCs, extensions, padding), and that tampered packets
 * fail the same way. A werift whose GCM decryption no longer looks as
 * expected is left as it is, and so is a cipher whose key or tag is not
 * AES-128-GCM's. The upstream change: a decryption context per session key
 * (as here), and `const dst = Buffer.allocUnsafe(cipherText.length -
 * this.aeadAuthTagLen)` in place of `growBufferSize(Buffer.from([]), …)`.
 */
import { SrtpAuthenticationError, type RtpHeader } from 'werift';
import { AES_128_KEY_LENGTH, Aes128Gcm, GCM_TAG_LENGTH } from './aes128-gcm.js';
import { alreadyParsed, replacesWerift } from './werift-rtp-header.js';
import { MIN_RTP_HEADER, SRTP_AUTH_FAILED as FAILED, throwawaySrtpSession } from './werift-srtp-internals.js';

/** The parts of werift's GCM cipher this module reads. */
interface GcmInternals {
  aeadAuthTagLen: number;
  srtpSessionKey: Buffer;
  srtpSessionSalt: Buffer;
  rtpInitializationVector(header: RtpHeader, rolloverCounter: number): Buffer;
  decryptRtp(cipherText: Buffer, rolloverCounter: number, header?: RtpHeader): [Buffer, RtpHeader];
}

/** werift's GCM cipher class (not exported by werift). */
export const weriftGcmCipher: object = Object.getPrototypeOf((throwawaySrtpSession().remoteContext as unknown as { cipher: object }).cipher) as object;
const proto = weriftGcmCipher as GcmInternals;

/** werift's own function, as loaded (the test compares against it). */
export const weriftDecryptRtp = proto.decryptRtp;

/** werift's own IV function, as loaded (the test compares against it). */
export const weriftRtpIv = proto.rtpInitializationVector;

/** Whether werift's IV is the RFC 7714 one `rtpIv` computes: its four fields written with `rtpIvWriter`, then the salt. */
export const ivIsWerifts = /rtpIvWriter/.test(String(weriftRtpIv)) && /srtpSessionSalt/.test(String(weriftRtpIv));

/** One IV buffer for every decryption and encryption: `Aes128Gcm` copies the IV into its counter blocks before it returns. */
const ivScratch = Buffer.alloc(12);

/** Each werift cipher's decryptor, made on its first packet, with the key it was made for. */
const decryptors = new WeakMap<GcmInternals, { key: Buffer; decryptor: Aes128Gcm }>();

/** The decryptor for werift's cipher `c`, or undefined if its key or tag is not AES-128-GCM's (werift's path then). */
function decryptorOf(c: GcmInternals): Aes128Gcm | undefined {
  const known = decryptors.get(c);
  if (known !== undefined && known.key === c.srtpSessionKey) return known.decryptor;
  if (c.srtpSessionKey?.length !== AES_128_KEY_LENGTH || c.aeadAuthTagLen !== GCM_TAG_LENGTH) return undefined;
  const decryptor = new Aes128Gcm(c.srtpSessionKey);
  decryptors.set(c, { key: c.srtpSessionKey, decryptor });
  return decryptor;
}

/**
 * The RTP IV of RFC 7714 §8.1 as werift computes it (2 zero bytes, SSRC,
 * rollover counter, sequence number, XOR the first 12 bytes of the session salt), written
 * into one reused buffer: werift's writer takes an array of the four values
 * and a `forEach` per packet. Out-of-range values throw `RangeError` as
 * werift's `writeUIntBE` does.
 */
export function rtpIv(salt: Buffer, ssrc: number, rolloverCounter: number, sequenceNumber: number): Buffer {
  const iv = ivScratch;
  iv[0] = 0;
  iv[1] = 0;
  iv.writeUInt32BE(ssrc, 2);
  iv.writeUInt32BE(rolloverCounter, 6);
  iv.writeUInt16BE(sequenceNumber, 10);
  for (let i = 0; i < 12; i++) iv[i] ^= salt[i];
  return iv;
}

/** Whether werift's GCM decryption is the one this module was written against. */
export const replacesWeriftGcmDecrypt = /growBufferSize/.test(String(weriftDecryptRtp)) && /aes-128-gcm/.test(String(weriftDecryptRtp));

/** werift's `finalizeSrtpRtpHeader`: the padding size, checked, from the decrypted packet. */
function finalizeHeader(header: RtpHeader, packet: Buffer): RtpHeader {
  if (!header.padding) {
    header.paddingSize = 0;
    return header;
  }
  if (!(packet.length > header.payloadOffset)) throw new SrtpAuthenticationError(FAILED);
  const paddingSize = packet[packet.length - 1];
  if (!(paddingSize > 0 && paddingSize <= packet.length - header.payloadOffset)) throw new SrtpAuthenticationError(FAILED);
  header.paddingSize = paddingSize;
  return header;
}

function decryptRtp(this: GcmInternals, cipherText: Buffer, rolloverCounter: number, header?: RtpHeader): [Buffer, RtpHeader] {
  const authTagOffset = cipherText.length - this.aeadAuthTagLen;
  // werift's contexts always pass the header they parsed and checked; anything else takes werift's path.
  const decryptor = decryptorOf(this);
  if (decryptor === undefined || header === undefined || header.payloadOffset < MIN_RTP_HEADER || header.payloadOffset > authTagOffset) {
    return weriftDecryptRtp.call(this, cipherText, rolloverCounter, header);
  }
  // werift's session salt is 14 bytes (its KDF's, for every profile); the IV XORs the first 12.
  const iv = ivIsWerifts && this.srtpSessionSalt?.length >= 12 ? rtpIv(this.srtpSessionSalt, header.ssrc, rolloverCounter, header.sequenceNumber) : this.rtpInitializationVector(header, rolloverCounter);
  if (iv.length !== 12) return weriftDecryptRtp.call(this, cipherText, rolloverCounter, header);
  // Every byte of dst is written by a successful open: the header, then the payload.
  const dst = Buffer.allocUnsafe(authTagOffset);
  if (!decryptor.open(cipherText, header.payloadOffset, authTagOffset, iv, dst)) throw new SrtpAuthenticationError(FAILED);
  const finalized = finalizeHeader(header, dst);
  // werift parses `dst` again next (RtpPacket.deSerialize): that parse returns this header.
  if (replacesWerift) alreadyParsed(dst, finalized);
  return [dst, finalized];
}

if (replacesWeriftGcmDecrypt) proto.decryptRtp = decryptRtp;
