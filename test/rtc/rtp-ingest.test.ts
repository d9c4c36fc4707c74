/**
 * RTP ingest: reorder window, loss and DTX detection, and RFC 3550 statistics,
 * fed with synthetic packet sequences (the thing under test is the ingest).
 */
import { describe, expect, it } from 'vitest';
import type { EncodedFrame } from '../../src/media/frames.js';
import { RtpIngest, type RtpInput } from '../../src/rtc/rtp-ingest.js';

// A 20 ms CELT fullband mono Opus TOC byte (config 31, code 0): 960 samples.
const PAYLOAD = new Uint8Array([0xf8, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

function packet(i: number, arrival: number, over: Partial<RtpInput> = {}): RtpInput {
  return { sequenceNumber: (1000 + i) & 0xffff, timestamp: (5000 + i * 960) >>> 0, ssrc: 42, payload: PAYLOAD, headerBytes: 12, arrival, ...over };
}

function collect(options = {}) {
  const frames: EncodedFrame[] = [];
  const ingest = new RtpIngest((f) => frames.push(f), options);
  return { frames, ingest };
}

describe('RtpIngest', () => {
  it('emits in-order packets at consecutive media positions', () => {
    const { frames, ingest } = collect();
    for (let i = 0; i < 10; i++) ingest.receive(packet(i, i * 20));
    expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 10 }, (_, i) => i * 960));
    expect(frames.every((f) => f.samples === 960 && f.payload !== null)).toBe(true);
    const s = ingest.stats(200);
    expect(s).toMatchObject({ packetsReceived: 10, packetsExpected: 10, packetsLost: 0, lossRatio: 0, packetsDuplicated: 0 });
    expect(s.bytesReceived).toBe(10 * PAYLOAD.length);
  });

  it('puts reordered packets back in order within the window', () => {
    const { frames, ingest } = collect();
    const order = [0, 1, 3, 2, 4, 6, 5, 7];
    order.forEach((i, k) => ingest.receive(packet(i, k * 20)));
    expect(frames.map((f) => f.position / 960)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const s = ingest.stats(200);
    expect(s.packetsReordered).toBe(2);
    expect(s.packetsLost).toBe(0);
  });

  it('declares a missing packet lost once the window is exceeded, with its exact position and length', () => {
    const { frames, ingest } = collect({ reorderPackets: 3 });
    for (const i of [0, 1, 3, 4, 5, 6, 7]) ingest.receive(packet(i, i * 20));
    const lost = frames.filter((f) => f.payload === null);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ position: 2 * 960, samples: 960 });
    expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 8 }, (_, i) => i * 960));
    expect(ingest.stats(200)).toMatchObject({ packetsExpected: 8, packetsReceived: 7, packetsLost: 1 });
    expect(ingest.stats(200).lossRatio).toBeCloseTo(1 / 8, 6);
  });

  it('counts duplicates (RFC 3550 counts them as received, so loss can go negative) and drops them', () => {
    const { frames, ingest } = collect();
    for (const i of [0, 1, 1, 2, 2, 3]) ingest.receive(packet(i, i * 20));
    expect(frames).toHaveLength(4);
    const s = ingest.stats(100);
    expect(s.packetsDuplicated).toBe(2);
    expect(s.packetsReceived).toBe(6);
    expect(s.packetsLost).toBe(-2);
    expect(s.lossRatio).toBe(0);
  });

  it('counts a packet that arrives after its slot was concealed as late and does not emit it', () => {
    const { frames, ingest } = collect({ reorderPackets: 1 });
    for (const i of [0, 2, 3]) ingest.receive(packet(i, i * 20));
    ingest.receive(packet(1, 80));
    expect(frames.filter((f) => f.payload === null)).toHaveLength(1);
    expect(frames).toHaveLength(4);
    expect(ingest.stats(100).packetsLate).toBe(1);
  });

  it('leaves a DTX gap (timestamps jump, sequence numbers do not) as a gap in position', () => {
    const { frames, ingest } = collect();
    ingest.receive(packet(0, 0));
    ingest.receive(packet(1, 20));
    // 400 ms of DTX: next packet has the next sequence number but a timestamp 20 frames later.
    ingest.receive(packet(2, 420, { timestamp: 5000 + 22 * 960 }));
    expect(frames.map((f) => f.position)).toEqual([0, 960, 22 * 960]);
    expect(frames.every((f) => f.payload !== null)).toBe(true);
    expect(ingest.stats(500).dtxSeconds).toBeCloseTo((20 * 960) / 48000, 6);
  });

  it('extends sequence numbers and timestamps across wraparound', () => {
    const { frames, ingest } = collect();
    for (let i = 0; i < 6; i++) {
      ingest.receive(packet(i, i * 20, { sequenceNumber: (65533 + i) & 0xffff, timestamp: (0xfffff000 + i * 960) >>> 0 }));
    }
    expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 6 }, (_, i) => i * 960));
    expect(ingest.stats(200)).toMatchObject({ packetsExpected: 6, packetsLost: 0 });
  });

  it('computes interarrival jitter as RFC 3550 A.8 does', () => {
    const { ingest } = collect();
    const arrivals = [0, 22, 39, 61, 80, 104, 118, 140];
    arrivals.forEach((a, i) => ingest.receive(packet(i, a)));
    // Reference: the RFC's estimator in timestamp units, by hand.
    let j = 0;
    for (let i = 1; i < arrivals.length; i++) {
      const d = (arrivals[i] - arrivals[i - 1]) * 48 - 960;
      j += (Math.abs(d) - j) / 16;
    }
    expect(ingest.stats(200).jitter).toBeCloseTo(j / 48000, 9);
    expect(ingest.stats(200).jitter).toBeGreaterThan(0);
  });

  it('releases a held packet after the reorder delay even if nothing else arrives', async () => {
    const { frames, ingest } = collect({ reorderDelayMs: 30 });
    const now = performance.now();
    ingest.receive(packet(0, now));
    ingest.receive(packet(2, now));
    expect(frames).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 80));
    expect(frames).toHaveLength(3);
    expect(frames[1].payload).toBeNull();
  });
});
