/**
 * A WHIP publisher whose RTP packets the test writes itself (sequence
 * numbers, timestamps, which packets go at all), for what `sendAudio` never
 * sends: DTX pauses, jumps in the timestamps. werift over loopback, as any
 * other publisher; the session is ended with DELETE once `send` is done.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket } from 'werift';
import { WhipClient } from '../../src/client/whip-client.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';

/** Sends one Opus packet with these RTP header fields; `ssrc` switches the sender to that SSRC from this packet on. */
export type SendRtp = (sequenceNumber: number, timestamp: number, payload: Uint8Array, marker?: boolean, ssrc?: number) => void;

/**
 * Publishes to `url` and calls `send` once connected; `fmtp` is the Opus
 * format parameters of the offer (e.g. with `usedtx=1`), `token` the bearer
 * token to publish with, `editOffer` rewrites the offer as another stack
 * would have written it (werift itself reads the answer). Resolves to the
 * answer.
 */
export async function publishRawOpus(
  url: string,
  send: (packet: SendRtp) => Promise<void>,
  { fmtp = 'minptime=10;useinbandfec=1', token, editOffer = (sdp) => sdp }: { fmtp?: string; token?: string; editOffer?: (sdp: string) => string } = {},
): Promise<string> {
  const pc = new RTCPeerConnection({
    ...iceConfig({ hostAddresses: ['127.0.0.1'] }),
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: fmtp })] },
  });
  const whip = new WhipClient({ token });
  try {
    const transceiver = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    disableImplicitStun(pc, []);
    await iceGatheringComplete(pc);
    const { answer, sessionUrl } = await whip.publish(url, editOffer(pc.localDescription!.sdp));
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await sleep(50);
    expect(pc.connectionState).toBe('connected');
    const sender = transceiver.sender;
    const payloadType = sender.codec?.payloadType ?? 111;
    await send((sequenceNumber, timestamp, payload, marker = false, ssrc = undefined) => {
      // werift stamps every packet with the sender's SSRC (synchronously, once connected).
      if (ssrc !== undefined) (sender as unknown as { ssrc: number }).ssrc = ssrc >>> 0;
      sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType, sequenceNumber: sequenceNumber & 0xffff, timestamp: timestamp >>> 0, marker }), Buffer.from(payload)));
    });
    await sleep(200);
    await whip.end(sessionUrl);
    return answer;
  } finally {
    await pc.close().catch(() => undefined);
  }
}
