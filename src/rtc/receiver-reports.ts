/**
 * RTCP receiver reports at RFC 3550's interval, not werift's.
 *
 * werift's `RTCRtpReceiver.runRtcp` sends a receiver report about its streams
 * every 0.5–1.5 s. RFC 3550 §6.2 recommends at least 5 s between a
 * participant's reports, the first after half of that, and §6.3.1 draws each
 * interval uniformly from 0.5–1.5 times it and divides it by e − 3/2 (to make
 * up for the timer reconsideration it prescribes for large groups). An
 * audio-only session never reaches that minimum from its bandwidth (reports
 * may use 5 % of it, receivers three quarters of that: a ~100-byte report
 * would fit every ~0.5 s at 32 kbit/s), so the minimum is the interval: 2.1–6.2 s
 * between reports, 4.1 s on average, the first after 1.0–3.1 s. libwebrtc
 * sends its audio reports every 5 s, so browsers see nothing new.
 *
 * Why it matters here: each report is a timer wake, a packet built, encrypted
 * with a cipher of its own and sent, per stream. For talkers who are silent
 * (DTX: an update every ~400 ms), the reports were about a sixth of the main
 * thread's busy time (docs/performance.md, "Talkers with DTX").
 *
 * The loop is werift's, with RFC 3550's delays: the same reports (werift's
 * statistics per SSRC, LSR and DLSR from the last sender report), the same
 * cancellation (`rtcpCancel`), the same `rtcpRunning` flag. A werift whose
 * loop no longer looks like the one this was written against keeps its own
 * (`reportsLikeWerift`). The upstream change: take the delay from RFC 3550
 * §6.3.1 (or a configured interval) instead of `500 + Math.random() * 1e3`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RtcpReceiverInfo, RtcpRrPacket, type RTCRtpReceiver } from 'werift';

/** RFC 3550 §6.2: the recommended minimum interval between a participant's RTCP reports, ms. */
export const RTCP_MIN_INTERVAL_MS = 5000;

/** RFC 3550 §6.3.1: the randomized interval is divided by e − 3/2 to compensate for timer reconsideration. */
const COMPENSATION = Math.E - 1.5;

/**
 * The wait before a receiver's next report: RFC 3550 §6.3.1 with the minimum
 * interval (halved before the first report), uniformly from 0.5–1.5 times
 * it, divided by e − 3/2. `random` is `Math.random`, or a stand-in for tests.
 */
export function receiverReportDelayMs(first: boolean, random: () => number = Math.random): number {
  const interval = first ? RTCP_MIN_INTERVAL_MS / 2 : RTCP_MIN_INTERVAL_MS;
  return (interval * (0.5 + random())) / COMPENSATION;
}

/** What a stream's statistics give a report (werift's `StreamStatistics`; RFC 3550 A.3 and A.8). */
interface StreamStatistics {
  readonly fraction_lost: number;
  readonly packets_lost: number;
  readonly max_seq: number;
  readonly jitter: number;
}

/** The parts of werift's receiver the report loop reads and sets (werift declares most of them public). */
export interface ReportingReceiver {
  rtcpRunning: boolean;
  readonly stopped: boolean;
  readonly rtcpSsrc: number;
  readonly rtcpCancel: AbortController;
  readonly remoteStreams: Record<number, StreamStatistics>;
  readonly lastSRtimestamp: Record<number, number>;
  readonly receiveLastSRTimestamp: Record<number, number>;
  readonly dtlsTransport: { sendRtcp(packets: RtcpRrPacket[]): Promise<unknown> };
}

/** Whether werift's report loop is the one replicated here. */
export function reportsLikeWerift(weriftRunRtcp: RTCRtpReceiver['runRtcp']): boolean {
  const source = String(weriftRunRtcp);
  return ['rtcpCancel', 'remoteStreams', 'receiveLastSRTimestamp', 'RtcpRrPacket', 'sendRtcp', '65536'].every((s) => source.includes(s));
}

/** One report block per stream the receiver has seen, as werift builds them. */
export function receiverReportBlocks(receiver: ReportingReceiver, nowSeconds = Date.now() / 1000): RtcpReceiverInfo[] {
  return Object.entries(receiver.remoteStreams).map(([ssrc, stream]) => {
    let lsr = 0;
    let dlsr = 0;
    if (receiver.lastSRtimestamp[Number(ssrc)]) {
      lsr = receiver.lastSRtimestamp[Number(ssrc)];
      // DLSR in 1/65536 s since that sender report arrived (RFC 3550 §6.4.1).
      const delaySeconds = nowSeconds - receiver.receiveLastSRTimestamp[Number(ssrc)];
      if (delaySeconds > 0 && delaySeconds < 65536) dlsr = Math.trunc(delaySeconds * 65536);
    }
    return new RtcpReceiverInfo({
      ssrc: Number(ssrc),
      fractionLost: stream.fraction_lost,
      packetsLost: stream.packets_lost,
      highestSequence: stream.max_seq,
      jitter: stream.jitter,
      lsr,
      dlsr,
    });
  });
}

/**
 * The receiver's report loop until it stops (`rtcpRunning` false or
 * `rtcpCancel` aborted). The caller has checked that it is not already
 * running. A report that cannot be sent (the transport is closing) is
 * skipped; the next one follows at the next interval.
 */
export async function runReceiverReports(receiver: ReportingReceiver): Promise<void> {
  receiver.rtcpRunning = true;
  let first = true;
  try {
    while (receiver.rtcpRunning) {
      await sleep(receiverReportDelayMs(first), undefined, { signal: receiver.rtcpCancel.signal });
      first = false;
      const packet = new RtcpRrPacket({ ssrc: receiver.rtcpSsrc, reports: receiverReportBlocks(receiver) });
      await receiver.dtlsTransport.sendRtcp([packet]).catch(() => undefined);
    }
  } catch {
    // Aborted by stop(): the loop ends, as werift's does.
  }
}
