/**
 * A sender whose RTP timestamps jump, over real loopback WebRTC: a werift
 * publisher sends a 1 kHz tone whose timestamps leap 12 hours ahead (or an
 * hour back) halfway through, with sequence numbers running on. The server
 * keeps media time by the packets' arrival across the jump: the recording
 * lasts what was sent, holds the tone on both sides, and the stats count the
 * jump with nothing lost, late or dropped.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dominantFrequency, encodeOpusFrames, readWav } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { publishRawOpus } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { statsOnceRecorded } from '../helpers/sending.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ extraPipelines: [{ name: 'plain', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] }] });
});
afterAll(() => t.close());

/**
 * Publishes `packets` over WHIP, one every 5 ms; from packet `at` on, the
 * timestamps are `jump` further on (mod 2^32). Packet `at` follows the one
 * before it at once: the server moves media time on at a jump by the time
 * between the two arrivals, which a stall of this process must not lengthen.
 */
async function sendWithJump(url: string, packets: readonly Uint8Array[], at: number, jump: number, seqJump = 0): Promise<void> {
  await publishRawOpus(url, async (send) => {
    for (let k = 0; k < packets.length; k++) {
      if (k !== at) await sleep(5);
      send(1000 + k + (k >= at ? seqJump : 0), 5000 + k * 960 + (k >= at ? jump : 0), packets[k], k === 0);
    }
  });
}

const finalStats = (peer: string) => statsOnceRecorded(t.url, peer);

describe('RTP timestamps that jump', () => {
  const cases = [
    { peer: 'ahead', jump: 0x7fffffff, what: '12 hours ahead' },
    { peer: 'back', jump: -3600 * 48000, what: 'an hour back' },
    // A gateway that restarts its stream under the same SSRC (RFC 3550 A.1 re-syncs): no loss for the leap.
    { peer: 'restart', jump: 0x7fffffff, seqJump: 30_000, what: '12 hours ahead with the sequence numbers 30 000 on' },
  ];
  for (const { peer, jump, what, seqJump } of cases) {
    it(`a jump ${what} halfway: the recording lasts what was sent, the tone on both sides, the jump counted`, async () => {
      const tone = (await readFixture('tone-1k-48k.wav')).channels[0];
      const packets = encodeOpusFrames(tone, 1).map((f) => f.payload!).slice(0, 100);
      await sendWithJump(`${t.url}/whip/demo/${peer}?pipeline=plain`, packets, 50, jump, seqJump);
      const stats = await finalStats(peer);
      expect(stats.rtp).toMatchObject({ packetsReceived: 100, packetsExpected: 100, packetsLost: 0, packetsLate: 0, packetsDiscarded: 0, timestampJumps: 1 });
      expect(stats.processing).toMatchObject({ framesDropped: 0, framesLate: 0, workerRestarts: 0 });
      const [rec] = stats.recordings;
      expect(rec).toMatchObject({ gapFrames: 0, droppedFrames: 0, droppedBytes: 0 });
      // 100 packets of 20 ms: 2 s, not 12 hours (nor 1 s, with the second half late).
      expect(rec.seconds).toBeCloseTo(2, 6);
      const wav = await readWav(join(t.recordingsDir, rec.name));
      expect(wav.channels[0].length).toBe(2 * 48000);
      for (const half of [wav.channels[0].subarray(4800, 48000), wav.channels[0].subarray(48000 + 4800)]) {
        expect(Math.abs(dominantFrequency(half, 48000) - 1000)).toBeLessThanOrEqual(10);
      }
    });
  }
});
