/**
 * What the worker pool (worker-pool.ts) promises its users: its options, a
 * stream's handle and the handlers that receive its frames, and what
 * `stats()` and `health()` report. The machinery behind them is in
 * worker-pool.ts.
 */
import type { EarshotError } from '../errors.js';
import type { AudioFrame, BranchFormat, DecodeCounters } from '../media/frames.js';
import type { StreamInput } from './protocol.js';

export interface WorkerPoolOptions {
  /**
   * Worker threads. Default: one per CPU the process may use (its affinity,
   * `availableParallelism()`, or a container's CPU limit where lower,
   * rounded up: cpu-quota.ts). The DSP
   * (RNNoise above all) is where the CPU goes — the main thread took 24–36 % of
   * one core at 30–40 denoised streams — so the workers should be able to use
   * every core, and they share the main thread's: on the 2-core reference
   * machine two workers carried the most streams and a third added nothing
   * (`npm run bench` prints the figures). At most four per core. Light load
   * does not use them all: a new stream goes to the first worker whose load
   * (measured, and never counted below its streams' estimated cost) stays
   * within 0.15 of its thread, so idle workers are not woken every batch
   * tick; past that, to the worker whose streams' estimated cost is least
   * (for streams of one pipeline, the one with the fewest).
   */
  threads?: number;
  /**
   * Milliseconds between batch flushes for each worker. Default 5: adds 2.5 ms
   * mean latency, ≤ 200 tasks/s per worker. The workers' ticks are staggered
   * by an equal share of it, and a worker still busy at its tick gets its
   * waiting frames as soon as its batch lands.
   */
  batchIntervalMs?: number;
  /**
   * How long a batch may run before its worker hands back the streams it has
   * finished, in ms; it does so again each time this long has passed since.
   * A batch of many streams that arrives late (its worker was preempted or
   * behind) otherwise delivers its first stream's frames only when its last
   * stream is done. Default 4: at 60 denoised streams on two cores about 40 %
   * of the batches ran longer, and each hand-back costs one message to
   * the main thread. 0: after every stream of a batch; a value above the
   * longest batch (e.g. `taskTimeoutMs`) turns it off. 0–600000.
   */
  earlyOutputMs?: number;
  /**
   * How long a silent talker's comfort-noise updates may wait for their
   * worker, in ms. A DTX sender (`usedtx=1`, which earshot's answers ask for)
   * sends one every ~400 ms while its user is silent, each a frame after a gap
   * that its encoder marked as no voice; from the second of a pause on, such a
   * frame waits until its worker gets a batch anyway (any stream's) or this
   * long has passed, so that silent talkers stop waking the workers one frame
   * at a time; so does the DTX frame a sender sends after each update.
   * Frames with voice, the first update of each pause (where the pause
   * becomes known downstream), stereo packets, packets of several frames and
   * PCM input are never held. A held frame's latency is counted from the end
   * of its hold. Default 200: with 40 silent talkers on two cores the workers
   * ran a tenth as many batches, and a long pause reaches the sinks at most
   * 0.2 s later. 0 turns it off. 0–2000.
   */
  quietHoldMs?: number;
  /**
   * Frames a stream may have waiting for its worker before the oldest are
   * dropped (counted in `dropped`). Default 100 (2 s of 20 ms frames).
   */
  maxQueuedFrames?: number;
  /**
   * Longest a worker may go without progress before the watchdog replaces it,
   * in ms. Progress is a stream's share of a batch starting, or a call of a
   * custom stage starting; so the limit applies to one stream's frames of one
   * batch (built-in stages) or one custom stage call, never to a whole batch of
   * many healthy streams. The stream that was running is ended with
   * `EARSHOT_STAGE_TIMEOUT`; the worker's other streams are rebuilt on the
   * replacement and their frames of the killed batch re-sent, so they lose
   * none. Default 500: a stream's share of a batch is at most `maxQueuedFrames`
   * frames (~35 ms for the full default chain at ~0.34 ms per frame), so 500 ms
   * is over ten times the worst legitimate case, and the stall it allows
   * (limit + a worker restart) stays well inside the 2 s the other streams can
   * queue. On Linux the limit counts the worker's CPU time: a worker that only
   * waits for a CPU on an overloaded machine is not taken for hung, unless it
   * makes no progress for ten times the limit. 50–600000.
   */
  taskTimeoutMs?: number;
  /**
   * Worker deaths blamed on one stream (it was being processed when its
   * worker exited) after which the stream is quarantined: ended with
   * `EARSHOT_STAGE_CRASHED` instead of rebuilt again. Default 2: one death can
   * be bad luck (a worker killed from outside while the stream ran); a second
   * is a pattern, and every death stalls all the streams of that worker while a
   * replacement starts. Below the limit the stream loses the batch its worker
   * died in and restarts. 1–100.
   */
  maxStreamCrashes?: number;
  /**
   * How long `health()` stays `degraded` after a worker was replaced (watchdog
   * or crash) or a stream quarantined, in ms; it is also degraded while a
   * replacement worker starts. Default 30000: long enough for a scrape or a
   * load-balancer probe to see it. 0–86400000.
   */
  healthWindowMs?: number;
  /**
   * Keep one extra worker started and idle, so that a slot whose worker hung
   * or died goes on at once on the spare (its streams rebuilt there) instead
   * of waiting for a new worker to start — ~0.1 s from the build, ~1 s from
   * the TypeScript sources on the reference machine, during which the slot's
   * streams only queue. A new spare then starts in the background. Costs one
   * idle thread's memory (~40 MB resident, measured), no CPU. Default true.
   */
  spareWorker?: boolean;
}

export interface PoolStreamHandlers {
  /**
   * Processed frames of one branch, in media order. The frames' data are views
   * into the batch's buffer (one per worker per tick). `pcm16`, when the
   * branch is in `pcm16Branches()`, holds each frame's samples quantized to
   * 16 bits like a recording (media/pcm16.ts); it is undefined for frames of
   * an s16 branch, whose data already are 16-bit.
   *
   * A branch left out of `f32Branches()` gets frames whose float samples were
   * not sent (to save the main thread their bytes): `complete[i]` is false
   * for those, and their `data` is the 16-bit copy (`sampleFormat` 's16').
   * Such frames are for the caller's own sinks; don't hand them to code that
   * expects the branch's real format.
   *
   * The 16-bit copies and incomplete frames are valid during the call only,
   * and read only: their buffer is reused for a later batch, and a frame of
   * silence's copy is a view of zeros shared with other frames. Copy what you
   * keep or change.
   */
  onFrames(branch: number, frames: AudioFrame[], pcm16?: ReadonlyArray<Int16Array | undefined>, complete?: readonly boolean[]): void;
  /**
   * The same one frame at a time (`pcm16`: its 16-bit copy; `complete`: see
   * above): when given, it is called instead of `onFrames`, and no arrays are
   * built for a batch. Frames come in media order per branch.
   */
  onFrame?(branch: number, frame: AudioFrame, pcm16: Int16Array | undefined, complete: boolean): void;
  /**
   * When true, a frame of zeros (a pause, a gate that closed) whose floats
   * were asked for comes with a view of zeros shared with other frames as its
   * data, read only and valid during the call, instead of an array of its
   * own; the handler copies it before code that may keep or change it gets
   * it. A long pause is seconds of such frames at
   * once, an hour of them with a long media timeout, so where only the
   * handler's own sinks read them this saves allocating and zeroing them all.
   * Default false.
   */
  sharedZeros?: boolean;
  /**
   * The format each branch delivers (index = branch), as the worker built
   * the stream's stages: called when the stream starts, before its first
   * frames, and again if it is rebuilt on another worker. It is what the
   * stages really output, custom stages included (a recording is written in
   * it, not in a format guessed from the stage list).
   */
  onFormats?(formats: readonly BranchFormat[]): void;
  /**
   * Decoder counters after each batch. The same object every time for a
   * stream, updated in place (read it, or copy it to keep a snapshot).
   */
  onCounters?(counters: DecodeCounters): void;
  /**
   * Branches (bit i = branch i) whose float samples the main thread reads,
   * asked before every batch. Default: all. Branches from 30 on always get them.
   */
  f32Branches?(): number;
  /**
   * Branches (bit i = branch i) whose frames should also come quantized to
   * 16 bits, ready for an s16 recording, asked before every batch. Default: none.
   */
  pcm16Branches?(): number;
  /**
   * Branches (bit i = branch i) to Opus-encode in the worker, asked before
   * every batch. Default: none. A branch's encoder starts with the first batch
   * that asks for it and is freed with the first that no longer does; its
   * packets come to `onOpus`.
   */
  opusBranches?(): number;
  /**
   * Opus packets of an encoded branch (see `opusBranches`): consecutive 20 ms
   * packets, the first at media position `position` (48 kHz samples). The
   * packets are views valid during the call only: copy what you keep.
   * `repeat` says, per packet, whether it is a settled pause's packet
   * repeated without coding (see `EncodedFrame.repeat`); absent when none is.
   * `end` comes with the stream's last packets, which code zeros past it: the
   * media position just past the stream's last sample (see `EncodedFrame.end`).
   */
  onOpus?(branch: number, position: number, packets: readonly Uint8Array[], repeat: readonly boolean[] | undefined, end?: number): void;
  /**
   * The stream's stages failed in the worker, hung it or crashed it too often;
   * the stream has been closed and gets no more frames. For a worker fault,
   * `error` is the typed error (`EARSHOT_STAGE_TIMEOUT`, `EARSHOT_STAGE_CRASHED`)
   * and `message` starts with its code.
   */
  onError(message: string, error?: EarshotError): void;
}

/** A stream's handle on the pool. */
export interface PoolStream {
  readonly id: string;
  /** Thread ids that have processed this stream, in order (one entry unless a worker died). */
  readonly workers: readonly number[];
  /** Frames dropped because the stream's worker queue was full. */
  readonly dropped: number;
  /**
   * Frames lost to worker faults and stream failures: the batch a stream was
   * blamed for crashing its worker in, or a batch no stream could be blamed
   * for that failed twice in a row; of a batch a stage threw in, the frames
   * from the one it threw on (those before were delivered, then `onError`);
   * and once the pool ended the stream (its
   * stages failed, or it was quarantined: see `onError`), the frames it had
   * queued and those pushed after. Streams that merely shared the worker get
   * their frames re-sent.
   */
  readonly lost: number;
  /**
   * Of `lost`, those lost to a stage that failed without a worker fault (it
   * threw, or could not be built): the frames of its batch from the one it
   * failed on, and those the stream had queued or was pushed after.
   */
  readonly lostToFailedStage: number;
  /** Queues a frame for the stream's worker: encoded Opus, or PCM for a stream opened with `setup.input`. */
  push(frame: StreamInput): void;
  /** Processes everything queued, frees the worker state, then resolves. */
  close(): Promise<void>;
}

export interface WorkerPoolStats {
  threads: number;
  /** Milliseconds between batches sent to each worker (`batchIntervalMs`). */
  batchIntervalMs: number;
  /** How long a batch runs before its worker hands back what it has finished (`earlyOutputMs`). */
  earlyOutputMs: number;
  /** How long a silent talker's comfort-noise updates may wait for a batch (`quietHoldMs`). */
  quietHoldMs: number;
  /** Share of time the workers spent processing batches since the pool started, 0..1. */
  utilization: number;
  /** Milliseconds the workers spent processing batches, all threads. */
  busyMs: number;
  /** Frames waiting for a worker, all streams. */
  queuedFrames: number;
  tasksInFlight: number;
  tasksCompleted: number;
  /**
   * Partial results of long batches: streams a worker handed back while the
   * rest of its batch still ran (`earlyOutputMs`).
   */
  earlyResults: number;
  /** Frames held back as a silent talker's comfort-noise updates (`quietHoldMs`); each was delivered later, none lost. */
  framesHeld: number;
  /** Batch tasks that did not complete: their worker crashed or the watchdog replaced it. */
  tasksFailed: number;
  /** Tasks whose worker the watchdog replaced (no progress for `taskTimeoutMs`, or a task never started). */
  tasksTimedOut: number;
  /** Workers that exited while running a task (a stage called `process.exit`, ran out of memory, …). */
  workerCrashes: number;
  /** Workers replaced for any reason (watchdog, crash, killed from outside) since the pool started. */
  workerRestarts: number;
  /** Streams ended for a worker fault: a stage hung, or crashed its worker `maxStreamCrashes` times. */
  streamsQuarantined: number;
  /** Frames lost to worker faults and failed streams, all streams (see `PoolStream.lost`). */
  framesLost: number;
  streams: number;
  /** Streams opened since the pool started (each one is a worker hop for its frames). */
  streamsOpened: number;
  /** Worker time per batch task, ms (p50, p99, max). */
  taskMs: { p50: number | null; p99: number | null; max: number | null };
  /** Per worker thread: streams pinned to it. */
  streamsPerThread: Record<string, number>;
}

/** A stream ended for a worker fault. */
export interface QuarantinedStream {
  /** Pool stream id (`PoolStream.id`). */
  stream: string;
  /** Type of the stage blamed, or null when the worker was not in a custom stage. */
  stage: string | null;
  reason: 'timeout' | 'crashes';
  /** The message the stream ended with (also given to its `onError`). */
  message: string;
  /** When (ISO 8601). */
  at: string;
}

export interface WorkerPoolHealth {
  /**
   * `degraded` while a replacement worker starts and for `healthWindowMs`
   * after a worker was replaced or a stream quarantined; the pool keeps
   * serving throughout (other streams lose no frames).
   */
  status: 'ok' | 'degraded';
  /** Why it is degraded, newest first; empty when ok. */
  reasons: string[];
  /** Workers replaced since the pool started. */
  workerRestarts: number;
  /** When a worker was last replaced (ISO 8601), or null. */
  lastRestartAt: string | null;
  /** Streams quarantined within the last `healthWindowMs`, newest first. */
  quarantined: QuarantinedStream[];
}
