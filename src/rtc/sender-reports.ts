/**
 * RTCP sender reports at RFC 3550's interval (rtcp-interval.ts: 2.1–6.2 s
 * apart, the first after 1.0–3.1 s) for the streams earshot sends: to WHEP
 * listeners (listener-session.ts) and from `sendAudio` (client/audio-sender.ts).
 *
 * werift's `RTCRtpSender.runRtcp` sends a sender report with the CNAME every
 * 0.5–1.5 s; libwebrtc sends audio's every 5 s. So a publisher using
 * `sendAudio` behaves as a browser does, and the server, which decrypts each
 * report with a cipher of its own, pays for a quarter as many. werift also
 * calls the async `runRtcp` after every packet it sends, a promise each time
 * although the loop already runs; here it returns a settled one then.
 *
 * The loop is werift's with RFC 3550's delays: the same packets (SR from the
 * sender's counters and the NTP/RTP time of the report's moment, then SDES
 * with the CNAME), the same bookkeeping for round-trip times (`lastSRtimestamp`,
 * `lastSentSRTimestamp`), the same cancellation. It is set on each sender
 * earshot creates, not on werift's prototype: senders of other code in the
 * process keep werift's. A werift whose loop no longer looks like the one
 * this was written against keeps its own (`sendsLikeWerift`).
 */
import { compactNtp, RtcpSenderInfo, RtcpSourceDescriptionPacket, RtcpSrPacket, RTCRtpSender } from 'werift';
import { cnamePacket } from './rtcp-cname.js';
import { runReportLoop, type ReportingParticipant } from './rtcp-interval.js';
import { lastPlainSend, ntpOfMs } from './werift-rtp-send.js';

/** The parts of werift's sender the report loop reads and sets (some private in werift's typings). */
export interface ReportingSender extends ReportingParticipant {
  readonly stopped: boolean;
  readonly ssrc: number;
  readonly cname?: string;
  readonly ntpTimestamp: bigint;
  /** The negotiated codec (its RTP clock rate), once there is one. */
  readonly codec?: { clockRate: number };
  readonly rtpTimestamp: number;
  readonly packetCount: number;
  readonly octetCount: number;
  lastSRtimestamp?: number;
  lastSentSRTimestamp?: number;
  readonly dtlsTransport: { sendRtcp(packets: Array<RtcpSrPacket | RtcpSourceDescriptionPacket>): Promise<unknown> };
  runRtcp(): Promise<void>;
}

/** werift's own loop, as loaded (the test compares against it). */
export const weriftSenderRunRtcp = (RTCRtpSender.prototype as unknown as ReportingSender).runRtcp;

/** Whether werift's sender report loop is the one replicated here. */
export function sendsLikeWerift(runRtcp: unknown): boolean {
  const source = String(runRtcp);
  return ['rtcpCancel', 'RtcpSrPacket', 'ntpTimestamp', 'lastSentSRTimestamp', 'cname', 'sendRtcp'].every((s) => source.includes(s));
}

const SETTLED: Promise<void> = Promise.resolve();

/**
 * The sender's report: SR from its counters, then its CNAME (if it has one),
 * as werift builds them; but with the NTP time of the report's own moment and
 * the RTP time of that same moment (RFC 3550 §6.4.1), where werift puts those
 * of the last packet sent (during a pause, seconds old). Known for senders
 * the plain path sends for (werift-rtp-send.ts); others keep werift's pair.
 */
export function senderReportPackets(sender: ReportingSender, at: number = performance.timeOrigin + performance.now()): Array<RtcpSrPacket | RtcpSourceDescriptionPacket> {
  const sentAt = lastPlainSend.get(sender);
  const clockRate = sender.codec?.clockRate ?? 48_000;
  const ntpTimestamp = sentAt === undefined ? sender.ntpTimestamp : ntpOfMs(at);
  const rtpTimestamp = sentAt === undefined ? sender.rtpTimestamp : (sender.rtpTimestamp + Math.round(((at - sentAt) * clockRate) / 1000)) >>> 0;
  const packets: Array<RtcpSrPacket | RtcpSourceDescriptionPacket> = [
    new RtcpSrPacket({
      ssrc: sender.ssrc,
      senderInfo: new RtcpSenderInfo({ ntpTimestamp, rtpTimestamp, packetCount: sender.packetCount, octetCount: sender.octetCount }),
    }),
  ];
  if (sender.cname) {
    packets.push(cnamePacket(sender.ssrc, sender.cname));
  }
  return packets;
}

/** The sender's report loop until it stops: its report, and what the round trip needs. */
function runSenderReports(sender: ReportingSender): Promise<void> {
  return runReportLoop(sender, () => {
    const packets = senderReportPackets(sender);
    // What the peer's receiver report will echo (LSR), and when this left, for the round trip.
    sender.lastSRtimestamp = compactNtp((packets[0] as RtcpSrPacket).senderInfo.ntpTimestamp);
    sender.lastSentSRTimestamp = Date.now() / 1000;
    return sender.dtlsTransport.sendRtcp(packets);
  });
}

/**
 * Makes `sender` report at RFC 3550's interval. Returns false, leaving
 * werift's loop in place, if werift's loop is not the one replicated here.
 */
export function reportAtRfcInterval(sender: RTCRtpSender): boolean {
  if (!sendsLikeWerift(weriftSenderRunRtcp)) return false;
  const s = sender as unknown as ReportingSender;
  s.runRtcp = function runRtcp(this: ReportingSender): Promise<void> {
    if (this.rtcpRunning || this.stopped) return SETTLED;
    return runSenderReports(this);
  };
  return true;
}
