/**
 * How many engine processes a machine runs, and how the per-machine settings
 * (DSP threads, session limits, the UDP media port range) are divided among them.
 */
import { usableCpus } from '../pool/cpu-quota.js';
import { errors } from '../errors.js';

/**
 * Cores one engine process can keep busy before its main thread (werift: ICE,
 * DTLS, SRTP, RTP ingest; the WAV writers; the batching) becomes what limits
 * it. With the default pipeline about a quarter of a stream's CPU is spent on
 * the main thread and three quarters in the DSP workers (measured on 2 cores: ~0.7 %
 * of a core of 2.75 % per stream), so a machine working at C cores puts
 * ~C/4 of a core on each engine's main thread; kept under ~0.75 of a core,
 * so that it answers packets without queueing, that is one engine per ~3 cores.
 */
export const CORES_PER_ENGINE = 3;

/**
 * The default engine count for a machine with `cores` cores: one up to 3
 * cores, then one per `CORES_PER_ENGINE` (rounded up). Measured on the 2-core
 * reference machine (bench/engines.ts, docs/scaling.md): one engine with two
 * DSP threads carried twice the streams of two engines with one each within
 * p99 ≤ 20 ms (20 against 10), in half the memory, and a single process has
 * no extra hop. Larger machines were not available to measure; the rule follows from
 * the per-stream split above.
 */
export function defaultProcesses(cores: number = usableCpus()): number {
  return cores <= CORES_PER_ENGINE ? 1 : Math.ceil(cores / CORES_PER_ENGINE);
}

/** DSP threads per engine when `threads` is not given: the machine's cores shared out, at least one each. */
export function defaultThreadsPerEngine(processes: number, cores: number = usableCpus()): number {
  return Math.max(1, Math.floor(cores / processes));
}

/** A machine-wide limit as a per-engine one (rounded up, so the machine never admits fewer than asked). */
export function perEngineLimit(limit: number, processes: number): number {
  return Math.max(1, Math.ceil(limit / processes));
}

/**
 * Splits a UDP port range among `processes` engines, contiguous and
 * disjoint (each engine's werift binds its own media sockets). Each share
 * needs at least two ports; the remainder of an uneven split goes to the
 * first engines.
 */
export function splitPortRange(range: [number, number], processes: number): Array<[number, number]> {
  const [min, max] = range;
  const ports = max - min + 1;
  const each = Math.floor(ports / processes);
  if (each < 2) {
    throw errors.OPTION_INVALID('icePortRange', `${min}-${max} has ${ports} ports: too few for ${processes} engine processes (each needs at least 2, and one per concurrent session); widen it or run fewer processes`);
  }
  const extra = ports % processes;
  const out: Array<[number, number]> = [];
  let start = min;
  for (let i = 0; i < processes; i++) {
    const size = each + (i < extra ? 1 : 0);
    out.push([start, start + size - 1]);
    start += size;
  }
  return out;
}
