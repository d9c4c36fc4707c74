/**
 * The `earshot` command line's commands and their help, without running
 * anything: `serve` (default), `send`, `validate`, `pipelines`. main.ts parses
 * the process's arguments with it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { errors } from '../errors.js';
import { packageRoot } from '../package-root.js';
import { registerSendCommand } from './send-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerValidateCommand } from './validate-command.js';
import { registerPipelinesCommand } from './pipelines-command.js';

export function createProgram(): Command {
  const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  const program = new Command('earshot')
    .description('Live audio in over WebRTC (WHIP), processed off the main thread, out to recordings, statistics and your code.')
    .version(version)
    // serve's and send's option names are long (`--trust-proxy <addresses>`): on an 80-column terminal their
    // descriptions get ~36 columns, under commander's default of 40 for wrapping, and came out as 400-character lines.
    .configureHelp({ minWidthToWrap: 24 })
    // Commander's own refusals of an option (a value out of range, not one of the choices, an unknown
    // option) carry the code every other refusal of a value prints, so that scripts find it. Subcommands
    // inherit this (they are created after it).
    .configureOutput({ outputError: (text, write) => write(withOptionCode(text)) });
  registerServeCommand(program);
  registerSendCommand(program);
  registerValidateCommand(program);
  registerPipelinesCommand(program);
  return program;
}

/** `[EARSHOT_OPTION_INVALID]` at the end of commander's refusal of an option, unless it names a code already. */
export function withOptionCode(text: string): string {
  if (!/^error: (option|unknown option|required option)/.test(text) || /\[EARSHOT_[A-Z_]+\]/.test(text)) return text;
  return text.replace(/\n?$/, ` [${errors.OPTION_INVALID.code}]\n`);
}
