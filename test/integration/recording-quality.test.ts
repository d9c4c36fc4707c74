/**
 * End to end over real loopback WebRTC: `sendAudio` (werift, Opus) publishes a
 * fixture over WHIP to the real server; the recording on disk and the peer's
 * statistics must show what a user expects.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { concat, dominantFrequency, readWav, rmsDb } from '../helpers/audio.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

// One server for the file: each test names its pipeline (`?pipeline=`); the default one is the bundled default.
let t: TestServer;
beforeAll(async () => {
  t = await startServer({
    extraPipelines: [
      { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] },
      { name: 'asr', stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'record' }, { type: 'stats' }] },
    ],
  });
});
afterAll(() => t.close());

async function recordingOf(server: TestServer, peer: string, pipeline: string) {
  const stats = (await (await fetch(`${server.url}/stats/${peer}`)).json()) as { pipeline: string; recording: { name: string; state: string }; rtp: { packetsReceived: number }; audio: { speechRatio: number | null; meanVad: number | null } };
  expect(stats.pipeline).toBe(pipeline);
  expect(stats.recording?.state).toBe('stopped');
  return { stats, wav: await readWav(join(server.recordingsDir, stats.recording.name)) };
}

describe('recordings over loopback WebRTC', () => {
  it('records a 1 kHz tone as 1 kHz, with the source duration and level', async () => {
    const source = await readFixture('tone-1k-48k.wav');
    const sent = await sendAudio({ url: `${t.url}/whip/demo/tone?pipeline=raw`, source: fixturePath('tone-1k-48k.wav'), speed: FAST });
    await expectComplete(t.url, 'tone', sent);
    const { stats, wav } = await recordingOf(t, 'tone', 'raw');
    expect(wav.sampleRate).toBe(48000);
    expect(Math.abs(wav.durationSec - source.durationSec) / source.durationSec).toBeLessThan(0.02);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
    // Level: compare the steady middle (Opus needs a few ms to converge at the start).
    const mid = (x: Float32Array) => x.subarray(Math.floor(x.length * 0.2), Math.floor(x.length * 0.8));
    expect(Math.abs(rmsDb(mid(wav.channels[0])) - rmsDb(mid(source.channels[0])))).toBeLessThan(1);
    expect(stats.rtp.packetsReceived).toBe(sent.packetsSent);
  });

  it('cuts pink noise by at least 20 dB with the default pipeline and reports almost no speech', async () => {
    const source = await readFixture('noise-pink-48k.wav');
    await expectComplete(t.url, 'pink', await sendAudio({ url: `${t.url}/whip/demo/pink`, source: fixturePath('noise-pink-48k.wav'), speed: FAST }));
    const { stats, wav } = await recordingOf(t, 'pink', 'default');
    const cut = rmsDb(source.channels[0]) - rmsDb(wav.channels[0].subarray(4800)); // skip RNNoise's first 100 ms
    expect(cut).toBeGreaterThanOrEqual(20);
    expect(stats.audio.speechRatio).not.toBeNull();
    expect(stats.audio.speechRatio!).toBeLessThan(0.1);
  });

  it('keeps speech and lowers the noise floor in speech pauses by at least 15 dB', async () => {
    const clean = await readFixture('speech-48k.wav');
    const noisy = await readFixture('speech-noisy-48k.wav');
    await expectComplete(t.url, 'talker', await sendAudio({ url: `${t.url}/whip/demo/talker`, source: fixturePath('speech-noisy-48k.wav'), speed: FAST }));
    const { stats, wav } = await recordingOf(t, 'talker', 'default');
    expect(stats.audio.speechRatio!).toBeGreaterThan(0.3);
    // The speech itself survives: overall level within 3 dB of the clean recording (speech dominates the energy).
    expect(Math.abs(rmsDb(wav.channels[0]) - rmsDb(clean.channels[0]))).toBeLessThan(3);
    const pauses = silentStretches(clean.channels[0], 48000, 0.3);
    expect(pauses.length).toBeGreaterThan(0);
    const before = concat(pauses.map(([a, b]) => noisy.channels[0].subarray(a, b)));
    const after = concat(pauses.map(([a, b]) => wav.channels[0].subarray(a, b)));
    expect(rmsDb(before) - rmsDb(after)).toBeGreaterThanOrEqual(15);
  });

  it('records at 16 kHz with the right duration when the pipeline resamples', async () => {
    const source = await readFixture('tone-1k-48k.wav');
    await expectComplete(t.url, 'asr', await sendAudio({ url: `${t.url}/whip/demo/asr?pipeline=asr`, source: fixturePath('tone-1k-48k.wav'), speed: FAST }));
    const { wav } = await recordingOf(t, 'asr', 'asr');
    expect(wav.sampleRate).toBe(16000);
    expect(Math.abs(wav.durationSec - source.durationSec)).toBeLessThan(0.02 * source.durationSec);
  });
});

/** Stretches (sample ranges) of at least `minSec` where the clean speech is silent, trimmed by 50 ms each side. */
function silentStretches(x: Float32Array, rate: number, minSec: number): Array<[number, number]> {
  const win = rate / 100; // 10 ms
  const peak = Math.max(...Array.from({ length: Math.floor(x.length / win) }, (_, i) => rmsDb(x.subarray(i * win, (i + 1) * win))));
  const out: Array<[number, number]> = [];
  let start = -1;
  for (let i = 0; i * win < x.length; i++) {
    const quiet = rmsDb(x.subarray(i * win, (i + 1) * win)) < peak - 50;
    if (quiet && start < 0) start = i;
    if ((!quiet || (i + 1) * win >= x.length) && start >= 0) {
      if ((i - start) * win >= minSec * rate) out.push([start * win + rate / 20, i * win - rate / 20]);
      start = -1;
    }
  }
  return out;
}

describe('recordings under packet loss', () => {
  it('conceals lost packets: duration equals media time, loss is counted, the tone stays 1 kHz', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/lossy?pipeline=raw`, source: fixturePath('tone-1k-48k.wav'), simulateLoss: 0.05, speed: FAST });
    await expectComplete(t.url, 'lossy', sent);
    expect(sent.packetsDropped).toBeGreaterThan(5);
    const stats = (await (await fetch(`${t.url}/stats/lossy`)).json()) as {
      rtp: { packetsLost: number; packetsReceived: number; packetsExpected: number; lossRatio: number };
      processing: { framesConcealed: number };
      recording: { name: string };
    };
    expect(stats.rtp.packetsReceived).toBe(sent.packetsSent);
    expect(stats.rtp.packetsLost).toBe(sent.packetsDropped);
    expect(stats.rtp.lossRatio).toBeCloseTo(sent.packetsDropped / (sent.packetsSent + sent.packetsDropped), 3);
    expect(stats.processing.framesConcealed).toBe(sent.packetsDropped);
    const wav = await readWav(join(t.recordingsDir, stats.recording.name));
    expect(Math.abs(wav.durationSec - sent.mediaSeconds)).toBeLessThanOrEqual(0.02);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
  });
});
