/**
 * The README's stage and sink reference is generated from the schemas; this
 * test fails when they drift (`npm run docs` rewrites it: UPDATE_DOCS=1).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { DOCS_BEGIN, DOCS_END, pipelineReference } from '../../src/pipeline/schema-docs.js';

const README = new URL('../../README.md', import.meta.url);

describe('README', () => {
  it('contains the stage and sink reference generated from the schemas', async () => {
    const text = await readFile(README, 'utf8');
    const start = text.indexOf(DOCS_BEGIN);
    const end = text.indexOf(DOCS_END);
    expect(start, 'README lacks the generated reference markers').toBeGreaterThanOrEqual(0);
    const current = text.slice(start, end + DOCS_END.length);
    const generated = pipelineReference();
    if (process.env.UPDATE_DOCS && current !== generated) {
      await writeFile(README, text.slice(0, start) + generated + text.slice(end + DOCS_END.length));
      return;
    }
    expect(current).toBe(generated);
  });
});
