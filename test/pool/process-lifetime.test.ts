/**
 * What the pool does to its process's lifetime: a task in flight keeps the
 * process alive until its result is back (a script awaiting only the pool
 * must get its answer), and an idle pool does not, closed or not (a script
 * must exit when its work is done). Each script runs in a child process of its own.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const POOL = pathToFileURL(join(ROOT, 'src', 'pool', 'worker-pool.ts')).href;
const dir = mkdtempSync(join(tmpdir(), 'earshot-pool-life-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` as an ES module with `WorkerPool` imported; resolves with its exit code and output (never rejects). */
function runScript(name: string, body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const file = join(dir, `${name}.mts`);
  writeFileSync(file, `import { WorkerPool } from ${JSON.stringify(POOL)};\n${body}\n`);
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      done({ code, stdout, stderr });
    });
  });
}

describe('the worker pool and its process', () => {
  it('keeps the process alive while a task is in flight, and lets it exit once closed', async () => {
    // Nothing but the pool's task holds the event loop while the check runs in the worker:
    // were the task's channel not holding it, Node would exit (code 13) before the answer.
    const run = await runScript(
      'in-flight',
      `const pool = new WorkerPool({ threads: 1, spareWorker: false });
await pool.start();
const first = await pool.checkSetups([{ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] }]);
const second = await pool.checkSetups([{ channels: 1, branches: [{ stages: [{ type: 'no-such-stage' }] }] }]);
console.log(JSON.stringify({ first, second: second.map((s) => typeof s) }));
await pool.close();
console.log('closed');`,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const [answer, closed] = run.stdout.trim().split('\n');
    expect(JSON.parse(answer)).toEqual({ first: [null], second: ['string'] });
    expect(closed).toBe('closed');
  });

  it('lets the process exit when the pool is idle, without close()', async () => {
    const run = await runScript(
      'idle',
      `const pool = new WorkerPool({ threads: 2 });
await pool.start();
const checks = await pool.checkSetups([{ channels: 1, branches: [{ stages: [] }] }]);
console.log(JSON.stringify(checks));`,
    );
    expect(run.stderr).toBe('');
    // Exited on its own: a process still running at the 60 s limit is killed, and its code is null.
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe('[null]');
  });
});
