/**
 * Before a session starts, not while it records: a pipeline that requires
 * recording is refused up front when the recordings directory cannot take a
 * recording now. The record sink (record-sink.ts) reports failures of
 * recordings that did start.
 */
import { errors } from '../errors.js';
import type { RecordingsStore } from './recordings-store.js';

/** The part of a pipeline the preflight looks at (a `Pipeline`, structurally). */
export interface RecordingPipeline {
  name: string;
  branches: ReadonlyArray<{ sinks: ReadonlyArray<{ type: string; required?: boolean }> }>;
}

/**
 * Refuses a session up front when its pipeline requires recording (a record
 * sink with `required: true`) and the recordings directory cannot take a new
 * recording now (not writable, or less than `store.minFreeBytes` free):
 * `EARSHOT_RECORDING_UNAVAILABLE` (507) saying why. Pipelines that don't
 * require recording start regardless; their recordings report failures in the
 * stats and as events instead.
 */
export async function recordingPreflight(pipeline: RecordingPipeline, store: RecordingsStore): Promise<void> {
  if (!pipeline.branches.some((b) => b.sinks.some((s) => s.type === 'record' && s.required === true))) return;
  try {
    await store.checkUsable();
  } catch (e) {
    throw errors.RECORDING_UNAVAILABLE(pipeline.name, (e as Error).message);
  }
}
