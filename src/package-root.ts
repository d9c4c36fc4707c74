/**
 * The package's root directory, whether running from `src/` (tsx, tests) or
 * from `dist/src/` (the build): the nearest ancestor holding our package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'earshot') return (root = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error('earshot: cannot find the package root (package.json)');
    dir = parent;
  }
}
