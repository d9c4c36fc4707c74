/**
 * The `earshot` command line: `serve` (default), `send`, `validate`, `pipelines`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../package-root.js';
import { registerSendCommand } from './send-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerValidateCommand } from './validate-command.js';
import { registerPipelinesCommand } from './pipelines-command.js';
import { unknownCommandMessage } from './unknown-command.js';

const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };

const program = new Command('earshot')
  .description('Live audio in over WebRTC (WHIP), processed off the main thread, out to recordings, statistics and your code.')
  .version(version)
  // serve's and send's option names are long (`--trust-proxy <addresses>`): on an 80-column terminal their
  // descriptions get ~36 columns, under commander's default of 40 for wrapping, and came out as 400-character lines.
  .configureHelp({ minWidthToWrap: 24 });
registerServeCommand(program);
registerSendCommand(program);
registerValidateCommand(program);
registerPipelinesCommand(program);

// Nothing may fail silently: report it, and end a command that finishes with a non-zero code. A
// server keeps serving the streams it has (what failed is reported, not every stream ended).
process.on('unhandledRejection', (err) => {
  process.stderr.write(`earshot: unhandled rejection: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});

// `earshot pipelines | head -1`: a reader that stops early is not an error of the command.
program.hook('preAction', (_program, command) => {
  if (command.name() === 'serve') return;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? 0);
  });
});

const unknown = unknownCommandMessage(process.argv.slice(2), program.commands.map((c) => c.name()));
if (unknown) program.error(`error: ${unknown}`, { code: 'commander.unknownCommand', exitCode: 1 });

await program.parseAsync(process.argv);
