/**
 * On-CPU samples of one thread with Linux `perf`, for the profile section.
 *
 * V8's CPU profiler samples on wall time: a thread that wakes another (a
 * `postMessage` to a worker, a file write handed to libuv) and is then
 * preempted keeps collecting samples where it stopped, so hand-overs read
 * several times their cost on a busy 2-core machine. `perf record -t`
 * samples only while the thread is on a CPU, kernel time included (the
 * system calls a wake makes). A server started with `--perf-basic-prof`
 * writes `/tmp/perf-<pid>.map`, which names its JIT-compiled JavaScript
 * functions with their script URL, so each sample's stack can be charged to
 * the JavaScript that led to it.
 *
 * Needs `perf` (Debian: `linux-perf`) and permission to sample another
 * process (root, or `kernel.perf_event_paranoid` ≤ 1); `perfUnavailable`
 * says why not otherwise, and the section goes on without it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Why on-CPU sampling cannot run here, or undefined if it can. */
export function perfUnavailable(): string | undefined {
  const version = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) return '`perf` is not installed (Debian: apt-get install linux-perf)';
  let paranoid = 2;
  try {
    paranoid = Number(readFileSync('/proc/sys/kernel/perf_event_paranoid', 'utf8').trim());
  } catch {
    return 'this kernel has no perf events (/proc/sys/kernel/perf_event_paranoid is missing)';
  }
  const root = process.getuid?.() === 0;
  if (!root && paranoid > 1) return `kernel.perf_event_paranoid is ${paranoid}: sampling another process needs ≤ 1, or root`;
  return undefined;
}

/** One sample: its stack, innermost frame first (symbol names; JavaScript ones as `--perf-basic-prof` names them). */
export type PerfStack = string[];

/**
 * Samples thread `tid` on the CPU for `seconds` at `hz` into a file in `dir`,
 * and returns its path for `readStacks` (which may run later, once the load
 * being measured is over: reading the samples takes CPU of its own).
 */
export async function recordThread(tid: number, seconds: number, dir: string, hz = 999): Promise<string> {
  const data = join(dir, `perf-${tid}-${Date.now()}.data`);
  await new Promise<void>((resolve, reject) => {
    const rec = spawn('perf', ['record', '-q', '-F', String(hz), '-g', '-t', String(tid), '-o', data, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    rec.stderr.on('data', (d: Buffer) => (err += d.toString()));
    rec.on('error', reject);
    rec.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`perf record exited with ${code}: ${err.trim()}`))));
  });
  return data;
}

/** The stacks `recordThread` wrote to `data`, innermost frame first; the file is removed. */
export function readStacks(data: string): PerfStack[] {
  try {
    // `-F sym` alone prints no call chains: each frame comes as "<address> <symbol>".
    const script = spawnSync('perf', ['script', '-i', data, '-F', 'ip,sym'], { encoding: 'utf8', maxBuffer: 512 * 2 ** 20 });
    if (script.status !== 0) throw new Error(`perf script exited with ${script.status}: ${script.stderr.trim()}`);
    return parsePerfScript(script.stdout);
  } finally {
    rmSync(data, { force: true });
  }
}

/** Stacks from `perf script -F ip,sym` output: one "<address> <symbol>" frame per line, samples separated by blank lines. */
export function parsePerfScript(text: string): PerfStack[] {
  const stacks: PerfStack[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const frames = block
      .split('\n')
      .map((l) => l.trim().replace(/^[0-9a-f]+\s+/, ''))
      .filter(Boolean);
    if (frames.length > 0) stacks.push(frames);
  }
  return stacks;
}

/**
 * A JavaScript frame as `--perf-basic-prof` names it (`JS:*#flushSlot
 * file:///…/worker-pool.js:606:15`; `LazyCompile:` and the like in older
 * V8s; `*` optimized, `~` interpreted, `^` baseline): its function name and
 * script URL without line and column. Undefined for native frames.
 */
export function jsFrame(frame: string): { name: string; url: string } | undefined {
  const m = /^(?:JS|LazyCompile|Function|Script|InterpretedFunction):[*~^]?(.*?)\s*((?:file|node):\S+?)(?::\d+)*$/.exec(frame);
  return m ? { name: m[1] || '(anonymous)', url: m[2] } : undefined;
}
