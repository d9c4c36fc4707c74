/**
 * The capacity figures as an SVG chart, written by hand (no dependency): CPU
 * per stream against K on the left, p99 against K on the right (earshot's
 * frame latency, RTP arrival → sinks, solid; every target's main-thread
 * event-loop delay p99, dashed), one line per target, labelled with the machine.
 */
import type { CapacitySummaryRow, Machine, TargetName } from './capacity.js';

const COLORS: Record<string, string> = {
  earshot: '#d62728',
  'earshot-nodenoise': '#ff7f0e',
  before: '#9467bd',
  'before-nodenoise': '#c5b0d5',
  'werift+wav': '#1f77b4',
  werift: '#2ca02c',
};
const SPARE = ['#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79'];

function colorOf(target: string, index: number): string {
  return COLORS[target] ?? SPARE[index % SPARE.length];
}

interface Series {
  label: string;
  color: string;
  dashed?: boolean;
  points: Array<[number, number]>;
}

const W = 460;
const H = 300;
const PAD = { left: 56, right: 16, top: 34, bottom: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A "nice" upper bound and tick step for 0..max. */
function ticks(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step, step };
}

function panel(x0: number, title: string, yLabel: string, series: Series[], ks: number[], log = false): string {
  const all = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => Number.isFinite(v) && (!log || v > 0));
  const { top, step } = ticks(Math.max(0, ...all) * 1.05);
  // Log scale: decades from 1 to the one above the largest value.
  const decades = log ? Math.max(1, Math.ceil(Math.log10(Math.max(1, ...all) * 1.05))) : 0;
  const kMin = Math.min(...ks);
  const kMax = Math.max(...ks);
  const pw = W - PAD.left - PAD.right;
  const ph = H - PAD.top - PAD.bottom;
  const x = (k: number) => x0 + PAD.left + (kMax === kMin ? pw / 2 : ((k - kMin) / (kMax - kMin)) * pw);
  const y = log ? (v: number) => PAD.top + ph - (Math.log10(Math.max(1, v)) / decades) * ph : (v: number) => PAD.top + ph - (v / top) * ph;
  const out: string[] = [];
  out.push(`<text x="${x0 + W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  const gridValues = log ? Array.from({ length: decades + 1 }, (_, i) => 10 ** i) : Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  for (const v of gridValues) {
    out.push(`<line x1="${x0 + PAD.left}" x2="${x0 + W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x0 + PAD.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${+v.toFixed(3)}</text>`);
  }
  for (const k of ks) out.push(`<text x="${x(k).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${k}</text>`);
  const base = log ? y(1) : y(0);
  out.push(`<line x1="${x0 + PAD.left}" x2="${x0 + W - PAD.right}" y1="${base}" y2="${base}" stroke="#333"/>`);
  out.push(`<line x1="${x0 + PAD.left}" x2="${x0 + PAD.left}" y1="${PAD.top}" y2="${base}" stroke="#333"/>`);
  out.push(`<text x="${x0 + PAD.left + pw / 2}" y="${H - 8}" text-anchor="middle">K (concurrent streams)</text>`);
  out.push(`<text transform="translate(${x0 + 14},${PAD.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (pts.length === 0) continue;
    const d = pts.map(([k, v], i) => `${i ? 'L' : 'M'}${x(k).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`);
    for (const [k, v] of pts) out.push(`<circle cx="${x(k).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.label}, K=${k}: ${v.toFixed(3)}`)}</title></circle>`);
  }
  return out.join('\n');
}

export function capacitySvg(rows: CapacitySummaryRow[], m: Machine): string {
  const ks = [...new Set(rows.map((r) => r.streams))].sort((a, b) => a - b);
  const targets = [...new Set(rows.map((r) => r.target))];
  const byTarget = (t: TargetName, f: (r: CapacitySummaryRow) => number | undefined) =>
    ks.map((k) => [k, f(rows.find((r) => r.target === t && r.streams === k)!) ?? NaN] as [number, number]).filter(([k]) => rows.some((r) => r.target === t && r.streams === k));
  const color = (t: string) => colorOf(t, targets.indexOf(t));
  const cpu: Series[] = targets.map((t) => ({ label: t, color: color(t), points: byTarget(t, (r) => r.cpuPerStreamPct) }));
  const p99: Series[] = [
    ...targets.filter((t) => rows.some((r) => r.target === t && r.latencyP99Ms !== undefined)).map((t) => ({ label: `${t} frame latency`, color: color(t), points: byTarget(t, (r) => r.latencyP99Ms) })),
    ...targets.map((t) => ({ label: `${t} event-loop delay`, color: color(t), dashed: true, points: byTarget(t, (r) => r.eventLoopDelayP99Ms) })),
  ];
  const legendY = H + 10;
  const legend = targets
    .map((t, i) => {
      const x = 20 + (i % 2) * W;
      const y = legendY + Math.floor(i / 2) * 18;
      const ratio = rows.filter((r) => r.target === t && r.ratio !== null).map((r) => `${r.ratio!.toFixed(2)}×`).join(' / ');
      return `<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${color(t)}" stroke-width="2"/><text x="${x + 30}" y="${y + 4}">${esc(t)}${ratio && t !== 'werift+wav' ? ` (${ratio} werift+wav)` : ''}</text>`;
    })
    .join('\n');
  const rowsOfLegend = Math.ceil(targets.length / 2);
  const height = legendY + rowsOfLegend * 18 + 30;
  const note = `${m.cores} cores, ${m.cpuModel}, Node ${m.node}, ${m.date}. p99 panel: solid = earshot frame latency (RTP arrival → sinks), dashed = main-thread event-loop delay.`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${height}" viewBox="0 0 ${2 * W} ${height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
${panel(0, 'CPU per stream (% of one core)', '% of one core per stream', cpu, ks)}
${panel(W, 'p99 (ms, log scale)', 'ms', p99, ks, true)}
${legend}
<text x="20" y="${height - 10}" fill="#555">${esc(note)}</text>
</svg>
`;
}
