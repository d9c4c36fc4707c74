/**
 * Messages between the main thread and pool workers. One task carries the due
 * frames of every stream pinned to that worker (DESIGN.md invariant 3); encoded
 * Opus packets go in, PCM frames come out.
 */
import type { DecodeCounters, EncodedInput, ProcessedFrame, StageSpec } from '../dsp/types.js';

/** What a worker needs to create a stream's state: decoder channels and each branch's stages. */
export interface StreamSetup {
  channels: 1 | 2;
  branches: Array<{ stages: StageSpec[] }>;
}

export interface BatchItem {
  streamId: string;
  /** Present when the worker must (re)create the stream's state: first batch, or after a worker restart. */
  setup?: StreamSetup;
  frames: EncodedInput[];
  /** Free the stream's state after processing `frames`. */
  close?: boolean;
}

export interface BatchTask {
  items: BatchItem[];
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

export interface BatchResult {
  /** Thread id of the worker that ran the batch (for affinity checks and stats). */
  threadId: number;
  items: BatchItemResult[];
  /** Milliseconds the worker spent in the batch. */
  busyMs: number;
}
