/**
 * One timer for many periodic checks: every registered task runs each period,
 * a task can remove itself while it runs without disturbing the others, and
 * the ticker starts again after it was emptied.
 */
import { describe, expect, it } from 'vitest';
import { SharedTicker } from '../../src/rtc/shared-ticker.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SharedTicker', () => {
  it('runs every registered task each period, lets a task remove itself mid-run, and stops when empty', async () => {
    const ticker = new SharedTicker(20);
    const runs = [0, 0, 0];
    const remove: Array<() => void> = [];
    remove[0] = ticker.add(() => runs[0]++);
    remove[1] = ticker.add(() => {
      runs[1]++;
      if (runs[1] === 2) remove[1](); // as a session that ends inside its own check
    });
    remove[2] = ticker.add(() => runs[2]++);
    for (const deadline = Date.now() + 5000; runs[0] < 4 && Date.now() < deadline; ) await sleep(5);
    expect(runs[0]).toBeGreaterThanOrEqual(4);
    // Removed during its second run: never ran again, and the task after it kept running.
    expect(runs[1]).toBe(2);
    expect(runs[2]).toBeGreaterThanOrEqual(runs[0] - 1);
    remove[0]();
    remove[2]();
    expect(ticker.size).toBe(0);
    // Emptied, its timer was stopped; registering again starts one again.
    let again = 0;
    const stop = ticker.add(() => again++);
    for (const deadline = Date.now() + 5000; again < 1 && Date.now() < deadline; ) await sleep(5);
    expect(again).toBeGreaterThanOrEqual(1);
    stop();
  });
});
