/**
 * Channels and rates over real loopback WebRTC: stereo Opus kept stereo,
 * downmixed stereo, and 16 kHz / 44.1 kHz sources sent with `earshot send`'s
 * sender arriving with the right duration and level.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { readWav, rmsDb, toneLevelDb } from '../helpers/audio.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

// One server for the file; each test picks its pipeline with `?pipeline=`.
let t: TestServer;
beforeAll(async () => {
  t = await startServer({
    extraPipelines: [
      { name: 'stereo', channels: 2, stages: [], sinks: [{ type: 'record' }] },
      { name: 'mixdown', channels: 2, stages: [{ type: 'downmix' }], sinks: [{ type: 'record' }] },
      { name: 'raw', stages: [], sinks: [{ type: 'record' }] },
    ],
  });
});
afterAll(() => t.close());

const recordingOf = async (peer: string) => {
  const s = (await (await fetch(`${t.url}/stats/${peer}`)).json()) as { recording: { name: string } };
  return readWav(join(t.recordingsDir, s.recording.name));
};

describe('stereo and sample rates over WebRTC', () => {
  it('keeps the channels of stereo Opus apart: 440 Hz left, 880 Hz right', async () => {
    const source = await readFixture('tone-stereo-48k.wav');
    const sent = await sendAudio({ url: `${t.url}/whip/st/duo?pipeline=stereo`, source: fixturePath('tone-stereo-48k.wav'), channels: 2, seconds: 2, speed: FAST });
    expect(sent.packetsSent).toBe(100);
    await expectComplete(t.url, 'duo', sent);
    const wav = await recordingOf('duo');
    expect(wav.channels).toHaveLength(2);
    expect(Math.abs(wav.durationSec - 2)).toBeLessThan(0.021);
    const [left, right] = wav.channels.map((c) => c.subarray(4800, 4800 + 48000)); // skip the codec start-up
    const [srcLeft, srcRight] = source.channels.map((c) => c.subarray(4800, 4800 + 48000));
    // Each channel carries its own tone at the source level (±1 dB) and the other one ≥ 30 dB down.
    expect(Math.abs(toneLevelDb(left, 48000, 440) - toneLevelDb(srcLeft, 48000, 440))).toBeLessThan(1);
    expect(Math.abs(toneLevelDb(right, 48000, 880) - toneLevelDb(srcRight, 48000, 880))).toBeLessThan(1);
    expect(toneLevelDb(left, 48000, 440) - toneLevelDb(left, 48000, 880)).toBeGreaterThan(30);
    expect(toneLevelDb(right, 48000, 880) - toneLevelDb(right, 48000, 440)).toBeGreaterThan(30);
  });

  it('downmixes stereo to mono keeping both tones at half their level', async () => {
    const source = await readFixture('tone-stereo-48k.wav');
    await expectComplete(t.url, 'mono', await sendAudio({ url: `${t.url}/whip/st/mono?pipeline=mixdown`, source: fixturePath('tone-stereo-48k.wav'), channels: 2, seconds: 2, speed: FAST }));
    const wav = await recordingOf('mono');
    expect(wav.channels).toHaveLength(1);
    expect(Math.abs(wav.durationSec - 2)).toBeLessThan(0.021);
    const mono = wav.channels[0].subarray(4800, 4800 + 48000);
    const src = source.channels.map((c) => c.subarray(4800, 4800 + 48000));
    // (L + R) / 2: each tone 6 dB below its source channel, within 1 dB.
    expect(Math.abs(toneLevelDb(mono, 48000, 440) - (toneLevelDb(src[0], 48000, 440) - 6.02))).toBeLessThan(1);
    expect(Math.abs(toneLevelDb(mono, 48000, 880) - (toneLevelDb(src[1], 48000, 880) - 6.02))).toBeLessThan(1);
  });

  it('receives 16 kHz and 44.1 kHz speech sent by the sender with the full duration and the source level', async () => {
    const files = ['speech-16k.wav', 'speech-44k1.wav'];
    const sent = await Promise.all(files.map((f, i) => sendAudio({ url: `${t.url}/whip/rates/p${i}?pipeline=raw`, source: fixturePath(f), speed: FAST })));
    for (const [i, f] of files.entries()) {
      await expectComplete(t.url, `p${i}`, sent[i]);
      const source = await readFixture(f);
      const wav = await recordingOf(`p${i}`);
      expect(wav.sampleRate).toBe(48000);
      // The sender sends whole 20 ms frames: the duration is the source's, rounded up to a frame.
      expect(sent[i].packetsSent).toBe(Math.ceil(source.durationSec / 0.02));
      // Sent faster than real time: the whole send, connecting included, took less than the audio
      // lasts (unless EARSHOT_TEST_SPEED=1 asks for real time).
      if (FAST > 1) expect(sent[i].wallSeconds).toBeLessThan(source.durationSec);
      expect(Math.abs(wav.durationSec - source.durationSec)).toBeLessThanOrEqual(0.02);
      expect(Math.abs(rmsDb(wav.channels[0]) - rmsDb(source.channels[0]))).toBeLessThan(1.5);
    }
  });
});
