/**
 * The server's RTCP receiver reports follow RFC 3550's interval
 * (src/rtc/receiver-reports.ts): the delays §6.3.1 prescribes with the 5 s
 * minimum of §6.2, report blocks built from the stream statistics as werift
 * builds them, and werift's loop recognised as the one replaced.
 */
import { RTCRtpReceiver } from 'werift';
import { describe, expect, it } from 'vitest';
import { receiverReportBlocks, receiverReportDelayMs, reportsLikeWerift, RTCP_MIN_INTERVAL_MS, type ReportingReceiver } from '../../src/rtc/receiver-reports.js';
import { weriftReceiver } from '../../src/rtc/werift-receiver.js';

const E_MINUS_3_2 = Math.E - 1.5;

describe('receiver report interval (RFC 3550 §6.2, §6.3.1)', () => {
  it('draws each delay from 0.5–1.5 times the 5 s minimum (half of it before the first report), divided by e − 3/2', () => {
    expect(RTCP_MIN_INTERVAL_MS).toBe(5000);
    expect(receiverReportDelayMs(false, () => 0)).toBeCloseTo(2500 / E_MINUS_3_2, 6);
    expect(receiverReportDelayMs(false, () => 1)).toBeCloseTo(7500 / E_MINUS_3_2, 6);
    expect(receiverReportDelayMs(true, () => 0)).toBeCloseTo(1250 / E_MINUS_3_2, 6);
    expect(receiverReportDelayMs(true, () => 1)).toBeCloseTo(3750 / E_MINUS_3_2, 6);
    // With Math.random: inside those bounds, and 5 s / (e − 3/2) ≈ 4.1 s on average.
    const delays = Array.from({ length: 20_000 }, () => receiverReportDelayMs(false));
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(2500 / E_MINUS_3_2);
      expect(d).toBeLessThan(7500 / E_MINUS_3_2);
    }
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).toBeGreaterThan(4000);
    expect(mean).toBeLessThan(4210);
  });

  it("recognises this werift's report loop, and not another function", () => {
    expect(reportsLikeWerift(weriftReceiver.runRtcp)).toBe(true);
    expect(reportsLikeWerift((async () => undefined) as RTCRtpReceiver['runRtcp'])).toBe(false);
  });

  it('builds one block per stream from its statistics, with LSR and DLSR from the last sender report', () => {
    const now = 1_000_000;
    const receiver = {
      remoteStreams: {
        1111: { fraction_lost: 25, packets_lost: 7, max_seq: 70_123, jitter: 41 },
        2222: { fraction_lost: 0, packets_lost: 0, max_seq: 500, jitter: 3 },
      },
      // Only 1111 has had a sender report, received 1.5 s ago.
      lastSRtimestamp: { 1111: 0x12345678 },
      receiveLastSRTimestamp: { 1111: now - 1.5 },
    } as unknown as ReportingReceiver;
    const blocks = receiverReportBlocks(receiver, now).map((b) => b.toJSON());
    expect(blocks).toEqual([
      { ssrc: 1111, fractionLost: 25, packetsLost: 7, highestSequence: 70_123, jitter: 41, lsr: 0x12345678, dlsr: 1.5 * 65536 },
      { ssrc: 2222, fractionLost: 0, packetsLost: 0, highestSequence: 500, jitter: 3, lsr: 0, dlsr: 0 },
    ]);
  });

  it('a stopped receiver ends its report loop at once', async () => {
    const r = new RTCRtpReceiver({} as ConstructorParameters<typeof RTCRtpReceiver>[0], 'audio', 1234) as RTCRtpReceiver & { rtcpRunning: boolean };
    const loop = r.runRtcp();
    expect(r.rtcpRunning).toBe(true);
    const started = Date.now();
    r.stop();
    await loop;
    expect(r.rtcpRunning).toBe(false);
    // Not after the first delay (≥ 1 s): the wait was cancelled.
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
