/**
 * The published JSON Schema (pipelines/pipeline.schema.json) is generated from
 * PipelineSchema; this test fails when the committed file drifts
 * (`npm run docs` rewrites it: UPDATE_DOCS=1). Every option is documented.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { PipelineSchema } from '../../src/pipeline/schema.js';
import { PIPELINE_SCHEMA_ID, publishedSchema, publishedSchemaText } from '../../src/pipeline/schema-docs.js';

const FILE = new URL('../../pipelines/pipeline.schema.json', import.meta.url);

interface Node {
  description?: string;
  default?: unknown;
  properties?: Record<string, Node>;
  required?: string[];
  patternProperties?: Record<string, Node>;
  anyOf?: Node[];
  items?: Node;
  $ref?: string;
  [key: string]: unknown;
}

/** Optional members that have no default on purpose: their absence means something no single value says. */
const NO_DEFAULT = new Map([
  ['/$schema', 'only for editors'],
  ['/description', 'free text'],
  ['/stages', 'its presence selects the single-chain form'],
  ['/sinks', 'its presence selects the single-chain form'],
  ['/branches', 'its presence selects the branched form'],
  ['/stages/bandpass/frequency', 'bandpass takes this or the edge pair'],
  ['/stages/bandpass/lowFrequency', 'bandpass takes this or "frequency"'],
  ['/stages/bandpass/highFrequency', 'bandpass takes this or "frequency"'],
]);

/** Every object schema with properties, named by where it is (stages and sinks by their type). */
function objects(node: Node, at: string, out: Array<[string, Node]> = [], depth = 0): Array<[string, Node]> {
  if (depth > 20) return out;
  if (node.properties) {
    out.push([at, node]);
    for (const [key, prop] of Object.entries(node.properties)) objects(prop, `${at}/${key}`, out, depth + 1);
  }
  for (const member of node.anyOf ?? []) {
    const type = (member.properties?.type as Node | undefined)?.const;
    objects(member, typeof type === 'string' ? `${at.replace(/\/(stages|sinks)$/, '/$1')}/${type}` : at, out, depth + 1);
  }
  if (node.items) objects(node.items, at, out, depth + 1);
  for (const value of Object.values(node.patternProperties ?? {})) objects(value, `${at}/*`, out, depth + 1);
  return out;
}

/** Replaces `$ref`s to `#/definitions/…` by what they point to. */
function resolve(node: unknown, definitions: Record<string, unknown>): unknown {
  if (Array.isArray(node)) return node.map((n) => resolve(n, definitions));
  if (typeof node !== 'object' || node === null) return node;
  const ref = (node as Node).$ref;
  if (typeof ref === 'string') return resolve(definitions[ref.replace('#/definitions/', '')], definitions);
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, resolve(v, definitions)]));
}

describe('pipelines/pipeline.schema.json', () => {
  it('is the schema generated from PipelineSchema', async () => {
    const current = await readFile(FILE, 'utf8').catch(() => '');
    const generated = publishedSchemaText();
    if (process.env.UPDATE_DOCS && current !== generated) {
      await writeFile(FILE, generated);
      return;
    }
    expect(current, 'run `npm run docs` to regenerate pipelines/pipeline.schema.json').toBe(generated);
  });

  it('is a standalone draft-07 schema that, its references resolved, says exactly what PipelineSchema says', () => {
    const { $schema, $id, title, definitions, ...rest } = publishedSchema() as Record<string, unknown> & { definitions: Record<string, unknown> };
    expect({ $schema, $id, title }).toEqual({ $schema: 'http://json-schema.org/draft-07/schema#', $id: PIPELINE_SCHEMA_ID, title: 'earshot pipeline' });
    expect(Object.keys(definitions)).toEqual(['stage', 'sink', 'branch']);
    expect(resolve(rest, definitions)).toEqual(JSON.parse(JSON.stringify(PipelineSchema)));
    expect(publishedSchemaText()).not.toMatch(/"\[object |Symbol\(/);
  });

  it('describes every property of every object: the pipeline, branches, every stage and sink', () => {
    const all = objects(PipelineSchema as unknown as Node, '');
    const where = all.map(([at]) => at);
    expect(where).toEqual(expect.arrayContaining(['', '/stages/denoise', '/stages/normalize', '/sinks/record', '/sinks/processor', '/branches/*', '/branches/*/stages/resample']));
    const undocumented = all.flatMap(([at, node]) =>
      Object.entries(node.properties!)
        .filter(([, prop]) => typeof prop.description !== 'string' || prop.description.trim() === '')
        .map(([key]) => `${at}/${key}`),
    );
    expect(undocumented).toEqual([]);
  });

  it('declares the default of every optional property that has one, and each default is a valid value', () => {
    const withoutDefault: string[] = [];
    for (const [at, node] of objects(PipelineSchema as unknown as Node, '')) {
      if (at.startsWith('/branches/*')) continue; // the same stage and sink schemas as the single chain
      for (const [key, prop] of Object.entries(node.properties!)) {
        const path = `${at}/${key}`;
        if (prop.default !== undefined) {
          expect(Value.Check(prop as unknown as TSchema, prop.default), `${path}: default ${JSON.stringify(prop.default)}`).toBe(true);
          continue;
        }
        if (!node.required?.includes(key)) withoutDefault.push(path);
      }
    }
    // Exactly the listed ones (so the list cannot go stale either).
    expect(withoutDefault.sort()).toEqual([...NO_DEFAULT.keys()].sort());
  });

  it('is referenced by the shipped pipelines for editors', async () => {
    for (const name of ['default', 'handler']) {
      const doc = JSON.parse(await readFile(new URL(`../../pipelines/${name}.json`, import.meta.url), 'utf8')) as { $schema?: string };
      expect(doc.$schema, name).toBe('./pipeline.schema.json');
    }
  });
});
