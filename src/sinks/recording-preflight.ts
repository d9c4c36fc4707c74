/**
 * Before a session starts, not while it records: a pipeline that requires
 * recording is refused up front when the recordings directory cannot take a
 * recording now. The record sink (record-sink.ts) reports failures of
 * recordings that did start.
 */
import { errors } from '../errors.js';
import { recordingBaseName, type RecordingNameVars } from './recording-names.js';
import type { RecordingsStore } from './recordings-store.js';

/** The part of a pipeline the preflight looks at (a `Pipeline`, structurally). */
export interface RecordingPipeline {
  name: string;
  branches: ReadonlyArray<{ name?: string; sinks: ReadonlyArray<{ type: string; required?: boolean; directory?: string; template?: string }> }>;
}

/** Whose session it is: what a record sink's `directory` may name ({room}, {peer}). */
export interface PreflightSession {
  room: string;
  peer: string;
}

/** Placeholders known only once the recording starts: the directory is checked up to the first segment that names one. */
const LATER = /\{(date|time|session)\}/;

/**
 * Refuses a session up front when its pipeline requires recording (a record
 * sink with `required: true`) and a directory such a sink writes to cannot
 * take a new recording now (not writable, or less than `store.minFreeBytes`
 * free): `EARSHOT_RECORDING_UNAVAILABLE` (507) saying which and why. That is
 * the recordings directory and each required sink's own `directory` for this
 * session ("calls/{room}", on a volume of its own, say), as far as it is known
 * before the recording starts. Pipelines that don't require recording start
 * regardless; their recordings report failures in the stats and as events.
 */
export async function recordingPreflight(pipeline: RecordingPipeline, store: RecordingsStore, session?: PreflightSession): Promise<void> {
  const required = pipeline.branches.flatMap((b) => b.sinks.filter((s) => s.type === 'record' && s.required === true).map((sink) => ({ branch: b.name ?? 'main', sink })));
  if (required.length === 0) return;
  const directories = new Set<string>(['']);
  if (session) {
    const multiple = pipeline.branches.length > 1;
    for (const { branch, sink } of required) {
      if (!sink.directory) continue;
      const vars: RecordingNameVars = { room: session.room, peer: session.peer, branch, pipeline: pipeline.name, date: '{date}', time: '{time}', session: '{session}' };
      const segments = recordingBaseName(sink, vars, multiple).split('/').slice(0, -1);
      const known = segments.findIndex((seg) => LATER.test(seg));
      directories.add((known < 0 ? segments : segments.slice(0, known)).join('/'));
    }
  }
  try {
    for (const sub of directories) await store.checkUsable(sub);
  } catch (e) {
    throw errors.RECORDING_UNAVAILABLE(pipeline.name, (e as Error).message);
  }
}
