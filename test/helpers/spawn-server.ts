/**
 * The real server in a process of its own (test/helpers/child-server.ts), for
 * tests that need process-level conditions: a small file-descriptor limit, or
 * a server that dies without a word (SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { CreateServerOptions } from '../../src/index.js';

const ROOT = join(import.meta.dirname, '..', '..');

export interface SpawnedServer {
  url: string;
  child: ChildProcess;
  /** Sends `signal` (default SIGTERM: a graceful close) and resolves once the process exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts the server with `options` in a child process and resolves once it
 * listens. `child.pid` is the server's own process (for `prlimit --pid`).
 */
export async function spawnServer(options: Partial<CreateServerOptions>): Promise<SpawnedServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'child-server.ts')], { cwd: ROOT, env: { ...process.env, EARSHOT_TEST_OPTIONS: JSON.stringify(options) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (err = (err + c).slice(-4000)));
  const spawnFailed = new Promise<Error>((r) => child.once('error', r));
  for (const deadline = Date.now() + 45_000; !/URL (\S+)/.test(out); ) {
    const failed = await Promise.race([spawnFailed, new Promise((r) => setTimeout(r, 50, undefined))]);
    if (failed || Date.now() > deadline || child.exitCode !== null || child.signalCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`server did not start (exit ${child.exitCode ?? child.signalCode}${failed ? `, ${String(failed)}` : ''}): stdout: ${out} stderr: ${err}`);
    }
  }
  return {
    url: /URL (\S+)/.exec(out)![1],
    child,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}
