/**
 * The `earshot` command as users run it: `bin/earshot.js`, which imports the build (dist/), made
 * from the current sources by the tests' global setup (test/global-setup.ts). Spawn it with
 * `process.execPath`: `spawn(process.execPath, [EARSHOT_BIN, 'serve', …])`, or run it to its
 * end with `runEarshot`.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

export const EARSHOT_BIN = join(import.meta.dirname, '..', '..', 'bin', 'earshot.js');

/** The repository's root, where the command runs (its `test/fixtures`, `pipelines`). */
const ROOT = join(import.meta.dirname, '..', '..');

export interface CliRun {
  /** Exit code; −1 when it was killed (the 60 s timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `earshot …args` from the repository's root to its end (60 s at most); `env` is added to this process's (`undefined` removes a variable). */
export function runEarshot(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [EARSHOT_BIN, ...args], { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}
