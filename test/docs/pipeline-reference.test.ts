/**
 * The stage and sink reference in docs/pipelines.md is generated from the
 * schemas; this test fails when they drift (`npm run docs` rewrites it:
 * UPDATE_DOCS=1).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { DOCS_BEGIN, DOCS_END, pipelineReference } from '../../src/pipeline/schema-docs.js';

const PIPELINES_DOC = new URL('../../docs/pipelines.md', import.meta.url);

describe('docs/pipelines.md', () => {
  it('contains the stage and sink reference generated from the schemas', async () => {
    const text = await readFile(PIPELINES_DOC, 'utf8');
    const start = text.indexOf(DOCS_BEGIN);
    const end = text.indexOf(DOCS_END);
    expect(start, 'docs/pipelines.md lacks the generated reference markers').toBeGreaterThanOrEqual(0);
    expect(end, 'docs/pipelines.md lacks the end marker').toBeGreaterThan(start);
    const current = text.slice(start, end + DOCS_END.length);
    const generated = pipelineReference();
    if (process.env.UPDATE_DOCS && current !== generated) {
      await writeFile(PIPELINES_DOC, text.slice(0, start) + generated + text.slice(end + DOCS_END.length));
      return;
    }
    expect(current).toBe(generated);
  });
});
