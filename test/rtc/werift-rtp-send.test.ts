/**
 * Sending Opus packets through a werift sender without werift's per-packet
 * churn (src/rtc/werift-rtp-send.ts), over a real werift pair on loopback:
 * the bytes on the wire are werift's own for the same packets (the same
 * header, the same AES-GCM ciphertext and tag, across a sequence-number
 * wrap), the sender's counters move as werift's do, the receiver gets every
 * packet, and a sender with what the plain path leaves out (header
 * extensions, NACK) is sent by werift. RTCP sender reports carry RFC 3550's
 * NTP time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, useSdesMid, type RTCRtpSender } from 'werift';
import { iceConfig } from '../../src/rtc/ice-config.js';
import { ntpNow, sendRtpPayload, sendsLikeWerift } from '../../src/rtc/werift-rtp-send.js';
import { until } from '../helpers/until.js';
import { negotiate } from '../helpers/werift-pair.js';

const peers: RTCPeerConnection[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((pc) => pc.close().catch(() => undefined)));
});

/** The sender internals the checks compare (private in werift's typings). */
interface SenderView {
  ssrc: number;
  sequenceNumber?: number;
  timestamp?: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  headerBytesSent: number;
  ntpTimestamp: bigint;
  /** werift's retransmission cache, which only its own path fills. */
  rtpCache: Array<RtpPacket | undefined>;
  dtlsTransport: { bytesSent: number; packetsSent: number; iceTransport: { connection: { send(data: Buffer): Promise<void> } } };
}

interface Pair {
  sender: RTCRtpSender;
  view: SenderView;
  /** What the receiver's track got, decrypted. */
  received: RtpPacket[];
  /** Every RTP datagram the sender's ICE connection was handed, in order (all are still sent). */
  wire: Buffer[];
}

/** A werift publisher and a werift receiver on loopback, connected; the codec's feedback and extensions as given. */
async function connect(options: { nack?: boolean; mid?: boolean } = {}): Promise<Pair> {
  const codec = () => new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, rtcpFeedback: options.nack ? [{ type: 'nack' }] : [] });
  const config = { ...iceConfig({ hostAddresses: ['127.0.0.1'] }), codecs: { audio: [codec()] }, headerExtensions: { audio: options.mid ? [useSdesMid()] : [] } };
  const publisher = new RTCPeerConnection(config);
  const receiver = new RTCPeerConnection(config);
  peers.push(publisher, receiver);
  const transceiver = publisher.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  const received: RtpPacket[] = [];
  receiver.onTrack.subscribe((track) => track.onReceiveRtp.subscribe((rtp) => received.push(rtp.clone())));
  await negotiate(publisher, receiver);
  await until('the pair to connect', () => (publisher.connectionState === 'connected' && receiver.connectionState === 'connected' ? true : undefined), 10_000, 20);
  const sender = transceiver.sender;
  const view = sender as unknown as SenderView;
  const wire: Buffer[] = [];
  const connection = view.dtlsTransport.iceTransport.connection;
  const send = connection.send.bind(connection);
  connection.send = (data: Buffer) => {
    // RTP, not RTCP (RFC 5761 §4: RTCP's packet types are 192–223) nor DTLS or STUN.
    if (data[0] >> 6 === 2 && !(data[1] >= 192 && data[1] <= 223)) wire.push(Buffer.from(data));
    return send(data);
  };
  return { sender, view, received, wire };
}

/** The sender's counters that both paths move. */
const counters = (v: SenderView) => ({
  sequenceNumber: v.sequenceNumber,
  timestamp: v.timestamp,
  rtpTimestamp: v.rtpTimestamp,
  packetCount: v.packetCount,
  octetCount: v.octetCount,
  headerBytesSent: v.headerBytesSent,
  bytesSent: v.dtlsTransport.bytesSent,
  packetsSent: v.dtlsTransport.packetsSent,
});

const payloadOf = (i: number) => Buffer.from(Array.from({ length: 3 + ((i * 37) % 160) }, (_, k) => (i * 7 + k * 13) & 0xff));

describe('sending Opus packets through a werift sender', () => {
  it("recognises this werift's send path", () => {
    expect(sendsLikeWerift).toBe(true);
  });

  it("puts werift's own bytes on the wire and moves the sender's counters as werift does, across a sequence-number wrap", async () => {
    const { sender, view, received, wire } = await connect();
    // Each packet twice, first by werift, then by the plain path: the same sequence number and rollover state each time.
    const packets = Array.from({ length: 12 }, (_, i) => ({ seq: (0xfffa + i) & 0xffff, ts: (0xffff_f000 + i * 960) >>> 0, marker: i % 5 === 0, payload: payloadOf(i) }));
    for (const p of packets) {
      expect(view.rtpCache[p.seq % 128]).toBeUndefined();
      await sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 111, sequenceNumber: p.seq, timestamp: p.ts, marker: p.marker }), Buffer.from(p.payload)));
      const afterWerift = counters(view);
      const wireByWerift = wire.at(-1)!;
      view.rtpCache.length = 0;
      sendRtpPayload(sender, p.payload, p.seq, p.ts, p.marker);
      expect(view.rtpCache[p.seq % 128]).toBeUndefined();
      const wireByPlain = wire.at(-1)!;
      expect(wireByPlain).not.toBe(wireByWerift);
      expect(wireByPlain.toString('hex')).toBe(wireByWerift.toString('hex'));
      const afterPlain = counters(view);
      // The plain path counted one more packet of the same size.
      expect(afterPlain).toEqual({
        ...afterWerift,
        packetCount: afterWerift.packetCount + 1,
        octetCount: afterWerift.octetCount + p.payload.length,
        headerBytesSent: afterWerift.headerBytesSent + 12,
        bytesSent: afterWerift.bytesSent + wireByPlain.length,
        packetsSent: afterWerift.packetsSent + 1,
      });
    }
    // The receiver authenticated and decrypted all of them (SRTP replay protection is not werift's).
    await until('every packet at the receiver', () => (received.length === packets.length * 2 ? true : undefined), 5000, 10);
    for (const [i, p] of packets.entries()) {
      for (const r of [received[2 * i], received[2 * i + 1]]) {
        expect({ seq: r.header.sequenceNumber, ts: r.header.timestamp, marker: r.header.marker, ssrc: r.header.ssrc, pt: r.header.payloadType }).toEqual({ seq: p.seq, ts: p.ts, marker: p.marker, ssrc: view.ssrc, pt: 111 });
        expect(Buffer.from(r.payload).equals(p.payload)).toBe(true);
      }
    }
  });

  it("stamps the sender's last packet with RFC 3550's NTP time, which its sender reports carry", async () => {
    const { sender, view } = await connect();
    const before = Date.now();
    sendRtpPayload(sender, payloadOf(1), 100, 48_000, true);
    const after = Date.now();
    const ntp = view.ntpTimestamp;
    const ms = Number(ntp >> 32n) * 1000 + (Number(ntp & 0xffff_ffffn) / 2 ** 32) * 1000 - 2_208_988_800_000;
    expect(ms).toBeGreaterThanOrEqual(before - 1);
    expect(ms).toBeLessThanOrEqual(after + 1);
    const now = ntpNow();
    expect(now >= ntp).toBe(true);
    expect(now - ntp < 2n ** 32n).toBe(true);
  });

  it('leaves senders with header extensions or NACK feedback to werift, which adds its extensions', async () => {
    for (const options of [{ mid: true }, { nack: true }]) {
      const { sender, received, wire } = await connect(options);
      const payload = payloadOf(3);
      sendRtpPayload(sender, payload, 7, 960, false);
      await until('the packet at the receiver', () => (received.length === 1 ? true : undefined), 5000, 10);
      expect(Buffer.from(received[0].payload).equals(payload)).toBe(true);
      expect(received[0].header.sequenceNumber).toBe(7);
      // werift's path: it cached the packet, and its header carries the mid when negotiated.
      expect(wire.length).toBe(1);
      expect((sender as unknown as SenderView).rtpCache[7]?.header.sequenceNumber).toBe(7);
      expect(received[0].header.extensions.length > 0).toBe(options.mid === true);
    }
  });

  it('sends nothing before the pair connects, as werift does', async () => {
    const pc = new RTCPeerConnection(iceConfig({ hostAddresses: ['127.0.0.1'] }));
    peers.push(pc);
    const { sender } = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
    expect(() => sendRtpPayload(sender, payloadOf(0), 1, 960, true)).not.toThrow();
    expect((sender as unknown as SenderView).packetCount).toBe(0);
  });
});
