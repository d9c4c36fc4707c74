/**
 * A WHIP publisher that sends what a broken or hostile peer would: its own
 * SRTP (AES-128-GCM, RFC 7714) of RTP bytes the test writes, header and all
 * (werift's sender rewrites and re-serializes the header, so it cannot send
 * a malformed one), SRTCP of any bytes, and plain datagrams from its own
 * address. werift over loopback, as any other publisher.
 */
import { createCipheriv } from 'node:crypto';
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { WhipClient } from '../../src/client/whip-client.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';

/** The werift transport internals the helper sends through. */
interface TransportView {
  srtp: { localContext: { cipher: { srtpSessionKey: Buffer; srtpSessionSalt: Buffer } } };
  iceTransport: { connection: { send(data: Buffer): Promise<void> } };
  sendRtcp(packets: Array<{ serialize(): Buffer }>): Promise<void>;
}

export interface HostilePeer {
  /** The server's host candidate: where the session's datagrams go. */
  address: [string, number];
  /** The SSRC of the publisher's track. */
  ssrc: number;
  /** Sends a datagram as it is, from the peer's own (authenticated) address. */
  send(datagram: Buffer): Promise<void>;
  /** SRTP of `rtp` (an RTP packet, its header `rtp[0, headerEnd)` authenticated as is), sent. */
  sendRtp(rtp: Buffer, headerEnd: number): Promise<void>;
  /** SRTCP of `rtcp` (any bytes of 8 or more), sent. */
  sendRtcp(rtcp: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** The server's first UDP host candidate in `answer`. */
export function candidateOf(answer: string): [string, number] {
  const m = /^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/m.exec(answer);
  if (!m) throw new Error('the answer has no UDP host candidate');
  return [m[1], Number(m[2])];
}

/** A UDP socket on 127.0.0.1 that sends to `address`: a stranger to the session. */
export async function stranger(address: [string, number]): Promise<{ send(datagram: Buffer): Promise<void>; close(): void }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return {
    send: (datagram) => new Promise<void>((r) => socket.send(datagram, address[1], address[0], () => r())),
    close: () => socket.close(),
  };
}

/**
 * Publishes to `url`; `beforeConnect` runs once the answer is in and before
 * the peer starts ICE and DTLS (for what reaches the session's port first),
 * with the server's host candidate and its answer.
 */
export async function hostilePeer(url: string, beforeConnect?: (address: [string, number], answer: string) => Promise<void>): Promise<HostilePeer> {
  const pc = new RTCPeerConnection({
    ...iceConfig({ hostAddresses: ['127.0.0.1'] }),
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: 'minptime=10;useinbandfec=1' })] },
  });
  const transceiver = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  disableImplicitStun(pc, []);
  await iceGatheringComplete(pc);
  const { answer } = await new WhipClient().publish(url, pc.localDescription!.sdp);
  const address = candidateOf(answer);
  await beforeConnect?.(address, answer);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await sleep(50);
  expect(pc.connectionState).toBe('connected');
  const transport = pc.dtlsTransports[0] as unknown as TransportView;
  const { srtpSessionKey: key, srtpSessionSalt: salt } = transport.srtp.localContext.cipher;
  const send = (datagram: Buffer) => transport.iceTransport.connection.send(datagram);
  return {
    address,
    ssrc: transceiver.sender.ssrc,
    send,
    sendRtp(rtp, headerEnd) {
      // RFC 7714 §8.1: 2 zero bytes, SSRC, rollover counter (0: no test wraps), sequence number, XOR the salt.
      const iv = Buffer.alloc(12);
      iv.writeUInt32BE(rtp.readUInt32BE(8), 2);
      iv.writeUInt16BE(rtp.readUInt16BE(2), 10);
      for (let i = 0; i < 12; i++) iv[i] ^= salt[i];
      const cipher = createCipheriv('aes-128-gcm', key, iv);
      cipher.setAAD(rtp.subarray(0, headerEnd));
      const sealed = Buffer.concat([rtp.subarray(0, headerEnd), cipher.update(rtp.subarray(headerEnd)), cipher.final(), cipher.getAuthTag()]);
      return send(sealed);
    },
    sendRtcp: (rtcp) => transport.sendRtcp([{ serialize: () => rtcp }]),
    close: () => pc.close().catch(() => undefined),
  };
}
