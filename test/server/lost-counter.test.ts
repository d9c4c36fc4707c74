/**
 * `earshot_rtp_packets_lost_total` is a Prometheus counter, so it must never
 * go down. RFC 3550's lost (expected − received) does, when a late packet or
 * a duplicate arrives; a scrape between the two then read a fall, which
 * Prometheus takes for a reset (rate() spiking by the whole total). Each
 * session counts the most it has shown. Over real WebRTC, with RTP packets
 * the test writes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishRawOpus } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { statsOnceRecorded } from '../helpers/sending.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ extraPipelines: [{ name: 'plain', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] }] });
});
afterAll(() => t.close());

/** A CELT packet that decodes to silence (TOC 20 ms fullband mono, then the silence flag). */
const SILENCE = Uint8Array.of(0xf8, 0xff, 0xfe);

async function lostTotal(): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const m = /^earshot_rtp_packets_lost_total (\S+)$/m.exec(text);
  if (!m) throw new Error('no earshot_rtp_packets_lost_total in /metrics');
  return Number(m[1]);
}

describe('earshot_rtp_packets_lost_total', () => {
  it('never goes down when a packet counted lost arrives late, or duplicates arrive, nor when the session ends', async () => {
    const scraped: number[] = [];
    await publishRawOpus(`${t.url}/whip/demo/late?pipeline=plain`, async (send) => {
      // 40 packets without seq 110: one lost, as RFC 3550 counts it.
      for (let k = 0; k < 40; k++) {
        if (k !== 10) send(100 + k, 960 * k, SILENCE, k === 0);
        await sleep(20);
      }
      await sleep(300);
      scraped.push(await lostTotal());
      // Seq 110 after all, and two duplicates: expected − received is now −2.
      send(110, 960 * 10, SILENCE);
      send(138, 960 * 38, SILENCE);
      send(139, 960 * 39, SILENCE);
      await sleep(300);
      scraped.push(await lostTotal());
    });
    const stats = await statsOnceRecorded(t.url, 'late');
    expect(stats.rtp).toMatchObject({ packetsReceived: 42, packetsExpected: 40, packetsLost: -2, packetsDuplicated: 2, packetsLate: 1 });
    scraped.push(await lostTotal());
    expect(scraped[0]).toBe(1);
    // The session's RFC figure went from 1 to −2; the counter stays at the 1 it showed.
    expect(scraped).toEqual([1, 1, 1]);
  });
});
