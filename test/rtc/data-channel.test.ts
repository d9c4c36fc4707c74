/**
 * Which data channel section of an offer earshot accepts, what werift gets to
 * see of it, and that the channel really opens over loopback for the offer
 * shapes clients send: werift's own, bundle-only (`max-bundle`), and without
 * BUNDLE. A Chromium-shaped audio + data channel offer gets the application
 * section accepted in BUNDLE.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import type { PeerStatsSnapshot } from '../../src/index.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { dataChannelSection, planNegotiation } from '../../src/rtc/offer-reduction.js';
import { parseOffer, summarizeOffer } from '../../src/rtc/sdp-offer.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const CRLF = '\r\n';
const mLines = (sdp: string) => sdp.split(/\r?\n/).filter((l) => l.startsWith('m='));

const TRANSPORT = [
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:Gx2b',
  'a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 1E:4B:2A:77:0C:9D:3F:61:AB:54:C8:E2:90:17:6D:F3:25:88:B1:4E:0A:C6:7F:39:D2:5B:E8:13:A4:71:9C:06',
  'a=setup:actpass',
];

/** Chromium's data channel section (after `pc.createDataChannel()`), with `mid`. */
const chromeDataSection = (mid: string, mLine = 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel') => [mLine, ...TRANSPORT, `a=mid:${mid}`, 'a=sctp-port:5000', 'a=max-message-size:262144'];

/** Chromium's audio offer plus `sections`, every mid in `bundle` (default: all) in its BUNDLE group. */
function chromeOffer(sections: string[][], bundle?: string[]): string {
  const mids = bundle ?? ['0', ...sections.map((s) => s.find((l) => l.startsWith('a=mid:'))!.slice(6))];
  return chromeLikeOffer().replace('a=group:BUNDLE 0', `a=group:BUNDLE ${mids.join(' ')}`) + sections.map((s) => s.join(CRLF) + CRLF).join('');
}

const pick = (sdp: string) => {
  const offer = parseOffer(sdp);
  return dataChannelSection(offer, summarizeOffer(offer));
};

describe('the data channel section earshot accepts', () => {
  it("accepts Chromium's audio + data channel offer's application section, bundled with the audio", () => {
    const offer = parseOffer(chromeOffer([chromeDataSection('1')]));
    const plan = planNegotiation(offer, summarizeOffer(offer));
    expect(plan.sections).toEqual([0, 1]);
    expect(plan.dataChannel).toBe(1);
    expect(mLines(plan.offer)).toEqual([expect.stringMatching(/^m=audio 9 /), 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel']);
    expect(plan.offer).toContain(`${CRLF}a=group:BUNDLE 0 1${CRLF}`);
  });

  it('takes only the first of two data channel sections', () => {
    expect(pick(chromeOffer([chromeDataSection('1'), chromeDataSection('2')]))).toBe(1);
  });

  it('rejects (without failing the offer) a section outside the audio BUNDLE group, without a=sctp-port, in the legacy DTLS/SCTP form, or refused by the client (port 0)', () => {
    expect(pick(chromeOffer([chromeDataSection('1')], ['0']))).toBeUndefined();
    expect(pick(chromeOffer([chromeDataSection('1').filter((l) => !l.startsWith('a=sctp-port'))]))).toBeUndefined();
    expect(pick(chromeOffer([[...chromeDataSection('1', 'm=application 9 DTLS/SCTP 5000'), 'a=sctpmap:5000 webrtc-datachannel 1024']]))).toBeUndefined();
    expect(pick(chromeOffer([chromeDataSection('1', 'm=application 0 UDP/DTLS/SCTP webrtc-datachannel')]))).toBeUndefined();
    // The offer itself is answered: audio negotiated, the application section rejected.
    const offer = parseOffer(chromeOffer([chromeDataSection('1')], ['0']));
    expect(planNegotiation(offer, summarizeOffer(offer))).toMatchObject({ sections: [0], dataChannel: undefined });
  });

  it('accepts a bundle-only section (port 0, max-bundle) in the audio group, and hands it to werift with a usable port', () => {
    const bundleOnly = [...chromeDataSection('1', 'm=application 0 UDP/DTLS/SCTP webrtc-datachannel'), 'a=bundle-only'];
    const offer = parseOffer(chromeOffer([bundleOnly]));
    const plan = planNegotiation(offer, summarizeOffer(offer));
    expect(plan.dataChannel).toBe(1);
    expect(mLines(plan.offer)[1]).toBe('m=application 9 UDP/DTLS/SCTP webrtc-datachannel');
  });

  it('accepts a data channel with its own transport in an offer without BUNDLE', () => {
    const noBundle = chromeOffer([chromeDataSection('1')]).replace(/a=group:BUNDLE[^\r]*\r\n/, '');
    expect(pick(noBundle)).toBe(1);
  });
});

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] } });
});
afterAll(async () => t?.close());

const post = (peer: string, sdp: string) => fetch(`${t.url}/whip/dc-offers/${peer}`, { method: 'POST', body: sdp, headers: { 'content-type': 'application/sdp' } });
const statsOf = async (peer: string) => (await (await fetch(`${t.url}/stats/${peer}`)).json()) as PeerStatsSnapshot;

describe('answers with the data channel', () => {
  it('answers a Chromium-shaped audio + data channel offer with the application section accepted, in BUNDLE with the audio', async () => {
    const res = await post('chrome', chromeOffer([chromeDataSection('1')]));
    expect(res.status).toBe(201);
    const answer = await res.text();
    expect(mLines(answer)).toEqual([expect.stringMatching(/^m=audio [1-9]\d* UDP\/TLS\/RTP\/SAVPF 111$/), expect.stringMatching(/^m=application [1-9]\d* UDP\/DTLS\/SCTP webrtc-datachannel$/)]);
    expect(answer.match(/^a=mid:.*$/gm)).toEqual(['a=mid:0', 'a=mid:1']);
    expect(answer.match(/^a=group:.*$/gm)).toEqual(['a=group:BUNDLE 0 1']);
    expect(answer).toMatch(/^a=sctp-port:\d+$/m);
    // Waiting for the client to open it (this one never connects).
    expect((await statsOf('chrome')).dataChannel.state).toBe('connecting');
    await fetch(`${t.url}${res.headers.get('location')}`, { method: 'DELETE' });
  });

  it.each([
    ['as werift offers it', (sdp: string) => sdp],
    ['bundle-only (max-bundle)', (sdp: string) => sdp.replace(/^m=application 9 /m, 'm=application 0 ').replace(/(a=mid:1\r\n)/, '$1a=bundle-only\r\n')],
    ['without BUNDLE', (sdp: string) => sdp.replace(/a=group:BUNDLE[^\r]*\r\n/, '')],
  ])('opens the channel of a real werift client whose offer has it %s: the client hears hello, the server counts its message', async (name, shape) => {
    const peer = `werift-${name.split(' ')[0]}`;
    const pc = new RTCPeerConnection({ ...iceConfig({ hostAddresses: ['127.0.0.1'] }), codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 })] } });
    let location: string | null = null;
    try {
      pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
      const channel = pc.createDataChannel('control');
      const heard: Array<Record<string, unknown>> = [];
      channel.onMessage.subscribe((m) => heard.push(JSON.parse(String(m)) as Record<string, unknown>));
      const created = await pc.createOffer();
      disableImplicitStun(pc, []);
      await pc.setLocalDescription(created);
      await iceGatheringComplete(pc);
      const offer = shape(pc.localDescription!.sdp);
      const res = await post(peer, offer);
      const answer = await res.text();
      expect(res.status, answer).toBe(201);
      location = res.headers.get('location');
      expect(mLines(answer)[1]).toMatch(/^m=application [1-9]/);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      await until('the channel to open', () => (channel.readyState === 'open' ? true : undefined), 10_000, 20);
      channel.send(JSON.stringify({ hi: name }));
      await until('hello', () => heard.find((m) => m.type === 'hello'), 10_000, 20);
      expect(heard[0]).toMatchObject({ v: 1, type: 'hello', peer, room: 'dc-offers', pipeline: 'raw' });
      const stats = await until('the message to be counted', async () => {
        const s = await statsOf(peer);
        return s.dataChannel.received === 1 ? s : undefined;
      });
      expect(stats.dataChannel).toMatchObject({ state: 'open', label: 'control' });
    } finally {
      if (location) await fetch(`${t.url}${location}`, { method: 'DELETE' });
      await pc.close().catch(() => undefined);
    }
  });
});
