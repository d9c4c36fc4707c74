/**
 * One machine's statistics out of its engines': `GET /stats` and the `stats`
 * events of `GET /events` keep the single-process shape (`{ server, peers }`,
 * so the dashboard and existing tools read them unchanged), with counts
 * summed, rooms united, latencies and delays taken from the worst engine, and
 * two additions: `server.engines` (one entry per engine process) and `engine`
 * on every peer (which process runs it).
 *
 * Counters must not go backwards when an engine dies and its successor starts
 * from zero: the last report of every process that exited is kept in
 * `RetiredCounters` and added in.
 */
import type { AdmissionState } from '../core/admission.js';
import type { ServerStats } from '../core/earshot-core.js';
import type { PeerStatsSnapshot } from '../core/peer-registry.js';
import type { WorkerPoolStats } from '../pool/worker-pool.js';
import { POOL_COUNTERS, type EngineReport, type EngineStats, type PoolCounters } from './engine-protocol.js';

/** One engine process as `GET /stats` and `GET /health` describe it. */
export interface EngineSummary {
  engine: number;
  pid: number | null;
  /** `unresponsive`: up, but no load report for `ENGINE_SILENT_MS` (hung, or starved of CPU): it takes no new sessions. */
  state: 'starting' | 'up' | 'unresponsive' | 'stopping' | 'exited';
  /** Times this slot's process was replaced since the front started. */
  restarts: number;
  peers: number;
  ready: boolean;
  threads: number;
  uptimeSeconds: number | null;
}

export interface ClusterServerStats extends ServerStats {
  /** Engine processes configured. */
  processes: number;
  engines: EngineSummary[];
}

export type ClusterPeerStats = PeerStatsSnapshot & { engine: number };

/** Session counters of engine processes that exited, summed. */
export class RetiredCounters {
  sessionsStarted = 0;
  sessionsEnded = 0;
  readonly refusedBy: Record<string, number> = {};
  readonly endedBy: Record<string, number> = {};
  workerRestarts = 0;
  /** The pool counters of exited processes, summed. */
  readonly pool = Object.fromEntries(POOL_COUNTERS.map((k) => [k, 0])) as PoolCounters;

  /** Adds an exited process's last report, and the sessions that ended with it (reason `engine-exited`). */
  retire(report: EngineReport | undefined, lostSessions: number): void {
    if (report) {
      this.sessionsStarted += report.sessionsStarted;
      this.sessionsEnded += report.sessionsEnded;
      addInto(this.refusedBy, report.refusedBy);
      addInto(this.endedBy, report.endedBy);
      this.workerRestarts += report.health.workerRestarts;
      for (const k of POOL_COUNTERS) this.pool[k] += report.poolCounters[k];
    }
    if (lostSessions > 0) {
      this.sessionsEnded += lostSessions;
      addInto(this.endedBy, { 'engine-exited': lostSessions });
    }
  }
}

/** The machine's `{ server, peers }` from each live engine's, plus the front's own numbers. */
export function mergeStats(
  parts: Array<{ engine: number; stats: EngineStats }>,
  context: {
    uptimeSeconds: number;
    retired: RetiredCounters;
    /** Offers the front refused itself (peer busy, no engine), by code. */
    frontRefusedBy: Record<string, number>;
    engines: EngineSummary[];
    memory: { rssBytes: number; heapUsedBytes: number };
  },
): { server: ClusterServerStats; peers: ClusterPeerStats[] } {
  const servers = parts.map((p) => p.stats.server);
  const roomNames = [...new Set(servers.flatMap((s) => s.roomNames))].sort();
  const refusedBy: Record<string, number> = {};
  const endedBy: Record<string, number> = {};
  addInto(refusedBy, context.retired.refusedBy);
  addInto(refusedBy, context.frontRefusedBy);
  addInto(endedBy, context.retired.endedBy);
  for (const s of servers) {
    addInto(refusedBy, s.refusedBy);
    addInto(endedBy, s.endedBy);
  }
  const server: ClusterServerStats = {
    uptimeSeconds: context.uptimeSeconds,
    peers: sum(servers, (s) => s.peers),
    rooms: roomNames.length,
    roomNames,
    sessionsStarted: context.retired.sessionsStarted + sum(servers, (s) => s.sessionsStarted),
    sessionsEnded: context.retired.sessionsEnded + sum(servers, (s) => s.sessionsEnded),
    sessionsRefused: Object.values(refusedBy).reduce((a, b) => a + b, 0),
    refusedBy: sorted(refusedBy),
    endedBy: sorted(endedBy),
    pool: mergePools(
      parts.map((p) => ({ engine: p.engine, pool: p.stats.server.pool })),
      context.retired,
    ),
    // The worst engine's: a stream on it waits as long as its own loop makes it.
    eventLoopDelayMs: {
      p50: max(servers, (s) => s.eventLoopDelayMs.p50),
      p99: max(servers, (s) => s.eventLoopDelayMs.p99),
      max: max(servers, (s) => s.eventLoopDelayMs.max),
    },
    memory: {
      rssBytes: context.memory.rssBytes + sum(servers, (s) => s.memory.rssBytes),
      heapUsedBytes: context.memory.heapUsedBytes + sum(servers, (s) => s.memory.heapUsedBytes),
    },
    admission: mergeAdmission(parts.map((p) => ({ engine: p.engine, admission: p.stats.server.admission }))),
    listeners: parts.flatMap((p) => (p.stats.server.listeners ?? []).map((l) => ({ ...l, engine: p.engine }))),
    processes: context.engines.length,
    engines: context.engines,
  };
  const peers = parts.flatMap((p) => p.stats.peers.map((peer) => ({ ...peer, engine: p.engine })));
  return { server, peers };
}

/** The live engines' pools as one, their counters with those of the processes that exited added in. */
function mergePools(pools: Array<{ engine: number; pool: WorkerPoolStats }>, retired: RetiredCounters): WorkerPoolStats {
  const list = pools.map((p) => p.pool);
  const threads = sum(list, (p) => p.threads);
  const streamsPerThread: Record<string, number> = {};
  for (const { engine, pool } of pools) for (const [thread, n] of Object.entries(pool.streamsPerThread)) streamsPerThread[`${engine}:${thread}`] = n;
  const worst = (pick: (p: WorkerPoolStats) => number | null) => {
    const values = list.map(pick).filter((v): v is number => v !== null);
    return values.length > 0 ? Math.max(...values) : null;
  };
  return {
    threads,
    // One setting for every engine (the front passes its options on); the longest if they differ.
    batchIntervalMs: list.reduce((m, p) => Math.max(m, p.batchIntervalMs), 0),
    earlyOutputMs: list.reduce((m, p) => Math.max(m, p.earlyOutputMs), 0),
    quietHoldMs: list.reduce((m, p) => Math.max(m, p.quietHoldMs), 0),
    // Weighted by threads: the share of all the machine's DSP threads' time.
    utilization: threads > 0 ? sum(list, (p) => p.utilization * p.threads) / threads : 0,
    busyMs: retired.pool.busyMs + sum(list, (p) => p.busyMs),
    queuedFrames: sum(list, (p) => p.queuedFrames),
    tasksInFlight: sum(list, (p) => p.tasksInFlight),
    tasksCompleted: retired.pool.tasksCompleted + sum(list, (p) => p.tasksCompleted),
    earlyResults: retired.pool.earlyResults + sum(list, (p) => p.earlyResults),
    framesHeld: retired.pool.framesHeld + sum(list, (p) => p.framesHeld),
    tasksFailed: retired.pool.tasksFailed + sum(list, (p) => p.tasksFailed),
    tasksTimedOut: retired.pool.tasksTimedOut + sum(list, (p) => p.tasksTimedOut),
    workerCrashes: retired.pool.workerCrashes + sum(list, (p) => p.workerCrashes),
    workerRestarts: retired.workerRestarts + sum(list, (p) => p.workerRestarts),
    streamsQuarantined: retired.pool.streamsQuarantined + sum(list, (p) => p.streamsQuarantined),
    framesLost: retired.pool.framesLost + sum(list, (p) => p.framesLost),
    streams: sum(list, (p) => p.streams),
    streamsOpened: retired.pool.streamsOpened + sum(list, (p) => p.streamsOpened),
    taskMs: { p50: worst((p) => p.taskMs.p50), p99: worst((p) => p.taskMs.p99), max: worst((p) => p.taskMs.max) },
    streamsPerThread,
  };
}

/** Ready while any engine has room (the front places new sessions there); the limits reported are the worst engine's. */
function mergeAdmission(list: Array<{ engine: number; admission: AdmissionState | null }>): AdmissionState | null {
  const states = list.filter((l): l is { engine: number; admission: AdmissionState } => l.admission !== null);
  if (states.length === 0) return null;
  const a = states.map((s) => s.admission);
  const ready = a.some((s) => s.ready);
  const latencies = a.map((s) => s.latencyP99Ms).filter((v): v is number => v !== null);
  return {
    ready,
    reasons: ready ? [] : states.flatMap((s) => s.admission.reasons.map((r) => `engine ${s.engine}: ${r}`)),
    workerUtilization: Math.max(...a.map((s) => s.workerUtilization)),
    eventLoopUtilization: Math.max(...a.map((s) => s.eventLoopUtilization)),
    machineUtilization: Math.max(...a.map((s) => s.machineUtilization)),
    processUtilization: Math.max(...a.map((s) => s.processUtilization)),
    queuedFramesPerStream: Math.max(...a.map((s) => s.queuedFramesPerStream)),
    latencyP99Ms: latencies.length > 0 ? Math.max(...latencies) : null,
    unsettledSessions: sum(a, (s) => s.unsettledSessions),
    streamCost: Math.max(...a.map((s) => s.streamCost)),
    machineStreamCost: Math.max(...a.map((s) => s.machineStreamCost)),
  };
}

export function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function sorted(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
}

function sum<T>(list: T[], pick: (t: T) => number): number {
  return list.reduce((n, t) => n + pick(t), 0);
}

function max<T>(list: T[], pick: (t: T) => number): number {
  return list.length > 0 ? Math.max(...list.map(pick)) : 0;
}
