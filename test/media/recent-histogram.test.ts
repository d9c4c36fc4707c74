/**
 * The recent-latency window: what a stream is like now, with a start-up spike
 * gone once it leaves the window, while the session-long figures keep it.
 */
import { describe, expect, it } from 'vitest';
import { LatencyHistogram, RecentHistogram } from '../../src/media/latency-histogram.js';

describe('RecentHistogram', () => {
  it('forgets a start-up spike after the window while the session histogram keeps it', () => {
    const recent = new RecentHistogram(10);
    const session = new LatencyHistogram();
    const t0 = 1_000_000_000_000;
    // 1 s of 50 frames at 1200 ms (a start-up backlog), then 20 s of healthy 8 ms frames.
    for (let i = 0; i < 50; i++) {
      recent.add(1200, t0 + i * 20);
      session.add(1200);
    }
    for (let i = 0; i < 1000; i++) {
      recent.add(8, t0 + 1000 + i * 20);
      session.add(8);
    }
    const now = t0 + 1000 + 999 * 20;
    expect(session.quantile(0.99)).toBeGreaterThan(1000);
    expect(recent.quantile(0.99, now)).toBeLessThanOrEqual(8);
    expect(recent.quantile(0.5, now)).toBeGreaterThan(7);
    // 10 one-second slots of 50 frames each.
    expect(recent.count(now)).toBe(500);
  });

  it('shows the spike while it is inside the window, and nothing once all samples are older', () => {
    const recent = new RecentHistogram(10);
    const t0 = 2_000_000_000_000;
    for (let i = 0; i < 100; i++) recent.add(i < 5 ? 900 : 10, t0 + i * 20);
    expect(recent.quantile(0.99, t0 + 2000)).toBeGreaterThan(800);
    expect(recent.quantile(0.5, t0 + 60_000)).toBeNull();
    expect(recent.count(t0 + 60_000)).toBe(0);
  });
});
