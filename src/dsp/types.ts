/**
 * Types shared by the stages that run inside pool workers. Nothing here knows
 * about WebRTC: the worker receives encoded Opus frames with media positions and
 * returns PCM frames (both in media/frames.ts).
 */
import type { AudioFormat } from '../media/frames.js';

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
   * Optional: at the end of the stream, what the stage still holds (`reframe`:
   * its last, partial frame, shorter than the others), or null. Called once,
   * before `close()`; what it returns runs through the stages after this one,
   * so audio received is not lost at the end.
   */
  flush?(): StageOutput;
  /**
   * For a stage that skips its work on silent input (`denoise` does): frames,
   * in the stage's own unit, skipped since it was created. StreamProcessor sums
   * it over a stream's stages into `DecodeCounters.framesSkippedSilent`. A
   * stage that skips must still emit its output at the right position and length.
   */
  readonly framesSkippedSilent?: number;
  /**
   * Optional: the stage's fast path for digital silence. The stream calls it
   * instead of `process` with a chunk whose samples are all exactly 0 — a gap
   * its input filled (a DTX pause, or loss longer than concealment covers) —
   * as long as every stage before this one skipped the chunk too.
   *
   * Return true when the stage has advanced its state exactly as `process`
   * would have, and `process` would have returned this same chunk unchanged:
   * all zeros, same length and format. The stage may set the chunk's `vad`
   * and `speech` (denoise sets 0 and false); it must not touch `data`. Return
   * false, having changed nothing, and `process` is called with the chunk
   * instead, then every stage after it. A stage with state that rings on after
   * sound (a filter's tail) returns true only once that state is at rest.
   */
  skipSilence?(chunk: PcmChunk): boolean;
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
