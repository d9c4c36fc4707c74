/**
 * RTCP receiver reports at RFC 3550's interval (rtcp-interval.ts: 2.1–6.2 s
 * apart, the first after 1.0–3.1 s), not werift's 0.5–1.5 s.
 *
 * Why it matters here: each report is a timer wake, a packet built, encrypted
 * with a cipher of its own and sent, per stream. For talkers who are silent
 * (DTX: an update every ~400 ms), the reports were about a sixth of the main
 * thread's busy time (docs/performance.md, "Talkers with DTX").
 *
 * The loop is werift's `RTCRtpReceiver.runRtcp` with RFC 3550's delays: the
 * same reports (werift's statistics per SSRC, LSR and DLSR from the last
 * sender report), the same cancellation (`rtcpCancel`), the same
 * `rtcpRunning` flag. A werift whose loop no longer looks like the one this
 * was written against keeps its own (`reportsLikeWerift`). The upstream
 * change: take the delay from RFC 3550 §6.3.1 (or a configured interval)
 * instead of `500 + Math.random() * 1e3`.
 *
 * Each report is a compound packet with the receiver's CNAME (an SDES
 * packet), as RFC 3550 §6.1 requires of every compound RTCP packet; werift's
 * receiver sent the report alone. The CNAME is the one the answer's
 * `a=ssrc:… cname:` line gives the same SSRC (`reportCname`).
 */
import { RtcpReceiverInfo, RtcpRrPacket, RtcpSourceDescriptionPacket } from 'werift';
import { cnamePacket } from './rtcp-cname.js';
import { runReportLoop, type ReportingParticipant } from './rtcp-interval.js';
import type { ReportFigures } from './rtp-ingest.js';

/** What a stream's statistics give a report (werift's `StreamStatistics`; RFC 3550 A.3 and A.8). */
interface StreamStatistics {
  readonly fraction_lost: number;
  readonly packets_lost: number;
  readonly max_seq: number;
  readonly jitter: number;
  /** Packets received (absent from werift versions that do not count them). */
  readonly packets_received?: number;
}

/** The parts of werift's receiver the report loop reads and sets (werift declares most of them public). */
export interface ReportingReceiver extends ReportingParticipant {
  readonly rtcpSsrc: number;
  readonly remoteStreams: Record<number, StreamStatistics>;
  readonly lastSRtimestamp: Record<number, number>;
  readonly receiveLastSRTimestamp: Record<number, number>;
  readonly dtlsTransport: { sendRtcp(packets: Array<RtcpRrPacket | RtcpSourceDescriptionPacket>): Promise<unknown> };
}

/** Whether werift's report loop is the one replicated here. */
export function reportsLikeWerift(runRtcp: unknown): boolean {
  const source = String(runRtcp);
  return ['rtcpCancel', 'remoteStreams', 'receiveLastSRTimestamp', 'RtcpRrPacket', 'sendRtcp', '65536'].every((s) => source.includes(s));
}

/**
 * A stream's own figures for its reports, where earshot counts them (the
 * session's RTP ingest): werift's statistics report the highest sequence
 * number without its wraps (RFC 3550 §6.4.1 asks for the extended one, so a
 * call past 65 536 packets, ~22 minutes, reported a number that went back),
 * and count a sender's restarted sequence as packets lost (A.1 re-syncs).
 */
const figuresOf = new WeakMap<object, () => ReportFigures | undefined>();

/** Reports about `receiver`'s stream take `figures` (for the SSRC they name) instead of werift's statistics. */
export function reportFiguresFrom(receiver: object, figures: () => ReportFigures | undefined): void {
  figuresOf.set(receiver, figures);
}

/** The CNAME each receiver's reports carry (RFC 3550 §6.1): its connection's, as the answer gives it. */
const cnameOf = new WeakMap<object, string>();

/** Reports about `receiver`'s stream carry `cname` in an SDES packet. */
export function reportCname(receiver: object, cname: string): void {
  cnameOf.set(receiver, cname);
}

/** The last report's expected and received per receiver and SSRC, for the fraction lost over the interval (RFC 3550 A.3). */
const priorOf = new WeakMap<object, { ssrc: number; expected: number; received: number }>();

/** RFC 3550 A.3: cumulative lost as a signed 24-bit field, the fraction lost since the last report in 1/256. */
function blockFigures(receiver: object, f: ReportFigures): { fractionLost: number; packetsLost: number; highestSequence: number; jitter: number } {
  const prior = priorOf.get(receiver);
  const same = prior !== undefined && prior.ssrc === f.ssrc;
  const expectedInterval = f.expected - (same ? prior.expected : 0);
  const lostInterval = expectedInterval - (f.received - (same ? prior.received : 0));
  priorOf.set(receiver, { ssrc: f.ssrc, expected: f.expected, received: f.received });
  const fractionLost = expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
  const lost = Math.max(-0x800000, Math.min(0x7fffff, f.expected - f.received));
  return { fractionLost, packetsLost: lost & 0xffffff, highestSequence: f.extendedHighest >>> 0, jitter: Math.max(0, f.jitter) >>> 0 };
}

/** Packets received from each SSRC when the receiver's last report was built, by receiver. */
const reportedOf = new WeakMap<object, Map<number, number>>();

/**
 * Whether the receiver has had packets from `ssrc` since its last report
 * (`received`: its count now), and notes the count for the next. A count
 * werift does not keep (undefined) reads as news.
 */
function heardSinceLastReport(receiver: object, ssrc: number, received: number | undefined): boolean {
  if (received === undefined) return true;
  let reported = reportedOf.get(receiver);
  if (!reported) reportedOf.set(receiver, (reported = new Map()));
  if (reported.get(ssrc) === received) return false;
  reported.set(ssrc, received);
  return true;
}

/**
 * One report block per stream the receiver has had packets from since its
 * last report, as werift builds them (from earshot's figures where it has
 * them). RFC 3550 §6.4.2: a source silent since the last report (a muted
 * sender, one that stopped without a BYE) gets no block; werift's loop gave
 * every source it had ever heard one, for as long as the session lasted.
 */
export function receiverReportBlocks(receiver: ReportingReceiver, nowSeconds = Date.now() / 1000): RtcpReceiverInfo[] {
  const own = figuresOf.get(receiver)?.();
  return Object.entries(receiver.remoteStreams).flatMap(([key, stream]) => {
    const ssrc = Number(key);
    const ours = own?.ssrc === ssrc;
    if (!heardSinceLastReport(receiver, ssrc, ours ? own.received : stream.packets_received)) return [];
    const lsr = receiver.lastSRtimestamp[ssrc] || 0;
    let dlsr = 0;
    if (lsr) {
      // DLSR in 1/65536 s since that sender report arrived (RFC 3550 §6.4.1).
      const delaySeconds = nowSeconds - receiver.receiveLastSRTimestamp[ssrc];
      if (delaySeconds > 0 && delaySeconds < 65536) dlsr = Math.trunc(delaySeconds * 65536);
    }
    const figures = ours ? blockFigures(receiver, own) : { fractionLost: stream.fraction_lost, packetsLost: stream.packets_lost, highestSequence: stream.max_seq, jitter: stream.jitter };
    return [new RtcpReceiverInfo({ ssrc, ...figures, lsr, dlsr })];
  });
}

/** The receiver's report loop until it stops (the caller has checked that it is not already running). */
export function runReceiverReports(receiver: ReportingReceiver): Promise<void> {
  return runReportLoop(receiver, () => receiver.dtlsTransport.sendRtcp(receiverReport(receiver)));
}

/**
 * One compound report: the receiver report, then the SDES packet with the
 * CNAME where one is known. `blocks: false` leaves the report's blocks out
 * (the head a BYE needs, RFC 3550 §6.1, without another report at less than
 * the interval).
 */
export function receiverReport(receiver: ReportingReceiver, { blocks = true }: { blocks?: boolean } = {}): Array<RtcpRrPacket | RtcpSourceDescriptionPacket> {
  const report: Array<RtcpRrPacket | RtcpSourceDescriptionPacket> = [new RtcpRrPacket({ ssrc: receiver.rtcpSsrc, reports: blocks ? receiverReportBlocks(receiver) : [] })];
  const cname = cnameOf.get(receiver);
  if (cname !== undefined) report.push(cnamePacket(receiver.rtcpSsrc, cname));
  return report;
}
