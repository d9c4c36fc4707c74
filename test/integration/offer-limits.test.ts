/**
 * What one WHIP offer may cost the server, against the real thing over
 * loopback: offers with too many sections are refused before werift opens a
 * socket, sections earshot does not use come back rejected without werift,
 * payload types are checked, and error responses and log lines stay small
 * whatever the client sent. Durations are printed, never asserted.
 */
import type { PipelineDefinition } from '../../src/pipeline/pipeline-builder.js';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';
import { encodeSource } from '../../src/client/audio-sender.js';
import { readWavSource } from '../../src/client/wav-stream.js';
import { EarshotError } from '../../src/errors.js';
import type { PeerStatsSnapshot } from '../../src/core/peer-registry.js';
import { installProblemHandling } from '../../src/server/problem.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { MAX_MEDIA_SECTIONS } from '../../src/rtc/sdp-offer.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { EARSHOT_BIN } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RAW_PIPELINE: PipelineDefinition = { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] };
const CRLF = '\r\n';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ pipeline: RAW_PIPELINE });
});
afterAll(async () => {
  await t?.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

type Problem = { code: string; status: number; detail: string; truncated?: boolean };

function post(peer: string, sdp: string): Promise<Response> {
  return fetch(`${t.url}/whip/limits/${peer}`, { method: 'POST', body: sdp, headers: { 'content-type': 'application/sdp' } });
}

async function end(res: Response): Promise<void> {
  const location = res.headers.get('location');
  if (location) await fetch(`${t.url}${location}`, { method: 'DELETE' });
}

/** UDP sockets open in this process (the server runs in it). */
const udpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;

/** The count once it has held for 300 ms: sockets of earlier test files in this process may still be closing. */
async function steadySockets(): Promise<number> {
  let count = udpSockets();
  for (let since = Date.now(), deadline = since + 5000; Date.now() - since < 300 && Date.now() < deadline; ) {
    await sleep(20);
    if (udpSockets() !== count) {
      count = udpSockets();
      since = Date.now();
    }
  }
  return count;
}

async function untilSockets(count: number): Promise<number> {
  for (const deadline = Date.now() + 5000; udpSockets() !== count && Date.now() < deadline; ) await sleep(20);
  return udpSockets();
}

const mLines = (sdp: string) => sdp.split(/\r?\n/).filter((l) => l.startsWith('m='));

const TRANSPORT = [
  'a=ice-ufrag:Gx2b',
  'a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE',
  'a=fingerprint:sha-256 1E:4B:2A:77:0C:9D:3F:61:AB:54:C8:E2:90:17:6D:F3:25:88:B1:4E:0A:C6:7F:39:D2:5B:E8:13:A4:71:9C:06',
  'a=setup:actpass',
];

/**
 * The attack as reproduced: `n` Opus audio sections without a BUNDLE group
 * (so werift would give each its own transport and socket), ICE and DTLS
 * parameters at session level. 600 full sections are ≈ 43 KB; with `minimal`,
 * sections after the first are bare m= and mid lines and 1000 fit in ≈ 44 KB,
 * both under the 64 KiB body limit.
 */
function manyAudioSections(n: number, minimal = false): string {
  const head = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', ...TRANSPORT];
  const section = (i: number) => [`m=audio 9 UDP/TLS/RTP/SAVPF 111`, `a=mid:${i}`, ...(minimal && i > 0 ? [] : ['a=sendonly', 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2'])];
  return [...head, ...Array.from({ length: n }, (_, i) => section(i)).flat(), ''].join(CRLF);
}

/** Chromium's audio offer followed by a video and a data channel section, all in one BUNDLE group. */
function audioVideoDataOffer(): string {
  const transport = ['c=IN IP4 0.0.0.0', 'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0 network-id 1', ...TRANSPORT];
  const video = ['m=video 9 UDP/TLS/RTP/SAVPF 96 97', ...transport, 'a=mid:1', 'a=sendonly', 'a=rtcp-mux', 'a=rtpmap:96 VP8/90000', 'a=rtcp-fb:96 nack pli', 'a=rtpmap:97 rtx/90000', 'a=fmtp:97 apt=96'];
  const data = ['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', ...transport, 'a=mid:2', 'a=sctp-port:5000', 'a=max-message-size:262144'];
  return chromeLikeOffer().replace('a=group:BUNDLE 0', 'a=group:BUNDLE 0 1 2') + [...video, ...data, ''].join(CRLF);
}

describe('media section limit', () => {
  it('refuses an offer with 600 Opus audio sections with 400 EARSHOT_SDP_TOO_COMPLEX, before werift runs or opens a socket', async () => {
    const sdp = manyAudioSections(600);
    expect(sdp.length).toBeGreaterThan(40_000);
    const werift = vi.spyOn(RTCPeerConnection.prototype, 'setRemoteDescription');
    const before = await steadySockets();
    const started = performance.now();
    const res = await post('many', sdp);
    const ms = performance.now() - started;
    expect(res.status).toBe(400);
    const problem = (await res.json()) as Problem;
    expect(problem.code).toBe('EARSHOT_SDP_TOO_COMPLEX');
    expect(problem.detail).toContain('600 media sections');
    expect(problem.detail).toContain(`at most ${MAX_MEDIA_SECTIONS}`);
    expect(werift).not.toHaveBeenCalled();
    expect(udpSockets()).toBe(before);
    console.info(`600-section offer refused in ${ms.toFixed(1)} ms (it took 9–14 s before the limit)`);
  });

  it(`answers ${MAX_MEDIA_SECTIONS} Opus sections with one negotiated and the rest rejected, opening no more sockets than a one-section offer`, async () => {
    const base = await steadySockets();
    const one = await post('one-section', chromeLikeOffer());
    expect(one.status).toBe(201);
    const oneSockets = udpSockets() - base;
    await end(one);
    expect(await untilSockets(base)).toBe(base);

    const many = await post('sixteen', manyAudioSections(MAX_MEDIA_SECTIONS));
    expect(many.status).toBe(201);
    const manySockets = udpSockets() - base;
    const answer = await many.text();
    await end(many);
    expect(oneSockets).toBeGreaterThanOrEqual(1);
    expect(manySockets).toBe(oneSockets);
    const lines = mLines(answer);
    expect(lines).toHaveLength(MAX_MEDIA_SECTIONS);
    expect(lines[0]).toMatch(/^m=audio [1-9]\d* UDP\/TLS\/RTP\/SAVPF 111$/);
    for (const l of lines.slice(1)) expect(l).toBe('m=audio 0 UDP/TLS/RTP/SAVPF 111');
    expect(answer.match(/^a=mid:.*$/gm)).toEqual(Array.from({ length: MAX_MEDIA_SECTIONS }, (_, i) => `a=mid:${i}`));
  });

  it('refuses payload type 99999999999 (and 128) with 400 EARSHOT_SDP_INVALID instead of copying it into the answer', async () => {
    for (const sdp of [chromeLikeOffer().replaceAll('111', '99999999999'), chromeLikeOffer().replace('a=rtpmap:111 opus', 'a=rtpmap:99999999999 opus'), chromeLikeOffer().replace('SAVPF 111 63', 'SAVPF 128 63')]) {
      const res = await post('big-pt', sdp);
      expect(res.status).toBe(400);
      const problem = (await res.json()) as Problem;
      expect(problem.code).toBe('EARSHOT_SDP_INVALID');
      expect(problem.detail).toMatch(/payload types are whole numbers 0–127/);
    }
  });

  it('refuses an offer with an empty ICE password or ufrag with 400 EARSHOT_SDP_INVALID, and keeps no session', async () => {
    // werift gave up on such a connection while answering it, and the session it left was never ended: it held a
    // session slot (and the peer) until a restart, so a few such offers locked every publisher out.
    const sockets = await steadySockets();
    for (const [peer, sdp] of [
      ['empty-pwd', chromeLikeOffer().replace(/a=ice-pwd:\S+/, 'a=ice-pwd:')],
      ['empty-ufrag', chromeLikeOffer().replace(/a=ice-ufrag:\S+/, 'a=ice-ufrag:')],
    ]) {
      const res = await post(peer, sdp);
      expect(res.status).toBe(400);
      const problem = (await res.json()) as Problem;
      expect(problem.code).toBe('EARSHOT_SDP_INVALID');
      expect(problem.detail).toMatch(/a=ice-(pwd|ufrag) has 0 characters/);
      expect((await fetch(`${t.url}/stats/${peer}`)).status).toBe(404);
    }
    expect(t.server.core.stats().peers).toBe(0);
    expect(udpSockets()).toBe(sockets);
  });
});

describe('sections earshot does not receive', () => {
  it('answers audio + video + data channel with 3 m-lines in order, video rejected (port 0) and left out of BUNDLE, the data channel accepted', async () => {
    const res = await post('avd-sdp', audioVideoDataOffer());
    expect(res.status).toBe(201);
    const answer = await res.text();
    await end(res);
    expect(mLines(answer)).toEqual([expect.stringMatching(/^m=audio [1-9]\d* UDP\/TLS\/RTP\/SAVPF 111$/), 'm=video 0 UDP/TLS/RTP/SAVPF 96', expect.stringMatching(/^m=application [1-9]\d* UDP\/DTLS\/SCTP webrtc-datachannel$/)]);
    expect(answer.match(/^a=mid:.*$/gm)).toEqual(['a=mid:0', 'a=mid:1', 'a=mid:2']);
    expect(answer.match(/^a=group:.*$/gm)).toEqual(['a=group:BUNDLE 0 2']);
    expect(answer).toMatch(/a=rtpmap:111 opus\/48000\/2/);
    expect(answer).not.toMatch(/VP8|rtx/);
  });

  it('answers a stereo offer with Opus (RFC 7587), asking for one channel where the pipeline decodes one', async () => {
    const res = await post('stereo-sdp', chromeLikeOffer().replace('a=fmtp:111 minptime=10;useinbandfec=1', 'a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1'));
    expect(res.status).toBe(201);
    const answer = await res.text();
    await end(res);
    // The offer's `sprop-stereo=1` says what the offerer sends; the answer's `stereo` what earshot wants (here: no).
    expect(answer.match(/^a=(rtpmap|fmtp):111 .*$/gm)).toEqual(['a=rtpmap:111 opus/48000/2', 'a=fmtp:111 usedtx=1']);
  });

  it.each([
    ['audio, video and a data channel', 'avd'],
    ['video, audio and a data channel', 'vad'],
  ])('records the audio of a real werift publisher whose offer has %s', async (_name, order) => {
    const peer = `extras-${order}`;
    const sent = await publishWithExtras(`${t.url}/whip/limits/${peer}`, order, 2);
    expect(sent.videoRejected).toBe(true);
    expect(mLines(sent.answer).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(
      [...order].map((c) => (c === 'a' ? expect.stringMatching(/^m=audio [1-9]/) : c === 'v' ? 'm=video 0' : expect.stringMatching(/^m=application [1-9]/))),
    );
    const stats = await ended(peer);
    expect(stats.rtp.packetsReceived).toBe(sent.packetsSent);
    expect([stats.processing.framesDropped, stats.processing.framesLate, stats.recording!.droppedFrames, stats.recording!.gapFrames]).toEqual([0, 0, 0, 0]);
    const wav = await readWav(join(t.recordingsDir, stats.recording!.name));
    expect(Math.abs(wav.durationSec - 2)).toBeLessThanOrEqual(0.04);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
  });
});

describe('bounded error details', () => {
  it('answers a 43 KB junk offer with a problem document under 1 KB', async () => {
    const junk = 'x'.repeat(43_000);
    const offers = [
      chromeLikeOffer().replace('a=rtpmap:111 opus/48000/2', `a=rtpmap:111 ${junk}/48000/2`),
      `v=0${CRLF}${junk}${CRLF}`,
      chromeLikeOffer().replace('a=mid:0', `a=mid:${junk}`),
      chromeLikeOffer().replace('a=extmap-allow-mixed', `a=${junk}`).replace('a=fingerprint:', 'a=fingerprint-not:'),
    ];
    for (const sdp of offers) {
      expect(sdp.length).toBeGreaterThan(43_000);
      const res = await post('junk', sdp);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      const body = await res.text();
      expect(body.length).toBeLessThan(1024);
      const problem = JSON.parse(body) as Problem;
      expect(problem.code).toMatch(/^EARSHOT_/);
      expect(problem.detail).not.toContain('x'.repeat(201));
    }
  });

  it('answers an unknown 8 KB route with a problem document under 4 KB', async () => {
    const res = await fetch(`${t.url}/${'y'.repeat(8000)}`);
    expect(res.status).toBe(404);
    const body = await res.text();
    expect(body.length).toBeLessThan(4096);
    expect((JSON.parse(body) as Problem).code).toBe('EARSHOT_ROUTE_NOT_FOUND');
  });

  it('bounds problem documents and log lines whatever an error carries', async () => {
    const lines: string[] = [];
    const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } } });
    installProblemHandling(app);
    const huge = 'z'.repeat(40_000);
    app.get('/earshot', async () => {
      throw new EarshotError('EARSHOT_TEST', 400, 'Test', `quoted: ${huge}`, { echo: huge, list: Array.from({ length: 500 }, (_, i) => ({ path: `/${i}`, message: huge })) });
    });
    app.get('/echo', async () => {
      throw new EarshotError('EARSHOT_TEST', 400, 'Test', 'short', { echo: huge, list: Array.from({ length: 500 }, (_, i) => `/${i}`) });
    });
    app.get('/internal', async () => {
      throw new Error(`werift said: ${huge}`);
    });
    try {
      for (const [path, status] of [['/earshot', 400], ['/internal', 500]] as const) {
        const res = await app.inject({ method: 'GET', url: path });
        expect(res.statusCode).toBe(status);
        expect(res.body.length).toBeLessThanOrEqual(32 * 1024 + 100);
        const problem = res.json() as Problem & { echo?: string; list?: Array<{ message: string }> };
        expect(problem.detail.length).toBeLessThanOrEqual(2100);
        expect(problem.detail).toMatch(/… \(\d+ more characters\)$/);
        expect(problem.truncated).toBe(true);
        // 100 entries of 1 KB would still make a 100 KB document: the extensions go, the standard members stay.
        expect(problem.list).toBeUndefined();
        expect(problem.echo).toBeUndefined();
      }
      const echo = (await app.inject({ method: 'GET', url: '/echo' })).json() as Problem & { echo: string; list: string[] };
      expect(echo.detail).toBe('short');
      expect(echo.truncated).toBe(true);
      expect(echo.echo).toMatch(/^z{1024}… \(38976 more characters\)$/);
      expect(echo.list).toEqual(Array.from({ length: 100 }, (_, i) => `/${i}`));
      const logged = lines.filter((l) => l.includes('EARSHOT_TEST') || l.includes('request failed'));
      expect(logged).toHaveLength(3);
      for (const line of lines) expect(line.length).toBeLessThan(8192);
    } finally {
      await app.close();
    }
  });
});

describe('offers arriving during live streams', () => {
  it('keeps two live streams whole while bursts of 4 × 1000-section offers arrive', async () => {
    // The publishers run in their own process, so a blocked server event loop
    // would cost them packets (kernel buffers overflow) rather than pausing them too.
    const sender = earshotSend(fixturePath('tone-1k-48k.wav'), '--url', `${t.url}/whip/burst/live`, '--seconds', '3', '--count', '2');
    let exited = false;
    void sender.then(() => (exited = true));
    await untilPackets(['live-1', 'live-2'], 10);
    const offer = manyAudioSections(1000, true);
    expect(offer.length).toBeLessThan(64 * 1024);
    const statuses: number[] = [];
    const codes = new Set<string>();
    const burstMs: number[] = [];
    while (!exited) {
      const started = performance.now();
      const responses = await Promise.all(Array.from({ length: 4 }, (_, i) => post(`burst-${i}`, offer)));
      burstMs.push(performance.now() - started);
      for (const r of responses) {
        statuses.push(r.status);
        if (r.ok) await end(r);
        else codes.add(((await r.json()) as Problem).code);
      }
      await sleep(100);
    }
    const { code, stdout, stderr } = await sender;
    expect(code, stderr).toBe(0);
    // With --count, each line names its peer.
    const done = [...stdout.matchAll(/done (\S+): [\d.]+ s, (\d+) packets/g)];
    expect(done.map((m) => m[1].split('/').at(-1))).toEqual(['live-1', 'live-2']);
    const sentPackets = done.map((m) => Number(m[2]));
    burstMs.sort((a, b) => a - b);
    console.info(`${burstMs.length} bursts of 4 × 1000-section offers, answered in ${burstMs[0].toFixed(1)}–${burstMs[burstMs.length - 1].toFixed(1)} ms (median ${burstMs[burstMs.length >> 1].toFixed(1)})`);
    for (const [k, peer] of ['live-1', 'live-2'].entries()) {
      const s = await ended(peer);
      const sent = sentPackets[k];
      console.info(`${peer}: ${s.rtp.packetsReceived}/${sent} packets, ${s.rtp.packetsLate} late, ${s.recording!.gapFrames} gap frames`);
      expect(s.rtp.packetsReceived / sent).toBeGreaterThanOrEqual(0.98);
      expect(s.rtp.packetsLate).toBeLessThanOrEqual(0.02 * sent);
      expect(s.recording!.gapFrames).toBeLessThanOrEqual(0.02 * sent * 960);
      expect(Math.abs(s.recording!.seconds - 3)).toBeLessThanOrEqual(0.1);
    }
    expect(burstMs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(statuses)).toEqual(new Set([400]));
    expect(codes).toEqual(new Set(['EARSHOT_SDP_TOO_COMPLEX']));
  });
});

/** The real `earshot send` CLI, as a separate process. */
function earshotSend(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [EARSHOT_BIN, 'send', ...args], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

async function untilPackets(peers: string[], packets: number): Promise<void> {
  const has = (peer: string) => {
    try {
      return t.server.core.peerStats(peer).rtp.packetsReceived >= packets;
    } catch {
      return false;
    }
  };
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(50)) if (peers.every(has)) return;
  throw new Error(`${peers.join(', ')} did not send ${packets} packets within 20 s`);
}

/** The peer's statistics once its session has ended and its recording is final. */
async function ended(peer: string): Promise<PeerStatsSnapshot> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(50)) {
    const s = t.server.core.peerStats(peer);
    if (s.state === 'ended' && s.recording?.state === 'stopped') return s;
  }
  throw new Error(`${peer} did not end within 10 s`);
}

/**
 * A werift publisher whose offer also has a video transceiver and a data
 * channel (in the order `order` gives: a, v, d), bundled like a browser's.
 * Sends `seconds` of a 1 kHz tone as Opus, then ends the session.
 */
async function publishWithExtras(url: string, order: string, seconds: number) {
  const source = encodeSource(await readWavSource(fixturePath('tone-1k-48k.wav'), 1));
  const pc = new RTCPeerConnection({
    ...iceConfig({ hostAddresses: ['127.0.0.1'] }),
    bundlePolicy: 'max-bundle',
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: 'minptime=10;useinbandfec=1' })],
      video: [new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, payloadType: 96 })],
    },
  });
  let location: string | null = null;
  try {
    let audio: RTCRtpTransceiver | undefined;
    let video: RTCRtpTransceiver | undefined;
    for (const kind of order) {
      if (kind === 'a') audio = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
      else if (kind === 'v') video = pc.addTransceiver('video', { direction: 'sendonly' });
      else pc.createDataChannel('chat');
    }
    const offer = await pc.createOffer();
    disableImplicitStun(pc, []);
    await pc.setLocalDescription(offer);
    await iceGatheringComplete(pc);
    expect(mLines(pc.localDescription!.sdp)).toHaveLength(3);
    const res = await fetch(url, { method: 'POST', body: pc.localDescription!.sdp, headers: { 'content-type': 'application/sdp' } });
    const answer = await res.text();
    expect(res.status, answer).toBe(201);
    location = res.headers.get('location');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    // werift as the offerer reports the peer connection 'connected' only once
    // SCTP is up as well; the audio needs only its own DTLS transport.
    for (const deadline = Date.now() + 10_000; audio!.dtlsTransport.state !== 'connected'; await sleep(20)) {
      if (Date.now() > deadline) throw new Error(`audio DTLS did not connect (state ${audio!.dtlsTransport.state})`);
    }
    const frames = Math.round((seconds * 48000) / 960);
    const start = performance.now();
    // Paced like sendAudio's fast mode: only the recorded audio matters here, not its timing.
    for (let k = 0; k < frames; k++) {
      const wait = start + (k * 20) / FAST - performance.now();
      if (wait > 1) await sleep(wait);
      else await setImmediate();
      const payload = source.opus[k % source.opus.length];
      audio!.sender.sendRtp(new RtpPacket(new RtpHeader({ payloadType: 111, sequenceNumber: (1000 + k) & 0xffff, timestamp: (k * 960) >>> 0, marker: k === 0 }), Buffer.from(payload)));
    }
    await sleep(200);
    return { answer, packetsSent: frames, videoRejected: video!.currentDirection === 'stopped' || Boolean((video as { stopped?: boolean }).stopped) };
  } finally {
    if (location) await fetch(`${t.url}${location}`, { method: 'DELETE' });
    await pc.close().catch(() => undefined);
  }
}
