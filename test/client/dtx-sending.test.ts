/**
 * `sendAudio({ dtx: true })` sends as a browser does after an answer with
 * `usedtx=1` (and only then): silence is withheld, not lost. Over real loopback WebRTC to the
 * real server with the default pipeline (denoise): the server counts the
 * withheld stretch as DTX (not loss), records it as silence at its media time
 * without running the denoiser on it (its comfort-noise updates waiting for a
 * batch), and the speech around it arrives whole.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio, type SendResult } from '../../src/client/audio-sender.js';
import { concat, readWav, rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

type Stats = {
  rtp: { packetsReceived: number; packetsLost: number; dtxSeconds: number };
  processing: { framesDropped: number; framesSkippedSilent: number };
  recording: { name: string; state: string };
};

let t: TestServer;
let speech: Float32Array;
beforeAll(async () => {
  // A pipeline that asks for no DTX: its answers carry no usedtx=1.
  t = await startServer({ extraPipelines: [{ name: 'nodtx', dtx: false, stages: [], sinks: [{ type: 'stats' }] }] });
  speech = (await readFixture('speech-48k.wav')).channels[0].subarray(0, 48000);
});
afterAll(() => t?.close());

/** 1 s speech, 3 s digital silence, 1 s speech: 250 frames of 20 ms. */
const talkPauseTalk = () => ({ sampleRate: 48000 as const, channels: [concat([speech, new Float32Array(3 * 48000), speech])] });

async function statsOf(peer: string): Promise<Stats> {
  const res = await fetch(`${t.url}/stats/${peer}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Stats;
}

describe('sending with DTX', () => {
  let dtx: SendResult;
  it('withholds the silence: fewer packets, the same media time, nothing lost', async () => {
    dtx = await sendAudio({ url: `${t.url}/whip/dtx/talker`, source: talkPauseTalk(), dtx: true, speed: FAST });
    // 3 s of silence is 150 frames; libopus still sends an update about every 400 ms of it.
    expect(dtx.dtxFrames).toBeGreaterThan(120);
    expect(dtx.packetsSent + dtx.dtxFrames).toBe(250);
    expect(dtx.mediaSeconds).toBeCloseTo(5, 6);
    const s = await statsOf('talker');
    expect(s.rtp.packetsReceived).toBe(dtx.packetsSent);
    expect(s.rtp.packetsLost).toBe(0);
    expect(s.processing.framesDropped).toBe(0);
    // Every withheld frame is counted as DTX, exactly.
    expect(s.rtp.dtxSeconds).toBeCloseTo(dtx.dtxFrames * 0.02, 6);
    // The denoiser did not run on the silence.
    expect(s.processing.framesSkippedSilent).toBeGreaterThanOrEqual(dtx.dtxFrames);
    // From the pause's second comfort-noise update on, its updates waited for a batch (quietHoldMs):
    // ~7 updates in 3 s, each followed by a DTX frame.
    const server = (await (await fetch(`${t.url}/stats`)).json()) as { server: { pool: { framesHeld: number; quietHoldMs: number } } };
    expect(server.server.pool.quietHoldMs).toBe(200);
    expect(server.server.pool.framesHeld).toBeGreaterThanOrEqual(8);
    expect(server.server.pool.framesHeld).toBeLessThan(dtx.packetsSent);
  });

  it('records the pause as silence at its media time, the speech on both sides intact', async () => {
    const s = await statsOf('talker');
    expect(s.recording.state).toBe('stopped');
    const wav = await readWav(join(t.recordingsDir, s.recording.name));
    expect(wav.durationSec).toBeCloseTo(5, 1);
    const x = wav.channels[0];
    const at = (from: number, to: number) => rmsDb(x.subarray(Math.round(from * 48000), Math.round(to * 48000)));
    // The middle of the pause is silent; speech is where it was sent (the first 0.1 s of a
    // stream is the denoiser settling, so the windows keep clear of the edges).
    expect(at(1.5, 3.5)).toBeLessThan(-80);
    expect(at(0.2, 0.9)).toBeGreaterThan(-45);
    expect(at(4.1, 4.9)).toBeGreaterThan(-45);
  });

  it('withholds the silence past the end of the source (`seconds` longer than it) as DTX, with an update every 400 ms', async () => {
    // 1 s of speech, then 3 s of silence the sender makes up: 150 frames, 2 of each 20 sent (an update, then
    // the first DTX frame): 7 × 18 + 7 withheld (the last frame is sent, so the stream ends where it should), and
    // any DTX frame of the speech's own.
    const padded = await sendAudio({ url: `${t.url}/whip/dtx/padded`, source: { sampleRate: 48000, channels: [speech] }, seconds: 4, dtx: true, speed: FAST });
    expect(padded.mediaSeconds).toBeCloseTo(4, 6);
    expect(padded.dtxFrames).toBeGreaterThanOrEqual(133);
    expect(padded.packetsSent + padded.dtxFrames).toBe(200);
    const s = await statsOf('padded');
    expect(s.rtp.packetsReceived).toBe(padded.packetsSent);
    expect(s.rtp.packetsLost).toBe(0);
    expect(s.rtp.dtxSeconds).toBeCloseTo(padded.dtxFrames * 0.02, 6);
    // Recorded to the end: 4 s, the silence included.
    await until('the recording to stop', async () => ((await statsOf('padded')).recording.state === 'stopped' ? true : undefined));
    const wav = await readWav(join(t.recordingsDir, (await statsOf('padded')).recording.name));
    expect(wav.durationSec).toBeCloseTo(4, 2);
  });

  it('sends every frame, silence included, when the answer does not ask for DTX (no usedtx=1)', async () => {
    const asked = await sendAudio({ url: `${t.url}/whip/dtx/unasked?pipeline=nodtx`, source: talkPauseTalk(), dtx: true, speed: FAST });
    expect(asked.dtxFrames).toBe(0);
    expect(asked.packetsSent).toBe(250);
    const s = await statsOf('unasked');
    expect(s.rtp.dtxSeconds).toBe(0);
    expect(s.rtp.packetsReceived).toBe(250);
    expect(s.rtp.packetsLost).toBe(0);
  });

  it('without dtx every frame is sent, silence included', async () => {
    const plain = await sendAudio({ url: `${t.url}/whip/dtx/plain`, source: talkPauseTalk(), speed: FAST });
    expect(plain.dtxFrames).toBe(0);
    expect(plain.packetsSent).toBe(250);
    const s = await statsOf('plain');
    expect(s.rtp.dtxSeconds).toBe(0);
    expect(s.rtp.packetsReceived).toBe(250);
  });
});
