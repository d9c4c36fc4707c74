/**
 * What the core is built with, and the checks of the options `createServer`
 * and `WebRTCHandler` pass through to it (made up front by both, and again by
 * the core itself for direct users).
 */
import type { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import type { WorkerPool, WorkerPoolOptions } from '../pool/worker-pool.js';
import type { IceOptions } from '../rtc/ice-config.js';
import type { ProcessorRegistry } from '../sinks/processors.js';
import { checkAdmissionOptions, type AdmissionOptions } from './admission.js';
import { checkInteger, checkMilliseconds } from './option-checks.js';
import type { CoreLogger } from './logger.js';
import type { RoomBindingsFile } from './room-bindings-file.js';

export interface EarshotCoreOptions {
  /** The pipelines by name (a directory's, or in memory). */
  pipelines: PipelineRegistry;
  /** Name of the pipeline a stream runs when neither the request nor its room names one. */
  defaultPipeline: string;
  /**
   * Where the room bindings (`bindRoom`) outlive a restart: read at `start()`
   * (or before the first change), again when it changes on disk and before
   * each change, which is written before it applies (not when read-only).
   * Default: none, the bindings live in memory.
   */
  roomBindingsFile?: RoomBindingsFile;
  /** Apply changes made to `roomBindingsFile` on disk while running (from `start()`). Default true. */
  watchRoomBindings?: boolean;
  recordingsDir: string;
  /** Pool options, or a pool to use (created by the caller, closed by `shutdown()`). */
  pool?: WorkerPoolOptions | WorkerPool;
  ice?: IceOptions;
  /** See PeerSessionOptions.mediaTimeoutMs. Default 10000 ms. */
  mediaTimeoutMs?: number;
  /** See PeerSessionOptions.connectTimeoutMs. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Most concurrent sessions; more get 503. Default 500. */
  maxSessions?: number;
  /**
   * Most sessions that are being answered or have not connected yet (they hold
   * UDP sockets and count against `maxSessions` too); more get 503. Bounds what
   * a flood of offers that never connect can hold. Default 50.
   */
  maxPendingSessions?: number;
  /**
   * Most of those from one client (`publish`'s `client`: the server passes the
   * client's address, an IPv6 client's /64), so that one client's offers that
   * never connect cannot take every pending place and lock the other
   * publishers out until `connectTimeoutMs`; more get 503
   * `EARSHOT_TOO_MANY_PENDING`. A publisher that reconnects publishes its peer
   * again, which replaces its own pending session rather than adding one. A
   * gateway that starts many peers at once from one address, or clients
   * behind a reverse proxy (all one address to earshot), need it raised, up
   * to `maxPendingSessions`. Default: half of `maxPendingSessions` (25).
   */
  maxPendingSessionsPerClient?: number;
  /** Most listeners of one peer, WHEP players and audio sockets together; more get 503 `EARSHOT_LISTENERS_FULL`. Default 8. */
  maxListenersPerPeer?: number;
  /** Most listeners (WHEP players and audio sockets) on the server; 0 turns listening off. Default 64. */
  maxListeners?: number;
  /**
   * A WHEP player that has sent no RTCP report for this long is gone (a closed
   * tab, a crashed player that never sent its DELETE): its listener ends
   * (reason `disconnected`) and frees its place. RFC 3550 §6.3.5 times a
   * participant out after five report intervals: 25 s at the 5 s minimum
   * (the default); 0 turns it off. ms. An audio socket (`GET
   * /peers/:peer/audio`) is pinged every half of it and closed, its place
   * freed, once a half passes without an answer (a pong or any message).
   */
  listenerTimeoutMs?: number;
  /** Admission by measured load (see AdmissionOptions); `false` admits by the counts alone. Default: on, with its defaults. */
  admission?: AdmissionOptions | false;
  /**
   * How long a session's end waits for each processor stage (operator form)
   * that still holds frames to complete, before what it holds is cut off
   * (counted and reported). ms; 0 does not wait. Also how long `shutdown()`
   * waits, at most, for the stage operators on the ended streams to drain
   * before it closes the pool. Default 2000.
   */
  processorDrainTimeoutMs?: number;
  /**
   * Processor registry for `processor` sinks and attachments. Default: a
   * registry of this core's own over the process-wide one (`registerProcessor`).
   */
  processors?: ProcessorRegistry;
  log: CoreLogger;
}

export const DEFAULT_MAX_SESSIONS = 500;
export const DEFAULT_MAX_PENDING_SESSIONS = 50;
/**
 * The default of `maxPendingSessionsPerClient`: half of `maxPendingSessions`
 * (25 of 50), rounded up. One client alone can then never hold every pending
 * place, while one machine starting a batch of publishers at once (a load
 * test, `earshot send --count 20`, a gateway) is not refused.
 */
export function defaultMaxPendingSessionsPerClient(maxPendingSessions: number): number {
  return Math.ceil(maxPendingSessions / 2);
}

/** The session options of the core, checked: `EARSHOT_OPTION_INVALID` naming the first one that is not usable. */
export function checkCoreOptions(
  options: Pick<EarshotCoreOptions, 'mediaTimeoutMs' | 'connectTimeoutMs' | 'maxSessions' | 'maxPendingSessions' | 'maxPendingSessionsPerClient' | 'maxListeners' | 'maxListenersPerPeer' | 'listenerTimeoutMs' | 'admission' | 'processorDrainTimeoutMs'>,
): void {
  checkMilliseconds('mediaTimeoutMs', options.mediaTimeoutMs);
  checkMilliseconds('connectTimeoutMs', options.connectTimeoutMs);
  checkInteger('maxSessions', options.maxSessions, 1);
  checkInteger('maxPendingSessions', options.maxPendingSessions, 1);
  checkInteger('maxPendingSessionsPerClient', options.maxPendingSessionsPerClient, 1);
  checkInteger('maxListeners', options.maxListeners, 0);
  checkInteger('maxListenersPerPeer', options.maxListenersPerPeer, 0);
  checkInteger('listenerTimeoutMs', options.listenerTimeoutMs, 0);
  checkInteger('processorDrainTimeoutMs', options.processorDrainTimeoutMs, 0, 2 ** 31 - 1);
  checkAdmissionOptions(options.admission);
}
