/**
 * (m) Earshot's own main-thread path, werift left out: bench/mainpath-child.ts
 * (RTP ingest → worker pool → recording + statistics, real Opus packets at
 * real-time pace) run for each K and pipeline, in a child process per run,
 * for this tree and, with `compare`, another one (e.g. a copy of the code
 * before a change), interleaved and repeated. Reports main-thread CPU per
 * frame and per stream, allocation per stream-second and GC pauses; with a
 * compared tree, this tree's figures as a ratio of the other's; and the pool's
 * worker threads' CPU per stream. `source` picks what the streams send (e.g.
 * `silence-dtx`: silent talkers sent with DTX). Without werift's cost and
 * noise in the way, small differences show.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { ROOT } from './capacity.js';

export interface MainpathRun {
  tree: string;
  streams: number;
  pipeline: string;
  round: number;
  mainCpuPct: number;
  /** The pool's worker threads together, % of one core (absent from trees before it was measured). */
  workersCpuPct?: number;
  /** Main-thread µs per 20 ms of media per stream (a frame, sent or withheld by DTX). */
  mainUsPerFrame: number;
  heapPerStreamSecond: number;
  externalPerStreamSecond: number;
  gcCount: number;
  gcPauseP99Ms: number;
  gcMs: number;
  frames: number;
  dropped: number;
}

export interface MainpathRow {
  tree: string;
  streams: number;
  pipeline: string;
  mainUsPerFrame: number;
  /** Main-thread CPU per stream, % of one core. */
  mainPerStreamPct: number;
  /** The workers' CPU per stream, % of one core. */
  workersPerStreamPct: number;
  allocKBPerStreamSecond: number;
  gcPauseP99Ms: number;
  /** This row's main µs per frame over the compared tree's (same K and pipeline). */
  ratio: number | null;
  allocRatio: number | null;
  rounds: number;
}

function runChild(root: string, k: number, pipeline: string, seconds: number, source: string): Promise<Omit<MainpathRun, 'tree' | 'round'>> {
  return new Promise((resolveRun, reject) => {
    // `--source` only when not the default: a compared tree from before it knows no such option.
    const sourceArgs = source === 'speech' ? [] : ['--source', source];
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench', 'mainpath-child.ts'), '--streams', String(k), '--seconds', String(seconds), '--pipeline', pipeline, ...sourceArgs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolveRun(JSON.parse(line));
      } catch {
        reject(new Error(`mainpath child (${root}, K=${k}, ${pipeline}) exited ${code}: ${out.slice(0, 200)}`));
      }
    });
  });
}

const median = (v: number[]) => {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function benchMainpath(options: { steps?: number[]; seconds?: number; repeat?: number; compare?: string; compareLabel?: string; source?: string; log?: (l: string) => void } = {}): Promise<{ runs: MainpathRun[]; rows: MainpathRow[] }> {
  const log = options.log ?? console.log;
  const steps = options.steps ?? [10, 20, 40];
  const seconds = options.seconds ?? 6;
  const repeat = options.repeat ?? 2;
  const source = options.source ?? 'speech';
  const trees: Array<[string, string]> = [['earshot', ROOT]];
  const label = options.compareLabel ?? 'before';
  if (options.compare) trees.push([label, resolve(options.compare)]);
  log(`\n(m) Earshot's main-thread path without werift (ingest → pool → WAV + stats), ${source}, ${seconds} s windows, ${repeat} round${repeat > 1 ? 's' : ''}, trees: ${trees.map(([n]) => n).join(', ')}`);
  log('  tree'.padEnd(12) + 'pipeline'.padEnd(11) + 'K'.padStart(4) + 'main µs/frame'.padStart(15) + 'main %/stream'.padStart(15) + 'workers %/str'.padStart(15) + 'heap KB/str·s'.padStart(15) + 'AB KB/str·s'.padStart(13) + 'GCs'.padStart(5) + 'GC p99 ms'.padStart(11) + 'dropped'.padStart(9));
  const runs: MainpathRun[] = [];
  for (let round = 1; round <= repeat; round++) {
    for (const k of steps) {
      for (const pipeline of ['default', 'nodenoise']) {
        const order = round % 2 === 1 ? trees : [...trees].reverse();
        for (const [tree, root] of order) {
          const r: MainpathRun = { tree, round, ...(await runChild(root, k, pipeline, seconds, source)) };
          runs.push(r);
          log(
            `  ${tree}`.padEnd(12) +
              pipeline.padEnd(11) +
              String(k).padStart(4) +
              r.mainUsPerFrame.toFixed(1).padStart(15) +
              (r.mainCpuPct / k).toFixed(3).padStart(15) +
              (r.workersCpuPct === undefined ? '–' : (r.workersCpuPct / k).toFixed(3)).padStart(15) +
              (r.heapPerStreamSecond / 1024).toFixed(1).padStart(15) +
              (r.externalPerStreamSecond / 1024).toFixed(1).padStart(13) +
              String(r.gcCount).padStart(5) +
              r.gcPauseP99Ms.toFixed(1).padStart(11) +
              String(r.dropped).padStart(9),
          );
        }
      }
    }
  }
  const rows: MainpathRow[] = [];
  for (const k of steps) {
    for (const pipeline of ['default', 'nodenoise']) {
      const of = (tree: string) => runs.filter((r) => r.tree === tree && r.streams === k && r.pipeline === pipeline);
      const base = options.compare ? of(label) : [];
      const baseUs = median(base.map((r) => r.mainUsPerFrame));
      const baseAlloc = median(base.map((r) => r.heapPerStreamSecond + r.externalPerStreamSecond));
      for (const [tree] of trees) {
        const mine = of(tree);
        const us = median(mine.map((r) => r.mainUsPerFrame));
        const alloc = median(mine.map((r) => r.heapPerStreamSecond + r.externalPerStreamSecond));
        rows.push({
          tree,
          streams: k,
          pipeline,
          mainUsPerFrame: us,
          mainPerStreamPct: median(mine.map((r) => r.mainCpuPct / k)),
          workersPerStreamPct: median(mine.map((r) => (r.workersCpuPct ?? NaN) / k)),
          allocKBPerStreamSecond: alloc / 1024,
          gcPauseP99Ms: median(mine.map((r) => r.gcPauseP99Ms)),
          ratio: options.compare && tree !== label ? us / baseUs : null,
          allocRatio: options.compare && tree !== label ? alloc / baseAlloc : null,
          rounds: mine.length,
        });
      }
    }
  }
  log('\n  medians' + (options.compare ? ` (ratio = earshot ÷ ${label})` : ''));
  log('  tree'.padEnd(12) + 'pipeline'.padEnd(11) + 'K'.padStart(4) + 'main µs/frame'.padStart(15) + 'main %/stream'.padStart(15) + 'workers %/str'.padStart(15) + 'alloc KB/str·s'.padStart(16) + 'GC p99 ms'.padStart(11) + 'µs ratio'.padStart(10) + 'alloc ratio'.padStart(13));
  const f = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? '–' : v.toFixed(d));
  for (const r of rows) {
    log(`  ${r.tree}`.padEnd(12) + r.pipeline.padEnd(11) + String(r.streams).padStart(4) + f(r.mainUsPerFrame, 1).padStart(15) + f(r.mainPerStreamPct, 3).padStart(15) + f(r.workersPerStreamPct, 3).padStart(15) + f(r.allocKBPerStreamSecond, 1).padStart(16) + f(r.gcPauseP99Ms, 1).padStart(11) + f(r.ratio, 2).padStart(10) + f(r.allocRatio, 2).padStart(13));
  }
  return { runs, rows };
}
