/**
 * The DSP worker's entry file loads with require(), synchronously: Piscina
 * require()s it first, and an entry with top-level await made it fall back to
 * import(), so that its second require() at a worker's start could meet that
 * import() still loading, which Node 20 ends the process for (a fatal
 * "v8::Module::IsGraphAsync must be used on an instantiated module", seen in
 * CI). Checked in a process of its own: loading the entry registers tsx there.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function requireIn(file: string): Promise<string> {
  const script = `try { const m = require(${JSON.stringify(file)}); console.log('loaded', typeof m.default) } catch (e) { console.log('threw', e.code) }`;
  return new Promise((resolve) => execFile(process.execPath, ['--no-warnings', '-e', script], { cwd: ROOT, timeout: 30_000 }, (_e, stdout) => resolve(stdout.trim())));
}

describe('the DSP worker entry', () => {
  it('loads with require(), its handler a function (no top-level await in the file Piscina is given)', async () => {
    expect(await requireIn(join(ROOT, 'src', 'pool', 'worker-dev.mjs'))).toBe('loaded function');
  });
});
