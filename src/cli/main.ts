/**
 * The `earshot` command line: `serve` (default), `send`, `validate`, `pipelines`
 * (program.ts), run on the process's arguments.
 */
import { createProgram } from './program.js';
import { unknownCommandMessage } from './unknown-command.js';

const program = createProgram();

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
