/**
 * werift's AES-GCM SRTP decryption, without a zero-filled buffer per packet.
 *
 * werift negotiates AES-128-GCM first, so this is how nearly every packet a
 * browser or werift client sends is decrypted. Per packet, werift's
 * `decryptRtp` makes an empty Buffer, then a new zero-filled one of the
 * packet's size (`growBufferSize`: its own ArrayBuffer, outside V8's pool),
 * and copies the header and the decrypted payload into it. Here the output is
 * taken from Node's buffer pool (`Buffer.allocUnsafe`), which every byte is
 * then written over: the header, then the payload, exactly the bytes werift
 * writes. The IV is werift's, written into one reused buffer (`rtpIv`; werift
 * builds an array of its four fields per packet). The rest is werift's own
 * sequence (one `Decipheriv` per packet: Node cannot give a GCM context a new
 * IV, authentication by `final()`), with the same `SrtpAuthenticationError`
 * on a packet that fails it, which werift's transport drops.
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
 * expected is left as it is. The upstream change: `const dst =
 * Buffer.allocUnsafe(cipherText.length - this.aeadAuthTagLen)` in place of
 * `growBufferSize(Buffer.from([]), …)`.
 */
import { createDecipheriv } from 'node:crypto';
import { SrtpAuthenticationError, type RtpHeader } from 'werift';
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
const proto = Object.getPrototypeOf((throwawaySrtpSession().remoteContext as unknown as { cipher: object }).cipher) as GcmInternals;

/** werift's own function, as loaded (the test compares against it). */
export const weriftDecryptRtp = proto.decryptRtp;

/** werift's own IV function, as loaded (the test compares against it). */
export const weriftRtpIv = proto.rtpInitializationVector;

/** Whether werift's IV is the RFC 7714 one `rtpIv` computes: its four fields written with `rtpIvWriter`, then the salt. */
const ivIsWerifts = /rtpIvWriter/.test(String(weriftRtpIv)) && /srtpSessionSalt/.test(String(weriftRtpIv));

/** One IV buffer for every decryption: `createDecipheriv` copies the IV it is given. */
const ivScratch = Buffer.alloc(12);

/**
 * Where the header, the tag and the encrypted payload are handed to the
 * decipher from, one after the other. A Buffer view costs ~130 bytes of heap
 * (`subarray`, and `buf.copy` of part of a buffer makes one too), and a packet
 * needed three: each part is copied here byte by byte instead and passed as a
 * view of this buffer made once per length. `setAAD`, `setAuthTag` and
 * `update` all take in what they are given before they return.
 */
const stage = Buffer.alloc(1536);
const stageViews: Buffer[] = [];

/** `source[from, to)` as a view of `stage`, or a view of `source` itself if it does not fit. */
function staged(source: Buffer, from: number, to: number): Buffer {
  const n = to - from;
  if (n > stage.length) return source.subarray(from, to);
  for (let i = 0; i < n; i++) stage[i] = source[from + i];
  return (stageViews[n] ??= stage.subarray(0, n));
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
  if (header === undefined || header.payloadOffset < MIN_RTP_HEADER || header.payloadOffset > authTagOffset) return weriftDecryptRtp.call(this, cipherText, rolloverCounter, header);
  // werift's session salt is 14 bytes (its KDF's, for every profile); the IV XORs the first 12.
  const iv = ivIsWerifts && this.srtpSessionSalt?.length >= 12 ? rtpIv(this.srtpSessionSalt, header.ssrc, rolloverCounter, header.sequenceNumber) : this.rtpInitializationVector(header, rolloverCounter);
  const decipher = createDecipheriv('aes-128-gcm', this.srtpSessionKey, iv);
  decipher.setAAD(staged(cipherText, 0, header.payloadOffset));
  decipher.setAuthTag(staged(cipherText, authTagOffset, cipherText.length));
  const dec = decipher.update(staged(cipherText, header.payloadOffset, authTagOffset));
  try {
    decipher.final();
  } catch {
    throw new SrtpAuthenticationError(FAILED);
  }
  // Every byte is written below: the header, then the payload (dec.length = authTagOffset − payloadOffset).
  const dst = Buffer.allocUnsafe(authTagOffset);
  for (let i = 0; i < header.payloadOffset; i++) dst[i] = cipherText[i];
  dec.copy(dst, header.payloadOffset);
  const finalized = finalizeHeader(header, dst);
  // werift parses `dst` again next (RtpPacket.deSerialize): that parse returns this header.
  if (replacesWerift) alreadyParsed(dst, finalized);
  return [dst, finalized];
}

if (replacesWeriftGcmDecrypt) proto.decryptRtp = decryptRtp;
