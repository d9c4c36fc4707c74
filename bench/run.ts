/**
 * `npm run bench`: stage costs (a), TS vs. WASM kernels (d), one hop vs. five
 * hops (c), then server capacity (b), and the ratio of
 * sustained streams to the limit the stage costs predict for the worker threads.
 * Figures are printed, never asserted: timing belongs here, not in tests.
 */
import { availableParallelism } from 'node:os';
import { benchCapacity, printStepHeader } from './capacity.js';
import { benchHops, printHops } from './hops.js';
import { benchKernels, printKernels } from './kernels.js';
import { benchStages, printStages } from './stages.js';
import { benchStats, printStats } from './stats.js';

const stages = await benchStages();
printStages(stages);
printKernels(await benchKernels());
printHops(await benchHops());
await benchStats({ seconds: 2 }); // warm-up
printStats(await benchStats());

const stepsOverride = process.env.BENCH_STEPS ? { steps: process.env.BENCH_STEPS.split(',').map(Number) } : {};
printStepHeader();
const steps = await benchCapacity(stepsOverride);

// The pool-size choice: the same load with 1 and 3 worker threads (2 is the default above).
for (const threads of [1, 3]) {
  printStepHeader(threads);
  await benchCapacity({ steps: [20, 40, 60], threads, ...stepsOverride });
}
const sustained = steps.filter((s) => s.ok).pop();
const noDrops = steps.filter((s) => s.noDrops).pop();
const threads = 2;
const limit = Math.floor((threads * 20000) / stages.defaultChain);
console.log('\nSummary');
console.log(`  cores: ${availableParallelism()}, worker threads: ${threads}`);
console.log(`  DSP limit from (a): ${threads} threads × 20000 µs / ${stages.defaultChain.toFixed(0)} µs = ${limit} streams`);
if (sustained) {
  console.log(`  sustained: ${sustained.streams} streams (p50 ${sustained.latencyP50Ms.toFixed(1)} ms, p99 ${sustained.latencyP99Ms.toFixed(1)} ms, worst p99 ${sustained.latencyP99WorstMs.toFixed(1)} ms)`);
  console.log(`  server CPU per stream: ${sustained.cpuPerStreamPct.toFixed(2)} % of a core; RSS per stream: ${sustained.rssPerStreamMiB.toFixed(2)} MiB`);
  console.log(`  sustained / DSP limit: ${(sustained.streams / limit).toFixed(2)}`);
} else {
  console.log('  sustained within p99 ≤ 20 ms: none of the steps');
}
if (noDrops) {
  console.log(`  without drops (latency aside): ${noDrops.streams} streams (steady p99 ${noDrops.latencyP99Ms.toFixed(1)} ms, workers ${(noDrops.workerUtilization * 100).toFixed(0)} % busy, server CPU ${noDrops.serverCpuPct.toFixed(0)} %)`);
  console.log(`  without drops / DSP limit: ${(noDrops.streams / limit).toFixed(2)}`);
}
