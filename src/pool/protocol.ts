/**
 * Messages between the main thread and pool workers. One task carries the due
 * frames of every stream pinned to that worker (DESIGN.md invariant 3); encoded
 * Opus packets (or, for streams built with the RxJS operators, PCM frames) go
 * in, PCM frames come out.
 */
import type { AudioFormat, DecodeCounters, EncodedInput, ProcessedFrame, StageSpec } from '../dsp/types.js';
import type { PcmInput } from '../dsp/stream-processor.js';

/** What a worker needs to create a stream's state: its input and each branch's stages. */
export interface StreamSetup {
  /** Channels to decode Opus to (ignored for PCM input, which brings its own). */
  channels: 1 | 2;
  branches: Array<{ stages: StageSpec[] }>;
  /** PCM input instead of Opus: the format of the frames pushed. */
  input?: AudioFormat & { channels: 1 | 2 };
}

/** A frame as pushed to a stream: encoded Opus, or PCM for PCM-input streams. */
export type StreamInput = EncodedInput | PcmInput;

export interface BatchItem {
  streamId: string;
  /** Present when the worker must (re)create the stream's state: first batch, or after a worker restart. */
  setup?: StreamSetup;
  frames: StreamInput[];
  /** Free the stream's state after processing `frames`. */
  close?: boolean;
}

export interface BatchTask {
  items: BatchItem[];
  /**
   * Stage modules (file URLs) every worker must have imported before it runs
   * the items. Sent with every task, so a worker that replaced a dead one loads
   * them before its first batch; a worker imports each URL once.
   */
  modules?: string[];
  /** Stream setups to build and free at once, reporting whether they can start (no frames). */
  checks?: StreamSetup[];
}

export interface BatchItemResult {
  streamId: string;
  /** Output frames per branch (index = branch). */
  outputs: ProcessedFrame[][];
  counters?: DecodeCounters;
  /** The worker had no state for the stream and no `setup` came with it (it restarted): resend with setup. */
  missing?: true;
  /** Creating or running the stream's stages failed; the stream is ended. */
  error?: string;
}

export interface ModuleLoadResult {
  url: string;
  /** Stage types the module registered. */
  types: string[];
  /** Why the module could not be used (it registered nothing). */
  error?: string;
}

export interface BatchResult {
  /** Thread id of the worker that ran the batch (for affinity checks and stats). */
  threadId: number;
  items: BatchItemResult[];
  /** Milliseconds the worker spent in the batch. */
  busyMs: number;
  /** Modules imported for this task (only those imported now, not earlier). */
  loaded?: ModuleLoadResult[];
  /** One entry per `checks` setup: null if it builds, else the error message. */
  checks?: Array<string | null>;
}
