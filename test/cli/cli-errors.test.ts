/**
 * What a first-time user's mistakes get from the real CLI, spawned: a mistyped
 * command (`serve` is the default command, so without a check of its own
 * commander handed the word to `serve`, which answered about an option or its
 * arguments), and missing or wrong arguments and options named for what they are.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runEarshot } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

const earshot = (...args: string[]) => runEarshot(args);

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
    // An option first is no command: commander answers it as before.
    const version = await earshot('--version');
    expect([version.code, version.stdout]).toEqual([0, expect.stringMatching(/^\d+\.\d+\.\d+/)]);
    const option = await earshot('--no-such-option');
    expect([option.code, option.stderr]).toEqual([1, "error: unknown option '--no-such-option'\n"]);
  });

  it('still gives a command\'s help, and the help of all', async () => {
    const send = await earshot('help', 'send');
    expect(send.code).toBe(0);
    expect(send.stdout).toMatch(/^Usage: earshot send \[options\] <file>/);
    const all = await earshot('--help');
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/Commands:[\s\S]*send[\s\S]*validate/);
    // Wrapped for 80 columns (here, not a terminal); only a word that cannot be broken (a URL, a
    // variable's name) may stand out. serve's and send's long option names once left their
    // descriptions unwrapped, up to 460 characters a line.
    for (const command of ['serve', 'send', 'validate', 'pipelines']) {
      const help = await earshot(command, '--help');
      const over = help.stdout.split('\n').filter((l) => l.length > 80 && /\s/.test(l.trim()));
      expect(over, command).toEqual([]);
    }
  });

  it('says what is missing or wrong: the file before --url, --url itself, a backwards port range, a pipelines directory that is not there', async () => {
    const noFile = await earshot('send');
    expect([noFile.code, noFile.stderr]).toEqual([1, "error: missing required argument 'file'\n"]);
    const noUrl = await earshot('send', 'speech.wav');
    expect([noUrl.code, noUrl.stderr]).toEqual([1, 'earshot send: --url is required: the WHIP endpoint to publish to, e.g. --url http://127.0.0.1:8080/whip/demo/alice\n']);
    const ports = await earshot('serve', '--ice-ports', '5000-3000');
    expect(ports.code).toBe(1);
    expect(ports.stderr).toContain('the first port must be below the second, got 5000-3000 (use MIN-MAX, e.g. 40000-40999)');
    const missing = join(ROOT, 'no-such-pipelines');
    const dir = await earshot('serve', '--pipelines', missing, '--port', '0', '--host', '127.0.0.1');
    expect(dir.code).toBe(1);
    expect(dir.stderr).toContain(`Cannot read the pipelines directory ${missing}: no such directory. Give --pipelines (pipelinesDir) a directory of pipeline files, or leave it out for the bundled pipelines.`);
  });
});
