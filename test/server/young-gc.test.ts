/**
 * `--parallel-scavenge`: the server process's young-generation collections
 * run on the collecting thread alone when off (the default), with V8's
 * helper threads when on; engine processes take the setting from the
 * environment. Observed in a real Node process through V8's own trace,
 * switched on once the setting is applied: with `--trace-parallel-scavenge`,
 * a scavenge prints a line each time a thread runs its scavenging job, so a
 * serial scavenge prints exactly one, and helper threads joining print more.
 */
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const moduleUrl = pathToFileURL(join(root, 'src', 'server', 'young-gc.ts')).href;

/** Runs `call` (a call of the module's exports, as `m.…`) in a fresh process that then makes young garbage with survivors; counts scavenges and the runs of their scavenging jobs. */
async function scavenges(call: string, env: Record<string, string> = {}): Promise<{ scavenges: number; runs: number }> {
  const script = `
    const m = await import(${JSON.stringify(moduleUrl)});
    ${call};
    // Traced from here on: the loader's own start-up collections came before the setting.
    const v8 = await import('node:v8');
    v8.setFlagsFromString('--trace-gc');
    v8.setFlagsFromString('--trace-parallel-scavenge');
    const keep = [];
    for (let i = 0; i < 3e6; i++) { const o = { a: i, b: [i] }; if (i % 10 === 0) keep.push(o); if (keep.length > 50000) keep.length = 0; }
  `;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('EARSHOT_PARALLEL_SCAVENGE' in env)) delete childEnv.EARSHOT_PARALLEL_SCAVENGE;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env: childEnv, maxBuffer: 16 * 1024 * 1024 });
  return { scavenges: stdout.match(/\bScavenge\b/g)?.length ?? 0, runs: stdout.match(/\bscavenge\[/g)?.length ?? 0 };
}

const severalCores = availableParallelism() > 1;

describe('parallel scavenge setting', () => {
  it('off: every scavenge runs once, on the collecting thread', async () => {
    const r = await scavenges("m.applyParallelScavenge('off')");
    expect(r.scavenges).toBeGreaterThan(5);
    expect(r.runs).toBe(r.scavenges);
  });

  it.runIf(severalCores)('on: helper threads join the scavenges (V8 default)', async () => {
    const r = await scavenges("m.applyParallelScavenge('on')");
    expect(r.scavenges).toBeGreaterThan(5);
    expect(r.runs).toBeGreaterThan(r.scavenges);
  });

  it('sets the environment variable, so processes it starts inherit the setting', async () => {
    const r = await scavenges("m.applyParallelScavenge('off'); if (process.env.EARSHOT_PARALLEL_SCAVENGE !== 'off') throw new Error('not inherited')");
    expect(r.runs).toBe(r.scavenges);
  });

  it('an engine process applies the setting it inherits, and leaves V8 alone without one', async () => {
    const inherited = await scavenges('m.applyInheritedParallelScavenge()', { EARSHOT_PARALLEL_SCAVENGE: 'off' });
    expect(inherited.scavenges).toBeGreaterThan(5);
    expect(inherited.runs).toBe(inherited.scavenges);
    if (severalCores) {
      const none = await scavenges('m.applyInheritedParallelScavenge()');
      expect(none.runs).toBeGreaterThan(none.scavenges);
    }
  });
});
