/**
 * The live peers (one WHIP session each) and a bounded memory of ended ones, so
 * `GET /stats/:peer` still answers after a client hung up.
 */
import { performance } from 'node:perf_hooks';
import type { PeerPipeline } from '../pipeline/peer-pipeline.js';
import type { PeerSession, SessionEndReason } from '../rtc/peer-session.js';
import type { AudioStats, ProcessingStats } from '../sinks/peer-stats.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import type { EncodedFrame } from '../media/frames.js';
import type { LatencyHistogramSnapshot } from '../media/latency-histogram.js';
import type { RtpReceiveStats } from '../rtc/rtp-ingest.js';
import type { ClientChannelStats } from '../rtc/data-channel.js';
import type { Subject } from 'rxjs';
import type { AttachedProcessor } from '../pipeline/peer-pipeline.js';
import type { ProcessorStageStats } from '../pipeline/processor-stage-chain.js';
import type { WebSocketSinkStats } from '../sinks/websocket-sink.js';

export interface PeerEntry {
  peer: string;
  room: string;
  pipelineName: string;
  session: PeerSession;
  pipeline: PeerPipeline;
  /** Encoded frames for `StreamHandle.encoded$`. */
  encoded$?: Subject<EncodedFrame>;
  /** Resolves when the session has ended and its outputs are finalized. */
  ended?: Promise<RecordingInfo[]>;
}

export interface PeerStatsSnapshot {
  peer: string;
  room: string;
  session: string;
  pipeline: string;
  /** `ending` while a finished session's audio is drained and its recordings finalized. */
  state: 'connecting' | 'connected' | 'ending' | 'ended';
  endReason: SessionEndReason | null;
  createdAt: string;
  connectedAt: string | null;
  /** Seconds since the session was created (until it ended). */
  durationSeconds: number;
  rtp: Omit<RtpReceiveStats, 'firstPacketAt' | 'lastPacketAt'> & { codec: string; channels: number };
  processing: ProcessingStats & {
    worker: number | null;
    workerRestarts: number;
    /** Sinks (recorder, stats, processors) that failed and were detached. */
    sinkErrors: number;
    /** Processors that threw or errored and were detached (also in `sinkErrors`). */
    processorErrors: number;
    /** Processors attached to the stream, with their state. */
    processors: AttachedProcessor[];
    /** Processor stages of the pipeline's branches: state, frames in and out, main-thread seconds spent in each. */
    processorStages: ProcessorStageStats[];
  };
  audio: AudioStats;
  recording: RecordingInfo | null;
  recordings: RecordingInfo[];
  /** The client's data channel (docs/data-channel.md): state `none` when its offer had none. */
  dataChannel: ClientChannelStats;
  /** The pipeline's websocket sinks: connection state and frame counters (header values never appear). */
  websockets: WebSocketSinkStats[];
}

const ENDED_KEPT = 1000;

/** Counters summed over every session since start (ended and live), for Prometheus counters. */
export interface PeerTotals {
  packetsReceived: number;
  packetsExpected: number;
  packetsLost: number;
  packetsDuplicated: number;
  packetsReordered: number;
  packetsLate: number;
  bytesReceived: number;
  dtxSeconds: number;
  timestampJumps: number;
  framesDecoded: number;
  framesProcessed: number;
  framesConcealed: number;
  framesCorrupt: number;
  framesDroppedQueueFull: number;
  framesLate: number;
  clippedSamples: number;
  sinkErrors: number;
  processorErrors: number;
  /** Main-thread seconds spent in processor stages. */
  processorStageSeconds: number;
  /** Frames processor stages still held when their stream ended, cut off after the drain timeout. */
  framesProcessorStageCutOff: number;
  /** Frames websocket sinks handed to their servers. */
  websocketFramesSent: number;
  /** Frames websocket sinks dropped from a full queue. */
  websocketFramesDropped: number;
  /** Reconnection attempts of websocket sinks. */
  websocketReconnects: number;
}

const ZERO_TOTALS: PeerTotals = {
  packetsReceived: 0,
  packetsExpected: 0,
  packetsLost: 0,
  packetsDuplicated: 0,
  packetsReordered: 0,
  packetsLate: 0,
  bytesReceived: 0,
  dtxSeconds: 0,
  timestampJumps: 0,
  framesDecoded: 0,
  framesProcessed: 0,
  framesConcealed: 0,
  framesCorrupt: 0,
  framesDroppedQueueFull: 0,
  framesLate: 0,
  clippedSamples: 0,
  sinkErrors: 0,
  processorErrors: 0,
  processorStageSeconds: 0,
  framesProcessorStageCutOff: 0,
  websocketFramesSent: 0,
  websocketFramesDropped: 0,
  websocketReconnects: 0,
};

/** `lost`: the session's packets lost as the total counts them (`PeerRegistry.#lostSoFar`). */
function addTotals(into: PeerTotals, s: PeerStatsSnapshot, lost: number): void {
  into.packetsReceived += s.rtp.packetsReceived;
  into.packetsExpected += s.rtp.packetsExpected;
  into.packetsLost += lost;
  into.packetsDuplicated += s.rtp.packetsDuplicated;
  into.packetsReordered += s.rtp.packetsReordered;
  into.packetsLate += s.rtp.packetsLate;
  into.bytesReceived += s.rtp.bytesReceived;
  into.dtxSeconds += s.rtp.dtxSeconds;
  into.timestampJumps += s.rtp.timestampJumps;
  into.framesDecoded += s.processing.framesDecoded;
  into.framesProcessed += s.processing.framesProcessed;
  into.framesConcealed += s.processing.framesConcealed;
  into.framesCorrupt += s.processing.framesCorrupt;
  into.framesDroppedQueueFull += s.processing.framesDropped;
  into.framesLate += s.processing.framesLate;
  into.clippedSamples += s.audio.clippedSamples;
  into.sinkErrors += s.processing.sinkErrors;
  into.processorErrors += s.processing.processorErrors;
  for (const p of s.processing.processorStages ?? []) {
    into.processorStageSeconds += p.cpuSeconds;
    into.framesProcessorStageCutOff += p.framesCutOff ?? 0;
  }
  addWebSocketTotals(into, s.websockets ?? [], 1);
}

function addWebSocketTotals(into: PeerTotals, sinks: WebSocketSinkStats[], sign: 1 | -1): void {
  for (const w of sinks) {
    into.websocketFramesSent += sign * w.sentFrames;
    into.websocketFramesDropped += sign * w.droppedFrames;
    into.websocketReconnects += sign * w.reconnects;
  }
}

export class PeerRegistry {
  readonly #live = new Map<string, PeerEntry>();
  readonly #ended = new Map<string, PeerStatsSnapshot>();
  /** The latency histogram of each ended peer in `#ended` (`GET /stats/:peer?histogram`). */
  readonly #endedLatency = new Map<string, LatencyHistogramSnapshot>();
  readonly #bySession = new Map<string, PeerEntry>();
  sessionsStarted = 0;
  sessionsEnded = 0;
  /** Sessions that ended, by reason. */
  readonly endedBy = new Map<SessionEndReason, number>();
  readonly #retiredTotals: PeerTotals = { ...ZERO_TOTALS };
  /**
   * Each live session's packets lost as last counted in `totals()`, by session id. RFC 3550's
   * lost (expected − received) goes down when a late packet or a duplicate arrives, but the total
   * is a Prometheus counter, which must never go down (a drop reads as a reset, and rate() then
   * spikes by the whole total): a session counts the most it has shown, floored at 0.
   */
  readonly #lostShown = new Map<string, number>();
  /**
   * Sessions a new one for their peer replaced, until they are retired: they
   * still drain and finalize, out of the live map and not yet in the retired
   * totals. Counted in `totals()` meanwhile, or every counter fell by their
   * figures for as long as the old session took to end (to 0 in the review's
   * run, for the drain of a processor stage: a reset to Prometheus).
   */
  readonly #replaced = new Set<PeerEntry>();

  get size(): number {
    return this.#live.size;
  }

  live(): PeerEntry[] {
    return [...this.#live.values()];
  }

  get(peer: string): PeerEntry | undefined {
    return this.#live.get(peer);
  }

  bySession(id: string): PeerEntry | undefined {
    return this.#bySession.get(id);
  }

  rooms(): string[] {
    return [...new Set([...this.#live.values()].map((e) => e.room))];
  }

  add(entry: PeerEntry): void {
    this.#endedLatency.delete(entry.peer);
    const replaced = this.#live.get(entry.peer);
    if (replaced && replaced !== entry) this.#replaced.add(replaced);
    this.#live.set(entry.peer, entry);
    this.#bySession.set(entry.session.id, entry);
    this.#ended.delete(entry.peer);
    this.sessionsStarted++;
  }

  /** Moves a peer to the ended list (with its final numbers) once its outputs are finalized. */
  retire(entry: PeerEntry): void {
    if (this.#live.get(entry.peer) === entry) this.#live.delete(entry.peer);
    this.#replaced.delete(entry);
    this.#bySession.delete(entry.session.id);
    this.sessionsEnded++;
    const reason = entry.session.endReason ?? 'closed-by-peer';
    this.endedBy.set(reason, (this.endedBy.get(reason) ?? 0) + 1);
    const final = snapshot(entry, false);
    addTotals(this.#retiredTotals, final, this.#lostSoFar(final));
    this.#lostShown.delete(final.session);
    if (!this.#live.has(entry.peer)) {
      this.#ended.set(entry.peer, final);
      this.#endedLatency.set(entry.peer, entry.pipeline.stats.latency.snapshot());
      if (this.#ended.size > ENDED_KEPT) {
        const oldest = this.#ended.keys().next().value!;
        this.#ended.delete(oldest);
        this.#endedLatency.delete(oldest);
      }
    }
    // Websocket sinks send their queue and end message after the recordings are final (bounded by
    // their grace): once they are done, the ended peer's figures say `closed` and count what they sent.
    if (final.websockets.length > 0) {
      void entry.pipeline.socketsEnded().then(() => {
        const websockets = entry.pipeline.websocketSinks();
        addWebSocketTotals(this.#retiredTotals, final.websockets, -1);
        addWebSocketTotals(this.#retiredTotals, websockets, 1);
        if (this.#ended.get(entry.peer) === final) this.#ended.set(entry.peer, { ...final, websockets });
      });
    }
  }

  /** Counters over every session since start: the ended ones' final figures plus the live ones' current. */
  totals(live: PeerStatsSnapshot[] = this.snapshots()): PeerTotals {
    const t = { ...this.#retiredTotals };
    for (const s of live) addTotals(t, s, this.#lostSoFar(s));
    for (const e of this.#replaced) {
      const s = snapshot(e);
      addTotals(t, s, this.#lostSoFar(s));
    }
    return t;
  }

  /** The session's packets lost for the totals: the most it has counted so far, so the total never goes down. */
  #lostSoFar(s: PeerStatsSnapshot): number {
    const lost = Math.max(0, s.rtp.packetsLost, this.#lostShown.get(s.session) ?? 0);
    // Live or replaced and still ending (not retired: its final figure is in the retired totals then).
    if (this.#bySession.has(s.session)) this.#lostShown.set(s.session, lost);
    return lost;
  }

  /** The latency histogram of a live or recently ended peer. */
  latency(peer: string): LatencyHistogramSnapshot | undefined {
    return this.#live.get(peer)?.pipeline.stats.latency.snapshot() ?? this.#endedLatency.get(peer);
  }

  snapshot(peer: string): PeerStatsSnapshot | undefined {
    const live = this.#live.get(peer);
    return live ? snapshot(live) : this.#ended.get(peer);
  }

  snapshots(): PeerStatsSnapshot[] {
    return [...this.#live.values()].map((e) => snapshot(e));
  }
}

function snapshot(e: PeerEntry, live = true): PeerStatsSnapshot {
  const now = performance.now();
  const s = e.session;
  const { firstPacketAt: _f, lastPacketAt: _l, ...rtp } = s.rtpStats();
  const recordings = e.pipeline.recordings();
  const end = s.state === 'ended' ? (e.session.endedAt ?? Date.now()) : Date.now();
  return {
    peer: e.peer,
    room: e.room,
    session: s.id,
    pipeline: e.pipelineName,
    state: s.state === 'ended' && live ? 'ending' : s.state,
    endReason: s.endReason ?? null,
    createdAt: new Date(s.createdAt).toISOString(),
    connectedAt: s.connectedAt ? new Date(s.connectedAt).toISOString() : null,
    durationSeconds: Math.round((end - s.createdAt) / 100) / 10,
    // An ended session receives nothing: its rate over the last 2 s is 0, not the one it had at its end.
    rtp: { ...rtp, jitter: Math.round(rtp.jitter * 1e6) / 1e6, bitrate: s.state === 'ended' ? 0 : Math.round(rtp.bitrate), codec: 'opus/48000/2', channels: e.pipeline.branches[0]?.channels ?? 1 },
    processing: {
      ...e.pipeline.stats.processing(e.pipeline.droppedFrames),
      worker: e.pipeline.worker ?? null,
      workerRestarts: Math.max(0, e.pipeline.workers.length - 1),
      sinkErrors: e.pipeline.sinkErrors,
      processorErrors: e.pipeline.processorErrors,
      processors: e.pipeline.processors(),
      processorStages: e.pipeline.processorStages(),
    },
    audio: e.pipeline.stats.audio(now),
    recording: recordings.find((r) => r.state === 'recording') ?? recordings[recordings.length - 1] ?? null,
    recordings,
    dataChannel: s.channel.stats(),
    websockets: e.pipeline.websocketSinks(),
  };
}
