/**
 * What a client hears from the server over RTCP and DTLS, over real loopback
 * WebRTC with a werift publisher that reads every RTCP packet it decrypts:
 * every receiver report comes in a compound packet with the CNAME the answer
 * gives the reporting SSRC (RFC 3550 §6.1); when the server ends the session
 * (here: someone else's DELETE), the client gets a BYE (after an empty report:
 * reports keep their interval, which clients time)
 * (RFC 3550 §6.3.7) and a DTLS close_notify, so its DTLS transport closes at
 * once (RFC 9725 §4.2) instead of sending on until its consent checks fail.
 * A WHEP player whose stream ends gets a BYE for it and the close_notify too,
 * and `earshot send` says goodbye the same way for the source it sent.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';
import { sendAudio } from '../../src/client/audio-sender.js';
import { WhipClient } from '../../src/client/whip-client.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { encodeOpusFrames } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { listen } from '../helpers/listening.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

let t: TestServer;
let packets: Uint8Array[];
beforeAll(async () => {
  t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
  packets = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0], 1).map((f) => f.payload!);
});
afterAll(() => t?.close());

/** One decrypted compound RTCP packet: its packets' types, the SDES chunks' (source, CNAME), the BYE's sources. */
interface Compound {
  types: number[];
  cnames: Array<[number, string]>;
  byes: number[];
  reportFrom?: number;
  /** The receiver report's blocks. */
  blocks?: number;
}

function parseCompound(d: Buffer): Compound {
  const c: Compound = { types: [], cnames: [], byes: [] };
  for (let pos = 0; pos + 4 <= d.length; pos += (d.readUInt16BE(pos + 2) + 1) * 4) {
    const type = d[pos + 1];
    const count = d[pos] & 0x1f;
    c.types.push(type);
    if (type === 201) {
      c.reportFrom = d.readUInt32BE(pos + 4);
      c.blocks = count;
    }
    if (type === 202 && count >= 1 && d[pos + 8] === 1) c.cnames.push([d.readUInt32BE(pos + 4), d.toString('utf8', pos + 10, pos + 10 + d[pos + 9])]);
    if (type === 203) for (let i = 0; i < count; i++) c.byes.push(d.readUInt32BE(pos + 4 + 4 * i));
  }
  return c;
}

/** A werift publisher sending the tone every 20 ms, keeping every RTCP compound it decrypts. */
async function publish(url: string) {
  const pc = new RTCPeerConnection({ ...iceConfig({ hostAddresses: ['127.0.0.1'] }), codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })] } });
  const transceiver: RTCRtpTransceiver = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  disableImplicitStun(pc, []);
  await iceGatheringComplete(pc);
  const { answer, sessionUrl } = await new WhipClient({}).publish(url, pc.localDescription!.sdp);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  await until('the publisher to connect', () => (pc.connectionState === 'connected' ? true : undefined), 10_000, 50);
  const transport = transceiver.sender.dtlsTransport as unknown as { state: string; srtcp: { decrypt(b: Buffer): Buffer } };
  const compounds: Compound[] = [];
  const decrypt = transport.srtcp.decrypt.bind(transport.srtcp);
  transport.srtcp.decrypt = (b: Buffer) => {
    const d = decrypt(b);
    compounds.push(parseCompound(d));
    return d;
  };
  let k = 0;
  const timer = setInterval(() => {
    void transceiver.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 111, sequenceNumber: k & 0xffff, timestamp: k * 960 }), Buffer.from(packets[k % packets.length])));
    k++;
  }, 20);
  return {
    answer,
    sessionUrl,
    compounds,
    dtlsState: () => transport.state,
    close: async () => {
      clearInterval(timer);
      await pc.close().catch(() => undefined);
    },
  };
}

describe('RTCP as the server hears it from earshot send', () => {
  it('ends with a BYE for the source it sent, after an empty report and its CNAME', { timeout: 30_000 }, async () => {
    // A werift answerer that keeps every RTCP compound it decrypts.
    const compounds: Compound[] = [];
    const answerer = new RTCPeerConnection(iceConfig({ hostAddresses: ['127.0.0.1'] }));
    answerer.connectionStateChange.subscribe((state) => {
      if (state !== 'connected') return;
      const transport = answerer.getTransceivers()[0].receiver.dtlsTransport as unknown as { srtcp: { decrypt(b: Buffer): Buffer } };
      const decrypt = transport.srtcp.decrypt.bind(transport.srtcp);
      transport.srtcp.decrypt = (b: Buffer) => {
        const d = decrypt(b);
        compounds.push(parseCompound(d));
        return d;
      };
    });
    const signaling = async (offer: string) => {
      await answerer.setRemoteDescription({ type: 'offer', sdp: offer });
      await answerer.setLocalDescription(await answerer.createAnswer());
      disableImplicitStun(answerer, []);
      await iceGatheringComplete(answerer);
      return answerer.localDescription!.sdp;
    };
    try {
      const sent = await sendAudio({ signaling, hostAddresses: ['127.0.0.1'], source: { sampleRate: 48000, channels: [new Float32Array(48000)] }, seconds: 1 });
      const bye = await until('the BYE', () => compounds.find((c) => c.types.includes(203)), 2000, 20);
      expect(bye).toEqual({ types: [201, 202, 203], cnames: [[sent.ssrc, expect.stringMatching(/\S/)]], byes: [sent.ssrc], reportFrom: sent.ssrc, blocks: 0 });
    } finally {
      await answerer.close();
    }
  });
});

describe('RTCP and DTLS as the client hears them', () => {
  it('reports with the CNAME of the answer, and ends a session with a BYE and a DTLS close_notify', { timeout: 30_000 }, async () => {
    const p = await publish(`${t.url}/whip/bye/p1`);
    try {
      // The answer names the SSRC the server reports from and its CNAME: a=ssrc:<ssrc> cname:<cname>.
      const [, ssrc, cname] = /^a=ssrc:(\d+) cname:(\S+)$/m.exec(p.answer)!;
      // The first report comes 1.0–3.1 s in (RFC 3550 §6.3.1).
      const first = await until('a receiver report', () => p.compounds.find((c) => c.types.includes(201)), 8000, 50);
      expect(first).toEqual({ types: [201, 202], cnames: [[Number(ssrc), cname]], byes: [], reportFrom: Number(ssrc), blocks: 1 });
      expect(p.dtlsState()).toBe('connected');

      // Someone else ends the session: the client hears so at once.
      const before = p.compounds.length;
      const ended = performance.now();
      expect((await fetch(p.sessionUrl, { method: 'DELETE' })).status).toBe(200);
      const last = await until('the BYE', () => p.compounds.slice(before).find((c) => c.types.includes(203)), 2000, 20);
      expect(last).toEqual({ types: [201, 202, 203], cnames: [[Number(ssrc), cname]], byes: [Number(ssrc)], reportFrom: Number(ssrc), blocks: 0 });
      await until('the DTLS transport to close', () => (p.dtlsState() === 'closed' ? true : undefined), 2000, 20);
      expect(performance.now() - ended).toBeLessThan(2000);
    } finally {
      await p.close();
    }
  });

  it('sends a WHEP player a BYE for the stream it hears and closes DTLS when that stream ends', { timeout: 30_000 }, async () => {
    const p = await publish(`${t.url}/whip/bye/p2`);
    const player = await listen(`${t.url}/whep/p2`);
    try {
      expect(player.status).toBe(201);
      await player.connected();
      await until('the player to hear packets', () => (player.packets.length >= 10 ? true : undefined), 5000, 20);
      expect(player.dtlsState()).toBe('connected');
      // The source it hears, as the answer names it (a=ssrc:<ssrc> cname:<cname>).
      const [, ssrc, cname] = /^a=ssrc:(\d+) cname:(\S+)$/m.exec(player.answer!)!;
      expect((await fetch(p.sessionUrl, { method: 'DELETE' })).status).toBe(200);
      await until("the player's DTLS transport to close", () => (player.dtlsState() === 'closed' ? true : undefined), 2000, 20);
      const bye = player.rtcp.map(parseCompound).find((c) => c.types.includes(203));
      expect(bye).toEqual({ types: [201, 202, 203], cnames: [[Number(ssrc), cname]], byes: [Number(ssrc)], reportFrom: Number(ssrc), blocks: 0 });
    } finally {
      await player.close();
      await p.close();
    }
  });
});
