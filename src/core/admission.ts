/**
 * Admission by measured load. `maxSessions` is a count; what runs out is CPU:
 * the DSP workers, or the main thread that runs werift. Frames are only
 * dropped after a 2 s backlog, so drops report overload far too late; this
 * admits a new session only while the recent load leaves room, so the streams
 * already admitted keep their latency.
 *
 * Every `sampleMs` it reads, over the last sample: the workers' busy share
 * (task time ÷ wall time ÷ threads), frames waiting for a worker per stream,
 * the main thread's event-loop utilization, the process's CPU time over the
 * CPUs it may use; and, over the last
 * `latencyWindowMs`, the frame latency p99 (RTP in → frame at the sinks). A
 * POST is decided synchronously from the last sample (no race between
 * concurrent POSTs), plus the cost of the sessions admitted
 * since that sample or too recently to show in it, each counted at the
 * measured cost of an average stream. With no stream running, every new
 * session is admitted: there is nothing to protect yet.
 */
import { cpus } from 'node:os';
import { cpuBudget } from '../pool/cpu-quota.js';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { quantileOf, type LatencyHistogram } from '../media/latency-histogram.js';
import type { WorkerPool } from '../pool/worker-pool.js';
import { errors } from '../errors.js';
import { checkOptionNames, describeValue } from './option-checks.js';

export interface AdmissionOptions {
  /** Refuse new sessions while the workers are busier than this share of their time (0–1). Default 0.85. */
  maxWorkerUtilization?: number;
  /** Refuse while the main thread's event loop is busier than this share (0–1). Default 0.85. */
  maxEventLoopUtilization?: number;
  /**
   * Refuse while this process's CPU time, all its threads together (the main
   * thread, the DSP workers, GC and file I/O threads), exceeds this share of
   * the CPUs it may run on (`availableParallelism()`: the machine's, or the
   * ones its CPU affinity allows; a container's CPU limit where that is
   * lower). The workers' limit judges each DSP thread alone, but they share
   * the cores with the main thread: with one DSP thread per core, workers 85 % busy and a main thread 20 % busy are more than the
   * cores have, and a DSP thread then waits for a core in the middle of its
   * batch. Default 0.75: on a core of its own, twice the sustainable load
   * offered, it kept every admitted stream's p99 under 20 ms where 0.85 let it
   * reach 24–82 ms (docs/performance.md, "Overload"). (With `--processes`, each
   * engine is judged against all the machine's CPUs, so this limit rarely
   * applies there.)
   */
  maxProcessUtilization?: number;
  /**
   * Refuse while the machine's CPUs, all processes together, are busier than
   * this share (0–1; time at nice > 0 counts as idle: it yields to earshot).
   * What else runs on the machine (publishers, other services) takes the CPU
   * earshot's own measurements do not see, and latency explodes once the
   * machine is saturated. Default 1: left out, since on a shared host (a
   * Kubernetes node, a machine running other services) the machine's load is
   * not earshot's to judge; set it (e.g. 0.85) where earshot should have the
   * machine to itself.
   */
  maxMachineUtilization?: number;
  /** Refuse while frames wait for a worker beyond this many per stream on average (20 ms each). Default 5. */
  maxQueuedFramesPerStream?: number;
  /**
   * Refuse while the recent p99 frame latency (RTP in → frame at the sinks; a frame that waited in the
   * reorder buffer for a lost or late packet counts from the end of that wait) exceeds this, ms,
   * and earshot is loaded (`latencyMinLoad`). Default 20: the latency a live voice needs, and the
   * one that kept admitted streams' p99 at 20 ms with twice the sustainable load offered when the
   * publishers share the server's cores, where no CPU signal of earshot's own sees their load
   * (docs/performance.md, "Overload"). A service that wants every stream it can carry and
   * tolerates more latency (recording) sets 100 or more.
   */
  maxLatencyMs?: number;
  /**
   * The latency limit (`maxLatencyMs`, and admitting one at a time past
   * `cautionLatencyShare` of it) applies only while earshot is at least
   * this loaded (0–1): its workers' busy share or its CPU share
   * (`maxProcessUtilization`'s reading), whichever is higher. Below it, a
   * p99 past the limit comes from a stall (a GC pause, a neighbour's burst on
   * a shared host, one lossy stream), not from the streams earshot carries,
   * and refusing sessions would not bring it down. Default 0.25; 0 applies the
   * limit at any load (a host with many cores, whose neighbours' load is what
   * the latency shows while earshot's own stays light).
   */
  latencyMinLoad?: number;
  /**
   * The latency p99 is taken over this recent window, ms (the other signals
   * over the last `sampleMs`). Half a second of frames misses the spikes that
   * a listener, and the 10 s p99 of the statistics, see. Default 5000.
   */
  latencyWindowMs?: number;
  /**
   * Above this share of `maxLatencyMs`, sessions are admitted one at a time: a
   * new one only once every session admitted before it has settled (`settleMs`)
   * and its load shows. Latency climbs steeply near saturation and shows a new
   * stream's cost only seconds after it was admitted, so admitting a burst at
   * the rate clients arrive overshoots the limit. Default 0.6; 1 turns it off.
   */
  cautionLatencyShare?: number;
  /** How often the load is measured, ms. Default 500. */
  sampleMs?: number;
  /** A new session counts as not yet measured for this long, ms (it connects, then its frames show up). Default 3000. */
  settleMs?: number;
  /**
   * Share of a worker thread one stream is assumed to cost before any stream has
   * been measured. Default 0.03 (a denoised stream on the reference machine).
   */
  initialStreamCost?: number;
}

export interface AdmissionState {
  /** False while any limit is exceeded: new sessions get 503. */
  ready: boolean;
  /** What is exceeded, for `/health` and the 503's detail. */
  reasons: string[];
  workerUtilization: number;
  eventLoopUtilization: number;
  /** Share of the machine's CPU time busy (all processes; niced time counts as idle). */
  machineUtilization: number;
  /** This process's CPU time (all threads) as a share of the CPUs it may run on. */
  processUtilization: number;
  queuedFramesPerStream: number;
  latencyP99Ms: number | null;
  /** Sessions admitted recently enough that their cost is estimated, not measured. */
  unsettledSessions: number;
  /** Estimated share of one worker thread per stream. */
  streamCost: number;
  /** Estimated share of the machine's CPU per stream (this process's CPU ÷ cores ÷ streams); also what a session just admitted adds to `processUtilization`. */
  machineStreamCost: number;
}

interface Limits {
  maxWorkerUtilization: number;
  maxEventLoopUtilization: number;
  maxProcessUtilization: number;
  maxMachineUtilization: number;
  maxQueuedFramesPerStream: number;
  maxLatencyMs: number;
  latencyMinLoad: number;
  latencyWindowMs: number;
  cautionLatencyShare: number;
  sampleMs: number;
  settleMs: number;
  initialStreamCost: number;
}

/** Every admission option, for the check of its names. */
const ADMISSION_OPTIONS: Record<keyof AdmissionOptions, true> = {
  maxWorkerUtilization: true,
  maxEventLoopUtilization: true,
  maxProcessUtilization: true,
  maxMachineUtilization: true,
  maxQueuedFramesPerStream: true,
  maxLatencyMs: true,
  latencyMinLoad: true,
  latencyWindowMs: true,
  cautionLatencyShare: true,
  sampleMs: true,
  settleMs: true,
  initialStreamCost: true,
};

function share(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(typeof v === 'number' && v > 0 && v <= 1)) throw errors.OPTION_INVALID(`admission.${name}`, `must be a share above 0 and at most 1, got ${describeValue(v)}`);
  return v;
}

/** A share from 0 (none) to 1. */
function fraction(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(typeof v === 'number' && v >= 0 && v <= 1)) throw errors.OPTION_INVALID(`admission.${name}`, `must be a share from 0 to 1, got ${describeValue(v)}`);
  return v;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) throw errors.OPTION_INVALID(`admission.${name}`, `must be a positive number, got ${describeValue(v)}`);
  return v;
}

/** Checks `options.admission` (false, or admission options) without starting anything. */
export function checkAdmissionOptions(options: AdmissionOptions | false | undefined): void {
  if (options === false || options === undefined) return;
  if ((options as unknown) === true) throw errors.OPTION_INVALID('admission', 'must be false or an object of admission limits, got true (admission is on by default)');
  checkOptionNames('admission', options, ADMISSION_OPTIONS, 'admission.');
  limitsOf(options);
}

function limitsOf(options: AdmissionOptions): Limits {
  return {
    maxWorkerUtilization: share('maxWorkerUtilization', options.maxWorkerUtilization, 0.85),
    maxEventLoopUtilization: share('maxEventLoopUtilization', options.maxEventLoopUtilization, 0.85),
    maxProcessUtilization: share('maxProcessUtilization', options.maxProcessUtilization, 0.75),
    maxMachineUtilization: share('maxMachineUtilization', options.maxMachineUtilization, 1),
    maxQueuedFramesPerStream: positive('maxQueuedFramesPerStream', options.maxQueuedFramesPerStream, 5),
    maxLatencyMs: positive('maxLatencyMs', options.maxLatencyMs, 20),
    latencyMinLoad: fraction('latencyMinLoad', options.latencyMinLoad, 0.25),
    latencyWindowMs: positive('latencyWindowMs', options.latencyWindowMs, 5000),
    cautionLatencyShare: share('cautionLatencyShare', options.cautionLatencyShare, 0.6),
    sampleMs: positive('sampleMs', options.sampleMs, 500),
    settleMs: positive('settleMs', options.settleMs, 3000),
    initialStreamCost: share('initialStreamCost', options.initialStreamCost, 0.03),
  };
}

export class AdmissionControl {
  readonly #limits: Limits;
  readonly #pool: WorkerPool;
  readonly #latency: LatencyHistogram;
  #timer: NodeJS.Timeout | undefined;
  #lastAt = 0;
  #lastBusyMs = 0;
  #lastElu: EventLoopUtilization | undefined;
  #lastMachine: MachineTimes = machineTimes();
  #lastProcess: NodeJS.CpuUsage = process.cpuUsage();
  #lastLatency: number[] = [];
  /** Latency bucket counts of each sample within `latencyWindowMs`, oldest first. */
  readonly #latencySamples: number[][] = [];
  /** Each session admitted within `settleMs`: when, and whether it still runs. */
  #admitted: Array<{ at: number; running: () => boolean }> = [];
  #state: AdmissionState;

  constructor(pool: WorkerPool, latency: LatencyHistogram, options: AdmissionOptions = {}) {
    this.#pool = pool;
    this.#latency = latency;
    checkAdmissionOptions(options);
    this.#limits = limitsOf(options);
    this.#state = {
      ready: true,
      reasons: [],
      workerUtilization: 0,
      eventLoopUtilization: 0,
      machineUtilization: 0,
      processUtilization: 0,
      queuedFramesPerStream: 0,
      latencyP99Ms: null,
      unsettledSessions: 0,
      streamCost: this.#limits.initialStreamCost,
      machineStreamCost: this.#initialMachineCost(),
    };
  }

  start(): void {
    if (this.#timer) return;
    this.#lastAt = performance.now();
    this.#lastBusyMs = this.#pool.stats().busyMs;
    this.#lastElu = performance.eventLoopUtilization();
    this.#lastLatency = this.#latency.snapshot().counts;
    this.#lastMachine = machineTimes();
    this.#lastProcess = process.cpuUsage();
    this.#timer = setInterval(() => this.#sample(), this.#limits.sampleMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The load as last measured, with the sessions admitted since counted in. */
  state(): AdmissionState {
    // No stream now: what the last sample measured was the load of streams that have since ended
    // (an upload at --speed ends within settleMs), and must not keep the next session out; only
    // the sessions being admitted count, so a burst of POSTs at an idle server is still bounded.
    const measured: AdmissionState =
      this.#pool.streamCount === 0 ? { ...this.#state, reasons: [], workerUtilization: 0, eventLoopUtilization: 0, processUtilization: 0, queuedFramesPerStream: 0, latencyP99Ms: null } : this.#state;
    const unsettled = this.#unsettled();
    const justAdmitted = `${unsettled} session${unsettled > 1 ? 's' : ''} just admitted`;
    const projected = measured.workerUtilization + (unsettled * measured.streamCost) / this.#pool.threads;
    const reasons = [...measured.reasons];
    if (unsettled > 0 && projected > this.#limits.maxWorkerUtilization && !reasons.some((r) => r.startsWith('workers'))) {
      reasons.push(`workers ${pct(measured.workerUtilization)} busy plus ${justAdmitted} (~${pct(projected)}) > ${pct(this.#limits.maxWorkerUtilization)}`);
    }
    const own = measured.processUtilization + unsettled * measured.machineStreamCost;
    if (unsettled > 0 && this.#limits.maxProcessUtilization < 1 && own > this.#limits.maxProcessUtilization && !reasons.some((r) => r.startsWith('earshot'))) {
      reasons.push(`earshot's CPU ${pct(measured.processUtilization)} of ${CPU_COUNT} plus ${justAdmitted} (~${pct(own)}) > ${pct(this.#limits.maxProcessUtilization)}`);
    }
    const machine = measured.machineUtilization + unsettled * measured.machineStreamCost;
    // At 1 the machine's load is left out (the default): a projection past 100 % must not refuse either.
    if (unsettled > 0 && this.#limits.maxMachineUtilization < 1 && machine > this.#limits.maxMachineUtilization && !reasons.some((r) => r.startsWith('machine'))) {
      reasons.push(`machine CPU ${pct(measured.machineUtilization)} busy plus ${justAdmitted} (~${pct(machine)}) > ${pct(this.#limits.maxMachineUtilization)}`);
    }
    const p99 = measured.latencyP99Ms;
    const caution = this.#limits.maxLatencyMs * this.#limits.cautionLatencyShare;
    // The load floor is the projected load: sessions admitted but not yet measured count toward it.
    const loaded = Math.max(projected, own) >= this.#limits.latencyMinLoad;
    if (unsettled > 0 && loaded && p99 !== null && p99 > caution && !reasons.some((r) => r.startsWith('frame latency'))) {
      reasons.push(
        `frame latency p99 ${Math.round(p99)} ms is past ${Math.round(caution)} ms (${pct(this.#limits.cautionLatencyShare)} of the ${this.#limits.maxLatencyMs} ms limit) with ${justAdmitted} whose load does not show yet`,
      );
    }
    return { ...measured, unsettledSessions: unsettled, ready: reasons.length === 0, reasons };
  }

  /** Reasons to refuse one more session now (empty: admit). */
  check(): string[] {
    return this.state().reasons;
  }

  /**
   * Counts a session just admitted until its own load shows in the measurements
   * (`settleMs`), for as long as `running()` says it runs: one that has ended
   * (an upload sent faster than real time ends within `settleMs`) adds no load,
   * and must not keep the next session out.
   */
  admitted(running: () => boolean): void {
    this.#admitted.push({ at: performance.now(), running });
  }

  #unsettled(): number {
    const cutoff = performance.now() - this.#limits.settleMs;
    while (this.#admitted.length > 0 && this.#admitted[0].at < cutoff) this.#admitted.shift();
    let running = 0;
    for (const a of this.#admitted) if (a.running()) running++;
    return running;
  }

  #sample(): void {
    const now = performance.now();
    const stats = this.#pool.stats();
    const wall = now - this.#lastAt;
    const workerUtilization = wall > 0 ? Math.min(1, (stats.busyMs - this.#lastBusyMs) / (wall * stats.threads)) : 0;
    const elu = performance.eventLoopUtilization(this.#lastElu).utilization;
    const snap = this.#latency.snapshot();
    this.#latencySamples.push(snap.counts.map((c, i) => c - (this.#lastLatency[i] ?? 0)));
    while (this.#latencySamples.length > Math.max(1, Math.round(this.#limits.latencyWindowMs / this.#limits.sampleMs))) this.#latencySamples.shift();
    const window = this.#latencySamples.reduce((sum, counts) => {
      for (let i = 0; i < counts.length; i++) sum[i] += counts[i];
      return sum;
    }, new Array<number>(snap.counts.length).fill(0));
    const latencyP99Ms = quantileOf(window, 0.99, snap.max, snap.boundsMs);
    this.#lastAt = now;
    this.#lastBusyMs = stats.busyMs;
    this.#lastElu = performance.eventLoopUtilization();
    this.#lastLatency = snap.counts;
    const machineNow = machineTimes();
    const busy = machineNow.busy - this.#lastMachine.busy;
    const total = machineNow.total - this.#lastMachine.total;
    const machineUtilization = total > 0 ? Math.min(1, Math.max(0, busy / total)) : 0;
    const processNow = process.cpuUsage();
    const processMs = (processNow.user - this.#lastProcess.user + processNow.system - this.#lastProcess.system) / 1000;
    this.#lastMachine = machineNow;
    this.#lastProcess = processNow;
    const queuedFramesPerStream = stats.streams > 0 ? stats.queuedFrames / stats.streams : 0;
    // The cost of an average stream, from streams that have been running for a while.
    const streamCost = stats.streams > 0 && workerUtilization > 0 ? Math.max(workerUtilization * stats.threads / stats.streams, 0.001) : this.#limits.initialStreamCost;
    const processUtilization = wall > 0 ? Math.min(1, Math.max(0, processMs / wall / CORES)) : 0;
    const machineStreamCost = stats.streams > 0 && wall > 0 && processMs > 0 ? Math.max(processMs / wall / CORES / stats.streams, 0.0005) : this.#initialMachineCost();
    const l = this.#limits;
    const reasons: string[] = [];
    // With no stream running there is nothing to protect: load from elsewhere in the process
    // (start-up, a program that embeds the server) must not keep the first stream out.
    if (stats.streams === 0) {
      this.#state = { ready: true, reasons, workerUtilization, eventLoopUtilization: elu, machineUtilization, processUtilization, queuedFramesPerStream, latencyP99Ms, unsettledSessions: 0, streamCost, machineStreamCost };
      return;
    }
    if (workerUtilization > l.maxWorkerUtilization) reasons.push(`workers ${pct(workerUtilization)} busy > ${pct(l.maxWorkerUtilization)}`);
    if (elu > l.maxEventLoopUtilization) reasons.push(`main thread ${pct(elu)} busy > ${pct(l.maxEventLoopUtilization)}`);
    if (processUtilization > l.maxProcessUtilization) reasons.push(`earshot's CPU ${pct(processUtilization)} of ${CPU_COUNT} > ${pct(l.maxProcessUtilization)}`);
    if (machineUtilization > l.maxMachineUtilization) reasons.push(`machine CPU ${pct(machineUtilization)} busy > ${pct(l.maxMachineUtilization)}`);
    if (queuedFramesPerStream > l.maxQueuedFramesPerStream) reasons.push(`${queuedFramesPerStream.toFixed(1)} frames queued per stream > ${l.maxQueuedFramesPerStream}`);
    // A stall at light load is not overload: refusing would not bring the latency down.
    const loaded = Math.max(workerUtilization, processUtilization) >= l.latencyMinLoad;
    if (loaded && latencyP99Ms !== null && latencyP99Ms > l.maxLatencyMs) reasons.push(`frame latency p99 ${Math.round(latencyP99Ms)} ms > ${l.maxLatencyMs} ms`);
    this.#state = { ready: reasons.length === 0, reasons, workerUtilization, eventLoopUtilization: elu, machineUtilization, processUtilization, queuedFramesPerStream, latencyP99Ms, unsettledSessions: 0, streamCost, machineStreamCost };
  }

  /** Before any stream is measured: one stream's worker cost, as a share of the machine (its main-thread share comes on top, so this errs low). */
  #initialMachineCost(): number {
    return this.#limits.initialStreamCost / CORES;
  }
}

/** The CPUs this process may use: its affinity's, or a container's CPU limit where lower (cpu-quota.ts; 1.5 for `--cpus=1.5`). */
const CORES = cpuBudget();

/** "1 CPU", "2 CPUs", "1.5 CPUs": what the process's share is of, in its refusal reason. */
const CPU_COUNT = CORES === 1 ? '1 CPU' : `${Number(CORES.toFixed(2))} CPUs`;

/** Busy and total CPU time of the machine, all cores, ms. Niced time counts as idle: it yields to earshot. */
interface MachineTimes {
  busy: number;
  total: number;
}

function machineTimes(): MachineTimes {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    busy += times.user + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { busy, total };
}

function pct(v: number): string {
  return `${Math.round(v * 100)} %`;
}
