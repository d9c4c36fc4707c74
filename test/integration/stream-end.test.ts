/**
 * The end of a stream loses nothing a stage still holds: a `reframe` stage's
 * last, partial frame reaches the recording (it was dropped: 60 ms frames
 * left a 3.1 s send recorded as 3.06 s). Real loopback WebRTC, real worker.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerStatsSnapshot } from '../../src/index.js';
import { sendAudio } from '../../src/client/audio-sender.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({
    extraPipelines: [
      { name: 'frames60', stages: [{ type: 'reframe', durationMs: 60 }], sinks: [{ type: 'record' }, { type: 'stats' }] },
      { name: 'frames40-16k', stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'reframe', durationMs: 40 }], sinks: [{ type: 'record' }, { type: 'stats' }] },
    ],
  });
});
afterAll(() => t.close());

describe('the end of a stream', () => {
  for (const pipeline of ['frames60', 'frames40-16k']) {
    it(`${pipeline}: the recording holds every frame sent, the last partial one included`, async () => {
      // 3.1 s: 155 packets of 20 ms, not a whole number of 60 or 40 ms frames.
      const sent = await sendAudio({ url: `${t.url}/whip/end/${pipeline}?pipeline=${pipeline}`, source: fixturePath('tone-1k-48k.wav'), seconds: 3.1, speed: FAST });
      expect(sent.mediaSeconds).toBeCloseTo(3.1, 6);
      const stats = await until('the recording to be final', async () => {
        const s = (await (await fetch(`${t.url}/stats/${pipeline}`)).json()) as PeerStatsSnapshot;
        return s.recordings.length > 0 && s.recordings.every((r) => r.state === 'stopped') ? s : undefined;
      });
      const wav = await readWav(join(t.recordingsDir, stats.recordings[0].name));
      expect(wav.channels[0].length / wav.sampleRate).toBeCloseTo(3.1, 6);
      expect(Math.abs(dominantFrequency(wav.channels[0].subarray(-wav.sampleRate / 2), wav.sampleRate) - 1000)).toBeLessThanOrEqual(10);
    });
  }
});
