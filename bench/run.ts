/**
 * `npm run bench [-- options]`: figures and ratios, printed, never asserted
 * (timing belongs here, not in tests). `npm run bench -- --help` lists the
 * sections and options.
 */
import { availableParallelism } from 'node:os';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_TARGETS, benchCapacity, machine, OUTPUT_PIPELINES, resultsDir, SOURCES, targetProblem, type CapacityResult, type SourceName, type TargetName } from './capacity.js';
import { capacitySvg } from './chart.js';

const SECTIONS = {
  stages: '(a) single-thread cost of every worker stage per 20 ms frame',
  kernels: '(d) TS stage vs WASM kernel (biquad, gain)',
  hops: '(c) a 5-stage chain in one worker hop vs five',
  stats: '(e) main-thread cost of statistics for 100 streams',
  capacity: '(b) K live publishers against earshot and a bare werift receiver, CPU per stream as a ratio, allocation, GC; SVG chart in bench/results/',
  threads: 'the pool-size choice: earshot at K = 20, 40, 60 with 1 and 3 worker threads',
  dtx: 'talkers with DTX: a silent DTX stream against a speaking one (K = 20, 40), and talkers speaking half the time or less at K = 60, 100 (--steps sets both; not in the default run)',
  soak: '(s) K denoised streams for minutes (default 40 for 600 s) after a ladder of K/4, K/2, 3K/4: RSS flat or not, RSS per stream added, drops (not in the default run)',
  engines: 'one machine, every core: `serve --processes 1 --threads 2` against `--processes 2 --threads 1`, K rising until drops (not in the default run)',
  overload: '(o) about twice the sustainable load offered with admission on: admitted vs refused, drops and windowed p99 of the admitted, RSS before/after (not in the default run)',
  outputs: 'what each output costs per stream: Ogg Opus pass-through, 16 kHz WAV, 16 kHz Opus encoded in the worker (as for WHEP), 16 kHz s16 to a WebSocket server (websocket sink), against WAV + stats (not in the default run)',
  mainpath: "(m) earshot's own main-thread path without werift (ingest → pool → WAV + stats): main-thread CPU per frame, allocation, GC; the workers' CPU (--source: what the streams send)",
  profile: '(p) the server main thread at K = 30 by category: on the CPU with perf (if it can sample here), then a V8 CPU profile and a heap profile (not in the default run)',
  rnnoise: 'RNNoise builds compared (bench/rnnoise.ts; not in the default run)',
  handoff: '(h) CPU of one batch handed to a worker and back: a Piscina task against a bare MessagePort, as the pool lanes use (not in the default run)',
} as const;
type Section = keyof typeof SECTIONS;
const DEFAULT: Section[] = ['stages', 'kernels', 'hops', 'stats', 'mainpath', 'capacity', 'threads'];

const HELP = `Usage: npm run bench -- [options]

Sections (default: ${DEFAULT.join(', ')}):
${Object.entries(SECTIONS).map(([k, v]) => `  ${k.padEnd(10)} ${v}`).join('\n')}

Options:
  --only <a,b,…>      run only these sections (repeatable)
  --json              print the results as JSON on stdout (progress goes to stderr)
  --steps <k,k,…>     capacity steps K (default 10,20,40; env BENCH_STEPS); mainpath (default 10,20,40),
                      dtx, engines, outputs, threads: their steps
  --window <s>        capacity, mainpath, dtx, outputs, threads: steady window per step, seconds
                      (default 6); profile: seconds of each profile (default 8);
                      overload: seconds the offers last, refusals retried (default 30);
                      soak: seconds the streams run (default 600); engines: seconds per step (default 8)
  --settle <s>        capacity, dtx: seconds from the publishers' start to the window
                      (default 2.5 + 0.06 × K); longer for a light load's steady cost
  --repeat <n>        capacity, dtx, outputs: rounds over every K and target (default 1);
                      mainpath (default 2); engines (default 2); handoff: blocks per variant (default 8)
  --targets <a,b,…>   capacity targets (default ${ALL_TARGETS.join(',')})
  --compare <dir>     capacity, mainpath: also run another earshot tree (e.g. a
                      copy of the code before a change) as "before" / "before-nodenoise",
                      or as the targets that name it (e.g. before@talk-dtx);
                      profile: profile that tree instead
  --compare-label <s> name of the compared tree's targets (default "before")
  --compare-baselines also run the compared tree's baseline receivers
                      (e.g. a tree whose node_modules holds a patched werift)
  --streams <k>       profile: publishers (default 30); overload: publishers offered (default 80);
                      soak: streams (default 40)
  --step-seconds <s>  soak: seconds each ladder step holds before the soak (default 60)
  --pipeline <name>   profile: default | nodenoise | norecord (the default without its
                      recording) (default: default)
  --source <name>     profile, mainpath: what the publishers send: ${Object.keys(SOURCES).join(' | ')} (default: speech)
  --publishers <n>    capacity, dtx, outputs, threads: run the publishers in n child
                      processes, each sending its share (default 1: all in the
                      bench process, whose stalls send every stream's packets at once)
  --build             capacity, dtx, outputs, threads, overload, soak, profile: run the server
                      from dist/ (bin/earshot.js) instead of the sources (mainpath and engines
                      always run the sources)
  --trace             overload: print what admission measured once a second
  --admission <flags> overload: one more setting to run, as \`earshot serve\` flags (repeatable),
                      written with "=", e.g. --admission="--admission-max-process-cpu 75"
  --admission-only    overload: run only the --admission settings, not the three built in
  --server-cpus <l>   overload: confine the server to these CPUs (taskset -c list, e.g. 0) and
                      the publishers to the others, as a server with cores of its own; its
                      DSP threads then take the server's default (one per CPU it has)
  -h, --help          this text

Environment:
  BENCH_STEPS               the default of --steps
  BENCH_SERVER_NODE_FLAGS   Node flags for the server processes only (e.g. "--trace-gc")
  BENCH_HEAP_RETAINED=1     profile: the heap profile keeps only what is still alive when it stops
  EARSHOT_PARALLEL_SCAVENGE on | off: the servers' young-generation GC helper threads

Examples:
  npm run bench -- --only capacity
  npm run bench -- --only capacity --repeat 3 --compare /tmp/earshot-before
  npm run bench -- --only profile --streams 30
`;

/** A refusal of the command line: one line and exit 2, before anything runs (no stack trace). */
function refuse(message: string): never {
  process.stderr.write(`bench: ${message} (npm run bench -- --help)\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
  options: {
    only: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    steps: { type: 'string' },
    'step-seconds': { type: 'string' },
    window: { type: 'string' },
    settle: { type: 'string' },
    repeat: { type: 'string' },
    targets: { type: 'string' },
    compare: { type: 'string' },
    'compare-label': { type: 'string' },
    'compare-baselines': { type: 'boolean' },
    streams: { type: 'string' },
    pipeline: { type: 'string' },
    source: { type: 'string' },
    build: { type: 'boolean' },
    publishers: { type: 'string' },
    trace: { type: 'boolean' },
    'server-cpus': { type: 'string' },
    admission: { type: 'string', multiple: true },
    'admission-only': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  });
} catch (e) {
  refuse((e as Error).message);
}
const { values } = parsed;

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const only = (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
for (const s of only) {
  if (!(s in SECTIONS)) {
    refuse(`unknown section "${s}"; sections: ${Object.keys(SECTIONS).join(', ')}`);
  }
}
if (values.source !== undefined && !(values.source in SOURCES)) {
  refuse(`unknown --source "${values.source}"; sources: ${Object.keys(SOURCES).join(', ')}`);
}
const sections = new Set<Section>(only.length > 0 ? (only as Section[]) : DEFAULT);
const json = values.json === true;
// With --json, stdout carries only the JSON document.
const log = (line: string) => (json ? process.stderr.write(`${line}\n`) : process.stdout.write(`${line}\n`));
if (json) console.log = (...args: unknown[]) => process.stderr.write(`${args.join(' ')}\n`);

const num = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) refuse(`--${name} must be a positive number, got "${v}"`);
  return n;
};
const stepsArg = values.steps ?? process.env.BENCH_STEPS;
const steps = stepsArg ? stepsArg.split(',').map((s) => num(s, 'steps')!) : undefined;
const publishers = num(values.publishers, 'publishers');
if (publishers !== undefined && !Number.isInteger(publishers)) refuse(`--publishers must be a whole number of processes, got "${values.publishers}"`);
// Every value checked now, not when its section starts after others have run for minutes.
const window = num(values.window, 'window');
const settle = num(values.settle, 'settle');
const repeat = num(values.repeat, 'repeat');
const streams = num(values.streams, 'streams');
const stepSeconds = num(values['step-seconds'], 'step-seconds');
if (values.compare !== undefined && !existsSync(join(values.compare, 'package.json'))) refuse(`--compare ${values.compare}: no earshot tree there (no package.json)`);
const targets = values.targets?.split(',').map((s) => s.trim()) as TargetName[] | undefined;
if (targets) {
  const problem = targetProblem(targets, values.compare, values['compare-label']);
  if (problem) refuse(problem);
}
const profilePipelineName = sections.has('profile')
  ? await import('./profile.js').then(({ profilePipeline }) => {
      try {
        return profilePipeline(values.pipeline);
      } catch (e) {
        return refuse((e as Error).message);
      }
    })
  : undefined;
const results: Record<string, unknown> = { machine: machine() };

let defaultChainUs: number | undefined;
if (sections.has('stages')) {
  const { benchStages, printStages } = await import('./stages.js');
  const r = await benchStages();
  printStages(r);
  defaultChainUs = r.defaultChain;
  results.stages = r;
}
if (sections.has('kernels')) {
  const { benchKernels, printKernels } = await import('./kernels.js');
  const r = await benchKernels();
  printKernels(r);
  results.kernels = r;
}
if (sections.has('hops')) {
  const { benchHops, printHops } = await import('./hops.js');
  const r = await benchHops();
  printHops(r);
  results.hops = r;
}
if (sections.has('stats')) {
  const { benchStats, printStats } = await import('./stats.js');
  await benchStats({ seconds: 2 }); // warm-up
  const r = await benchStats();
  printStats(r);
  results.stats = r;
}
let capacity: CapacityResult | undefined;
if (sections.has('capacity')) {
  capacity = await benchCapacity({
    steps,
    window: window,
    settle: settle,
    repeat: repeat,
    targets,
    compare: values.compare,
    compareLabel: values['compare-label'],
    compareBaselines: values['compare-baselines'],
    build: values.build,
    publishers,
    log,
  });
  const svg = capacitySvg(capacity.summary, capacity.machine);
  // One pair of files per run, named by when it ran (UTC): runs never overwrite each other.
  const stem = join(resultsDir(), `capacity-${new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-')}`);
  writeFileSync(`${stem}.svg`, svg);
  writeFileSync(`${stem}.json`, `${JSON.stringify(capacity, null, 2)}\n`);
  log(`  chart: ${stem}.svg (figures: ${stem}.json)`);
  results.capacity = capacity;
}
if (sections.has('mainpath')) {
  const { benchMainpath } = await import('./mainpath.js');
  results.mainpath = await benchMainpath({ steps, seconds: window, repeat: repeat, compare: values.compare, compareLabel: values['compare-label'], source: values.source, log });
  const file = join(resultsDir(), `mainpath-${new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ machine: machine(), ...(results.mainpath as object) }, null, 2)}\n`);
  log(`  figures: ${file}`);
}
if (sections.has('threads')) {
  const runs: Record<string, CapacityResult> = {};
  for (const threads of [1, 3]) {
    log(`\nPool size: ${threads} worker thread${threads === 1 ? '' : 's'} (2 is the default above)`);
    runs[String(threads)] = await benchCapacity({ steps: steps ?? [20, 40, 60], window: window, threads, targets: ['earshot'], build: values.build, publishers, log });
  }
  results.threads = runs;
}
if (sections.has('outputs')) {
  log('\nOutputs: CPU per stream of each output next to the pipeline without stages (WAV + stats), same run');
  results.outputs = await benchCapacity({
    steps: steps ?? [20, 40],
    window: window,
    repeat: repeat,
    targets: ['earshot-nodenoise', ...Object.keys(OUTPUT_PIPELINES).map((p) => `earshot-${p}`), 'werift+wav'],
    build: values.build,
    publishers,
    log,
  });
}
if (sections.has('dtx')) {
  log('\nDTX: what a silent talker costs next to a speaking one, same run (default pipeline)');
  const silence = await benchCapacity({ steps: steps ?? [20, 40], window: window, settle: settle, repeat: repeat, targets: ['earshot', 'earshot@silence-dtx'], build: values.build, publishers, log });
  for (const k of [...new Set(silence.summary.map((r) => r.streams))]) {
    const speaking = silence.summary.find((r) => r.streams === k && r.target === 'earshot');
    const silent = silence.summary.find((r) => r.streams === k && r.target === 'earshot@silence-dtx');
    if (speaking && silent) log(`  K = ${k}: a silent DTX stream costs ${(silent.cpuPerStreamPct / speaking.cpuPerStreamPct).toFixed(3)} of a speaking one (${silent.cpuPerStreamPct.toFixed(3)} vs ${speaking.cpuPerStreamPct.toFixed(2)} % of a core; whole process, idle overhead included)`);
  }
  log('\nDTX: talkers speaking half the time or less, sent with DTX, against werift+wav receiving the same');
  const talk = await benchCapacity({ steps: steps ?? [60, 100], window: window, repeat: repeat, targets: ['earshot@talk-dtx', 'werift+wav@talk-dtx'], build: values.build, publishers, log });
  results.dtx = { silence, talk };
}
if (sections.has('soak')) {
  const { benchSoak } = await import('./soak.js');
  results.soak = await benchSoak({ streams: streams, seconds: window, stepSeconds: stepSeconds, build: values.build, log });
}
if (sections.has('engines')) {
  const { benchEngines } = await import('./engines.js');
  results.engines = await benchEngines({ steps, rounds: repeat, seconds: window });
}
if (sections.has('overload')) {
  const { benchOverload } = await import('./overload.js');
  const runs: Record<string, unknown> = {};
  // The defaults (a latency limit of 20 ms), the latency limit a recording service might set
  // (100 ms, the default before 2026-12-07), and the machine's CPU as a limit with that.
  // --admission adds settings of its own: each is run after (or, with --admission-only, instead of) these.
  const configs: Array<[string, { maxLatencyMs?: number; maxMachineCpu?: number; serveArgs?: string[] }]> = values['admission-only']
    ? []
    : [
        ['defaults', {}],
        ['maxLatency100', { maxLatencyMs: 100 }],
        ['maxLatency100MachineCpu85', { maxLatencyMs: 100, maxMachineCpu: 85 }],
      ];
  for (const flags of values.admission ?? []) configs.push([flags, { serveArgs: flags.split(' ').filter(Boolean) }]);
  for (const [name, config] of configs) runs[name] = await benchOverload({ offered: streams, seconds: window, trace: values.trace, serverCpus: values['server-cpus'], build: values.build, ...config, log });
  results.overload = runs;
}
if (sections.has('profile')) {
  const { benchProfile } = await import('./profile.js');
  results.profile = await benchProfile({
    streams: streams,
    window: window,
    compare: values.compare,
    build: values.build,
    pipeline: profilePipelineName,
    source: values.source as SourceName | undefined,
    log,
  });
}
if (sections.has('rnnoise')) {
  const { benchRnnoise } = await import('./rnnoise.js');
  results.rnnoise = await benchRnnoise();
}
if (sections.has('handoff')) {
  const { benchHandoff } = await import('./handoff.js');
  results.handoff = await benchHandoff({ rounds: repeat, log });
}

if (defaultChainUs !== undefined && capacity) {
  const threads = 2;
  const limit = Math.floor((threads * 20000) / defaultChainUs);
  const earshot = capacity.steps.filter((s) => s.target === 'earshot');
  const sustained = earshot.filter((s) => s.ok).pop();
  log('\nSummary');
  log(`  cores: ${availableParallelism()}, worker threads: ${threads}`);
  log(`  DSP limit from (a): ${threads} threads × 20000 µs / ${defaultChainUs.toFixed(0)} µs = ${limit} streams`);
  if (sustained) log(`  largest K with p99 ≤ 20 ms and no drops: ${sustained.streams} (${(sustained.streams / limit).toFixed(2)} of the DSP limit)`);
  else log('  no step sustained p99 ≤ 20 ms without drops');
  results.summary = { cores: availableParallelism(), workerThreads: threads, dspLimitStreams: limit, sustainedStreams: sustained?.streams ?? null };
}

if (json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
