/**
 * The CPUs earshot sizes itself by (src/pool/cpu-quota.ts): the affinity's,
 * or a container's CPU limit (cgroup v2 cpu.max, v1 cfs quota) where lower.
 * The container itself is checked in test/docker/image.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { cgroupCpuLimit, cpuBudget, usableCpus, type TextReader } from '../../src/pool/cpu-quota.js';

const files = (map: Record<string, string>): TextReader => (path) => map[path];

describe('cgroupCpuLimit', () => {
  it('reads cgroup v2 cpu.max at the process cgroup, or at the root a container sees', () => {
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/kubepods/pod1/c1\n', '/sys/fs/cgroup/kubepods/pod1/c1/cpu.max': '200000 100000' }))).toBe(2);
    // A path the container cannot see (no cgroup namespace): the root it has.
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/system.slice/docker-1.scope\n', '/sys/fs/cgroup/cpu.max': '50000 100000' }))).toBe(0.5);
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
  });

  it('reads cgroup v1 cfs quota and period, also on a hybrid system whose v2 tree has no cpu controller', () => {
    const v1 = '12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n0::/\n';
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': v1, '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '300000\n', '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n' }))).toBe(3);
    // Inside the container: its own cgroup mounted at the root.
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '4:cpu,cpuacct:/\n', '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '100000', '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000' }))).toBe(1);
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '2:cpu:/\n', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBeUndefined();
  });

  it('gives none where nothing can be read or the files make no sense', () => {
    expect(cgroupCpuLimit(files({}))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'garbage' }))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '100000 0' }))).toBeUndefined();
  });
});

describe('cpuBudget and usableCpus', () => {
  it('take the affinity, or the limit where it is lower; whole CPUs round up, at least one', () => {
    expect([cpuBudget(64, 2), usableCpus(64, 2)]).toEqual([2, 2]);
    expect([cpuBudget(64, 1.5), usableCpus(64, 1.5)]).toEqual([1.5, 2]);
    expect([cpuBudget(64, 0.5), usableCpus(64, 0.5)]).toEqual([0.5, 1]);
    expect([cpuBudget(2, 8), usableCpus(2, 8)]).toEqual([2, 2]);
    expect([cpuBudget(4, undefined), usableCpus(4, undefined)]).toEqual([4, 4]);
  });
});
