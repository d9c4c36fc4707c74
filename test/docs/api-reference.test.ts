/**
 * docs/api/ is the API reference TypeDoc generates from the declarations and
 * doc comments of everything src/index.ts exports (typedoc.json,
 * `npm run docs:api`). This test generates it again into a temp directory and
 * fails when the committed copy differs; `npm run docs` (UPDATE_DOCS=1)
 * replaces it. The output has no timestamps or source line numbers, so it only
 * changes when the public API or its documentation does.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const committed = join(root, 'docs', 'api');
const typedoc = join(root, 'node_modules', 'typedoc', 'bin', 'typedoc');

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path).split('\\').join('/'), await readFile(path, 'utf8'));
  }
  return out;
}

let temp: string | undefined;
afterAll(async () => {
  if (temp) await rm(temp, { recursive: true, force: true });
});

describe('docs/api (TypeDoc)', () => {
  it('is what TypeDoc generates from the exports of src/index.ts', async () => {
    temp = await mkdtemp(join(tmpdir(), 'earshot-api-'));
    const out = join(temp, 'api');
    await promisify(execFile)(process.execPath, [typedoc, '--options', join(root, 'typedoc.json'), '--out', out, '--logLevel', 'Error'], { cwd: root });
    const generated = await files(out);
    expect(generated.get('README.md'), 'TypeDoc wrote no index').toContain('# earshot API reference');
    const current = await files(committed);
    const same = generated.size === current.size && [...generated].every(([path, text]) => current.get(path) === text);
    if (process.env.UPDATE_DOCS && !same) {
      await rm(committed, { recursive: true, force: true });
      await cp(out, committed, { recursive: true });
      return;
    }
    expect([...current.keys()].sort(), 'files in docs/api (run `npm run docs:api`)').toEqual([...generated.keys()].sort());
    for (const [path, text] of generated) expect(current.get(path), `docs/api/${path} is stale: run \`npm run docs:api\``).toBe(text);
  }, 60_000);
});
