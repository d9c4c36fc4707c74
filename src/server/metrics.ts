/**
 * Prometheus metrics (`GET /metrics`) via prom-client, one registry per server.
 *
 * Naming follows Prometheus practice: base units (seconds, bytes), `_total`
 * for counters, ratios 0–1, and no peer, room or SSRC labels — per-peer detail
 * lives in `GET /stats/:peer`; here everything is aggregated so cardinality
 * stays bounded however many peers come and go. The only labels are small
 * fixed sets (`reason` a session ended, `code` it was refused, `reason` a frame
 * was dropped).
 *
 * Values are read from the server when scraped (collect callbacks), so the
 * media path does no extra work for metrics. The latency histograms are views
 * of the server's own fixed-bucket histograms: those have ~70 fine buckets
 * (for the percentiles in `GET /stats`), and every bucket is a time series in
 * Prometheus, so the export sums them into at most 15 (`EXPORT_BOUNDS_MS`).
 *
 * What grows is a counter (rate() it over any window), never a "since start"
 * average: a gauge averaged since start stops moving after a day of uptime.
 * Node's own metrics keep prom-client's standard names (`process_*`,
 * `nodejs_*`) so stock Node.js dashboards work unchanged. docs/metrics.md
 * lists every metric.
 */
import client, { type Metric } from 'prom-client';
import type { LatencyHistogram } from '../media/latency-histogram.js';
import type { EarshotCore } from '../core/earshot-core.js';
import { guardCounts } from '../rtc/guard-counts.js';
import { processMetrics, withProcessMetrics } from './process-metrics.js';

/** How long one read of the server serves a scrape's metrics. */
const SCRAPE_CACHE_MS = 250;

/**
 * Exported bucket bounds (ms) of the latency histograms: 13 bounds + `+Inf`.
 * Each is a bound of the internal histogram (`LATENCY_BOUNDS_MS`), so the
 * exported counts are exact sums of its buckets, not estimates.
 */
export const EXPORT_BOUNDS_MS: readonly number[] = [1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000];

export function createMetrics(core: EarshotCore): client.Registry {
  const register = new client.Registry();
  // prom-client samples event-loop delay with a timer of its own (nodejs_eventloop_lag_*, per
  // scrape, at its standard 10 ms; started with the process's first server); /stats has the
  // core's (since start, every 5 ms). Restarted in this same tick, the core's samples start out
  // in the turns of prom-client's, instead of waking the main thread in between (a late turn can
  // put them out of step again).
  processMetrics();
  core.sampleLoopDelayFromNow();

  // Counters and gauges filled at scrape time from one consistent read of the server.
  // One read serves every metric of a scrape (collect callbacks run across several ticks).
  let scrape: { at: number; stats: ReturnType<EarshotCore['stats']>; totals: ReturnType<EarshotCore['peers']['totals']>; live: ReturnType<EarshotCore['peers']['snapshots']> } | undefined;
  const read = () => {
    const now = Date.now();
    if (!scrape || now - scrape.at > SCRAPE_CACHE_MS) {
      const live = core.peers.snapshots();
      scrape = { at: now, stats: core.stats(), totals: core.peers.totals(live), live };
    }
    return scrape;
  };

  const gauge = (name: string, help: string, value: () => number) =>
    new client.Gauge({ name, help, registers: [register], collect() { this.set(value()); } });
  const counter = (name: string, help: string, value: () => number) =>
    new client.Counter({ name, help, registers: [register], collect() { this.reset(); this.inc(value()); } });
  const labelled = (name: string, help: string, label: string, values: () => Record<string, number>) =>
    new client.Counter({
      name,
      help,
      labelNames: [label],
      registers: [register],
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(values())) this.inc({ [label]: k }, v);
      },
    });

  gauge('earshot_peers', 'Live peers (sessions).', () => read().stats.peers);
  gauge('earshot_rooms', 'Rooms with at least one live peer.', () => read().stats.rooms);
  gauge('earshot_pipeline_files_invalid', 'Pipeline files edited on disk into something that cannot be loaded (GET /pipelines "invalidFiles"); the previous version of each still runs.', () => core.pipelines.fileProblems().length);
  gauge('earshot_peers_speaking', 'Live peers speaking now (voice activity, debounced).', () => read().live.filter((p) => p.audio.speaking === true).length);
  // Every recording of every branch: a pipeline may record several (the bundled call-recording two).
  gauge('earshot_recordings_active', 'Recordings being written now.', () => read().live.reduce((n, p) => n + p.recordings.filter((r) => r.state === 'recording').length, 0));
  counter('earshot_sessions_started_total', 'Sessions started.', () => read().stats.sessionsStarted);
  labelled('earshot_sessions_ended_total', 'Sessions ended, by reason.', 'reason', () => read().stats.endedBy);
  labelled('earshot_sessions_refused_total', 'Offers refused, by error code.', 'code', () => read().stats.refusedBy);

  counter('earshot_rtp_packets_received_total', 'RTP packets received (RFC 3550: late and duplicates included).', () => read().totals.packetsReceived);
  counter('earshot_rtp_packets_expected_total', 'RTP packets expected from sequence numbers (RFC 3550).', () => read().totals.packetsExpected);
  counter('earshot_rtp_packets_lost_total', 'RTP packets lost (expected − received, per session, floored at 0; the most each session has shown, so the counter never goes down).', () => read().totals.packetsLost);
  counter('earshot_rtp_packets_duplicated_total', 'Duplicate RTP packets dropped.', () => read().totals.packetsDuplicated);
  counter('earshot_rtp_packets_reordered_total', 'RTP packets that arrived after a later one.', () => read().totals.packetsReordered);
  counter('earshot_rtp_packets_late_total', 'RTP packets that arrived after their slot was concealed or played.', () => read().totals.packetsLate);
  counter('earshot_rtp_payload_bytes_received_total', 'RTP payload bytes received.', () => read().totals.bytesReceived);
  counter('earshot_rtp_dtx_seconds_total', 'Media seconds covered by DTX (no packets sent).', () => read().totals.dtxSeconds);
  counter('earshot_rtp_timestamp_jumps_total', 'RTP timestamp steps not taken as media time (a gap nothing explains, or backwards).', () => read().totals.timestampJumps);
  // Loss over a window is rate(lost_total) / rate(expected_total); a ratio gauge would be "since each session started".
  gauge('earshot_rtp_receive_bytes_per_second', 'RTP payload bytes per second summed over the live peers (last 2 s).', () => read().live.reduce((n, p) => n + p.rtp.bitrate, 0) / 8);

  counter('earshot_frames_decoded_total', 'Opus packets decoded.', () => read().totals.framesDecoded);
  counter('earshot_frames_processed_total', 'Frames delivered to the sinks (first branch).', () => read().totals.framesProcessed);
  counter('earshot_frames_concealed_total', 'Frames made by Opus packet-loss concealment.', () => read().totals.framesConcealed);
  labelled('earshot_frames_dropped_total', 'Frames not processed (or cut off in a processor stage at the stream\'s end), by reason.', 'reason', () => {
    const t = read().totals;
    return { queue_full: t.framesDroppedQueueFull, late: t.framesLate, corrupt: t.framesCorrupt, processor_stage: t.framesProcessorStageCutOff };
  });
  counter('earshot_audio_clipped_samples_total', 'Samples at or beyond 16-bit full scale, measured after processing.', () => read().totals.clippedSamples);
  counter('earshot_sink_errors_total', 'Sinks and processors detached after failing.', () => read().totals.sinkErrors);
  // Processor stages run on the main thread, next to WebRTC: rate() of this is the share of a core they take.
  counter('earshot_processor_stage_seconds_total', 'Main-thread seconds spent in processor stages (pipeline "processor" stages), all peers.', () => read().totals.processorStageSeconds);
  counter('earshot_websocket_frames_sent_total', 'Audio frames websocket sinks handed to their servers.', () => read().totals.websocketFramesSent);
  counter('earshot_websocket_frames_dropped_total', 'Audio frames websocket sinks dropped because their queue was full (server slow or unreachable).', () => read().totals.websocketFramesDropped);
  counter('earshot_websocket_reconnects_total', 'Reconnection attempts of websocket sinks.', () => read().totals.websocketReconnects);
  gauge('earshot_websocket_sinks_connected', 'Websocket sinks of live peers whose connection is open now.', () => read().live.reduce((n, p) => n + p.websockets.filter((w) => w.state === 'open').length, 0));

  // Process-wide: the guards patch werift's classes, which every server of the process shares.
  labelled('earshot_rtc_guarded_total', 'What the guards on the WebRTC stack turned away (process-wide), by guard: unauthenticated STUN requests, DTLS handshake fragments beyond the bound, DTLS alerts after the handshake that did not authenticate, DTLS records of no defined content type, SRTP and SRTCP packets that failed authentication, SRTP packets of streams beyond the ones kept, RTP packets of unannounced SSRCs beyond the ones a session takes, data-channel chunks sent beyond the receive window.', 'guard', () => ({
    stun_unauthenticated: guardCounts.stunUnauthenticated,
    dtls_fragment_dropped: guardCounts.dtlsFragmentsDropped,
    dtls_alert_unauthenticated: guardCounts.dtlsAlertsUnauthenticated,
    dtls_record_unknown: guardCounts.dtlsRecordsUnknown,
    srtp_unauthenticated: guardCounts.srtpUnauthenticated,
    srtp_packet_not_kept: guardCounts.srtpPacketsNotKept,
    rtp_ssrc_not_adopted: guardCounts.rtpSsrcsNotAdopted,
    srtcp_unauthenticated: guardCounts.srtcpUnauthenticated,
    sctp_chunk_dropped: guardCounts.sctpChunksDropped,
  }));

  gauge('earshot_pool_threads', 'DSP worker threads.', () => read().stats.pool.threads);
  // Utilization over a window: rate(earshot_pool_busy_seconds_total[1m]) / earshot_pool_threads.
  counter('earshot_pool_busy_seconds_total', 'Seconds the workers spent processing batches, all threads.', () => read().stats.pool.busyMs / 1000);
  gauge('earshot_pool_queued_frames', 'Frames waiting for a worker, all streams.', () => read().stats.pool.queuedFrames);
  gauge('earshot_pool_streams', 'Streams open in the worker pool.', () => read().stats.pool.streams);
  counter('earshot_pool_tasks_total', 'Batch tasks the workers completed.', () => read().stats.pool.tasksCompleted);
  counter('earshot_pool_held_frames_total', 'Comfort-noise updates of silent talkers held back to ride with a later batch (quietHoldMs); delivered later, none lost.', () => read().stats.pool.framesHeld);
  counter('earshot_pool_early_results_total', 'Partial results of long batches: streams a worker handed back while the rest of its batch still ran.', () => read().stats.pool.earlyResults);
  counter('earshot_pool_tasks_failed_total', 'Batch tasks that did not complete: their worker crashed or the watchdog replaced it.', () => read().stats.pool.tasksFailed);
  counter('earshot_pool_tasks_timed_out_total', 'Tasks whose worker the watchdog replaced (no progress for taskTimeoutMs).', () => read().stats.pool.tasksTimedOut);
  counter('earshot_pool_worker_crashes_total', 'Workers that exited while running a task (process.exit, out of memory, …).', () => read().stats.pool.workerCrashes);
  counter('earshot_pool_worker_restarts_total', 'Workers replaced for any reason (watchdog, crash, killed from outside).', () => read().stats.pool.workerRestarts);
  counter('earshot_pool_streams_quarantined_total', 'Streams ended for a worker fault: a stage hung, or crashed its worker maxStreamCrashes times.', () => read().stats.pool.streamsQuarantined);
  counter('earshot_pool_frames_lost_total', 'Frames lost to worker faults and failed streams: a worker that died or hung (the blamed stream\'s batch; streams sharing the worker get theirs re-sent), a stage that threw (from the frame it threw on), and the queue of a stream they ended.', () => read().stats.pool.framesLost);
  gauge('earshot_pool_degraded', '1 while GET /health says degraded (a worker restarting, or a worker fault within the health window), else 0.', () => (core.pool.health().status === 'degraded' ? 1 : 0));
  // The main thread's event-loop delay is prom-client's nodejs_eventloop_lag_* (per scrape, not since start).

  register.registerMetric(histogram('earshot_processing_latency_seconds', 'RTP arrival (or the end of a reorder wait) → processed frame at the sinks, every frame.', core.latency, 1e-3, EXPORT_BOUNDS_MS));
  register.registerMetric(histogram('earshot_rtp_jitter_seconds', 'Interarrival jitter (RFC 3550) of each live peer, sampled every second.', core.jitter, 1));
  register.registerMetric(histogram('earshot_pool_task_duration_seconds', 'Worker time per batch task.', core.pool.taskTimes, 1e-3, EXPORT_BOUNDS_MS));
  return withProcessMetrics(register);
}

/**
 * Cumulative counts of `source` at the bounds `exportBounds` (default: its
 * own), the last entry being `+Inf`. Every export bound must be one of the
 * source's bounds, so each count is exact.
 */
export function cumulativeBuckets(source: { boundsMs: readonly number[]; counts: readonly number[] }, exportBounds: readonly number[] = source.boundsMs): Array<{ le: number; count: number }> {
  const { boundsMs, counts } = source;
  const out: Array<{ le: number; count: number }> = [];
  let cumulative = 0;
  let i = 0;
  for (const bound of exportBounds) {
    for (; i < boundsMs.length && boundsMs[i] <= bound; i++) cumulative += counts[i];
    if (boundsMs[i - 1] !== bound) throw new RangeError(`export bound ${bound} is not a bound of the histogram`);
    out.push({ le: bound, count: cumulative });
  }
  for (; i < counts.length; i++) cumulative += counts[i];
  out.push({ le: Infinity, count: cumulative });
  return out;
}

/**
 * A prom-client metric over one of our fixed-bucket histograms: exported as a
 * Prometheus histogram (cumulative `_bucket`s with `le`, `_sum`, `_count`),
 * `scale` converting its unit to seconds, at `exportBounds` (in its unit;
 * default: all of its own bounds).
 */
function histogram(name: string, help: string, source: LatencyHistogram, scale: number, exportBounds?: readonly number[]): Metric {
  // Bounds that do not line up throw here, at start, rather than in every scrape.
  cumulativeBuckets(source.snapshot(), exportBounds);
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = [];
      for (const { le, count } of cumulativeBuckets(source.snapshot(), exportBounds)) {
        values.push({ value: count, labels: { le: le === Infinity ? '+Inf' : round(le * scale) }, metricName: `${name}_bucket` });
      }
      values.push({ value: source.sum * scale, labels: {}, metricName: `${name}_sum` });
      values.push({ value: source.count, labels: {}, metricName: `${name}_count` });
      return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values });
    },
    reset() {},
  };
  return metric as unknown as Metric;
}

function round(v: number): number {
  return Number(v.toPrecision(6));
}
