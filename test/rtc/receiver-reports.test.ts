/**
 * The server sends RTCP receiver reports about each stream it receives (RFC
 * 3550 §6.4.2), at RFC 3550's interval (§6.2, §6.3.1: 2.1–6.2 s apart, the
 * first after 1.0–3.1 s), and their figures are what was sent: over real
 * loopback WebRTC, a werift publisher hears reports whose highest sequence
 * number is one it sent, with nothing lost on a clean path, and with exactly
 * the packets it withheld counted as lost when it withholds some.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio, type ReceiverReport } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
});
afterAll(() => t?.close());

/** Sends `seconds` of a tone in real time (reports come about every 4 s) and keeps the reports heard, with when each arrived. */
async function sendAndHear(peer: string, seconds: number, simulateLoss = 0) {
  const reports: ReceiverReport[] = [];
  const heardAt: number[] = [];
  const result = await sendAudio({
    url: `${t.url}/whip/rr/${peer}`,
    source: fixturePath('tone-1k-48k.wav'),
    seconds,
    simulateLoss,
    onReceiverReport: (r) => {
      reports.push(r);
      heardAt.push(performance.now());
    },
  });
  return { reports, heardAt, result };
}

/** RFC 3550 §6.3.1 with its 5 s minimum: at least 2.5 s / (e − 3/2) between two reports. */
const MIN_GAP_MS = 2500 / (Math.E - 1.5);

describe('RTCP receiver reports from the server', () => {
  it("come at RFC 3550's interval and report the stream as received, nothing lost", async () => {
    const seconds = 12;
    const { reports, heardAt, result } = await sendAndHear('clean', seconds);
    // The first comes within ~3.1 s and the next within ~6.2 s of it.
    expect(reports.length).toBeGreaterThanOrEqual(2);
    // Never closer than the RFC's shortest interval (less a margin for delivery on loopback), so never more than it allows.
    for (let i = 1; i < heardAt.length; i++) expect(heardAt[i] - heardAt[i - 1]).toBeGreaterThan(MIN_GAP_MS - 250);
    expect(reports.length).toBeLessThanOrEqual(Math.ceil((seconds * 1000) / MIN_GAP_MS) + 1);
    for (const r of reports) {
      expect(r.packetsLost).toBe(0);
      expect(r.fractionLost).toBe(0);
      // Jitter in RTP units (1/48000 s): loopback, real-time pacing: well under 20 ms.
      expect(r.jitter).toBeGreaterThanOrEqual(0);
      expect(r.jitter).toBeLessThan(960);
    }
    // The highest sequence number grows, and never past the packets sent (one per 20 ms).
    const seqs = reports.map((r) => r.highestSequence);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(seqs.at(-1)! - seqs[0]).toBeGreaterThan(0);
    expect(seqs.at(-1)! - seqs[0]).toBeLessThan(result.packetsSent);
  });

  it('count the packets the sender withheld as lost (cumulative), and a fraction lost between reports', async () => {
    const { reports, result } = await sendAndHear('lossy', 8, 0.1);
    expect(result.packetsDropped).toBeGreaterThan(10);
    const last = reports.at(-1)!;
    // By the last report, most of the withheld packets were due; never more than were withheld.
    expect(last.packetsLost).toBeGreaterThan(0);
    expect(last.packetsLost).toBeLessThanOrEqual(result.packetsDropped);
    expect(Math.max(...reports.map((r) => r.packetsLost))).toBe(last.packetsLost);
    // 1 in 10 withheld: each report's fraction near 0.1 once the stream runs.
    const fractions = reports.filter((r) => r.fractionLost > 0).map((r) => r.fractionLost);
    expect(fractions.length).toBeGreaterThan(0);
    for (const f of fractions) {
      expect(f).toBeGreaterThan(0.03);
      expect(f).toBeLessThan(0.2);
    }
  });
});
