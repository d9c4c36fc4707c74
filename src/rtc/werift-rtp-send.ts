/**
 * Sending one Opus packet through a werift sender without werift's
 * per-packet churn, for the streams earshot sends: `sendAudio`
 * (client/audio-sender.ts, also every publisher of the capacity bench) and
 * WHEP listeners (listener-session.ts).
 *
 * werift's `RTCRtpSender.sendRtp` clones the packet it is given, rebuilds
 * the header-extension list (a map, a filter, a sort), computes an NTP time
 * through a decimal string, keeps the packet in a 128-entry retransmission
 * cache, sorts the keys of a bandwidth-estimation record, serializes the
 * header, and encrypts with a new native GCM cipher (`createCipheriv`) and a
 * `Buffer.concat`: about 10 KB allocated per 20 ms packet, much of it kept
 * alive by the cache long enough to be copied by two scavenges. A process
 * sending 100 streams then stalls in GC every few hundred milliseconds, and
 * every stream's next packets leave together after each stall.
 *
 * Here the same packet is written straight into its SRTP buffer: the 12-byte
 * header, the payload encrypted by `Aes128Gcm` (aes128-gcm.ts, one context
 * per key, the IV werift's), the tag. The sender's state moves as werift's
 * does: the sequence-number and timestamp offsets applied, `sequenceNumber`,
 * `timestamp`, `rtpTimestamp`, `packetCount`, `octetCount`,
 * `headerBytesSent`, the transport's `bytesSent` and `packetsSent`, the SSRC's
 * rollover counter, and the RTCP loop started. `ntpTimestamp` is RFC 3550's
 * (seconds since 1900, then a binary fraction); werift writes the decimal
 * digits of the fraction as an integer.
 *
 * Only the plain case takes this path: the AES-128-GCM profile (werift
 * negotiates it first), no header extensions, no RED, no NACK feedback (the
 * cache serves only retransmissions), no pending-RTP queue, no continuity
 * rewrite pending. Anything else, and a werift whose sender or transport no
 * longer looks as expected, is sent by werift's `sendRtp`.
 *
 * test/rtc/werift-rtp-send.test.ts sends through both paths over loopback
 * and compares what a werift receiver decrypts, and the sender's state.
 */
import { performance } from 'node:perf_hooks';
import { RTCDtlsTransport, RTCRtpSender, RtpHeader, RtpPacket } from 'werift';
import { AES_128_KEY_LENGTH, Aes128Gcm, GCM_TAG_LENGTH } from './aes128-gcm.js';
import { ivIsWerifts, rtpIv, weriftGcmCipher } from './werift-srtp-gcm.js';
import { MIN_RTP_HEADER } from './werift-srtp-internals.js';

/** werift's per-SSRC rollover state. */
interface SsrcState {
  rolloverCounter: number;
}

/** The parts of werift's SRTP send context this module reads. */
interface LocalContext {
  cipher: { srtpSessionKey: Buffer; srtpSessionSalt: Buffer; aeadAuthTagLen: number };
  getSrtpSsrcState(ssrc: number): SsrcState;
  updateRolloverCount(sequenceNumber: number, state: SsrcState): void;
}

/** The parts of werift's DTLS transport this module reads and sets. */
interface TransportInternals {
  state: string;
  srtp?: { localContext?: LocalContext };
  bytesSent: number;
  packetsSent: number;
  iceTransport: { connection: { send(data: Buffer): Promise<void> } };
}

/** The parts of werift's RTP sender this module reads and sets (private in werift's typings). */
interface SenderInternals {
  readonly stopped: boolean;
  readonly ssrc: number;
  readonly codec?: { payloadType: number; rtcpFeedback?: Array<{ type: string }> };
  readonly dtlsTransport?: TransportInternals;
  readonly headerExtensions?: readonly unknown[];
  readonly redRedundantPayloadType?: number;
  readonly rtpContinuityPending: boolean;
  readonly pendingRtpEnabled?: boolean;
  readonly seqOffset: number;
  readonly timestampOffset: number;
  sequenceNumber?: number;
  timestamp?: number;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  octetCount: number;
  packetCount: number;
  headerBytesSent: number;
  runRtcp(): Promise<void>;
}

/** Whether werift's send path is the one replicated here: the steps above, in werift's sender and transport. */
export const sendsLikeWerift = (() => {
  const dispatch = String((RTCRtpSender.prototype as unknown as { dispatchRtp?: unknown }).dispatchRtp);
  const transport = String((RTCDtlsTransport.prototype as unknown as { sendRtp?: unknown }).sendRtp);
  const dispatchSteps = ['canSendRtp', 'rtpContinuityPending', 'seqOffset', 'timestampOffset', 'ntpTime', 'headerExtensions', 'octetCount', 'headerBytesSent', 'packetCount', 'rtpCache', 'redRedundantPayloadType', 'dtlsTransport.sendRtp', 'runRtcp', 'senderBWE'];
  const transportSteps = ['srtp.encrypt', 'bytesSent', 'packetsSent', 'iceTransport.connection.send'];
  return dispatchSteps.every((s) => dispatch.includes(s)) && transportSteps.every((s) => transport.includes(s)) && ivIsWerifts;
})();

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;

/** Now, as RFC 3550's 64-bit NTP timestamp: seconds since 1900, then the fraction of a second in units of 2^-32 s. */
export function ntpNow(): bigint {
  return ntpOfMs(performance.timeOrigin + performance.now());
}

/** RFC 3550's NTP timestamp of `ms` (milliseconds since the Unix epoch). */
export function ntpOfMs(ms: number): bigint {
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 2 ** 32);
  return (BigInt(seconds + NTP_UNIX_OFFSET_S) << 32n) | BigInt(fraction);
}

/**
 * When (ms since the Unix epoch) the plain path last sent for a sender, whose
 * `rtpTimestamp` is that packet's: a sender report pairs its own moment with
 * the RTP time of that moment from these (sender-reports.ts).
 */
export const lastPlainSend = new WeakMap<object, number>();

/** A send context the plain path may use, with its GCM context (made on its first packet, for the key it was made for). */
interface PlainSend {
  readonly context: LocalContext;
  readonly key: Buffer;
  readonly gcm: Aes128Gcm;
}

/** Each werift send context's `PlainSend`: one object per context, not one per packet. */
const plainSends = new WeakMap<LocalContext, PlainSend>();

function plainSendOf(context: LocalContext): PlainSend | undefined {
  const cipher = context.cipher;
  const known = plainSends.get(context);
  if (known !== undefined && known.key === cipher.srtpSessionKey) return known;
  if (Object.getPrototypeOf(cipher) !== weriftGcmCipher || cipher.srtpSessionKey?.length !== AES_128_KEY_LENGTH || cipher.aeadAuthTagLen !== GCM_TAG_LENGTH || !(cipher.srtpSessionSalt?.length >= 12)) return undefined;
  const plain = { context, key: cipher.srtpSessionKey, gcm: new Aes128Gcm(cipher.srtpSessionKey) };
  plainSends.set(context, plain);
  return plain;
}

const ignore = (): void => {};

/** Whether the codec asks for retransmissions (NACK): only werift's cache can serve them. */
function wantsNack(codec: NonNullable<SenderInternals['codec']>): boolean {
  const feedback = codec.rtcpFeedback;
  if (feedback !== undefined) for (let i = 0; i < feedback.length; i++) if (feedback[i].type === 'nack') return true;
  return false;
}

/** The sender's send context and its GCM context, if this packet may take the plain path. */
function plainPath(s: SenderInternals): PlainSend | undefined {
  if (!sendsLikeWerift || s.rtpContinuityPending || s.pendingRtpEnabled || s.redRedundantPayloadType !== undefined || (s.headerExtensions?.length ?? 0) > 0) return undefined;
  if (s.codec === undefined || wantsNack(s.codec)) return undefined;
  const context = s.dtlsTransport?.srtp?.localContext;
  return context ? plainSendOf(context) : undefined;
}

/**
 * Sends one RTP packet of `payload` with this sequence number, timestamp
 * and marker bit, as werift's `sender.sendRtp` would (the payload type is
 * the sender's codec's, the SSRC the sender's). Nothing is sent while the
 * sender cannot send (not connected, stopped, no codec), as with werift,
 * unless it queues packets until it can (werift's pending-RTP option).
 * Returns at once; a failed socket write is dropped, as werift drops it.
 */
export function sendRtpPayload(sender: RTCRtpSender, payload: Uint8Array, sequenceNumber: number, timestamp: number, marker: boolean): void {
  const s = sender as unknown as SenderInternals;
  const transport = s.dtlsTransport;
  const codec = s.codec;
  // A pending-RTP queue is werift's to fill, connected or not.
  if (!s.pendingRtpEnabled && (s.stopped || transport?.state !== 'connected' || codec === undefined)) return;
  const plain = plainPath(s);
  if (plain === undefined || transport === undefined || codec === undefined) {
    // werift sets the payload type from the sender's codec; 111 only fills the field until then.
    void sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: codec?.payloadType ?? 111, sequenceNumber, timestamp, marker }), Buffer.from(payload))).catch(ignore);
    return;
  }
  const seq = (sequenceNumber + s.seqOffset) & 0xffff;
  const ts = (timestamp + s.timestampOffset) >>> 0;
  const ssrc = s.ssrc;
  s.sequenceNumber = seq;
  s.timestamp = ts;
  const sentAt = performance.timeOrigin + performance.now();
  s.ntpTimestamp = ntpOfMs(sentAt);
  s.rtpTimestamp = ts;
  lastPlainSend.set(sender, sentAt);
  s.octetCount += payload.length;
  s.headerBytesSent += MIN_RTP_HEADER;
  s.packetCount = (s.packetCount + 1) >>> 0;

  const state = plain.context.getSrtpSsrcState(ssrc);
  plain.context.updateRolloverCount(seq, state);
  const out = Buffer.allocUnsafe(MIN_RTP_HEADER + payload.length + GCM_TAG_LENGTH);
  out[0] = 0x80; // version 2, no padding, no extension, no CSRC
  out[1] = (marker ? 0x80 : 0) | (codec.payloadType & 0x7f);
  out.writeUInt16BE(seq, 2);
  out.writeUInt32BE(ts, 4);
  out.writeUInt32BE(ssrc, 8);
  const iv = rtpIv(plain.context.cipher.srtpSessionSalt, ssrc, state.rolloverCounter, seq);
  plain.gcm.seal(out, MIN_RTP_HEADER, payload, iv);
  transport.bytesSent += out.length;
  transport.packetsSent++;
  transport.iceTransport.connection.send(out).catch(ignore);
  void s.runRtcp();
}
