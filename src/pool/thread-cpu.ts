/**
 * CPU time of a thread of this process, where the system tells it: on Linux
 * each thread's time on a CPU is the first field of
 * /proc/self/task/<tid>/schedstat (nanoseconds). The watchdog uses it to
 * tell a stage that is stuck (it burns CPU, or blocks: its thread sleeps)
 * from a worker that is merely waiting for a CPU on a loaded machine: the
 * second field of schedstat is the time the thread spent runnable on a run
 * queue, waiting for a CPU (added when it gets one again), and its state in
 * /proc/self/task/<tid>/stat is R while it waits: a starved thread waits, a
 * spinning one uses CPU time, and a sleeping one does neither.
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

/**
 * Milliseconds thread `tid` of this process has run on a CPU (`cpu`) and has
 * waited, runnable, for one (`waiting`: time on a run queue), or undefined.
 */
export function threadSchedMs(tid: number): { cpu: number; waiting: number } | undefined {
  if (tid <= 0) return undefined;
  try {
    const [cpu, waiting] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ', 2).map(Number);
    return Number.isFinite(cpu) && Number.isFinite(waiting) ? { cpu: cpu / 1e6, waiting: waiting / 1e6 } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether thread `tid` is runnable now (running, or waiting for a CPU: state R), or undefined when unknown. */
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
