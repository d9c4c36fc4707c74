/**
 * `sendAudio({ loop: true })` repeats a file seamlessly: each pass starts right after the last
 * sample of the one before, not at the next 20 ms packet. Over real loopback WebRTC to the real
 * server, recorded: a tone whose file is not a whole number of packets long (1.01 s) arrives as
 * one unbroken tone.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import { sendAudio } from '../../src/client/audio-sender.js';
import { readWav, rmsDb } from '../helpers/audio.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let dir: string;
beforeAll(async () => {
  t = await startServer({ threads: 1, pipeline: { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] } });
  dir = await mkdtemp(join(tmpdir(), 'earshot-loop-'));
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('sending a file in a loop', () => {
  it('joins the passes without a gap: a 1.01 s tone loops as one unbroken tone', async () => {
    // 1010 whole cycles of 1 kHz: looped seamlessly, the signal is one continuous sine.
    const tone = Int16Array.from({ length: 48480 }, (_, i) => Math.round(16384 * Math.sin((2 * Math.PI * 1000 * i) / 48000)));
    const wav = new wavefile.WaveFile();
    wav.fromScratch(1, 48000, '16', tone);
    const file = join(dir, 'tone-1010ms.wav');
    await writeFile(file, wav.toBuffer());
    const sent = await sendAudio({ url: `${t.url}/whip/loop/seamless`, source: file, loop: true, seconds: 3.2, speed: FAST });
    const stats = await expectComplete(t.url, 'seamless', sent);
    const recorded = (await readWav(join(t.recordingsDir, stats.recording!.name))).channels[0];
    expect(recorded.length).toBe(3.2 * 48000);
    // Every 5 ms of the recording (past the codec's start) holds the tone at its level (−9 dB):
    // padded to a packet boundary, each pass ended in 10 ms of silence and a click.
    const levels: number[] = [];
    for (let at = 4800; at + 240 <= recorded.length - 960; at += 240) levels.push(rmsDb(recorded.subarray(at, at + 240)));
    expect(Math.min(...levels)).toBeGreaterThan(-9 - 1.5);
    expect(Math.max(...levels)).toBeLessThan(-9 + 1.5);
  });
});
