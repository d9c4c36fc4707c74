/**
 * What a first-time user's mistakes get from the command line: a mistyped
 * command (`serve` is the default command, so without a check of its own
 * commander handed the word to `serve`, which answered about an option or its
 * arguments), missing or wrong arguments and options named for what they are,
 * and help that fits 80 columns. The real CLI, spawned, where the process's
 * own exit is the behaviour; the same program in process where commander
 * answers (its exit overridden), which is much quicker than a spawn.
 */
import { join } from 'node:path';
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../../src/cli/program.js';
import { unknownCommandMessage } from '../../src/cli/unknown-command.js';
import { runEarshot } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');
const COMMANDS = 'the commands are serve, send, validate, pipelines (earshot --help)';

/** What commander says about `args` (after `earshot`), its exit overridden: the error it writes and its code. */
function commanderSays(args: string[]): { stderr: string; exitCode: number | undefined } {
  const program = createProgram();
  let stderr = '';
  const quiet = (c: { exitOverride(): unknown; configureOutput(o: object): unknown }) => {
    c.exitOverride();
    c.configureOutput({ writeErr: (s: string) => (stderr += s), writeOut: () => undefined });
  };
  quiet(program);
  for (const c of program.commands) quiet(c);
  try {
    program.parse(['node', 'earshot', ...args]);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    return { stderr, exitCode: e.exitCode };
  }
  return { stderr, exitCode: undefined };
}

describe('earshot <mistyped command>', () => {
  it('names the unknown command and the nearest one, lists the commands, and exits 1 (the real CLI)', async () => {
    const run = await runEarshot(['sned', 'speech.wav', '--url', 'http://127.0.0.1:9/whip/a/b']);
    expect([run.code, run.stderr, run.stdout]).toEqual([1, `error: unknown command "sned" (did you mean "send"?); ${COMMANDS}\n`, '']);
    // An option first is no command: commander answers it as before.
    const version = await runEarshot(['--version']);
    expect([version.code, version.stdout]).toEqual([0, expect.stringMatching(/^\d+\.\d+\.\d+/)]);
  });

  it('knows a mistyped command from a command, an option and commander\'s help', () => {
    const commands = createProgram().commands.map((c) => c.name());
    const message = (...args: string[]) => unknownCommandMessage(args, commands);
    expect(message('validat', 'pipelines')).toBe(`unknown command "validat" (did you mean "validate"?); ${COMMANDS}`);
    expect(message('bogus')).toBe(`unknown command "bogus"; ${COMMANDS}`);
    expect(message('help', 'pipeline')).toBe(`unknown command "pipeline" (did you mean "pipelines"?); ${COMMANDS}`);
    for (const args of [[], ['serve'], ['send', 'f.wav'], ['--port', '8080'], ['-h'], ['help'], ['help', 'help'], ['help', 'send']]) expect(message(...args), args.join(' ')).toBeUndefined();
    expect(commanderSays(['--no-such-option'])).toEqual({ stderr: "error: unknown option '--no-such-option' [EARSHOT_OPTION_INVALID]\n", exitCode: 1 });
  });

  it('wraps every command\'s help for 80 columns; only a word that cannot be broken (a URL, a variable\'s name) may stand out', () => {
    // serve's and send's long option names once left their descriptions unwrapped, up to 460 characters a line.
    const program = createProgram();
    for (const command of [program, ...program.commands]) {
      command.configureOutput({ getOutHelpWidth: () => 80 });
      const over = command.helpInformation().split('\n').filter((l) => l.length > 80 && /\s/.test(l.trim()));
      expect(over, command.name()).toEqual([]);
    }
  });

  it('says what is missing or wrong: the file before --url, --url itself, a backwards port range, a pipelines directory that is not there', async () => {
    expect(commanderSays(['send'])).toEqual({ stderr: "error: missing required argument 'file'\n", exitCode: 1 });
    expect(commanderSays(['serve', '--ice-ports', '5000-3000'])).toEqual({
      stderr: "error: option '--ice-ports <min-max>' argument '5000-3000' is invalid. the first port must be below the second, got 5000-3000 (use MIN-MAX, e.g. 40000-40999) [EARSHOT_OPTION_INVALID]\n",
      exitCode: 1,
    });
    expect(commanderSays(['serve', '--ice-ports', '40000-40000']).stderr).toMatch(/argument '40000-40000' is invalid\. a range needs at least two ports, got 40000-40000 \(use MIN-MAX, e\.g\. 40000-40001 for two sessions at a time\)/);
    // Every refusal of an option's value carries a code, so that a script finds it: commander's own range
    // and choice checks too (they printed none), and earshot's own check's code where it has one.
    expect(commanderSays(['serve', '--max-sessions', '-3']).stderr).toBe("error: option '--max-sessions <n>' argument '-3' is invalid. --max-sessions must be an integer from 1 to 100000. [EARSHOT_OPTION_INVALID]\n");
    expect(commanderSays(['serve', '--log-level', 'loud']).stderr).toMatch(/^error: option '--log-level <level>' argument 'loud' is invalid\. Allowed choices are .+ \[EARSHOT_OPTION_INVALID\]\n$/);
    expect(commanderSays(['send', 'f.wav', '--bitrate', '5']).stderr).toMatch(/--bitrate must be an integer from 6000 to 510000 bit\/s\. \[EARSHOT_OPTION_INVALID\]\n$/);
    // A name no ${NAME} of a sink could match was taken without a word.
    expect(commanderSays(['serve', '--sink-env', 'API_KEY,BAD NAME']).stderr).toMatch(/--sink-env takes environment variable names \(letters, digits and _, not starting with a digit\), got "BAD NAME" \[EARSHOT_OPTION_INVALID\]\n$/);
    // A missing argument is no option's value: no option code.
    expect(commanderSays(['validate']).stderr).toBe("error: missing required argument 'file'\n");
    const ice = commanderSays(['serve', '--ice-server', 'http://x']);
    expect(ice.exitCode).toBe(1);
    expect(ice.stderr).toMatch(/^error: option '--ice-server <url\[,username,credential\]>' argument 'http:\/\/x' is invalid\. .+ \[EARSHOT_ICE_SERVER_INVALID\]\n$/);
    const proxy = commanderSays(['serve', '--trust-proxy', 'true']);
    expect(proxy.exitCode).toBe(1);
    expect(proxy.stderr).toMatch(/^error: option '--trust-proxy <addresses>' argument 'true' is invalid\. --trust-proxy .+ \[EARSHOT_OPTION_INVALID\]\n$/);
    const noUrl = await runEarshot(['send', 'speech.wav']);
    expect([noUrl.code, noUrl.stderr]).toEqual([1, 'earshot send: --url is required: the WHIP endpoint to publish to, e.g. --url http://127.0.0.1:8080/whip/demo/alice\n']);
    const missing = join(ROOT, 'no-such-pipelines');
    const dir = await runEarshot(['serve', '--pipelines', missing, '--port', '0', '--host', '127.0.0.1']);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toContain(`Cannot read the pipelines directory ${missing}: no such directory. Give --pipelines (pipelinesDir) a directory of pipeline files, or leave it out for the bundled pipelines.`);
  });
});
