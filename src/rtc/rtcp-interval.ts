/**
 * How long an RTCP participant waits between its reports: RFC 3550 §6.2
 * recommends at least 5 s, the first report after half of that, and §6.3.1
 * draws each interval uniformly from 0.5–1.5 times it and divides it by
 * e − 3/2 (making up for the timer reconsideration it prescribes for large
 * groups). An audio-only session never reaches that minimum from its
 * bandwidth (reports may use 5 % of it: a ~100-byte report would fit every
 * ~0.5 s at 32 kbit/s), so the minimum is the interval: 2.1–6.2 s between
 * reports, 4.1 s on average, the first after 1.0–3.1 s. libwebrtc sends its
 * audio reports every 5 s. werift's own loops wait 0.5–1.5 s.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** RFC 3550 §6.2: the recommended minimum interval between a participant's RTCP reports, ms. */
export const RTCP_MIN_INTERVAL_MS = 5000;

/** RFC 3550 §6.3.1: the randomized interval is divided by e − 3/2 to compensate for timer reconsideration. */
const COMPENSATION = Math.E - 1.5;

/**
 * The wait before a participant's next report, ms: the minimum interval
 * (halved before the first report), times a uniform draw from 0.5–1.5,
 * divided by e − 3/2. `random` is `Math.random`, or a stand-in for tests.
 */
export function rtcpReportDelayMs(first: boolean, random: () => number = Math.random): number {
  const interval = first ? RTCP_MIN_INTERVAL_MS / 2 : RTCP_MIN_INTERVAL_MS;
  return (interval * (0.5 + random())) / COMPENSATION;
}

/** A werift receiver or sender, as its report loop sees it. */
export interface ReportingParticipant {
  rtcpRunning: boolean;
  readonly rtcpCancel: AbortController;
}

/**
 * Sends `report()` at RFC 3550's interval while `participant.rtcpRunning`,
 * until its `rtcpCancel` aborts (werift's `stop()` does both). A report that
 * cannot be sent (the transport is closing) is skipped; the next follows at
 * the next interval.
 */
export async function runReportLoop(participant: ReportingParticipant, report: () => Promise<unknown>): Promise<void> {
  participant.rtcpRunning = true;
  let first = true;
  try {
    while (participant.rtcpRunning) {
      await sleep(rtcpReportDelayMs(first), undefined, { signal: participant.rtcpCancel.signal });
      first = false;
      await report().catch(() => undefined);
    }
  } catch {
    // Aborted by stop(): the loop ends, as werift's does.
  }
}
