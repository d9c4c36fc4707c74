/**
 * docs/performance.svg, drawn from the figures `npm run bench` printed on the
 * 2-core reference machine (the same figures as the tables in
 * docs/performance.md). Plain SVG, no dependencies, deterministic: the test
 * next to this file fails when the committed chart differs, and
 * `npm run docs` (UPDATE_DOCS=1) rewrites it. Change the numbers here and in
 * docs/performance.md together.
 */

/** (a) Median µs per 20 ms frame, 48 kHz mono, one thread (2026-11-25 host). */
export const STAGE_COSTS: ReadonlyArray<readonly [label: string, micros: number]> = [
  ['decode → denoise → levels (default pipeline)', 435],
  ['RNNoise denoise', 382],
  ['Opus decode', 52],
  ['Speex resample 48→16 kHz (q6)', 20],
  ['gate', 7.0],
  ['downmix (stereo in)', 5.9],
  ['levels (RMS + peak)', 4.7],
  ['highpass (biquad)', 3.8],
  ['gain (SIMD WASM kernel)', 0.8],
];

/** (b) K concurrent streams, 2 worker threads, senders on the same 2 cores (2026-11-24 host): ranges over three runs. */
export const CAPACITY: ReadonlyArray<{ streams: number; p50: [number, number]; p99: [number, number] }> = [
  { streams: 10, p50: [4.1, 4.6], p99: [10.6, 22.3] },
  { streams: 20, p50: [4.0, 4.7], p99: [17.1, 23.6] },
  { streams: 40, p50: [6.2, 8.3], p99: [39, 44] },
  { streams: 60, p50: [33, 69], p99: [104, 179] },
];

const W = 760;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const n = (x: number) => (Math.round(x * 10) / 10).toString();

/** `4.0–4.7`, `39–44`: one decimal on both ends when either end has one, as the tables write them. */
export function rangeText([a, b]: readonly [number, number]): string {
  const decimals = Number.isInteger(a) && Number.isInteger(b) ? 0 : 1;
  return `${a.toFixed(decimals)}–${b.toFixed(decimals)}`;
}

function text(x: number, y: number, body: string, attrs = ''): string {
  const escaped = body.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return `<text x="${n(x)}" y="${n(y)}"${attrs ? ` ${attrs}` : ''}>${escaped}</text>`;
}

function stageCosts(top: number): { svg: string[]; height: number } {
  const out: string[] = [];
  const left = 300;
  const right = W - 70;
  const rowH = 24;
  const max = 450;
  const x = (v: number) => left + ((right - left) * v) / max;
  out.push(text(20, top + 20, '(a) Cost per 20 ms frame, one thread — median µs (lower is better)', 'font-size="15" font-weight="600"'));
  const y0 = top + 40;
  for (const tick of [0, 100, 200, 300, 400]) {
    out.push(`<line x1="${n(x(tick))}" y1="${y0}" x2="${n(x(tick))}" y2="${y0 + rowH * STAGE_COSTS.length}" stroke="#ddd"/>`);
    out.push(text(x(tick), y0 + rowH * STAGE_COSTS.length + 14, String(tick), 'font-size="11" fill="#666" text-anchor="middle"'));
  }
  STAGE_COSTS.forEach(([label, micros], i) => {
    const y = y0 + i * rowH;
    const colour = i === 0 ? '#1f4e79' : i === 1 ? '#2e75b6' : '#9dc3e6';
    out.push(text(left - 8, y + 16, label, 'font-size="12" text-anchor="end"'));
    out.push(`<rect x="${left}" y="${y + 4}" width="${n(Math.max(1, x(micros) - left))}" height="${rowH - 8}" fill="${colour}"/>`);
    out.push(text(x(micros) + 6, y + 16, `${micros < 10 ? micros.toFixed(1) : n(micros)} µs`, 'font-size="12"'));
  });
  const height = 40 + rowH * STAGE_COSTS.length + 24;
  return { svg: out, height };
}

function latency(top: number): { svg: string[]; height: number } {
  const out: string[] = [];
  const left = 90;
  const right = W - 200;
  const plotTop = top + 40;
  const plotH = 220;
  const lo = Math.log10(1);
  const hi = Math.log10(200);
  const y = (ms: number) => plotTop + plotH - ((Math.log10(ms) - lo) / (hi - lo)) * plotH;
  out.push(text(20, top + 20, '(b) Latency vs concurrent streams — 2 workers; the senders share the 2 cores', 'font-size="15" font-weight="600"'));
  for (const tick of [1, 2, 5, 10, 20, 50, 100, 200]) {
    out.push(`<line x1="${left}" y1="${n(y(tick))}" x2="${right}" y2="${n(y(tick))}" stroke="#ddd"/>`);
    out.push(text(left - 8, y(tick) + 4, `${tick} ms`, 'font-size="11" fill="#666" text-anchor="end"'));
  }
  out.push(`<line x1="${left}" y1="${n(y(20))}" x2="${right}" y2="${n(y(20))}" stroke="#c00000" stroke-dasharray="6 4"/>`);
  out.push(text(right + 8, y(20) + 4, 'p99 ≤ 20 ms target', 'font-size="12" fill="#c00000"'));
  const slot = (right - left) / CAPACITY.length;
  CAPACITY.forEach(({ streams, p50, p99 }, i) => {
    const cx = left + slot * (i + 0.5);
    for (const [range, dx, colour] of [[p50, -14, '#2e75b6'], [p99, 14, '#ed7d31']] as const) {
      const top = y(range[1]);
      const bottom = y(range[0]);
      out.push(`<rect x="${n(cx + dx - 10)}" y="${n(top)}" width="20" height="${n(Math.max(2, bottom - top))}" fill="${colour}"/>`);
      out.push(text(cx + dx, top - 5, rangeText(range), 'font-size="10" text-anchor="middle"'));
    }
    out.push(text(cx, plotTop + plotH + 18, `${streams} streams`, 'font-size="12" text-anchor="middle"'));
  });
  out.push(`<rect x="${right + 10}" y="${plotTop + 10}" width="14" height="14" fill="#2e75b6"/>`);
  out.push(text(right + 30, plotTop + 22, 'p50 (range of 3 runs)', 'font-size="12"'));
  out.push(`<rect x="${right + 10}" y="${plotTop + 32}" width="14" height="14" fill="#ed7d31"/>`);
  out.push(text(right + 30, plotTop + 44, 'p99 (range of 3 runs)', 'font-size="12"'));
  return { svg: out, height: 40 + plotH + 34 };
}

/** The chart, as committed in docs/performance.svg. */
export function performanceChartSvg(): string {
  const a = stageCosts(0);
  const b = latency(a.height + 10);
  const footer = a.height + 10 + b.height + 8;
  const height = footer + 22;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" ${FONT} role="img" aria-label="earshot benchmark figures: per-frame stage costs and latency against concurrent streams">`,
    `<rect width="${W}" height="${height}" fill="#fff"/>`,
    ...a.svg,
    ...b.svg,
    text(20, footer + 10, 'Figures printed by npm run bench on the 2-core reference machine: (a) 2026-11-25 host, (b) 2026-11-24 host.', 'font-size="11" fill="#666"'),
    '</svg>',
    '',
  ].join('\n');
}
