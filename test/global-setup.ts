/**
 * Builds the package (`npm run build`: src → dist) once before the tests, unless the build is
 * newer than every source, and tells the tests where it is.
 *
 * What the tests run from it:
 * - the CLI, as users do (`bin/earshot.js`, which imports dist/): `earshot serve`, `validate`,
 *   `pipelines`, `send`, and the engine processes of `--processes`;
 * - the DSP worker threads of servers the tests start in their own process
 *   (src/pool/worker-dev.cjs reads EARSHOT_DEV_WORKER_BUILD): under the sources, each worker
 *   registered tsx, whose module loader hooks made every server's start ~1.5 s slower (a
 *   quarter of the media tests' time);
 * - the packed package (test/package), which packs dist/ as it is.
 * The tests' own code, and the servers they start in-process, still import src/ through
 * Vitest. The build is of the same sources at the same moment, so both sides agree.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOT = join(import.meta.dirname, '..');
/** Outside dist/: the package ships dist/ whole, and must not carry a file of the tests. */
const STAMP = join(ROOT, 'node_modules', '.cache', 'earshot-test-build');
const INPUTS = ['src', 'wasm', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];

/** The newest modification time among `path` and, for a directory, everything in it, ms. */
async function newest(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let latest = info.mtimeMs;
  for (const entry of await readdir(path)) latest = Math.max(latest, await newest(join(path, entry)));
  return latest;
}

async function upToDate(): Promise<boolean> {
  try {
    const built = (await stat(STAMP)).mtimeMs;
    await stat(join(ROOT, 'dist', 'src', 'pool', 'worker.js'));
    const sources = Math.max(...(await Promise.all(INPUTS.map((p) => newest(join(ROOT, p))))));
    return sources < built;
  } catch {
    return false;
  }
}

export default async function setup(): Promise<void> {
  if (!(await upToDate())) {
    const started = Date.now();
    // The stamp first: a source saved while tsc runs is then newer than it, and builds again next time.
    await mkdir(join(STAMP, '..'), { recursive: true });
    await writeFile(STAMP, '');
    try {
      await promisify(execFile)('npm', ['run', 'build'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    } catch (e) {
      // No stamp: the next run builds again.
      await rm(STAMP, { force: true });
      const { stdout, stderr } = e as { stdout?: string; stderr?: string };
      throw new Error(`npm run build failed before the tests:\n${stdout ?? ''}${stderr ?? ''}`);
    }
    process.stdout.write(`built dist/ for the tests in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
  process.env.EARSHOT_DEV_WORKER_BUILD = join(ROOT, 'dist', 'src', 'pool', 'worker.js');
}
