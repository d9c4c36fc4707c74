/**
 * `sendMany` reads and encodes its source once and hands every session each
 * packet (SharedFrames). Each session must get every packet, in order, at its
 * own pace; what the sessions have all passed must be let go, or a long
 * looping run holds its whole history; a session that ends must stop holding
 * packets back; a source that fails must fail every session.
 */
import { describe, expect, it } from 'vitest';
import { SharedFrames, type FrameSource } from '../../src/client/audio-sender.js';

/** Packets 0, 1, 2, … (each one byte of its number and a second of its number ÷ 256), `count` of them, then the end; or a failure at `failAt`. */
function numbered(count: number, failAt?: number): FrameSource & { pulled: () => number } {
  let n = 0;
  return {
    dtx: false,
    pulled: () => n,
    next: async () => {
      if (n === failAt) throw new Error('source failed');
      if (n >= count) return null;
      const p = new Uint8Array([n & 0xff, n >> 8]);
      n++;
      return p;
    },
    close: async () => undefined,
  };
}

const numberOf = (p: Uint8Array) => p[0] | (p[1] << 8);

async function readAll(reader: FrameSource, onEach?: (n: number) => Promise<void>): Promise<number[]> {
  const got: number[] = [];
  for (let p = await reader.next(); p !== null; p = await reader.next()) {
    got.push(numberOf(p));
    await onEach?.(got.length);
  }
  return got;
}

describe('SharedFrames (sendMany\'s one source for many sessions)', () => {
  it('gives every reader every packet in order, at its own pace, reading the source once', async () => {
    const source = numbered(1000);
    const shared = new SharedFrames(source);
    const readers = [shared.reader(), shared.reader(), shared.reader()];
    // One reads straight through, one yields every packet, one every 7th for a few ms: they drift apart.
    const results = await Promise.all([
      readAll(readers[0]),
      readAll(readers[1], () => new Promise((r) => setImmediate(r))),
      readAll(readers[2], (i) => (i % 7 === 0 ? new Promise((r) => setTimeout(r, 1)) : Promise.resolve())),
    ]);
    const all = Array.from({ length: 1000 }, (_, i) => i);
    for (const got of results) expect(got).toEqual(all);
    expect(source.pulled()).toBe(1000);
  });

  it('lets go of what every reader has passed: what it holds is the spread between them, not the history', async () => {
    const shared = new SharedFrames(numbered(5000));
    const ahead = shared.reader();
    const behind = shared.reader();
    let most = 0;
    for (let i = 0; i < 5000; i++) {
      expect(numberOf((await ahead.next())!)).toBe(i);
      // The one behind keeps 100 packets back.
      if (i >= 100) expect(numberOf((await behind.next())!)).toBe(i - 100);
      most = Math.max(most, shared.held);
    }
    // 100 of spread, plus up to the 50 pulls between two trims.
    expect(most).toBeLessThanOrEqual(150);
    expect(most).toBeGreaterThanOrEqual(100);
  });

  it('a reader that closes holds nothing back', async () => {
    const shared = new SharedFrames(numbered(3000));
    const going = shared.reader();
    const gone = shared.reader();
    expect(numberOf((await gone.next())!)).toBe(0);
    await gone.close();
    for (let i = 0; i < 3000; i++) expect(numberOf((await going.next())!)).toBe(i);
    expect(await going.next()).toBeNull();
    expect(shared.held).toBeLessThanOrEqual(50);
  });

  it('a source that fails fails every reader, once each has read what came before', async () => {
    const shared = new SharedFrames(numbered(1000, 120));
    const readers = [shared.reader(), shared.reader()];
    for (const r of readers) {
      for (let i = 0; i < 120; i++) expect(numberOf((await r.next())!)).toBe(i);
      await expect(r.next()).rejects.toThrow('source failed');
    }
  });
});
