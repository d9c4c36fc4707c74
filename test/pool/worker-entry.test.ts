/**
 * The DSP worker's entry files are CommonJS: Piscina require()s a worker file
 * first, and Node 20's require() of an ES module ended the whole process twice
 * in CI (an entry with top-level await: "v8::Module::IsGraphAsync must be used
 * on an instantiated module"; one without, as a worker stopped while loading:
 * "Assertion failed: facade->InstantiateModule(…)" in
 * CreateRequiredModuleFacade). require() of a CommonJS file returns its
 * `module.exports`, the handler itself; of an ES module it returns a
 * namespace object, never a function. Checked in a process of its own, for
 * the bootstrap under the sources and the built entry the package ships.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function requireIn(file: string): Promise<string> {
  const script = `try { const m = require(${JSON.stringify(file)}); console.log('loaded', typeof m) } catch (e) { console.log('threw', e.code) }`;
  return new Promise((resolve) => execFile(process.execPath, ['--no-warnings', '-e', script], { cwd: ROOT, timeout: 30_000 }, (_e, stdout) => resolve(stdout.trim())));
}

describe('the DSP worker entry', () => {
  it('loads with require() as CommonJS, its exports the handler (never through require() of an ES module)', async () => {
    expect(await requireIn(join(ROOT, 'src', 'pool', 'worker-dev.cjs'))).toBe('loaded function');
    // The built entry (the suite's global setup built dist/).
    expect(await requireIn(join(ROOT, 'dist', 'src', 'pool', 'worker-entry.cjs'))).toBe('loaded function');
  });
});
