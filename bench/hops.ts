/**
 * (c) Worker hops: a 5-stage chain (highpass → gain → gate → normalize →
 * limiter, 48 kHz mono) run as `inWorkers(a, b, c, d, e)` — one hop — against
 * `inWorkers(a), inWorkers(b), …` — five hops — for the same streams and
 * frames. Frames are fed faster than real time (one 20 ms frame per stream per
 * millisecond) so the figures show cost, not pacing. Reports wall time, pool
 * tasks, worker busy time per frame, and main-thread event-loop utilization.
 *
 * Run alone: `node --import tsx bench/hops.ts`.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Observable, lastValueFrom, merge, count } from 'rxjs';
import { WorkerPool } from '../src/pool/worker-pool.js';
import { inWorkers, stage, type AudioFrame, type StageOperator } from '../src/pipeline/operators.js';

export interface HopsResult {
  streams: number;
  framesPerStream: number;
  oneHop: HopFigures;
  fiveHops: HopFigures;
}

export interface HopFigures {
  wallMs: number;
  framesOut: number;
  tasks: number;
  /** Worker busy time per input frame (all hops), µs. */
  workerUsPerFrame: number;
  /** Main-thread event-loop utilization during the run, 0..1. */
  mainElu: number;
}

const STAGES = (): StageOperator[] => [
  stage('highpass', { frequency: 80 }),
  stage('gain', { db: 6 }),
  stage('gate', { thresholdDb: -50 }),
  stage('normalize'),
  stage('limiter', { ceilingDb: -1 }),
];

/** `framesPerStream` 20 ms frames of a 440 Hz tone, one per millisecond. */
function source(framesPerStream: number): Observable<AudioFrame> {
  return new Observable<AudioFrame>((subscriber) => {
    let i = 0;
    const timer = setInterval(() => {
      const data = new Float32Array(960);
      for (let n = 0; n < 960; n++) data[n] = 0.3 * Math.sin((2 * Math.PI * 440 * (i * 960 + n)) / 48000);
      subscriber.next({ position: i * 960, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data, rms: 0, peak: 0, arrival: performance.now() } as AudioFrame);
      if (++i === framesPerStream) {
        clearInterval(timer);
        subscriber.complete();
      }
    }, 1);
    return () => clearInterval(timer);
  });
}

async function run(streams: number, framesPerStream: number, fused: boolean): Promise<HopFigures> {
  const pool = new WorkerPool({ threads: 2, maxQueuedFrames: 10_000 });
  await pool.start();
  const ops = STAGES();
  const before = pool.stats();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const outputs = Array.from({ length: streams }, () => {
    const s = source(framesPerStream);
    return fused ? s.pipe(inWorkers({ pool }, ...ops)) : ops.reduce((acc, op) => acc.pipe(inWorkers({ pool }, op)), s);
  });
  const framesOut = await lastValueFrom(merge(...outputs).pipe(count()));
  const wallMs = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  const after = pool.stats();
  await pool.close();
  return {
    wallMs,
    framesOut,
    tasks: after.tasksCompleted - before.tasksCompleted,
    workerUsPerFrame: ((after.busyMs - before.busyMs) * 1000) / (streams * framesPerStream),
    mainElu: elu.utilization,
  };
}

export async function benchHops(options: { streams?: number; framesPerStream?: number } = {}): Promise<HopsResult> {
  const streams = options.streams ?? 20;
  const framesPerStream = options.framesPerStream ?? 500;
  await run(2, 50, true); // warm-up (JIT in both threads)
  const oneHop = await run(streams, framesPerStream, true);
  const fiveHops = await run(streams, framesPerStream, false);
  return { streams, framesPerStream, oneHop, fiveHops };
}

export function printHops(r: HopsResult): void {
  console.log(`\n(c) 5-stage chain (highpass, gain, gate, normalize, limiter): one hop vs five hops, ${r.streams} streams × ${r.framesPerStream} frames, 2 workers`);
  console.log('  '.padEnd(14) + 'wall ms'.padStart(10) + 'frames out'.padStart(12) + 'tasks'.padStart(8) + 'worker µs/frame'.padStart(17) + 'main ELU'.padStart(10));
  for (const [name, f] of [['one hop', r.oneHop], ['five hops', r.fiveHops]] as const) {
    console.log(`  ${name}`.padEnd(14) + f.wallMs.toFixed(0).padStart(10) + String(f.framesOut).padStart(12) + String(f.tasks).padStart(8) + f.workerUsPerFrame.toFixed(1).padStart(17) + f.mainElu.toFixed(2).padStart(10));
  }
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');
  console.log(`  five / one: worker time ×${ratio(r.fiveHops.workerUsPerFrame, r.oneHop.workerUsPerFrame)}, tasks ×${ratio(r.fiveHops.tasks, r.oneHop.tasks)}, main-thread ELU ×${ratio(r.fiveHops.mainElu, r.oneHop.mainElu)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) printHops(await benchHops());
