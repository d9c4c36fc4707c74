/**
 * The error catalog (`errors` in src/errors.ts) is the only place a code is
 * made: no source file builds an `EarshotError` with a code of its own, and
 * every code is unique.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errors } from '../src/errors.js';

const SRC = join(import.meta.dirname, '..', 'src');

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && /\.(ts|mjs|js)$/.test(e.name)).map((e) => join(e.parentPath, e.name));
}

describe('the error catalog', () => {
  it('is where every error code is made', async () => {
    const outside: string[] = [];
    for (const file of await sources(SRC)) {
      if (file.endsWith(join('src', 'errors.ts'))) continue;
      const text = await readFile(file, 'utf8');
      // A literal code outside the catalog; rebuilding a relayed error (`new EarshotError(e.code, …)`) is fine.
      for (const m of text.matchAll(/new EarshotError\(\s*['"`](EARSHOT_[A-Z_]+)/g)) outside.push(`${file.slice(SRC.length + 1)}: ${m[1]}`);
    }
    expect(outside).toEqual([]);
  });

  it('has unique codes, each named after its key', () => {
    const codes = Object.entries(errors).map(([key, factory]) => [key, factory.code] as const);
    expect(new Set(codes.map(([, code]) => code)).size).toBe(codes.length);
    for (const [key, code] of codes) expect(code).toBe(`EARSHOT_${key}`);
  });

  it('keeps the 4xx status fastify chose for a bad request', () => {
    const e = errors.BAD_REQUEST.withStatus(406, 'not acceptable');
    expect(e).toMatchObject({ code: 'EARSHOT_BAD_REQUEST', statusCode: 406, title: 'Bad request', message: 'not acceptable' });
  });
});
