/**
 * SDP offers as real clients send them: one produced by werift, and one shaped
 * like Chromium's audio offer (several codecs, RED, CN, DTMF, header extensions).
 */
import { RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';

/** A complete (non-trickle) offer from a werift peer; close the peer when done. */
export async function weriftOffer(codec: { mimeType: string; clockRate: number; channels?: number } = { mimeType: 'audio/opus', clockRate: 48000, channels: 2 }) {
  const pc = new RTCPeerConnection({ ...iceConfig({ hostAddresses: ['127.0.0.1'] }), codecs: { audio: [new RTCRtpCodecParameters(codec)] } });
  pc.addTransceiver('audio', { direction: 'sendonly' });
  const offer = await pc.createOffer();
  disableImplicitStun(pc, []);
  await pc.setLocalDescription(offer);
  await iceGatheringComplete(pc);
  return { pc, sdp: pc.localDescription!.sdp };
}

/** Chromium's audio-only sendonly offer (M120+ shape), with given ICE credentials and a valid fingerprint. */
export function chromeLikeOffer(): string {
  return [
    'v=0',
    'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=extmap-allow-mixed',
    'a=msid-semantic: WMS 5c7b0d1e',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0 network-id 1',
    'a=ice-ufrag:Gx2b',
    'a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE',
    'a=ice-options:trickle',
    'a=fingerprint:sha-256 1E:4B:2A:77:0C:9D:3F:61:AB:54:C8:E2:90:17:6D:F3:25:88:B1:4E:0A:C6:7F:39:D2:5B:E8:13:A4:71:9C:06',
    'a=setup:actpass',
    'a=mid:0',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
    'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
    'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    'a=sendonly',
    'a=msid:5c7b0d1e 0f4a2e6b-1b7c-4c55-9d43-2f1b8c7a9e10',
    'a=rtcp-mux',
    'a=rtcp-rsize',
    'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1',
    'a=rtpmap:63 red/48000/2',
    'a=fmtp:63 111/111',
    'a=rtpmap:9 G722/8000',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:13 CN/8000',
    'a=rtpmap:110 telephone-event/48000',
    'a=rtpmap:126 telephone-event/8000',
    'a=ssrc:3421886613 cname:Qm1bP0yZ3d4VfT2x',
    'a=ssrc:3421886613 msid:5c7b0d1e 0f4a2e6b-1b7c-4c55-9d43-2f1b8c7a9e10',
    '',
  ].join('\r\n');
}
