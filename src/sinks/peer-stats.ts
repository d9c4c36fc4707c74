/**
 * Per-peer statistics: audio levels and voice activity from the stats sink,
 * decoder counters from the worker, and end-to-end latency (RTP arrival → frame
 * at the sinks). RTP figures come from the ingest and are joined in the snapshot.
 * Everything here is O(1) per frame; percentiles are computed when asked for.
 */
import type { AudioFrame, DecodeCounters } from '../media/frames.js';
import { bucketOf, LatencyHistogram, RecentHistogram } from '../media/latency-histogram.js';
import { SpeakingTracker } from './speaking.js';

/** Floor for dBFS figures of digital silence (log of 0 is −∞, which JSON cannot carry). */

/** The decoder counters, summed over a stream's workers. */
const COUNTER_KEYS = ['decoded', 'concealed', 'corrupt', 'silenceSamples', 'late', 'framesSkippedSilent'] as const;

export const SILENCE_DBFS = -120;

export function toDbfs(linear: number): number {
  return linear > 1e-6 ? 20 * Math.log10(linear) : SILENCE_DBFS;
}

export interface AudioStats {
  /** RMS over the last second, dBFS. */
  rmsDbfs: number;
  /** Largest sample over the last second, dBFS. */
  peakDbfs: number;
  /** RMS over the last 10 seconds, dBFS. */
  rms10sDbfs: number;
  /** Largest sample over the last 10 seconds, dBFS. */
  peak10sDbfs: number;
  /** Samples at or beyond 16-bit full scale over the session. */
  clippedSamples: number;
  /**
   * Speaking now (debounced: 60 ms of speech frames to start, 300 ms without to
   * stop); null without voice activity (no denoise stage).
   */
  speaking: boolean | null;
  /** Silent → speaking transitions over the session (0 without voice activity). */
  speechSegments: number;
  /** RMS over the whole session, dBFS. */
  sessionRmsDbfs: number;
  /** Largest sample over the whole session, dBFS. */
  sessionPeakDbfs: number;
  /** Latest voice-activity probability 0..1 (null without a denoise stage). */
  vad: number | null;
  /** Mean voice-activity probability over the session. */
  meanVad: number | null;
  /** Share of frames marked speech (denoise's `vadThreshold`, else VAD ≥ `speechThreshold`), 0..1. */
  speechRatio: number | null;
  speechThreshold: number;
  /** Seconds of audio measured. */
  seconds: number;
}

export interface ProcessingStats {
  framesDecoded: number;
  /** Frames the worker delivered to the sinks (first branch). */
  framesProcessed: number;
  framesConcealed: number;
  framesCorrupt: number;
  /** Frames dropped before processing because the stream's worker queue was full. */
  framesDropped: number;
  /** Packets too late to play (already concealed or played out). */
  framesLate: number;
  /** Frames not processed, by reason: worker queue full, too late, corrupt (concealed instead). */
  dropped: { queueFull: number; late: number; corrupt: number };
  silenceSeconds: number;
  /** 10 ms frames (per channel, all branches) that skipped a skippable stage (denoise) because they were silent. */
  framesSkippedSilent: number;
  /**
   * RTP arrival → frame at the sinks over the session (histogram-interpolated percentiles): the server's own
   * delay. A frame that waited in the reorder buffer for an earlier packet counts from the end of that wait.
   */
  latencyMs: { p50: number | null; p95: number | null; p99: number | null; max: number | null; samples: number };
  /** The same over the last `windowSeconds` (10): what the stream is like now, without its start-up. */
  recentLatencyMs: { p50: number | null; p99: number | null; samples: number; windowSeconds: number };
}

const WINDOW_MS = 1000;
/** Enough slots for one second of frames down to 5 ms each. */
const WINDOW_SLOTS = 256;
/** The long window: ten one-second buckets. */
const LONG_BUCKETS = 10;

/** Levels over a short window (`PeerAudioStats.level`): what a client's level meter shows. */
export interface LevelReading {
  /** RMS over the window, dBFS (`SILENCE_DBFS` when no frame arrived in it). */
  rmsDbfs: number;
  /** Largest sample over the window, dBFS. */
  peakDbfs: number;
  /** Mean voice-activity probability over the window; null without a denoise stage (or no frame). */
  vad: number | null;
  /** Frames measured in the window. */
  frames: number;
  /** Media time at the end of the last frame measured, ms since the stream started (0 before any). */
  mediaMs: number;
}

export class PeerAudioStats {
  readonly speechThreshold: number;
  #energy = 0; // sum of squares over the session
  #samples = 0;
  #sessionPeak = 0;
  #seconds = 0;
  #vadSum = 0;
  #vadFrames = 0;
  #speechFrames = 0;
  #lastVad: number | null = null;
  // Last second of frames in a ring of typed arrays (no per-frame objects for the GC
  // to promote): time, sum of squares, samples, peak.
  readonly #wT = new Float64Array(WINDOW_SLOTS);
  readonly #wEnergy = new Float64Array(WINDOW_SLOTS);
  readonly #wN = new Float64Array(WINDOW_SLOTS);
  readonly #wPeak = new Float64Array(WINDOW_SLOTS);
  /** Voice-activity probability of each slot, NaN for a frame without one. */
  readonly #wVad = new Float64Array(WINDOW_SLOTS);
  #wNext = 0;
  /** Media time at the end of the last frame, ms. */
  #mediaEndMs = 0;
  /** Media time (ms) where the current run of frames disagreeing with the speaking state began, if in one. */
  #runStartMs: number | undefined;
  /**
   * Called when the debounced speaking state changes, with the media time
   * (ms) where the change began: the first speech frame of a turn, or the
   * first silent frame after it. One listener (the client's data channel feed).
   */
  onSpeakingChange: ((speaking: boolean, atMs: number) => void) | undefined;
  /**
   * What the stream's earlier workers counted: a stream rebuilt on another
   * worker (a crash, a hang, a restart) counts from 0 there, and the session's
   * figures (Prometheus counters among them) must not fall with it.
   */
  readonly #before: Required<DecodeCounters> = { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0, framesSkippedSilent: 0 };
  /** The current worker's counters as last reported (copied: the worker's object is updated in place). */
  readonly #last: Required<DecodeCounters> = { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0, framesSkippedSilent: 0 };
  /** Workers the stream had at the last report. */
  #workers = 0;
  // Ten one-second buckets (energy, samples, peak) keyed by the second they cover.
  readonly #lSecond = new Float64Array(LONG_BUCKETS).fill(-1);
  readonly #lEnergy = new Float64Array(LONG_BUCKETS);
  readonly #lN = new Float64Array(LONG_BUCKETS);
  readonly #lPeak = new Float64Array(LONG_BUCKETS);
  #clipped = 0;
  #frames = 0;
  /** Debounced speaking state (sinks/speaking.ts, shared with WebSocket speech events). */
  readonly #speaking = new SpeakingTracker();
  readonly latency = new LatencyHistogram();
  readonly recentLatency = new RecentHistogram(10);

  constructor(options: { speechThreshold?: number } = {}) {
    this.speechThreshold = options.speechThreshold ?? 0.5;
  }

  /** Adds one processed frame of the measured branch. */
  addFrame(frame: AudioFrame, now: number): void {
    const n = frame.data.length;
    const energy = frame.rms * frame.rms * n;
    this.#energy += energy;
    this.#samples += n;
    this.#seconds += n / frame.channels / frame.sampleRate;
    if (frame.peak > this.#sessionPeak) this.#sessionPeak = frame.peak;
    const i = this.#wNext++ % WINDOW_SLOTS;
    this.#wT[i] = now;
    this.#wEnergy[i] = energy;
    this.#wN[i] = n;
    this.#wPeak[i] = frame.peak;
    this.#wVad[i] = frame.vad ?? NaN;
    const frameMs = (frame.position / frame.sampleRate) * 1000;
    this.#mediaEndMs = ((frame.position + n / frame.channels) / frame.sampleRate) * 1000;
    const second = Math.floor(now / 1000);
    const b = second % LONG_BUCKETS;
    if (this.#lSecond[b] !== second) {
      this.#lSecond[b] = second;
      this.#lEnergy[b] = 0;
      this.#lN[b] = 0;
      this.#lPeak[b] = 0;
    }
    this.#lEnergy[b] += energy;
    this.#lN[b] += n;
    if (frame.peak > this.#lPeak[b]) this.#lPeak[b] = frame.peak;
    this.#clipped += frame.clipped ?? 0;
    if (frame.vad !== undefined) {
      this.#lastVad = frame.vad;
      this.#vadSum += frame.vad;
      this.#vadFrames++;
      // The denoise stage's own decision (its vadThreshold) when it made one.
      const speech = frame.speech ?? frame.vad >= this.speechThreshold;
      if (speech) this.#speechFrames++;
      if (speech === (this.#speaking.speaking ?? false)) this.#runStartMs = undefined;
      else this.#runStartMs ??= frameMs;
      const change = this.#speaking.update(speech);
      if (change !== undefined) this.#speakingChanged(change === 'start', this.#runStartMs ?? frameMs);
    }
  }

  /** Media time at the end of the last frame measured, ms since the stream started (0 before any). */
  get mediaMs(): number {
    return Math.round(this.#mediaEndMs);
  }

  #speakingChanged(speaking: boolean, atMs: number): void {
    this.#runStartMs = undefined;
    try {
      this.onSpeakingChange?.(speaking, Math.round(atMs));
    } catch {
      // a listener's failure must not break the statistics
    }
  }

  /**
   * RMS, peak and mean voice activity of the frames measured in the last
   * `windowMs` (at most 1000) before `now` (`performance.now()`).
   */
  level(now: number, windowMs: number): LevelReading {
    let e = 0;
    let n = 0;
    let peak = 0;
    let frames = 0;
    let vadSum = 0;
    let vadN = 0;
    for (let i = 0; i < Math.min(this.#wNext, WINDOW_SLOTS); i++) {
      if (now - this.#wT[i] > windowMs) continue;
      frames++;
      e += this.#wEnergy[i];
      n += this.#wN[i];
      if (this.#wPeak[i] > peak) peak = this.#wPeak[i];
      const vad = this.#wVad[i];
      if (!Number.isNaN(vad)) {
        vadSum += vad;
        vadN++;
      }
    }
    return {
      rmsDbfs: round(toDbfs(n > 0 ? Math.sqrt(e / n) : 0)),
      peakDbfs: round(toDbfs(peak)),
      vad: vadN > 0 ? round(vadSum / vadN, 3) : null,
      frames,
      mediaMs: Math.round(this.#mediaEndMs),
    };
  }

  /**
   * Records one frame of the first branch reaching the sinks, with its
   * latency; `wallNow` (`Date.now()`) may be passed once for a batch of
   * frames. Returns the latency's bucket (LATENCY_BOUNDS_MS), for other
   * histograms on the same bounds (`addToBucket`).
   */
  addLatency(ms: number, wallNow = Date.now()): number {
    const bucket = bucketOf(this.latency.bounds, ms);
    this.latency.addToBucket(bucket, ms);
    if (this.recentLatency.bounds === this.latency.bounds) this.recentLatency.addToBucket(bucket, ms, wallNow);
    else this.recentLatency.add(ms, wallNow);
    this.#frames++;
    return bucket;
  }

  /**
   * The worker's decoder counters after a batch, and the number of workers
   * the stream has had: a new worker, or counters that went back, mean a
   * rebuilt stream counting from 0, and what the last one counted is kept.
   */
  setCounters(c: DecodeCounters, workers = 1): void {
    // Named fields, not a loop over the keys: this runs for every stream in every batch.
    const last = this.#last;
    const decoded = c.decoded;
    const concealed = c.concealed;
    const corrupt = c.corrupt;
    const silenceSamples = c.silenceSamples;
    const late = c.late;
    const skipped = c.framesSkippedSilent ?? 0;
    const restarted =
      workers !== this.#workers ||
      decoded < last.decoded ||
      concealed < last.concealed ||
      corrupt < last.corrupt ||
      silenceSamples < last.silenceSamples ||
      late < last.late ||
      skipped < last.framesSkippedSilent;
    if (restarted) for (const k of COUNTER_KEYS) this.#before[k] += last[k];
    this.#workers = workers;
    last.decoded = decoded;
    last.concealed = concealed;
    last.corrupt = corrupt;
    last.silenceSamples = silenceSamples;
    last.late = late;
    last.framesSkippedSilent = skipped;
  }

  audio(now: number): AudioStats {
    let e = 0;
    let n = 0;
    let peak = 0;
    for (let i = 0; i < Math.min(this.#wNext, WINDOW_SLOTS); i++) {
      if (now - this.#wT[i] > WINDOW_MS) continue;
      e += this.#wEnergy[i];
      n += this.#wN[i];
      if (this.#wPeak[i] > peak) peak = this.#wPeak[i];
    }
    const hasVad = this.#vadFrames > 0;
    let le = 0;
    let ln = 0;
    let lpeak = 0;
    const second = Math.floor(now / 1000);
    for (let b = 0; b < LONG_BUCKETS; b++) {
      if (second - this.#lSecond[b] >= LONG_BUCKETS) continue;
      le += this.#lEnergy[b];
      ln += this.#lN[b];
      if (this.#lPeak[b] > lpeak) lpeak = this.#lPeak[b];
    }
    return {
      rmsDbfs: round(toDbfs(n > 0 ? Math.sqrt(e / n) : 0)),
      peakDbfs: round(toDbfs(peak)),
      rms10sDbfs: round(toDbfs(ln > 0 ? Math.sqrt(le / ln) : 0)),
      peak10sDbfs: round(toDbfs(lpeak)),
      clippedSamples: this.#clipped,
      speaking: this.#speaking.speaking,
      speechSegments: this.#speaking.segments,
      sessionRmsDbfs: round(toDbfs(this.#samples > 0 ? Math.sqrt(this.#energy / this.#samples) : 0)),
      sessionPeakDbfs: round(toDbfs(this.#sessionPeak)),
      vad: this.#lastVad === null ? null : round(this.#lastVad, 3),
      meanVad: hasVad ? round(this.#vadSum / this.#vadFrames, 3) : null,
      speechRatio: hasVad ? round(this.#speechFrames / this.#vadFrames, 3) : null,
      speechThreshold: this.speechThreshold,
      seconds: round(this.#seconds, 3),
    };
  }

  processing(dropped: number): ProcessingStats {
    const b = this.#before;
    const now = this.#last;
    const c = {
      decoded: b.decoded + now.decoded,
      concealed: b.concealed + now.concealed,
      corrupt: b.corrupt + now.corrupt,
      silenceSamples: b.silenceSamples + now.silenceSamples,
      late: b.late + now.late,
      framesSkippedSilent: b.framesSkippedSilent + now.framesSkippedSilent,
    };
    const q = (p: number) => {
      const v = this.latency.quantile(p);
      return v === null ? null : round(v, 2);
    };
    const n = this.latency.count;
    const recent = (p: number) => {
      const v = this.recentLatency.quantile(p);
      return v === null ? null : round(v, 2);
    };
    return {
      framesDecoded: c.decoded,
      framesProcessed: this.#frames,
      framesConcealed: c.concealed,
      framesCorrupt: c.corrupt,
      framesDropped: dropped,
      framesLate: c.late,
      dropped: { queueFull: dropped, late: c.late, corrupt: c.corrupt },
      silenceSeconds: round(c.silenceSamples / 48000, 3),
      framesSkippedSilent: c.framesSkippedSilent,
      latencyMs: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: n > 0 ? round(this.latency.max, 2) : null, samples: n },
      recentLatencyMs: { p50: recent(0.5), p99: recent(0.99), samples: this.recentLatency.count(), windowSeconds: this.recentLatency.windowSeconds },
    };
  }
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
