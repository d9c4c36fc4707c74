/**
 * How many CPUs this process may use. Node's `availableParallelism()` counts
 * the CPUs its affinity allows (`taskset`, `docker run --cpuset-cpus`), not a
 * CPU limit: a container started with `--cpus=2`, or a Kubernetes pod with a
 * CPU limit of 2, on a 64-core host reads 64. Sized by that, earshot started
 * 22 engine processes of two DSP threads each, which the kernel then
 * throttled to two CPUs' worth of time, and admission judged its CPU
 * against 64.
 *
 * A limit is the cgroup's CFS quota over its period: cgroup v2's `cpu.max`
 * (`200000 100000`: two CPUs; `max 100000`: none), cgroup v1's
 * `cpu.cfs_quota_us` / `cpu.cfs_period_us` (−1: none), at the process's own
 * cgroup as /proc/self/cgroup names it, or at the cgroup root a container
 * sees. The JVM and Go's runtime read the same files for the same reason.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Reads a file's text, or undefined where it cannot. */
export type TextReader = (path: string) => string | undefined;

const readText: TextReader = (path) => {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
};

/** The cgroup CPU limit in CPUs (1.5 for `--cpus=1.5`), or undefined when there is none or it cannot be read. */
export function cgroupCpuLimit(read: TextReader = readText): number | undefined {
  const cgroups = read('/proc/self/cgroup') ?? '';
  // cgroup v2: "0::/path".
  const v2 = /^0::(\S*)$/m.exec(cgroups);
  for (const dir of v2 ? [`/sys/fs/cgroup${trimSlash(v2[1])}`, '/sys/fs/cgroup'] : []) {
    const max = read(`${dir}/cpu.max`);
    if (max === undefined) continue;
    const [quota, period] = max.trim().split(/\s+/);
    return quota === 'max' ? undefined : limitOf(Number(quota), Number(period));
  }
  // cgroup v1: "N:cpu,cpuacct:/path" (the controller list names cpu).
  const v1 = /^\d+:([^:\n]*\bcpu\b[^:\n]*):(\S*)$/m.exec(cgroups);
  if (v1) {
    const path = trimSlash(v1[2]);
    for (const base of [...new Set([v1[1], 'cpu', 'cpu,cpuacct'])].map((c) => `/sys/fs/cgroup/${c}`)) {
      for (const dir of [`${base}${path}`, base]) {
        const quota = read(`${dir}/cpu.cfs_quota_us`);
        if (quota === undefined) continue;
        return Number(quota) < 0 ? undefined : limitOf(Number(quota), Number(read(`${dir}/cpu.cfs_period_us`)));
      }
    }
  }
  return undefined;
}

function trimSlash(path: string): string {
  return path === '/' ? '' : path.replace(/\/$/, '');
}

function limitOf(quota: number, period: number): number | undefined {
  return Number.isFinite(quota) && Number.isFinite(period) && quota > 0 && period > 0 ? quota / period : undefined;
}

const LIMIT = cgroupCpuLimit();

/**
 * The CPU time this process may use, in CPUs: the CPUs its affinity allows,
 * or its cgroup's limit where that is lower (a fraction for `--cpus=0.5`).
 * What admission judges earshot's CPU time against.
 */
export function cpuBudget(affinity = availableParallelism(), limit = LIMIT): number {
  return Math.max(0.01, limit === undefined ? affinity : Math.min(affinity, limit));
}

/**
 * Whole CPUs to size threads and processes by: `cpuBudget()` rounded up
 * (`--cpus=1.5` runs two DSP threads, which the quota keeps to 1.5 CPUs'
 * worth between them), at least one.
 */
export function usableCpus(affinity = availableParallelism(), limit = LIMIT): number {
  return Math.max(1, Math.ceil(cpuBudget(affinity, limit) - 1e-9));
}
