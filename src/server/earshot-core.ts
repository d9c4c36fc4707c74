/**
 * The server's core, independent of HTTP: WHIP sessions, their pipelines, the
 * worker pool and the recordings directory. Routes call into it; the CLI and the
 * programmatic API create it through `createServer`.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import type { FastifyBaseLogger } from 'fastify';
import { Subject } from 'rxjs';
import { errors } from '../errors.js';
import { PeerPipeline } from '../pipeline/peer-pipeline.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { WorkerPool, type WorkerPoolOptions, type WorkerPoolStats } from '../pool/worker-pool.js';
import type { IceOptions } from '../rtc/ice-config.js';
import { PeerSession, type SessionEndReason } from '../rtc/peer-session.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import { RecordingsStore } from '../sinks/recordings-store.js';
import { PeerRegistry, type PeerEntry, type PeerStatsSnapshot } from './peer-registry.js';

export interface EarshotCoreOptions {
  pipeline: Pipeline;
  recordingsDir: string;
  pool?: WorkerPoolOptions;
  ice?: IceOptions;
  /** See PeerSessionOptions.mediaTimeoutMs. Default 10000 ms. */
  mediaTimeoutMs?: number;
  /** See PeerSessionOptions.connectTimeoutMs. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Most concurrent sessions; more get 503. Default 500. */
  maxSessions?: number;
  log: FastifyBaseLogger;
}

/** A stream as it starts, for programmatic consumers (`server.streams$`). */
export interface StreamInfo {
  peer: string;
  room: string;
  session: string;
  pipeline: PeerPipeline;
}

export interface ServerStats {
  uptimeSeconds: number;
  peers: number;
  rooms: number;
  roomNames: string[];
  sessionsStarted: number;
  sessionsEnded: number;
  pool: WorkerPoolStats;
  /** Main-thread event-loop delay since start, ms (how long ready work waited for the loop). */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  memory: { rssBytes: number; heapUsedBytes: number };
}

export class EarshotCore {
  readonly peers = new PeerRegistry();
  readonly store: RecordingsStore;
  readonly pool: WorkerPool;
  readonly streams$ = new Subject<StreamInfo>();
  readonly #options: EarshotCoreOptions;
  readonly #log: FastifyBaseLogger;
  readonly #startedAt = performance.now();
  readonly #loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });
  #shuttingDown = false;

  constructor(options: EarshotCoreOptions) {
    this.#options = options;
    this.#log = options.log;
    this.store = new RecordingsStore(options.recordingsDir);
    this.pool = new WorkerPool(options.pool);
  }

  get pipeline(): Pipeline {
    return this.#options.pipeline;
  }

  async start(): Promise<void> {
    await this.store.init();
    await this.pool.start();
    this.#loopDelay.enable();
  }

  hasSession(id: string): boolean {
    return this.peers.bySession(id) !== undefined;
  }

  /**
   * Answers a WHIP offer. A second publish for a peer that is already live
   * replaces the old session: it is ended and finalized first (a reconnecting
   * client must not be locked out until the media timeout).
   */
  async publish(room: string, peer: string, offer: string): Promise<PeerSession> {
    if (this.#shuttingDown) throw errors.SHUTTING_DOWN();
    const existing = this.peers.get(peer);
    const limit = this.#options.maxSessions ?? 500;
    if (!existing && this.peers.size >= limit) throw errors.OVERLOADED(limit);

    const pipeline = this.#options.pipeline;
    const log = this.#log.child({ room, peer });
    let entry: PeerEntry | undefined;
    const session = await PeerSession.answer(
      room,
      peer,
      offer,
      {
        ice: this.#options.ice,
        mediaTimeoutMs: this.#options.mediaTimeoutMs,
        connectTimeoutMs: this.#options.connectTimeoutMs,
        stereo: pipeline.channels === 2,
      },
      {
        onFrame: (f) => entry?.pipeline.push(f),
        onConnected: () => log.info({ session: session.id }, 'peer connected'),
        onEnd: (reason) => {
          if (entry) void this.#finish(entry, reason);
        },
      },
    );
    entry = {
      peer,
      room,
      pipelineName: pipeline.name,
      session,
      pipeline: new PeerPipeline({
        pool: this.pool,
        store: this.store,
        pipeline,
        room,
        peer,
        onPipelineError: (message) => {
          log.error({ session: session.id, err: message }, 'pipeline failed; ending session');
          void session.close('pipeline-error');
        },
        onSinkError: (sink, err) => log.error({ session: session.id, sink, err: err.message }, 'sink failed and was detached'),
      }),
    };
    this.peers.add(entry);
    // Registered first, so packets of the new session are not lost while the old one drains.
    if (existing) await this.#end(existing, 'replaced');
    log.info({ session: session.id, pipeline: pipeline.name, replaced: existing?.session.id }, 'session started');
    this.streams$.next({ peer, room, session: session.id, pipeline: entry.pipeline });
    return session;
  }

  /** Ends a session by id (WHIP DELETE) and waits until its recordings are final. */
  async endSession(id: string, reason: SessionEndReason): Promise<{ peer: string; room: string; recordings: RecordingInfo[] }> {
    const entry = this.peers.bySession(id);
    if (!entry) throw errors.SESSION_NOT_FOUND(id);
    const recordings = await this.#end(entry, reason);
    return { peer: entry.peer, room: entry.room, recordings };
  }

  peer(peer: string): PeerEntry {
    const entry = this.peers.get(peer);
    if (!entry) throw errors.PEER_NOT_FOUND(peer);
    return entry;
  }

  stats(): ServerStats {
    const mem = process.memoryUsage();
    const rooms = this.peers.rooms();
    return {
      uptimeSeconds: Math.round((performance.now() - this.#startedAt) / 1000),
      peers: this.peers.size,
      rooms: rooms.length,
      roomNames: rooms,
      sessionsStarted: this.peers.sessionsStarted,
      sessionsEnded: this.peers.sessionsEnded,
      pool: this.pool.stats(),
      eventLoopDelayMs: {
        p50: Math.round(this.#loopDelay.percentile(50) / 1e4) / 100,
        p99: Math.round(this.#loopDelay.percentile(99) / 1e4) / 100,
        max: Math.round(this.#loopDelay.max / 1e4) / 100,
      },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
    };
  }

  peerStats(peer: string): PeerStatsSnapshot {
    const s = this.peers.snapshot(peer);
    if (!s) throw errors.PEER_NOT_FOUND(peer);
    return s;
  }

  /** Refuses new sessions, ends every live one (draining in-flight frames), stops the pool. */
  async shutdown(): Promise<void> {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    await Promise.all(this.peers.live().map((e) => this.#end(e, 'shutdown')));
    await this.pool.close();
    this.#loopDelay.disable();
    this.streams$.complete();
  }

  async #end(entry: PeerEntry, reason: SessionEndReason): Promise<RecordingInfo[]> {
    await entry.session.close(reason); // calls onEnd → #finish once
    return this.#finish(entry, reason);
  }

  #finish(entry: PeerEntry, reason: SessionEndReason): Promise<RecordingInfo[]> {
    entry.ended ??= (async () => {
      const recordings = await entry.pipeline.close();
      this.peers.retire(entry);
      const rtp = entry.session.rtpStats();
      this.#log.info(
        {
          room: entry.room,
          peer: entry.peer,
          session: entry.session.id,
          reason,
          seconds: Math.round((Date.now() - entry.session.createdAt) / 100) / 10,
          packets: rtp.packetsReceived,
          lost: rtp.packetsLost,
          recordings: recordings.map((r) => r.name),
        },
        'session ended',
      );
      return recordings;
    })();
    return entry.ended;
  }
}
