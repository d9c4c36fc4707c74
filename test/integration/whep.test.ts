/**
 * WHEP listeners over real loopback WebRTC: a werift publisher sends a tone
 * over WHIP, a werift player POSTs a receive-only offer to /whep/:peer and
 * hears the peer's processed audio (the stages' output, Opus-encoded in the
 * worker), until it DELETEs its session or the peer's stream ends; a pause
 * once settled is not sent, and the sound after it comes as a marked
 * talkspurt. Refusals are typed: unknown peer or branch, a branch Opus cannot code, too many
 * listeners, an offer that does not receive audio, the wrong token.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { dominantFrequency, encodeOpusFrames, rmsDb } from '../helpers/audio.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { decodeOpus, decodeOpusStereo, listen, type Listener } from '../helpers/listening.js';
import { publishRawOpus } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const ADMIN = { authorization: 'Bearer admin-secret' };
const PUBLISH = { authorization: 'Bearer publish-secret' };

let t: TestServer;
let toneDb: number;
beforeAll(async () => {
  t = await startServer({
    token: 'publish-secret',
    adminToken: 'admin-secret',
    maxListenersPerPeer: 2,
    // Above the longest gap between a player's reports (6.2 s, RFC 3550 §6.3.1), for the test of a vanished player.
    listenerTimeoutMs: 8000,
    extraPipelines: [
      {
        name: 'listen-tone',
        branches: {
          quiet: { stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'gain', db: -12 }], sinks: [{ type: 'stats' }] },
          cd: { stages: [{ type: 'resample', sampleRate: 44100 }], sinks: [{ type: 'stats' }] },
        },
      },
      { name: 'listen-stereo', channels: 2, stages: [], sinks: [{ type: 'stats' }] },
    ],
  });
  toneDb = rmsDb((await readFixture('tone-1k-48k.wav')).channels[0]);
});
afterAll(() => t.close());

/** Publishes the tone in a loop as `peer` until `stop` aborts; resolves once the peer is live. */
async function publishTone(peer: string): Promise<{ stop(): Promise<void> }> {
  const controller = new AbortController();
  const sending = sendAudio({ url: `${t.url}/whip/ops/${peer}?pipeline=listen-tone`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal, token: 'publish-secret' });
  await until(`peer ${peer} live`, async () => (await fetch(`${t.url}/stats/${peer}`, { headers: ADMIN })).ok || undefined);
  return {
    async stop() {
      controller.abort();
      await sending.catch(() => undefined);
    },
  };
}

describe('WHEP listeners', () => {
  it('hear the peer\'s processed audio live, in order, until they DELETE their session', async () => {
    const tone = await publishTone('alice');
    try {
      const player = await listen(`${t.url}/whep/alice`, { headers: ADMIN });
      expect(player.status).toBe(201);
      expect(player.headers.get('content-type')).toMatch(/^application\/sdp/);
      expect(player.location).toMatch(/\/whep\/alice\/[A-Za-z0-9_-]{22}$/);
      // A mono branch: no Opus parameter to say, and none of the player's (useinbandfec, minptime, feedback).
      const pt = /^a=rtpmap:(\d+) opus\/48000\/2/m.exec(player.answer!)![1];
      expect(player.answer!.split(/\r?\n/).filter((l) => l.startsWith(`a=fmtp:${pt} `) || l.startsWith(`a=rtcp-fb:${pt} `))).toEqual([]);
      await player.connected();
      await until('100 packets heard', () => player.packets.length >= 100 || undefined, 15_000);
      const heard = player.packets.slice();
      // Consecutive sequence numbers, timestamps 20 ms apart (960 at 48 kHz, RFC 7587).
      for (let i = 1; i < heard.length; i++) {
        expect((heard[i].sequenceNumber - heard[i - 1].sequenceNumber) & 0xffff).toBe(1);
        expect((heard[i].timestamp - heard[i - 1].timestamp) >>> 0).toBe(960);
      }
      // What the stages made: the tone 12 dB down (within 1.5 dB), still 1 kHz.
      const pcm = decodeOpus(heard).subarray(48000 / 2);
      expect(Math.abs(dominantFrequency(pcm, 48000) - 1000)).toBeLessThanOrEqual(2);
      expect(rmsDb(pcm)).toBeGreaterThan(toneDb - 12 - 1.5);
      expect(rmsDb(pcm)).toBeLessThan(toneDb - 12 + 1.5);

      // No trickle ICE or ICE restart: a listener takes PATCH for no purpose, 501 as WHEP asks.
      const patch = await fetch(player.location!, { method: 'PATCH', headers: { ...ADMIN, 'content-type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates' });
      expect(patch.status).toBe(501);
      expect(((await patch.json()) as { code: string }).code).toBe('EARSHOT_TRICKLE_NOT_SUPPORTED');
      // If-Match that names another entity tag than the listener's ETag ends nothing (RFC 9110 §13.1.1).
      const mismatched = await fetch(player.location!, { method: 'DELETE', headers: { ...ADMIN, 'if-match': '"not-this-one"' } });
      expect([mismatched.status, ((await mismatched.json()) as { code: string }).code]).toEqual([412, 'EARSHOT_PRECONDITION_FAILED']);
      const del = await fetch(player.location!, { method: 'DELETE', headers: { ...ADMIN, 'if-match': player.headers.get('etag')! } });
      expect(del.status).toBe(200);
      expect(await del.json()).toMatchObject({ peer: 'alice', branch: 'quiet' });
      const count = player.packets.length;
      await sleep(500);
      expect(player.packets.length).toBeLessThanOrEqual(count + 2); // at most what was in flight
      expect((await fetch(player.location!, { method: 'DELETE', headers: ADMIN })).status).toBe(404);
      await player.close();
    } finally {
      await tone.stop();
    }
  });

  it('hear a stereo branch in stereo when their offer asks for it (stereo=1), and the answer says what is sent (sprop-stereo), not what the player offered', async () => {
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/ops/duo?pipeline=listen-stereo`, source: fixturePath('tone-stereo-48k.wav'), loop: true, signal: controller.signal, token: 'publish-secret' });
    try {
      await until('peer duo live', async () => (await fetch(`${t.url}/stats/duo`, { headers: ADMIN })).ok || undefined);
      // As a browser that plays stereo offers it (RFC 7587 §6.1): stereo=1 on the Opus line.
      const player = await listen(`${t.url}/whep/duo`, { headers: ADMIN, editOffer: (sdp) => sdp.replace(/(a=fmtp:\d+ [^\r\n]*)/, '$1;stereo=1') });
      expect(player.status).toBe(201);
      const pt = /^a=rtpmap:(\d+) opus\/48000\/2/m.exec(player.answer!)![1];
      const opusLines = player.answer!.split(/\r?\n/).filter((l) => l.startsWith(`a=fmtp:${pt} `) || l.startsWith(`a=rtcp-fb:${pt} `));
      expect(opusLines).toEqual([`a=fmtp:${pt} sprop-stereo=1`]);
      await player.connected();
      await until('60 packets heard', () => player.packets.length >= 60 || undefined, 15_000);
      // The fixture: 440 Hz on the left, 880 Hz on the right, each kept on its side.
      const [left, right] = decodeOpusStereo(player.packets.slice(10));
      expect(Math.abs(dominantFrequency(left, 48000) - 440)).toBeLessThanOrEqual(2);
      expect(Math.abs(dominantFrequency(right, 48000) - 880)).toBeLessThanOrEqual(2);
      await player.close();
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('hear nothing of a pause once its silence settles: no burst when the sender resumes, a marked talkspurt after it', async () => {
    const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
    const packets = encodeOpusFrames(tone, 1).map((f) => f.payload!);
    const pauseMs = 3000;
    let player: Listener | undefined;
    try {
      // A sender that goes quiet for 3 s (sends nothing, as in DTX or on hold) between two runs of 1.5 s of tone.
      await publishRawOpus(`${t.url}/whip/ops/pauser?pipeline=listen-tone`, async (send) => {
        let k = 0;
        const run = async (n: number, from: number) => {
          for (let i = 0; i < n; i++, k++) {
            send(100 + k, from + k * 960, packets[k % packets.length], i === 0);
            await sleep(20);
          }
        };
        await run(10, 0);
        player = await listen(`${t.url}/whep/pauser`, { headers: ADMIN });
        expect(player.status).toBe(201);
        await player.connected();
        await run(75, 0);
        await sleep(pauseMs);
        await run(75, (pauseMs / 20) * 960);
        await sleep(300);
      }, { token: 'publish-secret' });
      const heard = player!.packets.slice();
      // The pause reached the worker only when the sender resumed, and was filled with silence
      // then: the player got the packets coded before the silence settled, not 3 s of them at once.
      const jumps = heard.flatMap((p, i) => (i > 0 && ((p.timestamp - heard[i - 1].timestamp) >>> 0) !== 960 ? [i] : []));
      expect(jumps).toHaveLength(1);
      const [at] = jumps;
      const skipped = ((heard[at].timestamp - heard[at - 1].timestamp) >>> 0) / 960 - 1;
      expect(skipped).toBeGreaterThan(pauseMs / 20 - 30);
      expect(heard[at].marker).toBe(true);
      for (let i = 1; i < heard.length; i++) expect((heard[i].sequenceNumber - heard[i - 1].sequenceNumber) & 0xffff).toBe(1);
      // Before the pause and after it, the tone (12 dB down through the pipeline's stages).
      for (const part of [heard.slice(10, at - 30), heard.slice(at + 10)]) {
        const pcm = decodeOpus(part);
        expect(Math.abs(dominantFrequency(pcm, 48000) - 1000)).toBeLessThanOrEqual(5);
        expect(rmsDb(pcm)).toBeGreaterThan(toneDb - 12 - 3);
      }
    } finally {
      await player?.close();
    }
  });

  it('get a DTX talker\'s packets at its pace: the start of each pause, coded only at the next comfort-noise update, is not sent late in a burst', async () => {
    const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
    const packets = encodeOpusFrames(tone, 1).map((f) => f.payload!);
    // A 20 ms CELT frame of silence: a DTX sender's comfort-noise update, one every 400 ms of a pause.
    const update = new Uint8Array([0xf8, 0xff, 0xfe]);
    let player: Listener | undefined;
    let listener: { packetsLate: number; packetsSent: number } | undefined;
    try {
      await publishRawOpus(`${t.url}/whip/ops/dtx?pipeline=listen-tone`, async (send) => {
        let seq = 500;
        let frame = 0;
        const talk = async (n: number) => {
          for (let i = 0; i < n; i++, frame++) {
            send(seq++, frame * 960, packets[frame % packets.length], i === 0);
            await sleep(20);
          }
        };
        const pause = async (updates: number) => {
          for (let i = 0; i < updates; i++) {
            frame += 20;
            await sleep(400);
            send(seq++, frame * 960, update, false);
          }
          frame++;
        };
        await talk(10);
        player = await listen(`${t.url}/whep/dtx`, { headers: ADMIN });
        await player.connected();
        for (let round = 0; round < 3; round++) {
          await talk(50);
          await pause(3);
        }
        await talk(50);
        await sleep(300);
        const { server } = (await (await fetch(`${t.url}/stats`, { headers: ADMIN })).json()) as { server: { listeners: Array<{ peer: string; packetsLate: number; packetsSent: number }> } };
        listener = server.listeners.find((l) => l.peer === 'dtx');
      }, { token: 'publish-secret', fmtp: 'minptime=10;useinbandfec=1;usedtx=1' });
      const heard = player!.packets.slice();
      // How late each packet came, against the most punctual one: wall clock minus media time.
      const lags = heard.map((p) => p.at - ((p.timestamp - heard[0].timestamp) >>> 0) / 48);
      const base = Math.min(...lags);
      const worst = Math.max(...lags) - base;
      console.log(`WHEP player of a DTX talker: worst lag ${worst.toFixed(0)} ms behind the most punctual packet; ${heard.length} packets heard, ${listener?.packetsLate} not sent (late)`);
      // Sent late, the packets coded for a pause's start came 260–400 ms behind their pace, together.
      expect(worst).toBeLessThan(250);
      // Every packet of the four runs of tone (50 each, after the player connected) was sent.
      expect(heard.length).toBeGreaterThanOrEqual(200);
      // The tone after each pause, a talkspurt (marker bit) after the skipped packets.
      expect(heard.filter((p) => p.marker).length).toBeGreaterThanOrEqual(3);
      const pcm = decodeOpus(heard.slice(-40));
      expect(Math.abs(dominantFrequency(pcm, 48000) - 1000)).toBeLessThanOrEqual(5);
      // Counted: packets of each pause's start (53 in local runs: ~18 per pause), none of the tone.
      expect(listener?.packetsLate).toBeGreaterThanOrEqual(3);
      expect(listener?.packetsSent).toBe(heard.length);
    } finally {
      await player?.close();
    }
  });

  it('end with the peer\'s stream, and refuse what they cannot have with typed errors', async () => {
    const tone = await publishTone('bob');
    let ended = false;
    try {
      const refusals = {
        noToken: await listen(`${t.url}/whep/bob`),
        publishToken: await listen(`${t.url}/whep/bob`, { headers: PUBLISH }),
        unknownPeer: await listen(`${t.url}/whep/nobody`, { headers: ADMIN }),
        unknownBranch: await listen(`${t.url}/whep/bob?branch=nope`, { headers: ADMIN }),
        notEncodable: await listen(`${t.url}/whep/bob?branch=cd`, { headers: ADMIN }),
        sendOnly: await listen(`${t.url}/whep/bob`, { headers: ADMIN, direction: 'sendonly' }),
        // As WHIP refuses them (WHEP answered 201 and the player could never connect).
        noFingerprint: await listen(`${t.url}/whep/bob`, { headers: ADMIN, editOffer: (sdp) => sdp.replace(/a=fingerprint:[^\r]*\r\n/g, '') }),
        noIceCredentials: await listen(`${t.url}/whep/bob`, { headers: ADMIN, editOffer: (sdp) => sdp.replace(/a=ice-pwd:[^\r]*\r\n/g, '') }),
      };
      expect(Object.fromEntries(Object.entries(refusals).map(([k, r]) => [k, [r.status, r.problem?.code]]))).toEqual({
        noToken: [401, 'EARSHOT_UNAUTHORIZED'],
        publishToken: [403, 'EARSHOT_FORBIDDEN'],
        unknownPeer: [404, 'EARSHOT_PEER_NOT_FOUND'],
        unknownBranch: [404, 'EARSHOT_BRANCH_NOT_FOUND'],
        notEncodable: [422, 'EARSHOT_BRANCH_NOT_ENCODABLE'],
        sendOnly: [422, 'EARSHOT_NO_OPUS_AUDIO'],
        noFingerprint: [400, 'EARSHOT_SDP_INVALID'],
        noIceCredentials: [400, 'EARSHOT_SDP_INVALID'],
      });
      expect(refusals.notEncodable.problem?.detail).toMatch(/not 44100 Hz/);
      // A listener is told what a listener offers, not what a publisher does.
      expect(refusals.sendOnly.problem?.detail).toMatch(/does not receive \(it is sendonly\)\. A listener \(WHEP\) offers .* direction recvonly or sendrecv/);

      // maxListenersPerPeer is 2: of four offers at once (each place is held while its answer is made), two wait.
      const offered = await Promise.all(Array.from({ length: 4 }, () => listen(`${t.url}/whep/bob`, { headers: ADMIN })));
      const players = offered.filter((p) => p.status === 201);
      expect(players).toHaveLength(2);
      for (const refused of offered.filter((p) => p.status !== 201)) {
        expect([refused.status, refused.problem?.code, refused.headers.get('retry-after')]).toEqual([503, 'EARSHOT_LISTENERS_FULL', '5']);
      }
      // Full: an offer that can never be accepted still gets its own error, not one to retry.
      const invalid = await listen(`${t.url}/whep/bob`, { headers: ADMIN, editOffer: (sdp) => sdp.replace(/a=fingerprint:[^\r]*\r\n/g, '') });
      expect([invalid.status, invalid.problem?.code]).toEqual([400, 'EARSHOT_SDP_INVALID']);
      for (const p of players) await p.connected();
      const listenersOf = async () => ((await (await fetch(`${t.url}/stats`, { headers: ADMIN })).json()) as { server: { listeners: Array<{ peer: string; state: string }> } }).server.listeners.filter((l) => l.peer === 'bob');
      expect((await listenersOf()).map((l) => l.state)).toEqual(['connected', 'connected']);
      await until('both players hear', () => players.every((p) => p.packets.length >= 25) || undefined, 15_000);

      await tone.stop();
      ended = true;
      // The stream ended: so did its listeners (their session URLs are gone).
      await until('listeners ended with the stream', async () => ((await listenersOf()).length === 0 ? true : undefined));
      for (const p of players) {
        const gone = await fetch(p.location!, { method: 'DELETE', headers: ADMIN });
        expect(gone.status).toBe(404);
        expect(((await gone.json()) as { code: string; detail: string })).toMatchObject({ code: 'EARSHOT_LISTENER_NOT_FOUND', detail: expect.stringMatching(/No WHEP listener .* POST \/whep\/:peer/) });
      }
      for (const p of players) await p.close();
    } finally {
      if (!ended) await tone.stop();
    }
  });

  it('end at once when their player closes its connection without a DELETE (DTLS close_notify), freeing their place', async () => {
    const tone = await publishTone('dave');
    const players: Array<{ close(): Promise<unknown> }> = [];
    try {
      const first = await listen(`${t.url}/whep/dave`, { headers: ADMIN });
      const second = await listen(`${t.url}/whep/dave`, { headers: ADMIN });
      players.push(first, second);
      await first.connected();
      await second.connected();
      const listenersOf = async () => ((await (await fetch(`${t.url}/stats`, { headers: ADMIN })).json()) as { server: { listeners: Array<{ peer: string }> } }).server.listeners.filter((l) => l.peer === 'dave');
      expect(await listenersOf()).toHaveLength(2);
      await first.leave();
      // Well before listenerTimeoutMs (8 s), which ended such a listener before.
      await until('the player that left to be ended', async () => ((await listenersOf()).length === 1 ? true : undefined), 3000);
      expect((await fetch(first.location!, { method: 'DELETE', headers: ADMIN })).status).toBe(404);
      const next = await listen(`${t.url}/whep/dave`, { headers: ADMIN });
      players.push(next);
      expect(next.status).toBe(201);
    } finally {
      for (const p of players) await p.close();
      await tone.stop();
    }
  });

  it('end when their player goes away without a DELETE (no RTCP for listenerTimeoutMs), freeing their place; any RTCP keeps one', { timeout: 60_000 }, async () => {
    const tone = await publishTone('carol');
    const players: Array<{ close(): Promise<unknown> }> = [];
    try {
      // A player that sends no receiver reports, as one whose tab closed or that crashed; and a healthy one
      // whose reports carry no report block, as Chromium's do while it hears nothing (a silent peer, RFC 3550
      // §6.4.2): werift passes those to no sender, and such a player was ended as gone.
      const vanished = await listen(`${t.url}/whep/carol`, { headers: ADMIN, silent: true });
      const healthy = await listen(`${t.url}/whep/carol`, { headers: ADMIN, emptyReports: true });
      players.push(vanished, healthy);
      await vanished.connected();
      await healthy.connected();
      const listenersOf = async () => ((await (await fetch(`${t.url}/stats`, { headers: ADMIN })).json()) as { server: { listeners: Array<{ peer: string; state: string }> } }).server.listeners.filter((l) => l.peer === 'carol');
      expect(await listenersOf()).toHaveLength(2);
      await until('the vanished player to be ended', async () => ((await listenersOf()).length === 1 ? true : undefined), 20_000);
      expect((await fetch(vanished.location!, { method: 'DELETE', headers: ADMIN })).status).toBe(404);
      // The healthy one goes on, and the freed place takes a new player (maxListenersPerPeer is 2).
      const heard = healthy.packets.length;
      await until('the healthy player to go on hearing', async () => (healthy.packets.length > heard + 25 ? true : undefined), 5000);
      const next = await listen(`${t.url}/whep/carol`, { headers: ADMIN });
      players.push(next);
      expect(next.status).toBe(201);
    } finally {
      for (const p of players) await p.close();
      await tone.stop();
    }
  });
});
