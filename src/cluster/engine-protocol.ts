/**
 * Messages between the front and its engine processes over the IPC channel
 * `child_process.fork` opens. Requests from clients reach engines over
 * loopback HTTP instead (src/cluster/forward.ts), so that an engine's own
 * routes — validation, access checks, problem documents — answer them exactly
 * as a single-process server would; IPC carries what only the front needs:
 * start-up, load reports, session and processor events, statistics and shutdown.
 */
import type { ProcessorEvent } from '../sinks/processors.js';
import type { CreateServerOptions } from '../server/create-server.js';
import type { SessionEvent, ServerStats } from '../core/earshot-core.js';
import type { PeerStatsSnapshot } from '../core/peer-registry.js';
import type { PipelineDocument } from '../pipeline/schema.js';
import type { WorkerPoolHealth, WorkerPoolStats } from '../pool/worker-pool.js';

/** How often an engine reports its load, ms. Placement and `/health` read these reports. */
export const REPORT_INTERVAL_MS = 250;

/**
 * An engine that has sent no report for this long (twelve missed reports) is
 * unresponsive: hung, or starved of CPU. It takes no new session until it
 * reports again. Long enough that a GC pause or a busy second does not trip it.
 */
export const ENGINE_SILENT_MS = 3000;

/**
 * How often an engine sends its live peers' statistics, ms: what the front
 * keeps of a session whose engine dies (its last figures, its recordings).
 * As often as a recording's header is rewritten: a crash loses about as much
 * of the figures as of the audio. Each report is the `GET /stats` peers
 * list, ~2–3 KB a peer.
 */
export const PEERS_REPORT_INTERVAL_MS = 1000;

/**
 * The options an engine runs `createServer` with: the front's, minus what only
 * the front does (the public listener, TLS, reading the proxies' forwarding
 * headers: it names the client in `CLIENT_HEADER`) and what cannot cross a
 * process boundary (a logger, processor functions, a built Pipeline object).
 */
export type EngineServerOptions = Omit<CreateServerOptions, 'host' | 'port' | 'tlsCert' | 'tlsKey' | 'logger' | 'processors' | 'pipeline' | 'trustProxy'> & {
  /** A pipeline name, a JSON file path, or a pipeline document (stage operators already replaced: it crosses as JSON; the engine validates it). */
  pipeline?: string | PipelineDocument;
  /**
   * With more than one engine: the machine's `maxListeners`, of which this engine holds `maxListeners` (its share):
   * its refusals name both, so that an operator who set 64 does not read "its maximum of 32".
   */
  listenersOfMachine?: { engines: number; limit: number };
};

/** Front → engine. */
export type FrontMessage =
  | {
      t: 'start';
      /** The engine's slot on this machine. */
      engine: number;
      options: EngineServerOptions;
      /** Room → pipeline bindings to apply before taking sessions (a restarted engine learns them here). */
      rooms: Record<string, string>;
      /**
       * Given to a restarted engine: pipeline files that fail to load do not stop it, and
       * these documents (by file name: what the engines that are up run for files now
       * invalid) are loaded instead. A first start has none: a broken file stops the machine's start.
       */
      previousPipelines?: Record<string, unknown>;
    }
  | { t: 'call'; id: number; method: 'stats' }
  /**
   * The machine's room bindings as a whole: the engine's become exactly these,
   * kept as they are (as at start), a binding to a pipeline it has not loaded
   * included (its room's streams then get 404 naming it, as on a single
   * server). Answered with the rooms whose pipeline is not loaded (`RoomsResult`).
   */
  | { t: 'call'; id: number; method: 'rooms'; rooms: Record<string, string> }
  /** End one session (a cluster node that rejoins Redis ends the sessions whose peer was placed again on another node). */
  | { t: 'end'; session: string; reason: 'replaced' }
  | { t: 'shutdown' };

/**
 * What an engine says about itself every `REPORT_INTERVAL_MS`: some of its
 * `ServerStats` as the core reports them — among them the counters a dead
 * engine's successor must not lose from the machine's totals
 * (`sessionsStarted`, `sessionsEnded`, `refusedBy`, `endedBy`) — and what
 * placement and `/health` need besides.
 */
export interface EngineReport extends Pick<ServerStats, 'peers' | 'roomNames' | 'uptimeSeconds' | 'sessionsStarted' | 'sessionsEnded' | 'refusedBy' | 'endedBy'> {
  pending: number;
  /** Admission has room (true with admission off). */
  ready: boolean;
  /** What admission says is exceeded while not ready. */
  loadReasons: string[];
  workerUtilization: number;
  poolThreads: number;
  health: WorkerPoolHealth;
  /** Processor events not sent to the front because the IPC channel was backed up. */
  eventsDropped: number;
  /** The pool's counters, for the front to keep once this process has exited (they restart from 0 in the next). */
  poolCounters: PoolCounters;
}

/** The counters of `WorkerPoolStats` (they only go up while the process lives). */
export const POOL_COUNTERS = ['busyMs', 'tasksCompleted', 'earlyResults', 'framesHeld', 'tasksFailed', 'tasksTimedOut', 'workerCrashes', 'streamsQuarantined', 'framesLost', 'streamsOpened'] as const;
export type PoolCounters = Pick<WorkerPoolStats, (typeof POOL_COUNTERS)[number]>;

export interface EngineStats {
  server: ServerStats;
  peers: PeerStatsSnapshot[];
}

/** An engine's answer to the room bindings it was given: those whose pipeline it has not loaded, room → pipeline. */
export interface RoomsResult {
  missing: Record<string, string>;
}

/** Engine → front. */
export type EngineMessage =
  | { t: 'ready'; port: number; threads: number }
  | { t: 'failed'; error: { code?: string; statusCode?: number; title?: string; message: string } }
  | { t: 'report'; report: EngineReport }
  /**
   * A session started or ended, with its statistics: a started one's first (the front's record of it
   * until the next `peers`), an ended one's final (the front keeps them, as the engine does, for after
   * the engine has restarted).
   */
  | { t: 'session'; event: SessionEvent; snapshot?: PeerStatsSnapshot }
  /** The live peers' statistics, every `PEERS_REPORT_INTERVAL_MS` while there are any. */
  | { t: 'peers'; peers: PeerStatsSnapshot[] }
  | { t: 'processor'; event: ProcessorEvent }
  | { t: 'result'; id: number; value?: EngineStats | RoomsResult; error?: string };
