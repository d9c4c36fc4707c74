/**
 * RTP from SSRCs the offer did not announce, over real loopback WebRTC: a
 * werift publisher whose offer has no `a=ssrc` lines, one that changes its
 * SSRC halfway (RFC 3550 §8.2: a restarted encoder, a collision), and one that
 * sends more SSRCs than a session takes. The first two are recorded whole,
 * the tone on both sides; past the bound, packets are dropped and counted in
 * `earshot_rtc_guarded_total{guard="rtp_ssrc_not_adopted"}`.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerStatsSnapshot } from '../../src/index.js';
import { MAX_ADOPTED_SSRCS } from '../../src/rtc/werift-unsignalled-ssrc.js';
import { dominantFrequency, encodeOpusFrames, readWav } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { publishRawOpus } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { statsOnceRecorded } from '../helpers/sending.js';

let t: TestServer;
let packets: Uint8Array[];
beforeAll(async () => {
  t = await startServer({ extraPipelines: [{ name: 'plain', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] }] });
  packets = encodeOpusFrames((await readFixture('tone-1k-48k.wav')).channels[0], 1).map((f) => f.payload!);
});
afterAll(() => t.close());

/** The offer as a stack that announces no SSRC writes it: no `a=ssrc`, `a=ssrc-group` or `a=msid` lines. */
const withoutSsrcs = (sdp: string) => sdp.split('\r\n').filter((l) => !/^a=(ssrc|ssrc-group|msid):/.test(l)).join('\r\n');

const finalStats = (peer: string) => statsOnceRecorded(t.url, peer);

async function notAdopted(): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('earshot_rtc_guarded_total{guard="rtp_ssrc_not_adopted"} '));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

/** The recording lasts `seconds` and holds the 1 kHz tone in its first and second half. */
async function expectToneRecording(stats: PeerStatsSnapshot, seconds: number): Promise<void> {
  const [rec] = stats.recordings;
  expect(rec).toMatchObject({ gapFrames: 0, droppedFrames: 0 });
  expect(rec.seconds).toBeCloseTo(seconds, 1);
  const wav = await readWav(join(t.recordingsDir, rec.name));
  const half = wav.channels[0].length >> 1;
  for (const part of [wav.channels[0].subarray(4800, half), wav.channels[0].subarray(half + 4800)]) {
    expect(Math.abs(dominantFrequency(part, 48000) - 1000)).toBeLessThanOrEqual(10);
  }
}

describe('RTP of SSRCs the offer did not announce', () => {
  it('takes the audio of an offer without a=ssrc lines', async () => {
    const before = await notAdopted();
    const answer = await publishRawOpus(
      `${t.url}/whip/demo/no-ssrc?pipeline=plain`,
      async (send) => {
        for (let k = 0; k < 100; k++) {
          send(1000 + k, 5000 + k * 960, packets[k], k === 0);
          await sleep(5);
        }
      },
      { editOffer: withoutSsrcs },
    );
    expect(answer).toMatch(/^m=audio [1-9]/m);
    const stats = await finalStats('no-ssrc');
    expect(stats.rtp).toMatchObject({ packetsReceived: 100, packetsExpected: 100, packetsLost: 0 });
    await expectToneRecording(stats, 2);
    expect(await notAdopted()).toBe(before);
  });

  it('goes on recording when the sender changes its SSRC halfway', async () => {
    await publishRawOpus(`${t.url}/whip/demo/new-ssrc?pipeline=plain`, async (send) => {
      for (let k = 0; k < 100; k++) {
        // A restarted encoder: a new SSRC, new sequence numbers and timestamps.
        if (k < 50) send(1000 + k, 5000 + k * 960, packets[k], k === 0);
        else send(40_000 + k, 900_000 + k * 960, packets[k], k === 50, k === 50 ? 0x5eed0001 : undefined);
        await sleep(5);
      }
    });
    const stats = await finalStats('new-ssrc');
    expect(stats.rtp).toMatchObject({ packetsReceived: 100, packetsExpected: 100, packetsLost: 0, ssrc: 0x5eed0001 });
    await expectToneRecording(stats, 2);
  });

  it(`takes ${MAX_ADOPTED_SSRCS} unannounced SSRCs per session, and drops and counts the packets of more`, async () => {
    const before = await notAdopted();
    const extra = MAX_ADOPTED_SSRCS + 4;
    await publishRawOpus(`${t.url}/whip/demo/many-ssrcs?pipeline=plain`, async (send) => {
      let k = 0;
      // Five packets on the offer's SSRC, then five on each of `extra` new ones.
      for (let source = 0; source <= extra; source++) {
        for (let i = 0; i < 5; i++, k++) {
          send(1000 * (source + 1) + i, 5000 + k * 960, packets[k], i === 0, source > 0 && i === 0 ? 0x70000000 + source : undefined);
          await sleep(5);
        }
      }
    });
    const stats = await finalStats('many-ssrcs');
    expect(stats.rtp.packetsReceived).toBe(5 * (1 + MAX_ADOPTED_SSRCS));
    expect((await notAdopted()) - before).toBe(5 * (extra - MAX_ADOPTED_SSRCS));
  });
});
