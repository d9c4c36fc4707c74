/**
 * The audio a peer's stream loses on the way (worker queue full, packets too
 * late to play, frames that died with a restarted worker or with a stage that
 * failed): counted into the
 * recordings it cost, and reported once per episode, when drops start after a
 * quiet spell and as a summary when they stop.
 */
import type { DecodeCounters } from '../media/frames.js';
import type { DroppedFrames } from '../sinks/recorder.js';

/** A recording failure or an episode of dropped audio (see `PeerPipelineOptions.onEvent`). */
export interface PeerPipelineEvent {
  /**
   * `recording-failed`: a recording could not start or its writes failed
   * (`data`: branch, recording, code, error, seconds, bytes);
   * `audio-dropping`: frames started being dropped after a quiet spell
   * (`data`: the counts so far, by cause);
   * `audio-dropped`: the drops stopped (no more for `DROP_QUIET_MS`) or the
   * stream ended: a summary of the episode;
   * `websocket-unavailable`: a websocket sink cannot connect, or lost its
   * connection (once per outage; `data`: branch, url, error);
   * `websocket-reconnected`: it connected again (`data`: reconnects);
   * `websocket-dropping`: its queue is full and the oldest audio is being
   * dropped (once until the queue drains);
   * `processor-stage-cut-off`: a processor stage still held audio when the
   * stream ended and did not complete within `processorDrainTimeoutMs`
   * (`data`: branch, stage, processor, frames, seconds, timeoutMs, recording).
   */
  type: 'recording-failed' | 'audio-dropping' | 'audio-dropped' | 'websocket-unavailable' | 'websocket-reconnected' | 'websocket-dropping' | 'processor-stage-cut-off';
  level: 'info' | 'warn' | 'error';
  /** One line for the log. */
  message: string;
  data: Record<string, unknown>;
}

/** Drops this far apart belong to one episode: it ends (and is summarized) after this long without any. */
export const DROP_QUIET_MS = 5000;

/** Frames of a stream lost on the way to its sinks, by cause (`PeerPipeline.droppedBy`): a full queue, late packets, a restarted worker, a failed stage. */
export type DropCounts = Omit<DroppedFrames, 'backlog' | 'processorStage'>;

const DROP_KEYS = ['queueFull', 'late', 'workerRestart', 'stageFailed'] as const;

/** The pool's counts of a stream's lost frames: all of them, and of those, the ones lost to a failed stage (`PoolStream`). */
export interface PoolLoss {
  lost: number;
  lostToFailedStage: number;
}

/** Where loss goes: the recordings, and the events. */
export interface LossSinks {
  /** Loss since the last report, into every recording it affects. */
  noteLoss(counts: DropCounts, workerSilence: number): void;
  /** Whether a recording is armed, opening or running (said in the event). */
  recording(): boolean;
  emit(event: PeerPipelineEvent): void;
}

export class LossAccounting {
  /** Frames dropped over the session, by cause. */
  readonly droppedBy: DropCounts = { queueFull: 0, late: 0, workerRestart: 0, stageFailed: 0 };
  readonly #sinks: LossSinks;
  /** Cumulative figures already accounted for, to turn the pool's and the worker's totals into increments. */
  readonly #seen = { queueFull: 0, lost: 0, stageFailed: 0, late: 0, silence: 0, workers: 0 };
  #episode: (DropCounts & { startedAt: number; lastAt: number }) | undefined;

  constructor(sinks: LossSinks) {
    this.#sinks = sinks;
  }

  /**
   * Decoder counters after each batch, with the pool's counts of frames
   * dropped for a full queue and lost (`PoolStream.dropped`, `lost`, and of
   * those, `lostToFailedStage`) and the number of workers the stream has had:
   * the increments since the last call are loss to account for.
   */
  counters(c: DecodeCounters, dropped: number, lost: PoolLoss, workers: number): void {
    const seen = this.#seen;
    // A stream rebuilt on another worker counts from 0 again.
    if (workers !== seen.workers || c.late < seen.late || c.silenceSamples < seen.silence) {
      seen.late = 0;
      seen.silence = 0;
      seen.workers = workers;
    }
    const late = c.late - seen.late;
    const silence = c.silenceSamples - seen.silence;
    seen.late = c.late;
    seen.silence = c.silenceSamples;
    this.#poolCounts(dropped, lost, late, silence);
  }

  /**
   * The pool's final counts, once the stream is closed: loss after its last
   * batch (a fault in it, or a stream the pool ended, whose queued frames went
   * with it) has no batch to report it.
   */
  settle(dropped: number, lost: PoolLoss): void {
    this.#poolCounts(dropped, lost, 0, 0);
  }

  #poolCounts(dropped: number, { lost, lostToFailedStage }: PoolLoss, late: number, silence: number): void {
    const seen = this.#seen;
    const queueFull = dropped - seen.queueFull;
    const faults = lost - lostToFailedStage;
    const workerRestart = faults - seen.lost;
    const stageFailed = lostToFailedStage - seen.stageFailed;
    seen.queueFull = dropped;
    seen.lost = faults;
    seen.stageFailed = lostToFailedStage;
    // The usual batch lost nothing: no counts object (this runs for every stream after every batch).
    if (queueFull === 0 && late === 0 && silence === 0 && workerRestart === 0 && stageFailed === 0) this.#nothingLost();
    else this.#lost({ queueFull, late, workerRestart, stageFailed }, silence);
  }

  /** A report without loss: a drop episode quiet for long enough ends. */
  #nothingLost(): void {
    if (this.#episode && Date.now() - this.#episode.lastAt >= DROP_QUIET_MS) this.end();
  }

  /** Loss since the last report: into every recording it affects, and into the drop episode. */
  #lost(counts: DropCounts, workerSilence: number): void {
    const frames = counts.queueFull + counts.late + counts.workerRestart + counts.stageFailed;
    if (frames > 0 || workerSilence > 0) this.#sinks.noteLoss(counts, workerSilence);
    if (frames === 0) {
      this.#nothingLost();
      return;
    }
    const now = Date.now();
    for (const k of DROP_KEYS) this.droppedBy[k] += counts[k];
    if (this.#episode) {
      for (const k of DROP_KEYS) this.#episode[k] += counts[k];
      this.#episode.lastAt = now;
      return;
    }
    this.#episode = { ...counts, startedAt: now, lastAt: now };
    this.#sinks.emit({
      type: 'audio-dropping',
      level: 'warn',
      message: 'dropping audio',
      data: { frames, ...counts, cause: dropCause(counts), recording: this.#sinks.recording() },
    });
  }

  /** Summarizes and closes the current drop episode, if any (the stream ended). */
  end(): void {
    const e = this.#episode;
    if (!e) return;
    this.#episode = undefined;
    const { queueFull, late, workerRestart, stageFailed } = e;
    const total = this.droppedBy;
    this.#sinks.emit({
      type: 'audio-dropped',
      level: 'warn',
      message: 'stopped dropping audio',
      data: {
        frames: queueFull + late + workerRestart + stageFailed,
        queueFull,
        late,
        workerRestart,
        stageFailed,
        seconds: Math.round((e.lastAt - e.startedAt) / 100) / 10,
        sessionFrames: total.queueFull + total.late + total.workerRestart + total.stageFailed,
      },
    });
  }
}

function dropCause(c: DropCounts): string {
  const causes: string[] = [];
  if (c.queueFull) causes.push('the worker queue is full (the workers fall behind)');
  if (c.workerRestart) causes.push('frames were lost to a worker fault');
  if (c.stageFailed) causes.push('frames were lost to a stage that failed');
  if (c.late) causes.push('packets arrived too late to play');
  return causes.join('; ');
}
