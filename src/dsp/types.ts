/**
 * Types shared by the stages that run inside pool workers. Nothing here knows
 * about WebRTC: the worker receives encoded Opus frames with media positions and
 * returns PCM frames.
 */

/** Sample rate and channel count of a PCM stream. */
export interface AudioFormat {
  /** Samples per second per channel. */
  sampleRate: number;
  /** 1 (mono) or 2 (stereo, interleaved L R). */
  channels: number;
}

/** A chunk of PCM passed between stages; its format is the previous stage's `output`. */
export interface PcmChunk {
  /** Interleaved samples, −1..1. A stage may reuse or replace it. */
  data: Float32Array;
  /** Voice activity probability 0..1, set by `denoise`. */
  vad?: number;
}

/** A processing step with per-stream state, created and used in one worker only. */
export interface Stage {
  /** Format of the chunks this stage emits. */
  readonly output: AudioFormat;
  /**
   * Processes one chunk. Returns the output chunk, or null when the stage is
   * still buffering (e.g. `denoise` needs 480-sample frames).
   */
  process(chunk: PcmChunk): PcmChunk | null;
  /** Frees WASM state. Called once; the stage is not used afterwards. */
  close(): void;
}

/** Declaration of one stage in a pipeline: `{ "type": "resample", "sampleRate": 16000 }`. */
export interface StageSpec {
  type: string;
  [option: string]: unknown;
}

/** Creates a stage for a stream whose input has the given format. Throws RangeError/TypeError on bad options. */
export type StageFactory = (spec: StageSpec, input: AudioFormat) => Stage;

/** One encoded Opus frame as it enters the worker. */
export interface EncodedInput {
  /** Media position of the frame's first sample, in 48 kHz samples since the stream started. */
  position: number;
  /** Opus payload; null for a packet known to be lost (concealed with Opus PLC). */
  payload: Uint8Array | null;
  /**
   * Duration in 48 kHz samples when known from RTP timestamps (always for lost
   * packets); 0 when unknown, in which case the decoder's output length is used.
   */
  samples: number;
  /** `performance.now()` on the main thread when the packet arrived (for latency). */
  arrival: number;
}

/** One processed PCM frame leaving the worker for the sinks of a branch. */
export interface ProcessedFrame {
  /** Media position of the first sample, in samples at `sampleRate` since the stream started. */
  position: number;
  sampleRate: number;
  channels: number;
  /** Interleaved samples, −1..1. */
  data: Float32Array;
  /** Voice activity probability 0..1 when the branch denoises. */
  vad?: number;
  /** RMS of `data`, linear 0..1. */
  rms: number;
  /** Largest absolute sample of `data`, linear 0..1. */
  peak: number;
  /** Arrival time of the packet that completed this frame (`performance.now()`, main thread). */
  arrival: number;
}

/** Counters a stream's decoder keeps; forwarded to the main thread with every batch. */
export interface DecodeCounters {
  /** Packets decoded normally. */
  decoded: number;
  /** Frames produced by Opus packet-loss concealment (lost or corrupt packets). */
  concealed: number;
  /** Packets libopus rejected as corrupt (also counted in `concealed`). */
  corrupt: number;
  /** Samples (48 kHz) of silence inserted for gaps with no packets (DTX, or loss beyond concealment). */
  silenceSamples: number;
  /** Packets dropped because their media position was already played out (late or duplicate). */
  late: number;
}
