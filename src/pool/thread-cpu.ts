/**
 * CPU time of a thread of this process, where the system tells it: on Linux
 * each thread's time on a CPU is the first field of
 * /proc/self/task/<tid>/schedstat (nanoseconds). The watchdog uses it to
 * tell a stage that is stuck (it burns CPU, or blocks: its thread sleeps)
 * from a worker that is merely waiting for a CPU on a loaded machine (its
 * thread is runnable, state R in /proc/self/task/<tid>/stat, but gets little
 * CPU time).
 * Elsewhere the functions answer 0 / undefined and the watchdog judges by
 * wall-clock time alone.
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** The calling thread's Linux thread id, or 0 when it cannot be known. */
export function currentThreadTid(): number {
  try {
    const m = /task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Milliseconds thread `tid` of this process has run on a CPU, or undefined. */
export function threadCpuMs(tid: number): number | undefined {
  if (tid <= 0) return undefined;
  try {
    const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/** Whether thread `tid` is runnable (running or waiting for a CPU), or undefined when unknown. */
export function threadRunnable(tid: number): boolean | undefined {
  if (tid <= 0) return undefined;
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
    // "tid (comm) S …": the command name may hold spaces and parentheses; the state follows the last ")".
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'R';
  } catch {
    return undefined;
  }
}
