/**
 * A WHEP player made of werift, for tests: offers to receive audio, answers
 * with the server's SDP, and keeps every RTP packet it gets (payload,
 * sequence number, timestamp, marker).
 */
import { RTCPeerConnection, RTCRtpCodecParameters, RtcpRrPacket } from 'werift';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { sayGoodbye } from '../../src/rtc/werift-goodbye.js';
import { OpusDecoder, OPUS_MAX_FRAME_SAMPLES } from '../../wasm/opus.js';
import { concat } from './audio.js';

export interface HeardPacket {
  payload: Uint8Array;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  /** `performance.now()` when the player got it. */
  at: number;
}

export interface Listener {
  /** Response to the POST. */
  status: number;
  /** The session URL (absolute), when the POST succeeded. */
  location?: string;
  /** The problem document of a refused POST. */
  problem?: { code?: string; status?: number; detail?: string };
  headers: Headers;
  /** The server's SDP answer, when the POST succeeded. */
  answer?: string;
  packets: HeardPacket[];
  connected(): Promise<void>;
  /** The state of the player's DTLS transport (`closed` once the server sent close_notify). */
  dtlsState(): string | undefined;
  close(): Promise<void>;
  /** Closes as a browser's player does: a DTLS close_notify, then the connection, and no DELETE. */
  leave(): Promise<void>;
  /** Every RTCP compound the player decrypted since it connected (raw), for tests that read what the server says. */
  rtcp: Buffer[];
}

/** POSTs a receive-only Opus offer to `url` (e.g. `${base}/whep/alice`) and connects if the server answers. */
export async function listen(
  url: string,
  {
    headers = {},
    direction = 'recvonly',
    editOffer = (sdp) => sdp,
    silent = false,
    emptyReports = false,
  }: {
    headers?: Record<string, string>;
    direction?: 'recvonly' | 'sendonly';
    editOffer?: (sdp: string) => string;
    /** Sends no RTCP, as a player that vanished. */
    silent?: boolean;
    /** Sends receiver reports without report blocks, once a second, as Chromium does while it hears nothing (RFC 3550 §6.4.2). */
    emptyReports?: boolean;
  } = {},
): Promise<Listener> {
  const pc = new RTCPeerConnection({
    ...iceConfig({ hostAddresses: ['127.0.0.1'] }),
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, parameters: 'minptime=10;useinbandfec=1' })] },
  });
  const packets: HeardPacket[] = [];
  const transceiver = pc.addTransceiver('audio', { direction });
  // werift starts its report loop unless one runs: marked as running, it never starts.
  if (silent || emptyReports) (transceiver.receiver as unknown as { rtcpRunning: boolean }).rtcpRunning = true;
  const reporting = emptyReports
    ? setInterval(() => {
        const transport = transceiver.receiver.dtlsTransport;
        if (transport?.state === 'connected') transport.sendRtcp([new RtcpRrPacket({ ssrc: 0x1234abcd, reports: [] })]).catch(() => undefined);
      }, 1000)
    : undefined;
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      packets.push({ payload: new Uint8Array(rtp.payload), sequenceNumber: rtp.header.sequenceNumber, timestamp: rtp.header.timestamp, marker: rtp.header.marker, at: performance.now() });
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  disableImplicitStun(pc, []);
  await iceGatheringComplete(pc);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', ...headers }, body: editOffer(pc.localDescription!.sdp) });
  const close = () => {
    clearInterval(reporting);
    return pc.close().catch(() => undefined);
  };
  if (res.status !== 201) {
    const problem = (await res.json().catch(() => ({}))) as Listener['problem'];
    await close();
    return { status: res.status, problem, headers: res.headers, packets, connected: async () => undefined, dtlsState: () => undefined, close, leave: close, rtcp: [] };
  }
  const answer = await res.text();
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  const location = new URL(res.headers.get('location')!, url).toString();
  const rtcp: Buffer[] = [];
  return {
    status: res.status,
    location,
    answer,
    headers: res.headers,
    packets,
    rtcp,
    async connected() {
      for (let i = 0; i < 100 && pc.connectionState !== 'connected'; i++) await new Promise((r) => setTimeout(r, 50));
      if (pc.connectionState !== 'connected') throw new Error(`listener did not connect (${pc.connectionState})`);
      const srtcp = (transceiver.receiver.dtlsTransport as unknown as { srtcp?: { decrypt(b: Buffer): Buffer } }).srtcp;
      if (srtcp && rtcp.length === 0) {
        const decrypt = srtcp.decrypt.bind(srtcp);
        srtcp.decrypt = (b: Buffer) => {
          const d = decrypt(b);
          rtcp.push(Buffer.from(d));
          return d;
        };
      }
    },
    dtlsState: () => transceiver.receiver.dtlsTransport?.state,
    close,
    async leave() {
      await sayGoodbye(pc);
      await close();
    },
  };
}

/** Decodes heard packets to 48 kHz mono, one after another. */
export function decodeOpus(packets: readonly HeardPacket[]): Float32Array {
  const decoder = new OpusDecoder(1);
  const out = new Float32Array(OPUS_MAX_FRAME_SAMPLES);
  const parts = packets.map((p) => out.slice(0, decoder.decode(p.payload, out)));
  decoder.close();
  return concat(parts);
}

/** Decodes heard packets to 48 kHz stereo: the left and right channels, one after another. */
export function decodeOpusStereo(packets: readonly HeardPacket[]): [Float32Array, Float32Array] {
  const decoder = new OpusDecoder(2);
  const out = new Float32Array(OPUS_MAX_FRAME_SAMPLES * 2);
  const left: Float32Array[] = [];
  const right: Float32Array[] = [];
  for (const p of packets) {
    const n = decoder.decode(p.payload, out);
    const l = new Float32Array(n);
    const r = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      l[i] = out[2 * i];
      r[i] = out[2 * i + 1];
    }
    left.push(l);
    right.push(r);
  }
  decoder.close();
  return [concat(left), concat(right)];
}
