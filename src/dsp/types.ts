/**
 * Types shared by the stages that run inside pool workers. Nothing here knows
 * about WebRTC: the worker receives encoded Opus frames with media positions and
 * returns PCM frames.
 */

/** Sample encoding of a stream: 32-bit float (−1..1) or 16-bit integer. */
export type SampleFormat = 'f32' | 's16';

/** Sample rate, channel count and sample encoding of a PCM stream. */
export interface AudioFormat {
  /** Samples per second per channel. */
  sampleRate: number;
  /** 1 (mono) or 2 (stereo, interleaved L R). */
  channels: number;
  /**
   * Encoding the branch delivers: absent or 'f32' for floats, 's16' after a
   * `format` stage asked for 16-bit. Stages always work on floats (an s16
   * stream's floats lie on the 1/32768 grid); StreamProcessor packs the data
   * to Int16Array only at the end of the branch. Stages copy it from their
   * input format unless they change it.
   */
  sampleFormat?: SampleFormat;
}

/** A chunk of PCM passed between stages; its format is the previous stage's `output`. */
export interface PcmChunk {
  /** Interleaved samples, −1..1. A stage may reuse or replace it. */
  data: Float32Array;
  /** Voice activity probability 0..1, set by `denoise`. */
  vad?: number;
  /** Whether `vad` reached the denoise stage's `vadThreshold`; set by `denoise`. */
  speech?: boolean;
}

/**
 * What `Stage.process` returns: one chunk, several (a stage that cuts its
 * input into shorter frames, such as `reframe`), or null while it buffers.
 */
export type StageOutput = PcmChunk | readonly PcmChunk[] | null;

/** A processing step with per-stream state, created and used in one worker only. */
export interface Stage {
  /** Format of the chunks this stage emits. */
  readonly output: AudioFormat;
  /**
   * Processes one chunk. Returns the output chunk, several chunks in media
   * order, or null when the stage is still buffering (e.g. `denoise` needs
   * 480-sample frames). The input chunk and its data are the stage's to
   * modify or return.
   */
  process(chunk: PcmChunk): StageOutput;
  /** Frees WASM state. Called once; the stage is not used afterwards. */
  close(): void;
  /**
   * For a stage that skips its work on silent input (`denoise` does): frames,
   * in the stage's own unit, skipped since it was created. StreamProcessor sums
   * it over a stream's stages into `DecodeCounters.framesSkippedSilent`. A
   * stage that skips must still emit its output at the right position and length.
   */
  readonly framesSkippedSilent?: number;
}

/**
 * A stage that emits at most one chunk per input (every built-in except
 * `reframe`). Factories declare it so that direct callers need not handle lists.
 */
export interface ChunkStage extends Stage {
  process(chunk: PcmChunk): PcmChunk | null;
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
  /** Encoding of `data`: 'f32' (Float32Array) or 's16' (Int16Array, after a `format` stage asking for it). */
  sampleFormat: SampleFormat;
  /** Interleaved samples: Float32Array −1..1 for 'f32', Int16Array −32768..32767 for 's16'. */
  data: Float32Array | Int16Array;
  /** Voice activity probability 0..1 when the branch denoises. */
  vad?: number;
  /** `vad` judged against the denoise stage's `vadThreshold`, when the branch denoises. */
  speech?: boolean;
  /** RMS of the samples, linear 0..1 (measured on the floats, before any packing to s16). */
  rms: number;
  /** Largest absolute sample, linear 0..1 (measured before any packing to s16). */
  peak: number;
  /** Samples at or beyond 16-bit full scale in this frame (see `CLIP_LEVEL`). */
  clipped?: number;
  /** Arrival time of the packet that completed this frame (`performance.now()`, main thread). */
  arrival: number;
}

/**
 * Counters a stream's decoder keeps; forwarded to the main thread with every
 * batch. A PCM-input stream (`StreamSpec.input`) keeps the same counters:
 * `decoded` counts PCM frames accepted, `silenceSamples` is at the input rate,
 * and `concealed`/`corrupt` stay 0.
 */
export interface DecodeCounters {
  /** Packets decoded normally (PCM input: frames accepted). */
  decoded: number;
  /** Frames produced by Opus packet-loss concealment (lost or corrupt packets). */
  concealed: number;
  /** Packets libopus rejected as corrupt (also counted in `concealed`). */
  corrupt: number;
  /** Samples (48 kHz; PCM input: at the input rate) of silence inserted for gaps with no packets (DTX, or loss beyond concealment). */
  silenceSamples: number;
  /** Packets (or PCM frames) dropped because their media position was already played out (late or duplicate). */
  late: number;
  /**
   * Work skipped on silence: RNNoise frames (10 ms of one channel) the `denoise`
   * stages of the stream's branches did not run because the audio was digitally
   * silent (DTX gaps, muted or silent senders; see `denoise`), summed over
   * branches and channels. Set by StreamProcessor (0 when nothing skips);
   * absent from a bare decoder's counters.
   */
  framesSkippedSilent?: number;
}
