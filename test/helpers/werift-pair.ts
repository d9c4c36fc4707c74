/**
 * Connects two werift peers on loopback as a WHIP-style exchange does: the
 * whole offer (candidates gathered, no STUN), then the whole answer.
 */
import type { RTCPeerConnection } from 'werift';
import { disableImplicitStun, iceGatheringComplete } from '../../src/rtc/ice-config.js';

export async function negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection): Promise<void> {
  const offer = await offerer.createOffer();
  disableImplicitStun(offerer, []);
  await offerer.setLocalDescription(offer);
  await iceGatheringComplete(offerer);
  await answerer.setRemoteDescription(offerer.localDescription!);
  const answer = await answerer.createAnswer();
  disableImplicitStun(answerer, []);
  await answerer.setLocalDescription(answer);
  await iceGatheringComplete(answerer);
  await offerer.setRemoteDescription(answerer.localDescription!);
}
