/**
 * A mistyped command: `serve` is the default command, so without a check of its
 * own commander handed the word to `serve`, which answered about an option or
 * its arguments. The real CLI, spawned.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EARSHOT_BIN } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

function earshot(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [EARSHOT_BIN, ...args], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const COMMANDS = 'the commands are serve, send, validate, pipelines (earshot --help)';

describe('earshot <mistyped command>', () => {
  it('names the unknown command and the nearest one, lists the commands, and exits 1 without starting anything', async () => {
    const cases: Array<[string[], string]> = [
      [['sned', 'speech.wav', '--url', 'http://127.0.0.1:9/whip/a/b'], `error: unknown command "sned" (did you mean "send"?); ${COMMANDS}\n`],
      [['validat', 'pipelines'], `error: unknown command "validat" (did you mean "validate"?); ${COMMANDS}\n`],
      [['bogus'], `error: unknown command "bogus"; ${COMMANDS}\n`],
      [['help', 'pipeline'], `error: unknown command "pipeline" (did you mean "pipelines"?); ${COMMANDS}\n`],
    ];
    for (const [args, message] of cases) {
      const run = await earshot(...args);
      expect([run.code, run.stderr, run.stdout], args.join(' ')).toEqual([1, message, '']);
    }
  });

  it('still gives a command\'s help, and the help of all', async () => {
    const send = await earshot('help', 'send');
    expect(send.code).toBe(0);
    expect(send.stdout).toMatch(/^Usage: earshot send \[options\] <file>/);
    const all = await earshot('--help');
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/Commands:[\s\S]*send[\s\S]*validate/);
  });
});
