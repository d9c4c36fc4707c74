/**
 * RTP from an SSRC the offer did not announce, given to the session's audio
 * stream instead of dropped.
 *
 * werift's router finds a packet's receiver by its SSRC, learnt from the
 * offer's `a=ssrc` lines, or by RID, and drops anything else without a word.
 * So an offer without `a=ssrc` lines connected, then timed out with not one
 * packet counted, and so did a sender that changed its SSRC mid-call (RFC
 * 3550 §8.2 allows it: a collision, a restarted encoder). RFC 8843 §9.2 routes
 * such packets by MID, then by payload type; earshot's answer negotiates no
 * header extension, so packets carry no MID.
 *
 * A WHIP session receives one audio stream, so a packet of an unknown SSRC
 * whose payload type is one of the audio receiver's codecs can only be meant
 * for it. `routeUnsignalledSsrcs` wraps the connection's `router.routeRtp`:
 * such a packet registers its SSRC with that receiver, on the track the
 * session takes its packets from, and then takes werift's path (the session's
 * ingest treats a new SSRC as a new source, RFC 3550 A.1). At most
 * `MAX_ADOPTED_SSRCS` per session: past that, packets of further unknown SSRCs
 * are dropped and counted (`earshot_rtc_guarded_total{guard="rtp_ssrc_not_adopted"}`),
 * so that a peer sending many SSRCs cannot grow the router's tables.
 *
 * The upstream change: in `RtpRouter.routeRtp`, route a packet of an unknown
 * SSRC by MID, else by payload type when one receiver has it (RFC 8843 §9.2).
 */
import type { RTCPeerConnection, RtpPacket } from 'werift';
import { guardCounts } from './guard-counts.js';

/** SSRCs a session takes beyond those its offer announced (a sender restarting now and then needs a few). */
export const MAX_ADOPTED_SSRCS = 8;

interface RouterInternals {
  ssrcTable: Record<number, unknown>;
  ridTable: Record<string, unknown>;
  routeRtp: (packet: RtpPacket) => void;
  registerRtpReceiver(receiver: unknown, ssrc: number): void;
}

interface ReceiverInternals {
  codecs: Record<number, unknown>;
  trackBySSRC: Record<number, unknown>;
  /** The track the session subscribed to: the announced SSRC's, or werift's default track without one. */
  readonly track: unknown;
}

/**
 * Routes RTP of SSRCs the offer did not announce to `pc`'s one audio
 * receiver, as described above. Call after the offer is set (the receiver's
 * codecs are known). Returns whether it did: not where the connection has
 * other than one audio transceiver, or werift's router is not as expected.
 */
export function routeUnsignalledSsrcs(pc: RTCPeerConnection): boolean {
  const router = (pc as unknown as { router?: Partial<RouterInternals> }).router;
  const audio = pc.getTransceivers().filter((t) => t.kind === 'audio');
  if (audio.length !== 1 || !router || typeof router.routeRtp !== 'function' || typeof router.registerRtpReceiver !== 'function') return false;
  if (typeof router.ssrcTable !== 'object' || typeof router.ridTable !== 'object') return false;
  const r = router as RouterInternals;
  const receiver = audio[0].receiver;
  const internals = receiver as unknown as ReceiverInternals;
  if (typeof internals.codecs !== 'object' || typeof internals.trackBySSRC !== 'object') return false;
  const routeRtp = r.routeRtp;
  let adopted = 0;
  r.routeRtp = (packet: RtpPacket) => {
    const ssrc = packet.header.ssrc;
    // Known SSRCs, and everything while streams are routed by RID (simulcast), take werift's path as they are.
    if (r.ssrcTable[ssrc] === undefined && internals.codecs[packet.header.payloadType] !== undefined && isEmpty(r.ridTable)) {
      if (adopted >= MAX_ADOPTED_SSRCS) {
        guardCounts.rtpSsrcsNotAdopted++;
        return;
      }
      adopted++;
      r.registerRtpReceiver(receiver, ssrc);
      internals.trackBySSRC[ssrc] = internals.track;
    }
    routeRtp(packet);
  };
  return true;
}

/** Whether `table` has no key (no array made: this runs for every packet of an SSRC not taken). */
function isEmpty(table: object): boolean {
  for (const _ in table) return false;
  return true;
}
