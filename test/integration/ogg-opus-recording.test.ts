/**
 * Pass-through Ogg Opus recordings over real loopback WebRTC: `sendAudio`
 * (werift, Opus) publishes a fixture; the record sink `format: "ogg-opus"`
 * writes the received packets, and the real opus-tools judge the file
 * (`opusinfo` accepts it, `opusdec` decodes it to the media duration and the
 * tone's frequency), under loss too, next to a WAV of the same session.
 * On a branch with stages the worker encodes what the stages output: the
 * file holds the processed audio (resampled, 6 dB quieter) at media time.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { validatePipeline } from '../../src/pipeline/pipeline.js';
import type { PeerStatsSnapshot } from '../../src/index.js';
import { dominantFrequency, encodeOpusFrames, readWav } from '../helpers/audio.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { opusdec, opusinfo } from '../helpers/opus-tools.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { publishRawOpus } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** One 20 ms frame: the tolerance on durations. */
const FRAME_SECONDS = 0.02;

let t: TestServer;
beforeAll(async () => {
  t = await startServer({
    extraPipelines: [
      {
        name: 'opus-and-wav',
        branches: {
          opus: { stages: [], sinks: [{ type: 'record', format: 'ogg-opus' }, { type: 'stats' }] },
          wav: { stages: [], sinks: [{ type: 'record' }] },
        },
      },
      { name: 'opus-manual', stages: [], sinks: [{ type: 'record', format: 'ogg-opus', autoStart: false }, { type: 'stats' }] },
      {
        name: 'opus-processed',
        branches: {
          coded: { stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'gain', db: -6 }], sinks: [{ type: 'record', format: 'ogg-opus' }] },
          wav: { stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] },
        },
      },
    ],
  });
});
afterAll(() => t.close());

async function statsOf(peer: string): Promise<PeerStatsSnapshot> {
  return (await (await fetch(`${t.url}/stats/${peer}`)).json()) as PeerStatsSnapshot;
}

/**
 * Publishes Opus packets over WHIP the way a browser with DTX does: packets
 * whose index is in `silent` are not sent at all, and the sequence numbers
 * run on without a gap while the RTP timestamps jump over the pause
 * (sendAudio cannot do this: its packets never pause). Paced at 4× real time.
 */
async function sendWithDtx(url: string, packets: readonly Uint8Array[], silent: (index: number) => boolean): Promise<void> {
  await publishRawOpus(
    url,
    async (send) => {
      let seq = 1000;
      for (let k = 0; k < packets.length; k++) {
        await sleep(5);
        if (!silent(k)) send(seq++, 5000 + k * 960, packets[k], k === 0);
      }
    },
    { fmtp: 'minptime=10;useinbandfec=1;usedtx=1' },
  );
}

/**
 * Sends the 3 s tone as `peer` with a DTX pause (packets 50–89 not sent) on
 * `pipeline`, waits for its recordings to be final, and checks the Ogg Opus
 * one: opusinfo accepts it, and it lasts the media time, by its own account
 * and decoded. Returns the stats, that recording and its decoded samples.
 */
async function recordWithDtxPause(peer: string, pipeline: string) {
  const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
  const packets = encodeOpusFrames(tone, 1).map((f) => f.payload!);
  // 150 packets (3 s); 40 of them (0.8 s) not sent, as a DTX sender pauses.
  await sendWithDtx(`${t.url}/whip/demo/${peer}?pipeline=${pipeline}`, packets, (k) => k >= 50 && k < 90);
  let stats = await statsOf(peer);
  for (let i = 0; i < 50 && stats.recordings.some((r) => r.state !== 'stopped'); i++) {
    await sleep(100);
    stats = await statsOf(peer);
  }
  const opus = stats.recordings.find((r) => r.name.endsWith('.opus'))!;
  const media = packets.length * 0.02;
  expect(Math.abs(opus.seconds - media)).toBeLessThanOrEqual(FRAME_SECONDS);
  const path = join(t.recordingsDir, opus.name);
  await opusinfo(path);
  const decoded = await opusdec(path);
  expect(Math.abs(decoded.durationSec - media)).toBeLessThanOrEqual(FRAME_SECONDS);
  return { stats, opus, pcm: decoded.channels[0] };
}

/** RMS of 20 ms frames `from` … `to` − 1 of 48 kHz `pcm`. */
function rmsOfFrames(pcm: Float32Array, from: number, to: number): number {
  return Math.sqrt(pcm.subarray(from * 960, to * 960).reduce((n, x) => n + x * x, 0) / ((to - from) * 960));
}

describe('ogg-opus recordings over loopback WebRTC', () => {
  it('records the received packets: opusinfo accepts the file, it decodes to a 1 kHz tone of the media duration, ~20× smaller than the WAV', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/tone?pipeline=opus-and-wav`, source: fixturePath('tone-1k-48k.wav'), speed: FAST });
    const stats = await expectComplete(t.url, 'tone', sent);
    const opus = stats.recordings.find((r) => r.name.endsWith('.opus'))!;
    const wav = stats.recordings.find((r) => r.name.endsWith('.wav'))!;
    expect(opus).toMatchObject({ format: 'ogg-opus', state: 'stopped', sampleRate: 48000, channels: 1 });
    expect(opus.name).toMatch(/^demo-tone-\d{8}-\d{6}-opus\.opus$/);

    const path = join(t.recordingsDir, opus.name);
    expect(await opusinfo(path)).toMatch(/Channels: 1/);
    const decoded = await opusdec(path);
    expect(Math.abs(decoded.durationSec - sent.mediaSeconds)).toBeLessThanOrEqual(FRAME_SECONDS);
    expect(Math.abs(opus.seconds - sent.mediaSeconds)).toBeLessThanOrEqual(FRAME_SECONDS);
    expect(Math.abs(dominantFrequency(decoded.channels[0], 48000) - 1000)).toBeLessThanOrEqual(2);

    // The listing and the download: size and duration from the file, served as audio/ogg.
    const list = (await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string; format: string; seconds: number; bytes: number }> };
    const listed = list.recordings.find((r) => r.name === opus.name);
    expect(listed).toMatchObject({ format: 'ogg-opus', bytes: opus.bytes });
    expect(listed!.seconds).toBeCloseTo(opus.seconds, 6);
    const dl = await fetch(`${t.url}/recordings/${opus.name}`);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('audio/ogg');
    expect((await dl.arrayBuffer()).byteLength).toBe(opus.bytes);

    const ratio = wav.bytes / opus.bytes;
    console.log(`ogg-opus ${opus.bytes} B vs WAV ${wav.bytes} B for ${sent.mediaSeconds} s: ${ratio.toFixed(1)}× smaller`);
    expect(ratio).toBeGreaterThan(15);
  });

  it('keeps the media duration under loss: lost packets are concealed by the player, not cut out', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/demo/lossy?pipeline=opus-and-wav`, source: fixturePath('tone-1k-48k.wav'), speed: FAST, simulateLoss: 0.1 });
    expect(sent.packetsDropped).toBeGreaterThan(10);
    const stats = await statsOf('lossy');
    expect(stats.rtp.packetsLost).toBe(sent.packetsDropped);
    const opus = stats.recordings.find((r) => r.name.endsWith('.opus'))!;
    const path = join(t.recordingsDir, opus.name);
    await opusinfo(path);
    const decoded = await opusdec(path);
    expect(Math.abs(decoded.durationSec - sent.mediaSeconds)).toBeLessThanOrEqual(FRAME_SECONDS);
    expect(Math.abs(opus.seconds - sent.mediaSeconds)).toBeLessThanOrEqual(FRAME_SECONDS);
    expect(Math.abs(dominantFrequency(decoded.channels[0], 48000) - 1000)).toBeLessThanOrEqual(2);
  });

  it('keeps the media duration across DTX pauses: the pause plays as silence at its media time', async () => {
    const { stats, opus, pcm } = await recordWithDtxPause('dtx', 'opus-and-wav');
    expect(stats.rtp.packetsLost).toBe(0);
    expect(opus.gapFrames).toBe(40 * 960);
    expect(rmsOfFrames(pcm, 55, 85)).toBeLessThan(1e-4); // the pause, at its media time
    expect(rmsOfFrames(pcm, 95, 145)).toBeGreaterThan(0.1); // the tone after it
    expect(Math.abs(dominantFrequency(pcm.subarray(95 * 960), 48000) - 1000)).toBeLessThanOrEqual(2);
    // The WAV of the same session has the same length.
    const wav = stats.recordings.find((r) => r.name.endsWith('.wav'))!;
    expect(Math.abs(wav.seconds - opus.seconds)).toBeLessThanOrEqual(FRAME_SECONDS);
  });

  it('works with the recording control API: a chosen name gets ".opus", stop finalizes it', async () => {
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/studio/host?pipeline=opus-manual`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal });
    try {
      let ready = false;
      for (let i = 0; i < 50 && !ready; i++) {
        ready = (await fetch(`${t.url}/stats/host`)).ok;
        if (!ready) await new Promise((r) => setTimeout(r, 100));
      }
      const start = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'interview-1' }) });
      expect(start.status).toBe(201);
      expect(((await start.json()) as { recordings: unknown[] }).recordings).toMatchObject([{ name: 'interview-1.opus', format: 'ogg-opus', state: 'recording' }]);
      await new Promise((r) => setTimeout(r, 1500));
      const stop = await fetch(`${t.url}/peers/host/recording`, { method: 'DELETE' });
      expect(stop.status).toBe(200);
      const [rec] = ((await stop.json()) as { recordings: Array<{ name: string; seconds: number; bytes: number }> }).recordings;
      expect(rec).toMatchObject({ name: 'interview-1.opus', sampleRate: 48000, channels: 1 });
      expect(rec.seconds).toBeGreaterThan(1.0);
      expect(rec.seconds).toBeLessThan(2.5);
      const path = join(t.recordingsDir, rec.name);
      await opusinfo(path);
      const decoded = await opusdec(path);
      expect(decoded.durationSec).toBeCloseTo(rec.seconds, 3);
      const listed = (await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string; seconds: number; bytes: number }> };
      expect(listed.recordings.find((r) => r.name === rec.name)).toMatchObject({ seconds: rec.seconds, bytes: rec.bytes });
      expect(Math.abs(dominantFrequency(decoded.channels[0], 48000) - 1000)).toBeLessThanOrEqual(2);
      // The same name again is a conflict, not an overwrite.
      const again = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'interview-1' }) });
      expect(again.status).toBe(409);
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('records processed audio encoded in the worker: the stages\' output at media time, under DTX pauses too', async () => {
    const { stats, opus, pcm } = await recordWithDtxPause('coded', 'opus-processed');
    // The branch is 16 kHz: OpusHead's input sample rate says so (RFC 7845 §5.1), and so does the listing.
    expect(opus).toMatchObject({ format: 'ogg-opus', state: 'stopped', sampleRate: 16000, channels: 1 });
    const bytes = await readFile(join(t.recordingsDir, opus.name));
    expect(bytes.toString('ascii', 28, 36)).toBe('OpusHead');
    expect(bytes.readUInt32LE(28 + 12)).toBe(16000);
    const listed = (await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string; sampleRate: number }> };
    expect(listed.recordings.find((r) => r.name === opus.name)?.sampleRate).toBe(16000);
    const wav = stats.recordings.find((r) => r.name.endsWith('.wav'))!;
    // The pause counted at the file's own rate: the same seconds as the 48 kHz WAV's (they read 3× long).
    expect(wav.gapFrames).toBeGreaterThan(0);
    expect(opus.gapFrames).toBe(Math.round((wav.gapFrames * 16000) / 48000));
    expect(opus.gapSeconds).toBeCloseTo(wav.gapSeconds, 3);
    const original = (await readWav(join(t.recordingsDir, wav.name))).channels[0];
    expect(rmsOfFrames(pcm, 55, 85)).toBeLessThan(1e-3); // the pause, at its media time
    // The stages' work is in the file: the tone 6 dB below the unprocessed recording, still 1 kHz.
    const db = 20 * Math.log10(rmsOfFrames(pcm, 100, 145) / rmsOfFrames(original, 100, 145));
    expect(db).toBeGreaterThan(-7);
    expect(db).toBeLessThan(-5);
    expect(Math.abs(dominantFrequency(pcm.subarray(95 * 960), 48000) - 1000)).toBeLessThanOrEqual(2);
    expect(Math.abs(dominantFrequency(pcm.subarray(5 * 960, 45 * 960), 48000) - 1000)).toBeLessThanOrEqual(2);
  });

  it('refuses ogg-opus on a branch whose output Opus cannot code, and with a sampleFormat', () => {
    const staged = validatePipeline({ name: 'x', stages: [{ type: 'resample', sampleRate: 44100 }], sinks: [{ type: 'record', format: 'ogg-opus' }] });
    expect(staged.problems).toHaveLength(1);
    expect(staged.problems[0]).toMatchObject({ path: '/sinks/0/format' });
    expect(staged.problems[0].message).toMatch(/encodes this branch's output to Opus.*not 44100 Hz/);
    expect(validatePipeline({ name: 'x', stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'record', format: 'ogg-opus' }] }).problems).toEqual([]);
    const f32 = validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'record', format: 'ogg-opus', sampleFormat: 'f32' }] });
    expect(f32.problems.map((p) => p.path)).toEqual(['/sinks/0/sampleFormat']);
    expect(validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'record', format: 'ogg-opus' }] }).problems).toEqual([]);
  });
});
