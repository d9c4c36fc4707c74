/**
 * docs/performance.svg is drawn from the benchmark figures in
 * performance-chart.ts; this test fails when the committed chart is stale
 * (`npm run docs` rewrites it: UPDATE_DOCS=1).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { CAPACITY, performanceChartSvg, rangeText, STAGE_COSTS } from './performance-chart.js';

const CHART = new URL('../../docs/performance.svg', import.meta.url);
const DOC = new URL('../../docs/performance.md', import.meta.url);

describe('docs/performance.svg', () => {
  it('is the chart generated from the benchmark figures', async () => {
    const generated = performanceChartSvg();
    const current = await readFile(CHART, 'utf8').catch(() => '');
    if (process.env.UPDATE_DOCS && current !== generated) {
      await writeFile(CHART, generated);
      return;
    }
    expect(current).toBe(generated);
  });

  it('shows the figures docs/performance.md states', async () => {
    const doc = await readFile(DOC, 'utf8');
    expect(doc).toContain('](performance.svg)');
    for (const [, micros] of STAGE_COSTS) expect(doc, `${micros} µs`).toContain(String(micros));
    for (const { p50, p99 } of CAPACITY) {
      for (const range of [p50, p99]) expect(doc).toContain(rangeText(range));
    }
  });
});
