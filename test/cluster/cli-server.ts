/**
 * Runs `earshot serve` (the build, as users run it) as its own process (a front and its
 * engine processes with `--processes N`), on a free loopback port, and reads
 * the URL from the log line it prints when listening.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EARSHOT_BIN } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** Records the tone as it arrives: no processing, so a recording can be checked sample for sample. */
export const RAW_PIPELINE = { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] };

export interface CliServer {
  url: string;
  child: ChildProcess;
  recordingsDir: string;
  /** The `--pipelines` directory (unused with `bundled`). */
  pipelinesDir: string;
  /** Every log line so far (JSON, one per line; the engines' lines carry `engine`). */
  lines: string[];
  /** SIGTERM; resolves to the exit code (null if it had to be killed after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** Removes the temporary directories (after `stop`). */
  cleanup(): Promise<void>;
}

/**
 * `bundled`: no `--pipelines`, run from an empty directory, so the server runs
 * the bundled pipelines (read-only over HTTP) as a fresh install does.
 * `pipelinesDir`: this directory as `--pipelines`, as it is (another server's,
 * to start again on what it left).
 */
export async function startCli(args: string[], options: { startTimeoutMs?: number; bundled?: boolean; pipelinesDir?: string } = {}): Promise<CliServer> {
  const dir = await mkdtemp(join(tmpdir(), 'earshot-cli-'));
  const recordingsDir = join(dir, 'recordings');
  const pipelinesDir = options.pipelinesDir ?? join(dir, 'pipelines');
  const pipelineArgs = options.bundled ? [] : ['--pipelines', pipelinesDir];
  if (!options.bundled && options.pipelinesDir === undefined) {
    // A copy of the bundled pipelines plus `raw`: PUT/DELETE in a test must never touch the repository's.
    await cp(join(ROOT, 'pipelines'), pipelinesDir, { recursive: true });
    await writeFile(join(pipelinesDir, 'raw.json'), JSON.stringify(RAW_PIPELINE));
  }
  const child = spawn(
    process.execPath,
    // The command as users run it (the build; test/helpers/cli.ts), from any directory.
    [EARSHOT_BIN, 'serve', '--port', '0', '--recordings', recordingsDir, ...pipelineArgs, '--log-level', 'info', ...args],
    // Admission off: the publishers run on the same two cores, so the measured load is not the server's own.
    { cwd: options.bundled ? dir : ROOT, env: { ...process.env, EARSHOT_ADMISSION: 'off' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve((exited = code))));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`earshot serve did not listen within ${options.startTimeoutMs ?? 60_000} ms:\n${lines.join('\n')}`)), options.startTimeoutMs ?? 60_000);
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; url?: string };
          if (entry.msg?.startsWith('earshot listening on') && entry.url) {
            clearTimeout(timer);
            resolve(entry.url);
          }
        } catch {
          // not a log line
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => lines.push(chunk.toString('utf8')));
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`earshot serve exited with ${code} before listening:\n${lines.join('\n')}`));
    });
  });
  return {
    url,
    child,
    recordingsDir,
    pipelinesDir,
    lines,
    async stop(timeoutMs = 30_000) {
      if (exited !== undefined) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The JSON log entries among `lines` whose message is `msg` (other output skipped). */
export function logEntries<T extends object>(lines: readonly string[], msg: string): Array<T & Record<string, unknown>> {
  return lines.flatMap((line) => {
    try {
      const entry = JSON.parse(line) as { msg?: unknown };
      return entry.msg === msg ? [entry as T & Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}
