/**
 * How the server's process collects its young generation (V8's scavenges):
 * with helper threads (V8's default, `on`) or on the collecting thread alone
 * (`off`, the server's default).
 *
 * Why off by default: a parallel scavenge stops the main thread until its
 * helper threads have each done their share, and the DSP workers keep the
 * cores busy (one per core by default), so the helpers wait to be scheduled
 * and the pause, which every stream's frames wait through, grows. On 2 cores
 * at 40 speaking streams, the main thread's GC pause p99 was over 5 ms in 4 of
 * 12 rounds with helpers (worst 7.3 ms) and in 1 of 12 without (worst 5.1),
 * server CPU the same (docs/performance.md, "GC pauses and the young generation").
 *
 * A V8 flag is the whole process's, so it is a server setting (`earshot
 * serve`), never set by the library behind its user's back; library users
 * choose with `node --no-parallel-scavenge`. V8 reads the flag at each
 * scavenge, so setting it at start-up takes effect at once, in the workers
 * too. Engine processes (`--processes`) read it from the environment
 * variable, which `serve` sets for them.
 */
import { setFlagsFromString } from 'node:v8';

export type ParallelScavenge = 'on' | 'off';

/** The environment variable that carries the setting (the option's, and the engine processes' way to inherit it). */
export const PARALLEL_SCAVENGE_ENV = 'EARSHOT_PARALLEL_SCAVENGE';

/** Applies `setting` to this process and to the processes it starts (they inherit the environment). */
export function applyParallelScavenge(setting: ParallelScavenge): void {
  setFlagsFromString(setting === 'on' ? '--parallel-scavenge' : '--no-parallel-scavenge');
  process.env[PARALLEL_SCAVENGE_ENV] = setting;
}

/** In an engine process: applies what the front set (`serve` always sets it; anything else leaves V8's default). */
export function applyInheritedParallelScavenge(): void {
  const setting = process.env[PARALLEL_SCAVENGE_ENV];
  if (setting === 'on' || setting === 'off') applyParallelScavenge(setting);
}
