/**
 * The SDES packet that names a source's CNAME, which every compound RTCP
 * packet carries right after its report (RFC 3550 §6.1, §6.5.1): the sender
 * reports, the receiver reports and the goodbye all build it here.
 */
import { RtcpSourceDescriptionPacket, SourceDescriptionChunk, SourceDescriptionItem } from 'werift';

/** SDES item type of a CNAME (RFC 3550 §6.5.1). */
const CNAME = 1;

export function cnamePacket(ssrc: number, cname: string): RtcpSourceDescriptionPacket {
  return new RtcpSourceDescriptionPacket({ chunks: [new SourceDescriptionChunk({ source: ssrc, items: [new SourceDescriptionItem({ type: CNAME, text: cname })] })] });
}
