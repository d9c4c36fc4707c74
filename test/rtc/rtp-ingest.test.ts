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

  it('counts a loss burst longer than concealment covers as loss, not DTX: silence after the concealed frames', () => {
    const { frames, ingest } = collect();
    // 60 packets at 20 ms with 20–44 lost: 25 lost, more than the 10 concealed.
    for (let i = 0; i < 60; i++) if (i < 20 || i > 44) ingest.receive(packet(i, i * 20));
    const s = ingest.stats(1300);
    expect(s).toMatchObject({ packetsLost: 25, dtxSeconds: 0 });
    expect(frames.filter((f) => f.payload === null)).toHaveLength(10);
    // Media time goes on by all 25: the packet after the burst sits at its place.
    expect(frames.at(-15)!.position).toBe(45 * 960);
  });

  it('extends sequence numbers and timestamps across wraparound', () => {
    const { frames, ingest } = collect();
    for (let i = 0; i < 6; i++) {
      ingest.receive(packet(i, i * 20, { sequenceNumber: (65533 + i) & 0xffff, timestamp: (0xfffff000 + i * 960) >>> 0 }));
    }
    expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 6 }, (_, i) => i * 960));
    expect(ingest.stats(200)).toMatchObject({ packetsExpected: 6, packetsLost: 0 });
  });

  describe('sequence numbers that leap (RFC 3550 A.1)', () => {
    it('a sender that restarts its sequence (30 000 on, the same SSRC) counts no loss for the leap and plays on', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 50; i++) ingest.receive(packet(i, i * 20));
      for (let i = 50; i < 100; i++) ingest.receive(packet(i, i * 20, { sequenceNumber: (1000 + 30_000 + i) & 0xffff }));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 100 }, (_, i) => i * 960));
      expect(frames.every((f) => f.payload !== null)).toBe(true);
      expect(ingest.stats(2000)).toMatchObject({ packetsReceived: 100, packetsExpected: 100, packetsLost: 0, packetsDiscarded: 0, packetsLate: 0 });
    });

    it('also backwards, and with the timestamps restarting too: media time goes on by the arrivals', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 50; i++) ingest.receive(packet(i, i * 20));
      // A gateway that restarts both, 20 ms after the last packet: sequence 20 000 back, timestamps anywhere.
      for (let i = 50; i < 100; i++) ingest.receive(packet(i, i * 20, { sequenceNumber: (1000 - 20_000 + i) & 0xffff, timestamp: (123_456_789 + i * 960) >>> 0 }));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 100 }, (_, i) => i * 960));
      expect(ingest.stats(2000)).toMatchObject({ packetsReceived: 100, packetsLost: 0, timestampJumps: 1 });
    });

    it('drops one stray packet whose sequence number leaps, uncounted, when the stream goes on as before', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 50; i++) ingest.receive(packet(i, i * 20));
      ingest.receive(packet(50, 1000, { sequenceNumber: (1000 + 40_000) & 0xffff, timestamp: 99 }));
      for (let i = 50; i < 100; i++) ingest.receive(packet(i, i * 20 + 5));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 100 }, (_, i) => i * 960));
      expect(frames.every((f) => f.payload !== null)).toBe(true);
      expect(ingest.stats(2000)).toMatchObject({ packetsReceived: 100, packetsExpected: 100, packetsLost: 0, packetsDiscarded: 1, timestampJumps: 0 });
    });

    it('drops a packet over 100 behind the highest (not late: out of sequence), and one leap still pending at the end', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 300; i++) if (i !== 20) ingest.receive(packet(i, i * 20));
      ingest.receive(packet(20, 6000)); // 279 behind
      ingest.receive(packet(300, 6000, { sequenceNumber: 9 })); // a leap, and then the stream ends
      ingest.flush();
      expect(frames).toHaveLength(300);
      expect(frames[20].payload).toBeNull(); // concealed
      expect(ingest.stats(6000)).toMatchObject({ packetsReceived: 299, packetsExpected: 300, packetsLost: 1, packetsLate: 0, packetsDiscarded: 2 });
    });

    it('takes two stragglers over 100 behind, their timestamps where their sequence numbers say, as late: no restart', () => {
      const { frames, ingest } = collect();
      // 400 packets; 140 and 141 held by the network and delivered after 299 (over 100 behind).
      for (let i = 0; i < 300; i++) if (i !== 140 && i !== 141) ingest.receive(packet(i, i * 20));
      ingest.receive(packet(140, 6000));
      ingest.receive(packet(141, 6000));
      for (let i = 300; i < 400; i++) ingest.receive(packet(i, i * 20));
      ingest.flush();
      // RFC 3550 A.1 re-syncs on them (lost 158, and here ~3 s of silence put into the recording);
      // taken as late, media time and the loss count stay as they were.
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 400 }, (_, i) => i * 960));
      expect(ingest.stats(8000)).toMatchObject({ packetsReceived: 400, packetsExpected: 400, packetsLost: 0, packetsLate: 2, timestampJumps: 0, dtxSeconds: 0 });
    });

    it('a new SSRC (the sender restarted its stream): the counts go on over both sources, none lost', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 50; i++) ingest.receive(packet(i, i * 20));
      for (let i = 50; i < 100; i++) ingest.receive(packet(i, i * 20, { ssrc: 43, sequenceNumber: 7 + i, timestamp: 99 + i * 960 }));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 100 }, (_, i) => i * 960));
      // Expected was the new source's alone (50) against all 100 received: −50 lost.
      expect(ingest.stats(2000)).toMatchObject({ ssrc: 43, packetsReceived: 100, packetsExpected: 100, packetsLost: 0 });
      // A report block is about the current source only.
      expect(ingest.reportFigures()).toMatchObject({ ssrc: 43, expected: 50, received: 50, extendedHighest: 7 + 99 });
    });

    it('a straggler of the previous SSRC, after the switch, is late: the new source goes on as it was', () => {
      const { frames, ingest } = collect();
      // Source 42: 50 packets, 45 held by the network until after source 43 has started.
      for (let i = 0; i < 50; i++) if (i !== 45) ingest.receive(packet(i, i * 20));
      const b = (i: number, arrival: number) => packet(i, arrival, { ssrc: 43, sequenceNumber: 7 + i, timestamp: 99 + i * 960 });
      ingest.receive(b(50, 1000));
      ingest.receive(packet(45, 1005)); // the straggler of 42
      for (let i = 51; i < 100; i++) ingest.receive(b(i, i * 20));
      ingest.flush();
      // 42's slot 45 was concealed when 43 started; the straggler is not played inside 43's audio.
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 100 }, (_, i) => i * 960));
      expect(frames[45].payload).toBeNull();
      expect(ingest.stats(2000)).toMatchObject({ ssrc: 43, packetsReceived: 100, packetsExpected: 100, packetsLost: 0, packetsLate: 1, packetsDuplicated: 0 });
      // Source 42 resuming (ahead of its highest) is a new source again.
      ingest.receive(packet(50, 2020));
      expect(ingest.stats(2100).ssrc).toBe(42);
    });
    it('takes a packet up to 100 behind as reordered, and up to 2999 ahead as loss', () => {
      const { ingest } = collect({ reorderPackets: 0 });
      for (let i = 0; i < 200; i++) if (i !== 150) ingest.receive(packet(i, i * 20));
      ingest.receive(packet(150, 4000)); // 49 behind: late, counted
      ingest.receive(packet(200 + 2998, 4020));
      expect(ingest.stats(4020)).toMatchObject({ packetsReceived: 201, packetsLate: 1, packetsDiscarded: 0, packetsLost: 2998 });
    });
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

  it('counts a frame\'s latency from the end of its wait in the reorder buffer, not from its packet\'s arrival', () => {
    const { frames, ingest } = collect({ reorderPackets: 3 });
    // Packet 2 arrives late (at 50, after 3 at 40): 3 waits for it. Packet 5 never arrives: 6, 7 and 8
    // wait for it until a fourth packet is held, at 180; the one concealed in its place leaves then too.
    for (const [i, at] of [[0, 0], [1, 20], [3, 40], [2, 50], [4, 80], [6, 120], [7, 140], [8, 160], [9, 180]]) ingest.receive(packet(i, at));
    expect(frames.map((f) => [f.position / 960, f.payload === null ? 'lost' : 'sent', f.arrival])).toEqual([
      [0, 'sent', 0],
      [1, 'sent', 20],
      [2, 'sent', 50],
      [3, 'sent', 50],
      [4, 'sent', 80],
      [5, 'lost', 180],
      [6, 'sent', 180],
      [7, 'sent', 180],
      [8, 'sent', 180],
      [9, 'sent', 180],
    ]);
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

  describe('timestamp jumps', () => {
    it('a timestamp 12 hours ahead on the next packet moves media time on by the arrival time, not by 12 hours', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 5; i++) ingest.receive(packet(i, i * 20));
      // The next packet's timestamp is 2^31 − 1 ahead (the most a 32-bit step can be): 12.4 hours.
      const jumped = (5000 + 5 * 960 + 0x7fffffff) >>> 0;
      for (let i = 5; i < 10; i++) ingest.receive(packet(i, i * 20, { timestamp: (jumped + (i - 5) * 960) >>> 0 }));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 10 }, (_, i) => i * 960));
      const s = ingest.stats(200);
      expect(s.timestampJumps).toBe(1);
      expect(s).toMatchObject({ packetsLost: 0, packetsLate: 0, dtxSeconds: 0 });
      // The jitter estimate restarts after the jump: the packets after it are as regular as before.
      expect(s.jitter).toBe(0);
    });

    it('a timestamp that goes back an hour while the sequence goes on continues media time: no packet after it is late', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 5; i++) ingest.receive(packet(i, i * 20));
      const back = (5000 + 5 * 960 - 3600 * 48000) >>> 0;
      for (let i = 5; i < 10; i++) ingest.receive(packet(i, i * 20, { timestamp: (back + (i - 5) * 960) >>> 0 }));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 10 }, (_, i) => i * 960));
      expect(ingest.stats(200)).toMatchObject({ timestampJumps: 1, packetsLate: 0 });
    });

    it('keeps a long DTX pause, a loss burst and a delay that built up and cleared as media time: none is a jump', () => {
      const { frames, ingest } = collect({ reorderPackets: 0 });
      let t = 0;
      let i = 0;
      const send = (over: Partial<RtpInput> = {}) => ingest.receive(packet(i++, t, over));
      for (let k = 0; k < 5; k++, t += 20) send();
      // Five minutes of DTX: the next packet comes five minutes later, its timestamp five minutes on.
      t += 300_000;
      const dtxTs = (5000 + (5 + 300 * 50) * 960) >>> 0;
      send({ timestamp: dtxTs });
      t += 20;
      // The network's queue grows to 3 s (each packet 60 ms later than the one before) …
      for (let k = 1; k <= 50; k++, t += 80) send({ timestamp: (dtxTs + k * 960) >>> 0 });
      // … and is dropped: 150 packets (3 s) lost, the next one arrives with no delay at all.
      i += 150;
      t -= 3000;
      send({ timestamp: (dtxTs + 201 * 960) >>> 0 });
      expect(ingest.stats(t).timestampJumps).toBe(0);
      const last = frames[frames.length - 1];
      expect(last.position).toBe(5 * 960 + 300 * 48000 + 201 * 960);
      // The DTX pause only: the part of the loss burst too long to conceal becomes silence, but it is loss.
      expect(ingest.stats(t).dtxSeconds).toBeCloseTo(300, 6);
    });

    it('follows a file sent 50 times faster than real time with DTX pauses: none is a jump', () => {
      const { frames, ingest } = collect();
      // Ten minutes of a silent talker as libopus sends it: every 400 ms an update and a DTX frame,
      // arriving 8 ms apart (400 ms at 50×).
      let seq = 0;
      for (let cycle = 0; cycle < 1500; cycle++) {
        const ts = 5000 + cycle * 20 * 960;
        ingest.receive(packet(seq++, cycle * 8, { timestamp: ts >>> 0 }));
        ingest.receive(packet(seq++, cycle * 8 + 0.4, { timestamp: (ts + 960) >>> 0 }));
      }
      expect(ingest.stats(12_000).timestampJumps).toBe(0);
      expect(frames[frames.length - 1].position).toBe(1499 * 20 * 960 + 960);
    });

    it('a sender stepping its timestamps 29 s at a time, each step under the limit, gains pauses of at most 20 times its media plus the limit', () => {
      const { frames, ingest } = collect();
      for (let i = 0; i < 200; i++) ingest.receive(packet(i, i * 20, { timestamp: (5000 + i * 29 * 48000) >>> 0 }));
      const end = frames[frames.length - 1].position / 48000;
      // 200 packets of 20 ms (4 s of media): pauses as a DTX sender makes (≤ 20 × 4 s) and the 30 s slack, not 200 × 29 s.
      expect(end).toBeLessThanOrEqual(4 + 20 * 4 + 30);
      expect(ingest.stats(4000).timestampJumps).toBeGreaterThan(150);
      expect(frames).toHaveLength(200);
    });

    it('a packet whose sequence number leaps 2900 on and timestamp an hour is a jump: lost packets explain a step only up to the limit', () => {
      const { frames, ingest } = collect({ reorderPackets: 0 });
      for (let i = 0; i < 100; i++) ingest.receive(packet(i, i * 20));
      // 2900 packets lost (58 s, under RFC 3550's 3000 of a restart) and an hour of timestamps, 20 ms after the packet before.
      ingest.receive(packet(100 + 2900, 2000, { timestamp: (5000 + 100 * 960 + 3600 * 48000) >>> 0 }));
      expect(ingest.stats(2000)).toMatchObject({ timestampJumps: 1, packetsLost: 2900 });
      // Media time goes on by the lost packets at the length of the ones received (58 s), within
      // the pauses allowed for the 2 s of media sent (20 × 2 s + the 30 s slack): not an hour.
      expect(frames[frames.length - 1].position).toBe(3000 * 960);
    });

    it('drops a reordered packet whose timestamp lies past the newest packet\'s: it opens no gap and the packets after it play', () => {
      const { frames, ingest } = collect();
      for (const i of [0, 1, 3]) ingest.receive(packet(i, i * 20));
      // Packet 2 comes after 3, its timestamp 12 hours on.
      ingest.receive(packet(2, 70, { timestamp: (5000 + 2 * 960 + 0x7fffffff) >>> 0 }));
      for (let i = 4; i < 12; i++) ingest.receive(packet(i, i * 20));
      expect(frames.map((f) => f.position)).toEqual(Array.from({ length: 12 }, (_, i) => i * 960));
      expect(frames[2].payload).toBeNull(); // concealed: it never came in a usable form
      expect(ingest.stats(240)).toMatchObject({ packetsLate: 1, timestampJumps: 0 });
    });

    it('takes its limit from maxTimestampJumpMs', () => {
      const { frames, ingest } = collect({ maxTimestampJumpMs: 1000 });
      ingest.receive(packet(0, 0));
      // 2 s ahead of the arrivals: a jump with a 1 s limit.
      ingest.receive(packet(1, 20, { timestamp: 5000 + 960 + 2 * 48000 }));
      expect(frames.map((f) => f.position)).toEqual([0, 960]);
      expect(ingest.stats(40).timestampJumps).toBe(1);
    });
  });
});
