/**
 * `sendAudio({ loop: true })` repeats a file seamlessly: each pass starts right after the last
 * sample of the one before, not at the next 20 ms packet. Over real loopback WebRTC to the real
 * server, recorded: a tone whose file is not a whole number of packets long (1.01 s) arrives as
 * one unbroken tone. So does every session of `sendMany` (`earshot send --loop --count K`).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import { sendAudio, sendMany, type SendResult } from '../../src/client/audio-sender.js';
import { readWavSource } from '../../src/client/wav-stream.js';
import { readWav, rmsDb } from '../helpers/audio.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let dir: string;
/** 1010 whole cycles of 1 kHz: looped seamlessly, the signal is one continuous sine. */
let file: string;
beforeAll(async () => {
  t = await startServer({ threads: 1, pipeline: { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] } });
  dir = await mkdtemp(join(tmpdir(), 'earshot-loop-'));
  const tone = Int16Array.from({ length: 48480 }, (_, i) => Math.round(16384 * Math.sin((2 * Math.PI * 1000 * i) / 48000)));
  const wav = new wavefile.WaveFile();
  wav.fromScratch(1, 48000, '16', tone);
  file = join(dir, 'tone-1010ms.wav');
  await writeFile(file, wav.toBuffer());
});

/** The recording of a session that sent the tone for 3.2 s, asserting it is whole and the tone unbroken. */
async function expectUnbroken(peer: string, sent: SendResult): Promise<void> {
  const stats = await expectComplete(t.url, peer, sent);
  const recorded = (await readWav(join(t.recordingsDir, stats.recording!.name))).channels[0];
  expect(recorded.length).toBe(3.2 * 48000);
  // Every 5 ms of the recording (past the codec's start) holds the tone at its level (−9 dB):
  // padded to a packet boundary, each pass ended in 10 ms of silence and a click.
  const levels: number[] = [];
  for (let at = 4800; at + 240 <= recorded.length - 960; at += 240) levels.push(rmsDb(recorded.subarray(at, at + 240)));
  expect(Math.min(...levels), peer).toBeGreaterThan(-9 - 1.5);
  expect(Math.max(...levels), peer).toBeLessThan(-9 + 1.5);
}
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('sending a file in a loop', () => {
  it('joins the passes without a gap: a 1.01 s tone loops as one unbroken tone', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/loop/seamless`, source: file, loop: true, seconds: 3.2, speed: FAST });
    await expectUnbroken('seamless', sent);
  });

  it('joins them in every session of sendMany, from a file and from PCM (each pass ended in 10 ms of silence and a click)', async () => {
    // sendMany encoded the source once, one pass without its loop, and each session replayed those
    // packets: the last padded to 20 ms with silence, then the first, encoded from silence.
    for (const [name, source] of [['file', file], ['pcm', await readWavSource(file)]] as const) {
      const results = await sendMany(2, { url: `${t.url}/whip/loop/${name}`, source, loop: true, seconds: 3.2, speed: FAST });
      for (const [i, r] of results.entries()) {
        if ('error' in r) throw r.error;
        await expectUnbroken(`${name}-${i + 1}`, r);
      }
    }
  });
});
