/**
 * What the core measures about itself, for `GET /stats`, `/metrics` and
 * admission: frame latency and jitter histograms, the main thread's
 * event-loop delay, sessions refused by error code, and the `ServerStats`
 * snapshot built from them.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { LatencyHistogram } from '../media/latency-histogram.js';
import type { WorkerPool, WorkerPoolStats } from '../pool/worker-pool.js';
import type { AdmissionState } from './admission.js';
import type { PeerRegistry } from './peer-registry.js';

/**
 * How often the event-loop delay is sampled, ms. Each sample is a timer that
 * wakes the main thread. At 20 ms an idle server's main thread used half the
 * CPU (0.4–0.7 against 0.8 % of a core on the 2-core VM of
 * docs/performance.md), but a loaded one cost more: 100 talkers 1.12–1.18 %
 * of a core per stream against 1.08–1.13 at 5 ms, with a longer tail. On a VM
 * a core left idle between packets halts, and waking it is slow; a 5 ms tick
 * keeps it from halting. A stall shorter than this is seen only when it spans
 * a sample; one longer always is.
 */
export const LOOP_DELAY_SAMPLE_MS = 5;

/**
 * A sample's lateness in ms (2 decimals): Node's histogram records the time
 * between two samples, the period included.
 */
function lateMs(intervalNs: number): number {
  return Math.max(0, Math.round(intervalNs / 1e4 - LOOP_DELAY_SAMPLE_MS * 100) / 100);
}

/** Jitter histogram bounds, seconds (RFC 3550 jitter of a healthy LAN call is well under 5 ms). */
export const JITTER_BOUNDS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

export interface ServerStats {
  uptimeSeconds: number;
  peers: number;
  rooms: number;
  roomNames: string[];
  sessionsStarted: number;
  sessionsEnded: number;
  /** Sessions refused (any error answering the offer). */
  sessionsRefused: number;
  /** Refused sessions by error code. */
  refusedBy: Record<string, number>;
  /** Ended sessions by reason. */
  endedBy: Record<string, number>;
  pool: WorkerPoolStats;
  /**
   * Main-thread event-loop delay since start, ms: how late a timer ran, that
   * is how long ready work waited for the loop. Sampled every
   * 5 ms (LOOP_DELAY_SAMPLE_MS); 0 for a loop that is never late.
   */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  memory: { rssBytes: number; heapUsedBytes: number };
  /** The measured load that admission decides on (null with admission off). */
  admission: AdmissionState | null;
  /** WHEP listeners of live peers (their session URLs are the listeners' own). */
  listeners: Array<{ peer: string; branch: string; state: 'connecting' | 'connected' | 'ended'; packetsSent: number; packetsLate: number; createdAt: string }>;
}

export class CoreMonitor {
  /** RTP arrival → frame at the sinks, every frame of every stream since start (ms). */
  readonly latency = new LatencyHistogram();
  /** Interarrival jitter of each live peer, sampled every second (seconds). */
  readonly jitter = new LatencyHistogram(JITTER_BOUNDS_S);
  readonly #peers: PeerRegistry;
  readonly #refusedBy = new Map<string, number>();
  readonly #startedAt = performance.now();
  readonly #loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_SAMPLE_MS });
  #jitterTimer: NodeJS.Timeout | undefined;

  constructor(peers: PeerRegistry) {
    this.#peers = peers;
  }

  start(): void {
    this.#loopDelay.enable();
    this.#jitterTimer ??= setInterval(() => {
      for (const e of this.#peers.live()) if (e.session.state === 'connected') this.jitter.add(e.session.rtpStats().jitter);
    }, 1000);
    this.#jitterTimer.unref();
  }

  /**
   * Starts sampling event-loop delay from this moment, restarting the sampler
   * if it ran (what it measured is kept). Another sampler whose period is a
   * multiple of this one, started in the same tick (prom-client's), then fires
   * in the same event-loop turns as this one's samples, until a late turn puts
   * the two out of step.
   */
  sampleLoopDelayFromNow(): void {
    this.#loopDelay.disable();
    this.#loopDelay.enable();
  }

  stop(): void {
    this.#loopDelay.disable();
    clearInterval(this.#jitterTimer);
    this.#jitterTimer = undefined;
  }

  /** Counts an offer refused with `code`. */
  refused(code: string): void {
    this.#refusedBy.set(code, (this.#refusedBy.get(code) ?? 0) + 1);
  }

  /** Sessions refused so far, by error code (`EARSHOT_OVERLOADED`, `EARSHOT_SDP_INVALID`, …). */
  refusedBy(): Record<string, number> {
    return Object.fromEntries([...this.#refusedBy].sort(([a], [b]) => a.localeCompare(b)));
  }

  stats(pool: WorkerPool, admission: AdmissionState | null, listeners: ServerStats['listeners'] = []): ServerStats {
    const mem = process.memoryUsage();
    const rooms = this.#peers.rooms();
    return {
      uptimeSeconds: Math.round((performance.now() - this.#startedAt) / 1000),
      peers: this.#peers.size,
      rooms: rooms.length,
      roomNames: rooms,
      sessionsStarted: this.#peers.sessionsStarted,
      sessionsEnded: this.#peers.sessionsEnded,
      sessionsRefused: [...this.#refusedBy.values()].reduce((a, b) => a + b, 0),
      refusedBy: this.refusedBy(),
      endedBy: Object.fromEntries(this.#peers.endedBy),
      pool: pool.stats(),
      eventLoopDelayMs: { p50: lateMs(this.#loopDelay.percentile(50)), p99: lateMs(this.#loopDelay.percentile(99)), max: lateMs(this.#loopDelay.max) },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
      admission,
      listeners,
    };
  }
}
