/**
 * The `earshot` command as users run it: `bin/earshot.js`, which imports the build (dist/), made
 * from the current sources by the tests' global setup (test/global-setup.ts). Spawn it with
 * `process.execPath`: `spawn(process.execPath, [EARSHOT_BIN, 'serve', …])`.
 */
import { join } from 'node:path';

export const EARSHOT_BIN = join(import.meta.dirname, '..', '..', 'bin', 'earshot.js');
