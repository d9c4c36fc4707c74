/**
 * Session lifecycle, concurrency and worker affinity over real loopback WebRTC.
 */
import type { PipelineDefinition } from '../../src/pipeline/pipeline-builder.js';
import { copyFile, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sendAudio, sendMany } from '../../src/client/audio-sender.js';
import type { AudioFrame } from '../../src/index.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectComplete, FAST, mayBeEnded } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

const RAW_PIPELINE: PipelineDefinition = { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] };

/** The current test's server: the shared one, or its own when it needs other options or closes it. */
let t: TestServer | undefined;
let shared: Promise<TestServer> | undefined;
/** One server for the tests that need nothing special: its workers take seconds to start on a busy machine. */
const sharedServer = () => (shared ??= startServer({ pipeline: RAW_PIPELINE }));
afterEach(async () => {
  if (t && t !== (await shared)) await t.close();
  t = undefined;
});
afterAll(async () => (await shared)?.close());

type PeerStats = {
  state: string;
  endReason: string;
  rtp: { packetsReceived: number; packetsLost: number };
  processing: { worker: number; workerRestarts: number; framesDecoded: number };
  recording: { name: string; state: string; seconds: number };
};
const statsOf = async (peer: string) => (await (await fetch(`${t!.url}/stats/${peer}`)).json()) as PeerStats;

/** Waits until `peer` has sent `packets` RTP packets: ICE and DTLS setup time varies with the host, so no fixed sleeps. */
async function untilPackets(peer: string, packets: number): Promise<PeerStats> {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
    const res = await fetch(`${t!.url}/stats/${peer}`);
    const s = res.ok ? ((await res.json()) as PeerStats) : undefined;
    if (s && s.rtp.packetsReceived >= packets) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${peer} did not send ${packets} packets within 15 s`);
}

describe('sessions', () => {
  it('serves 20 concurrent senders: 20 correct recordings and per-peer stats matching packets sent within 1 %', async () => {
    t = await sharedServer();
    const results = await sendMany(20, { url: `${t.url}/whip/load/peer`, source: fixturePath('tone-1k-48k.wav'), seconds: 2 });
    expect(results.filter((r) => 'error' in r && r.error)).toEqual([]);
    for (let k = 1; k <= 20; k++) {
      const s = await statsOf(`peer-${k}`);
      const sent = results[k - 1] as { packetsSent: number };
      expect(Math.abs(s.rtp.packetsReceived - sent.packetsSent) / sent.packetsSent).toBeLessThanOrEqual(0.01);
      expect(s.recording.state).toBe('stopped');
      const wav = await readWav(join(t.recordingsDir, s.recording.name));
      expect(Math.abs(wav.durationSec - 2)).toBeLessThan(0.04);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
    }
    const files = (await readdir(t.recordingsDir)).filter((f) => /^load-peer-\d+-.*\.wav$/.test(f));
    expect(files).toHaveLength(20);
  });

  it('processes every frame of a stream in one worker, in media order', async () => {
    t = await sharedServer();
    const seen = new Map<string, { positions: number[]; frames: number }>();
    const sub = t.server.streams$.subscribe((s) => {
      const entry = { positions: [] as number[], frames: 0 };
      seen.set(s.peerId, entry);
      s.audio$.subscribe((f: AudioFrame) => {
        entry.positions.push(f.position, f.position + f.data.length / f.channels);
        entry.frames++;
      });
    });
    const peers = await sendMany(4, { url: `${t.url}/whip/aff/p`, source: fixturePath('tone-1k-48k.wav'), seconds: 1.5, speed: FAST });
    sub.unsubscribe();
    expect(peers).toHaveLength(4);
    for (const [k, sent] of peers.entries()) {
      if ('error' in sent) throw sent.error;
      await expectComplete(t.url, `p-${k + 1}`, sent);
    }
    const workers = new Set<number>();
    for (let k = 1; k <= 4; k++) {
      const s = await statsOf(`p-${k}`);
      expect(s.processing.workerRestarts).toBe(0);
      workers.add(s.processing.worker);
      const e = seen.get(`p-${k}`)!;
      expect(e.frames).toBeGreaterThan(50);
      // Each frame starts where the previous one ended: in order, nothing repeated or skipped.
      for (let i = 2; i < e.positions.length; i += 2) expect(e.positions[i]).toBe(e.positions[i - 1]);
    }
    // Four light streams (no stages: ~0.003 of a thread each) are packed onto one worker, not spread:
    // every worker with frames costs a wake per batch tick.
    expect(workers.size).toBe(1);
  });

  it('finalizes the recording of a peer that disappears without DELETE within the media timeout', async () => {
    t = await startServer({ pipeline: RAW_PIPELINE, mediaTimeoutMs: 1500 });
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${t.url}/whip/demo/ghost`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal, skipDelete: true }));
    await untilPackets('ghost', 50);
    controller.abort();
    await sending.catch(() => undefined);
    const stoppedAt = Date.now();
    let s = await statsOf('ghost');
    while (s.state !== 'ended' && Date.now() - stoppedAt < 6000) {
      await new Promise((r) => setTimeout(r, 100));
      s = await statsOf('ghost');
    }
    expect(s.state).toBe('ended');
    expect(['media-timeout', 'closed-by-peer', 'disconnected']).toContain(s.endReason);
    expect(Date.now() - stoppedAt).toBeLessThan(1500 + 1500);
    expect(s.recording.state).toBe('stopped');
    const wav = await readWav(join(t.recordingsDir, s.recording.name));
    expect(wav.durationSec).toBeGreaterThan(0.5);
    expect(Math.abs(wav.durationSec - s.rtp.packetsReceived * 0.02)).toBeLessThanOrEqual(0.02);
  });

  it('ends the session of a client that closes its connection without DELETE (DTLS close_notify) at once, as closed-by-peer, and frees its name', async () => {
    t = await startServer({ pipeline: RAW_PIPELINE, mediaTimeoutMs: 30_000 });
    // Its own signaling, as an app that POSTs the offer itself: no DELETE at the end, only the connection's close.
    const signaling = async (offer: string) => {
      const res = await fetch(`${t!.url}/whip/demo/leaver`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: offer });
      expect(res.status).toBe(201);
      return res.text();
    };
    const sent = await sendAudio({ signaling, hostAddresses: ['127.0.0.1'], source: fixturePath('tone-1k-48k.wav'), seconds: 1 });
    let s = await statsOf('leaver');
    // Well before the 30 s media timeout (which ended such sessions before).
    for (const deadline = Date.now() + 5000; s.state !== 'ended' && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      s = await statsOf('leaver');
    }
    expect([s.state, s.endReason]).toEqual(['ended', 'closed-by-peer']);
    expect(s.recording.state).toBe('stopped');
    const wav = await readWav(join(t.recordingsDir, s.recording.name));
    expect(Math.abs(wav.durationSec - sent.packetsSent * 0.02)).toBeLessThanOrEqual(0.02);
    // Its name is free: publishing as the same peer again is accepted (it got 409 EARSHOT_PEER_ACTIVE while the session ran on).
    const again = await sendAudio({ url: `${t.url}/whip/demo/leaver`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.5 });
    expect(again.packetsSent).toBeGreaterThan(0);
  });

  it('leaves a valid WAV while recording: a copy taken mid-stream reads back', async () => {
    t = await sharedServer();
    const sending = sendAudio({ url: `${t.url}/whip/demo/live`, source: fixturePath('tone-1k-48k.wav') });
    try {
      // Wait until 2 s of audio have been recorded, then copy the file as it is on disk.
      let s = await statsOf('live').catch(() => undefined);
      for (let i = 0; i < 100 && !((s?.recording?.seconds ?? 0) >= 2); i++) {
        await new Promise((r) => setTimeout(r, 50));
        s = await statsOf('live').catch(() => undefined);
      }
      expect(s!.recording.state).toBe('recording');
      const copy = join(t.recordingsDir, 'copy-mid-stream.bin');
      await copyFile(join(t.recordingsDir, s!.recording.name), copy);
      const wav = new wavefile.WaveFile(await readFile(copy));
      const seconds = (wav.getSamples(true, Float64Array) as unknown as Float64Array).length / 48000;
      // The header lags the audio by at most its 1 s rewrite period plus one 32 KiB write chunk (0.34 s).
      expect(seconds).toBeGreaterThan(2 - 1 - 0.34 - 0.1);
      expect(seconds).toBeLessThanOrEqual(3);
    } finally {
      await sending;
    }
  });

  it('replaces a live session when the same peer publishes again, finalizing the first recording', async () => {
    t = await sharedServer();
    const controller = new AbortController();
    const first = mayBeEnded(sendAudio({ url: `${t.url}/whip/demo/twice`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal, skipDelete: true }));
    // Replace it once half a second of its audio has arrived.
    const firstStats = await untilPackets('twice', 25);
    await expectComplete(t.url, 'twice', await sendAudio({ url: `${t.url}/whip/demo/twice`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, speed: FAST }));
    controller.abort();
    await first.catch(() => undefined);
    const second = await statsOf('twice');
    expect(second.recording.name).not.toBe(firstStats.recording.name);
    const files = (await readdir(t.recordingsDir)).filter((f) => f.startsWith('demo-twice-') && f.endsWith('.wav')).sort();
    expect(files).toHaveLength(2);
    // Both files are complete WAVs; the second holds exactly the 1 s the second client sent.
    expect(files).toEqual([firstStats.recording.name, second.recording.name].sort());
    const [a, b] = await Promise.all([firstStats.recording.name, second.recording.name].map((f) => readWav(join(t!.recordingsDir, f))));
    expect(a.durationSec).toBeGreaterThan(0.3);
    expect(Math.abs(b.durationSec - 1)).toBeLessThanOrEqual(0.02);
  });

  it('finalizes every recording on shutdown, after draining in-flight audio', async () => {
    t = await startServer({ pipeline: RAW_PIPELINE });
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${t.url}/whip/demo/shut`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal, skipDelete: true }));
    await untilPackets('shut', 50);
    const { recordingsDir } = t;
    const name = (await statsOf('shut')).recording.name;
    await t.server.close();
    controller.abort();
    await sending.catch(() => undefined);
    // Everything received before the shutdown is in the file: duration = packets × 20 ms, within one frame.
    const final = t.server.core.peerStats('shut');
    expect(final.state).toBe('ended');
    expect(final.endReason).toBe('shutdown');
    const wav = await readWav(join(recordingsDir, name));
    expect(wav.durationSec).toBeGreaterThan(0.8);
    expect(Math.abs(wav.durationSec - final.rtp.packetsReceived * 0.02)).toBeLessThanOrEqual(0.02);
  });
});
