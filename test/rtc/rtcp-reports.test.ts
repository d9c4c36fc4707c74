/**
 * RTCP reports at RFC 3550's interval (src/rtc/rtcp-interval.ts,
 * receiver-reports.ts, sender-reports.ts): the delays §6.3.1 prescribes with
 * the 5 s minimum of §6.2; report packets built as werift builds them; werift's
 * loops recognised as the ones replaced; a sender's loop that reports and
 * keeps the round-trip bookkeeping, started once; loops that end at once when
 * their receiver or sender stops. End to end over WebRTC:
 * test/rtc/receiver-reports.test.ts.
 */
import { MediaStreamTrack, RtcpSourceDescriptionPacket, RtcpSrPacket, RTCRtpReceiver, RTCRtpSender, compactNtp } from 'werift';
import { describe, expect, it } from 'vitest';
import { RTCP_MIN_INTERVAL_MS, rtcpReportDelayMs } from '../../src/rtc/rtcp-interval.js';
import { receiverReportBlocks, reportFiguresFrom, reportsLikeWerift, type ReportingReceiver } from '../../src/rtc/receiver-reports.js';
import { RtpIngest } from '../../src/rtc/rtp-ingest.js';
import { reportAtRfcInterval, senderReportPackets, sendsLikeWerift, weriftSenderRunRtcp, type ReportingSender } from '../../src/rtc/sender-reports.js';
import { lastPlainSend } from '../../src/rtc/werift-rtp-send.js';
import { weriftReceiver } from '../../src/rtc/werift-receiver.js';

const E_MINUS_3_2 = Math.E - 1.5;

describe('RTCP report interval (RFC 3550 §6.2, §6.3.1)', () => {
  it('draws each delay from 0.5–1.5 times the 5 s minimum (half of it before the first report), divided by e − 3/2', () => {
    expect(RTCP_MIN_INTERVAL_MS).toBe(5000);
    expect(rtcpReportDelayMs(false, () => 0)).toBeCloseTo(2500 / E_MINUS_3_2, 6);
    expect(rtcpReportDelayMs(false, () => 1)).toBeCloseTo(7500 / E_MINUS_3_2, 6);
    expect(rtcpReportDelayMs(true, () => 0)).toBeCloseTo(1250 / E_MINUS_3_2, 6);
    expect(rtcpReportDelayMs(true, () => 1)).toBeCloseTo(3750 / E_MINUS_3_2, 6);
    // With Math.random: inside those bounds, and 5 s / (e − 3/2) ≈ 4.1 s on average.
    const delays = Array.from({ length: 20_000 }, () => rtcpReportDelayMs(false));
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(2500 / E_MINUS_3_2);
      expect(d).toBeLessThan(7500 / E_MINUS_3_2);
    }
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    expect(mean).toBeGreaterThan(4000);
    expect(mean).toBeLessThan(4210);
  });

  it("recognises this werift's report loops, and not another function", () => {
    expect(reportsLikeWerift(weriftReceiver.runRtcp)).toBe(true);
    expect(sendsLikeWerift(weriftSenderRunRtcp)).toBe(true);
    const other = async (): Promise<void> => undefined;
    expect(reportsLikeWerift(other)).toBe(false);
    expect(sendsLikeWerift(other)).toBe(false);
  });
});

describe('receiver reports', () => {
  it('have one block per stream from its statistics, with LSR and DLSR from the last sender report', () => {
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

  it("take the session's own counts (RFC 3550 A.1, A.3): the extended highest sequence number past a wrap, no loss for a restarted sequence, the fraction lost since the last report", () => {
    const ingest = new RtpIngest(() => undefined, { reorderPackets: 0 });
    let seq = 65_400;
    let ts = 0;
    let at = 0;
    const send = (n: number, skipEvery = 0) => {
      for (let i = 0; i < n; i++) {
        if (!(skipEvery > 0 && i % skipEvery === 5)) {
          ingest.receive({ sequenceNumber: seq & 0xffff, timestamp: ts >>> 0, ssrc: 7, payload: new Uint8Array([0xf8, 1, 2]), headerBytes: 12, arrival: at });
        }
        seq++;
        ts += 960;
        at += 20;
      }
    };
    // werift's statistics for the same stream, as they read after a wrap and a restart: the 16-bit highest, the leap as loss.
    const receiver = { remoteStreams: { 7: { fraction_lost: 0, packets_lost: 30_000, max_seq: 99, jitter: 0 } }, lastSRtimestamp: {}, receiveLastSRTimestamp: {} } as unknown as ReportingReceiver;
    reportFiguresFrom(receiver, () => ingest.reportFigures());
    send(236); // 65 400 … 65 635: past the wrap
    expect(receiverReportBlocks(receiver)[0].toJSON()).toMatchObject({ ssrc: 7, highestSequence: 65_536 + 99, packetsLost: 0, fractionLost: 0 });
    seq += 30_000; // the sender restarts its sequence
    send(100, 10); // and loses 1 in 10 after it
    const block = receiverReportBlocks(receiver)[0].toJSON();
    expect(block.packetsLost).toBe(10);
    expect(block.fractionLost).toBe(Math.floor((10 * 256) / 100));
    expect(block.highestSequence).toBe((65_636 + 30_000 + 99) & 0xffff); // numbered afresh from the restart, which has not wrapped
    // Nothing lost since: the fraction is of the interval, the count cumulative.
    send(50);
    expect(receiverReportBlocks(receiver)[0].toJSON()).toMatchObject({ packetsLost: 10, fractionLost: 0 });
    // Another SSRC in the same receiver keeps werift's figures.
    (receiver.remoteStreams as Record<number, unknown>)[8] = { fraction_lost: 3, packets_lost: 4, max_seq: 5, jitter: 6 };
    send(1);
    const blocks = receiverReportBlocks(receiver).map((b) => b.toJSON());
    expect(blocks.map((b) => b.ssrc)).toEqual([7, 8]);
    expect(blocks[1]).toMatchObject({ ssrc: 8, fractionLost: 3, packetsLost: 4, highestSequence: 5, jitter: 6 });
  });

  it('leave out a source that sent nothing since the last report (RFC 3550 §6.4.2), and report it again once it sends', () => {
    const ingest = new RtpIngest(() => undefined, { reorderPackets: 0 });
    let seq = 100;
    const send = (n: number) => {
      for (let i = 0; i < n; i++, seq++) {
        ingest.receive({ sequenceNumber: seq, timestamp: seq * 960, ssrc: 7, payload: new Uint8Array([0xf8, 1, 2]), headerBytes: 12, arrival: seq * 20 });
      }
    };
    // SSRC 9 is counted by werift's statistics (packets_received), 7 by the session's own.
    const werift9 = { fraction_lost: 0, packets_lost: 0, max_seq: 40, jitter: 2, packets_received: 40 };
    const receiver = { remoteStreams: { 7: { fraction_lost: 0, packets_lost: 0, max_seq: 0, jitter: 0 }, 9: werift9 }, lastSRtimestamp: {}, receiveLastSRTimestamp: {} } as unknown as ReportingReceiver;
    reportFiguresFrom(receiver, () => ingest.reportFigures());
    const ssrcs = () => receiverReportBlocks(receiver).map((b) => b.ssrc);
    send(50);
    expect(ssrcs()).toEqual([7, 9]);
    // Both silent since (a muted sender; one that stopped without a BYE): no blocks, an empty report.
    expect(ssrcs()).toEqual([]);
    // 9 sends again; 7 stays silent.
    werift9.packets_received = 41;
    werift9.max_seq = 41;
    expect(ssrcs()).toEqual([9]);
    // 7 resumes: its block counts what arrived since, nothing lost, its highest sequence the last sent.
    send(10);
    const blocks = receiverReportBlocks(receiver).map((b) => b.toJSON());
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatchObject({ ssrc: 7, packetsLost: 0, fractionLost: 0, highestSequence: seq - 1 });
  });

  it("end their loop at once when the receiver stops", async () => {
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

/** A real werift sender whose transport keeps what it is given to send. */
function recordingSender(): { sender: RTCRtpSender; internals: ReportingSender; sent: Array<Array<RtcpSrPacket | RtcpSourceDescriptionPacket>> } {
  const sender = new RTCRtpSender(new MediaStreamTrack({ kind: 'audio' }));
  const sent: Array<Array<RtcpSrPacket | RtcpSourceDescriptionPacket>> = [];
  Object.assign(sender, {
    cname: 'earshot-test',
    ntpTimestamp: 0x1234_5678_9abc_def0n,
    rtpTimestamp: 960_000,
    packetCount: 500,
    octetCount: 40_000,
    dtlsTransport: { sendRtcp: async (packets: Array<RtcpSrPacket | RtcpSourceDescriptionPacket>) => void sent.push(packets) },
  });
  return { sender, internals: sender as unknown as ReportingSender, sent };
}

describe('sender reports', () => {
  it("are an SR from the sender's counters and last packet's times (a sender werift sends for), then an SDES with its CNAME", () => {
    const { sender, internals } = recordingSender();
    const [sr, sdes] = senderReportPackets(internals);
    expect(sr).toBeInstanceOf(RtcpSrPacket);
    const info = (sr as RtcpSrPacket).senderInfo;
    expect((sr as RtcpSrPacket).ssrc).toBe(sender.ssrc);
    expect(info.ntpTimestamp).toBe(0x1234_5678_9abc_def0n);
    expect(info.rtpTimestamp).toBe(960_000);
    expect(info.packetCount).toBe(500);
    expect(info.octetCount).toBe(40_000);
    expect(sdes).toBeInstanceOf(RtcpSourceDescriptionPacket);
    const chunk = (sdes as RtcpSourceDescriptionPacket).chunks[0];
    expect(chunk.source).toBe(sender.ssrc);
    expect(chunk.items.map((i) => [i.type, i.text])).toEqual([[1, 'earshot-test']]);
    // Without a CNAME, the SR alone.
    Object.assign(sender, { cname: undefined });
    expect(senderReportPackets(internals)).toHaveLength(1);
  });

  it("pair the report's own moment with the RTP time of that moment (RFC 3550 §6.4.1) for a sender earshot sends for, not the last packet's", () => {
    const { internals } = recordingSender();
    // Its last packet (RTP 960 000) left 2.5 s before the report, as in a pause.
    const sentAt = performance.timeOrigin + performance.now() - 2500;
    lastPlainSend.set(internals, sentAt);
    const at = sentAt + 2500;
    const info = (senderReportPackets(internals, at)[0] as RtcpSrPacket).senderInfo;
    // NTP: seconds since 1900, then the fraction in units of 2^-32 s (RFC 3550 §4), of the report's moment.
    const ntpMs = Number(info.ntpTimestamp >> 32n) * 1000 - 2_208_988_800_000 + (Number(info.ntpTimestamp & 0xffff_ffffn) / 2 ** 32) * 1000;
    expect(Math.abs(ntpMs - at)).toBeLessThan(0.01);
    expect(info.rtpTimestamp).toBe(960_000 + 2.5 * 48_000);
    // The counters are the sender's, as before.
    expect([info.packetCount, info.octetCount]).toEqual([500, 40_000]);
    // The RTP time wraps at 2^32 as the packets' does.
    Object.assign(internals, { rtpTimestamp: 0xffff_ff00 });
    expect((senderReportPackets(internals, at)[0] as RtcpSrPacket).senderInfo.rtpTimestamp).toBe((0xffff_ff00 + 120_000) >>> 0);
  });

  it('come from one loop however often runRtcp is called, first within RFC 3550’s first interval, and end when the sender stops', async () => {
    const { sender, internals, sent } = recordingSender();
    expect(reportAtRfcInterval(sender)).toBe(true);
    const loop = internals.runRtcp();
    expect(internals.rtcpRunning).toBe(true);
    // werift calls it after every packet sent: no second loop.
    const again = internals.runRtcp();
    expect(again).not.toBe(loop);
    await again;
    const started = Date.now();
    while (sent.length === 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(sent).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1250 / E_MINUS_3_2 - 50);
    expect(sent[0][0]).toBeInstanceOf(RtcpSrPacket);
    // The round-trip bookkeeping werift's loop keeps: the LSR a receiver report will echo, and when it left.
    expect(internals.lastSRtimestamp).toBe(compactNtp(0x1234_5678_9abc_def0n));
    expect(Math.abs(internals.lastSentSRTimestamp! - Date.now() / 1000)).toBeLessThan(5);
    sender.stop();
    await loop;
    expect(internals.rtcpRunning).toBe(false);
    expect(sent).toHaveLength(1);
  });
});
