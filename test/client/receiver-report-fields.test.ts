/**
 * What `sendAudio`'s `onReceiverReport` says about a report block: the
 * cumulative loss is a signed 24-bit field (RFC 3550 §6.4.1), negative when
 * duplicates outnumber losses. The block goes through werift's own RTCP
 * writer and reader, as a server's report reaches a sender.
 */
import { describe, expect, it } from 'vitest';
import { RtcpPacketConverter, RtcpReceiverInfo, RtcpRrPacket } from 'werift';
import { signed24 } from '../../src/client/audio-sender.js';

/** The cumulative loss a sender reads from a receiver report that says `lost` (24 bits on the wire). */
function lostAsHeard(lost: number): number {
  const block = new RtcpReceiverInfo({ ssrc: 1234, fractionLost: 0, packetsLost: lost & 0xffffff, highestSequence: 70000, jitter: 12, lsr: 0, dlsr: 0 });
  const [packet] = RtcpPacketConverter.deSerialize(new RtcpRrPacket({ ssrc: 1, reports: [block] }).serialize());
  return signed24((packet as RtcpRrPacket).reports[0].packetsLost);
}

describe('receiver report fields as a sender hears them', () => {
  it('reads the cumulative loss as signed: six more duplicates than losses is -6, not 16777210', () => {
    expect(lostAsHeard(-6)).toBe(-6);
    expect(lostAsHeard(-1)).toBe(-1);
    expect(lostAsHeard(-(2 ** 23))).toBe(-(2 ** 23));
  });

  it('keeps a positive loss as it is, up to the field\'s largest', () => {
    expect(lostAsHeard(0)).toBe(0);
    expect(lostAsHeard(39)).toBe(39);
    expect(lostAsHeard(2 ** 23 - 1)).toBe(2 ** 23 - 1);
  });
});
