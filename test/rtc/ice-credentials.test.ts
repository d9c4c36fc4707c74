/**
 * ICE credentials with the randomness RFC 8839 §5.4 asks for (ufrag at least
 * 24 bits, password at least 128): werift's own are 4 and 22 hex characters
 * (16 and 88 bits). Every description earshot makes carries 8 and 24
 * ice-chars (6 bits each), and the sessions they key still connect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { WebRTCHandler } from '../../src/index.js';
import { iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { fixturePath } from '../helpers/fixtures.js';
import { listen } from '../helpers/listening.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** Every ice-ufrag and ice-pwd of an SDP, session level and media level. */
function credentials(sdp: string): { ufrags: string[]; pwds: string[] } {
  return {
    ufrags: [...sdp.matchAll(/^a=ice-ufrag:(.*?)\r?$/gm)].map((m) => m[1]),
    pwds: [...sdp.matchAll(/^a=ice-pwd:(.*?)\r?$/gm)].map((m) => m[1]),
  };
}

/** 8 and 24 characters of ice-char (ALPHA / DIGIT / "+" / "/"): 48 and 144 bits. */
function expectStrong(sdp: string, who: string): { ufrag: string; pwd: string } {
  const { ufrags, pwds } = credentials(sdp);
  expect(ufrags.length, who).toBeGreaterThan(0);
  expect(new Set(ufrags).size, who).toBe(1);
  expect(new Set(pwds).size, who).toBe(1);
  expect(ufrags[0], who).toMatch(/^[A-Za-z0-9+/]{8}$/);
  expect(pwds[0], who).toMatch(/^[A-Za-z0-9+/]{24}$/);
  return { ufrag: ufrags[0], pwd: pwds[0] };
}

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ threads: 1 });
});
afterAll(async () => {
  await t?.close();
});

describe('ICE credentials', () => {
  it('are strong in the WHIP answer and in earshot send\'s offer, new for every session, and the sessions connect', async () => {
    const seen: Array<{ offer: string; answer: string }> = [];
    for (const peer of ['alice', 'bob']) {
      const result = await sendAudio({
        source: fixturePath('tone-1k-48k.wav'),
        seconds: 0.4,
        hostAddresses: ['127.0.0.1'],
        // WHIP by hand, to see both descriptions.
        signaling: async (offer) => {
          const res = await fetch(`${t.url}/whip/creds/${peer}`, { method: 'POST', body: offer, headers: { 'content-type': 'application/sdp' } });
          expect(res.status).toBe(201);
          const answer = await res.text();
          seen.push({ offer, answer });
          return answer;
        },
      });
      expect(result.packetsSent).toBe(20);
    }
    const keys = seen.flatMap(({ offer, answer }) => [expectStrong(offer, 'offer'), expectStrong(answer, 'answer')]);
    expect(new Set(keys.map((k) => k.ufrag)).size).toBe(4);
    expect(new Set(keys.map((k) => k.pwd)).size).toBe(4);
  });

  it('are strong in a WHEP listener\'s answer', async () => {
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/creds/carol`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal, hostAddresses: ['127.0.0.1'] });
    try {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !(await fetch(`${t.url}/stats/carol`)).ok) await new Promise((r) => setTimeout(r, 50));
      const listener = await listen(`${t.url}/whep/carol`);
      try {
        expect(listener.status).toBe(201);
        await listener.connected();
        expectStrong(listener.answer!, 'WHEP answer');
      } finally {
        await listener.close();
      }
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('are strong in the answer a WebRTCHandler peer connection creates for the application\'s own signaling', async () => {
    const handler = new WebRTCHandler({ iceHostAddresses: ['127.0.0.1'], threads: 1 });
    try {
      await handler.ready();
      let created = '';
      let sent = '';
      const result = await sendAudio({
        source: fixturePath('tone-1k-48k.wav'),
        seconds: 0.4,
        hostAddresses: ['127.0.0.1'],
        signaling: async (offer) => {
          const pc = handler.createPeerConnection('lobby', 'dave');
          await pc.setRemoteDescription({ type: 'offer', sdp: offer });
          const answer = await pc.createAnswer();
          created = answer.sdp;
          await pc.setLocalDescription(answer);
          await iceGatheringComplete(pc);
          sent = pc.localDescription!.sdp;
          return sent;
        },
      });
      expect(result.packetsSent).toBe(20);
      // What createAnswer returned (an application may send that) and what was sent carry the same ones.
      expect(expectStrong(created, 'created answer')).toEqual(expectStrong(sent, 'sent answer'));
    } finally {
      await handler.close();
    }
  });

  it('are strong again after an ICE restart, and the weak ones werift made for it are not accepted', async () => {
    const handler = new WebRTCHandler({ iceHostAddresses: ['127.0.0.1'], threads: 1 });
    try {
      await handler.ready();
      const pc = handler.createPeerConnection('lobby', 'erin');
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const first = expectStrong((await pc.createOffer()).sdp, 'first offer');
      // werift makes a new hex pair on restart; an application's next offer must not carry it.
      pc.restartIce();
      const restarted = expectStrong((await pc.createOffer()).sdp, 'offer after restartIce()');
      expect(restarted.ufrag).not.toBe(first.ufrag);
      const connection = pc.iceTransports[0].connection as unknown as { localUsername: string; userHistory: Record<string, string> };
      expect(connection.localUsername).toBe(restarted.ufrag);
      for (const ufrag of Object.keys(connection.userHistory)) expect(ufrag).toMatch(/^[A-Za-z0-9+/]{8}$/);
      await pc.close();
    } finally {
      await handler.close();
    }
  });
});
