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
import type { PeerStatsSnapshot } from '../../src/index.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { encodeOpusFrames } from './audio.js';
import { readFixture } from './fixtures.js';

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

/**
 * Publishes the first 50 packets of the 1 kHz tone as `peer` of room `demo` at `base`, 5 ms
 * apart, with the offer as `editOffer` writes it; `afterEach` runs after each packet. Resolves
 * to the answer once the session is ended.
 */
export async function publishFiftyTonePackets(base: string, peer: string, editOffer: (sdp: string) => string, afterEach: () => void = () => undefined): Promise<string> {
  const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
  const packets = encodeOpusFrames(tone, 1).map((f) => f.payload!).slice(0, 50);
  return publishRawOpus(
    `${base}/whip/demo/${peer}`,
    async (send) => {
      for (let k = 0; k < packets.length; k++) {
        send(100 + k, k * 960, packets[k], k === 0);
        afterEach();
        await sleep(5);
      }
    },
    { editOffer },
  );
}

/** The peer's statistics at `base` once its session has ended (within 10 s; throws otherwise). */
export async function endedStats(base: string, peer: string): Promise<PeerStatsSnapshot> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${base}/stats/${peer}`);
    const stats = res.ok ? ((await res.json()) as PeerStatsSnapshot) : undefined;
    if (stats?.state === 'ended') return stats;
    await sleep(100);
  }
  throw new Error(`${peer} did not end within 10 s`);
}
