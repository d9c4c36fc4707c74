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

const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };

const program = new Command('earshot')
  .description('Live audio in over WebRTC (WHIP), processed off the main thread, out to recordings, statistics and your code.')
  .version(version);
registerServeCommand(program);
registerSendCommand(program);
registerValidateCommand(program);
registerPipelinesCommand(program);

// Nothing may crash the process silently: report, then exit non-zero.
process.on('unhandledRejection', (err) => {
  process.stderr.write(`earshot: unhandled rejection: ${(err as Error)?.stack ?? String(err)}\n`);
});

await program.parseAsync(process.argv);
