/**
 * `mkdir -p` that always settles. Node's `mkdir(dir, { recursive: true })`
 * never settles where a file system refuses to create a directory with
 * ENOENT while its parent exists (seen on Node 20 and 22: `/proc/anything`,
 * and the same pattern on other virtual file systems): it creates the parent
 * again (EEXIST), retries the child (ENOENT) and loops for ever, so
 * `serve --recordings /proc/x` hung with no output. Here each missing level
 * is created once, from the deepest one that exists, and any error is the
 * caller's (ENOENT, EACCES, ENOTDIR, …, as the recordings errors explain).
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Creates `dir` (absolute) and its missing parents; resolves once it exists, or rejects with the errno that stopped it. */
export async function makeDirectory(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    const info = await stat(at).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (info && !info.isDirectory()) {
      // As Node's own says it: EEXIST for the directory itself, ENOTDIR for a file above it.
      throw Object.assign(new Error(`${at} is not a directory`), { code: at === dir ? 'EEXIST' : 'ENOTDIR', path: at });
    }
    if (info || dirname(at) === at) break;
    missing.push(at);
  }
  for (const level of missing.reverse()) {
    await mkdir(level).catch((e: NodeJS.ErrnoException) => {
      // Made meanwhile by another recording of the same directory: what was wanted.
      if (e.code !== 'EEXIST') throw e;
    });
  }
}
