/**
 * The reference tables written by hand stay complete: docs/deployment.md's
 * Configuration table names every option of `earshot serve` with its
 * environment variable and default, and docs/http-api.md lists every error
 * code earshot defines.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, type Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerServeCommand } from '../../src/cli/serve-command.js';
import { errors } from '../../src/errors.js';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** The rows of the Markdown table that follows `heading`, as arrays of cells. */
function tableAfter(text: string, heading: string): string[][] {
  const start = text.indexOf(`\n${heading}\n`);
  expect(start, `${heading} not found`).toBeGreaterThanOrEqual(0);
  const lines = text.slice(start).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim()));
  }
  return rows;
}

function serveOptions(): readonly Option[] {
  const program = new Command('earshot');
  registerServeCommand(program);
  return program.commands.find((c) => c.name() === 'serve')!.options;
}

describe('docs/deployment.md → Configuration', () => {
  const rows = tableAfter(read('docs/deployment.md'), '## Configuration');

  it('has a row for every option of `earshot serve`, with its environment variable and default', () => {
    const problems: string[] = [];
    for (const option of serveOptions()) {
      const flag = option.long!;
      const row = rows.find(([cell]) => new RegExp(`\`${flag}\`|\`-\\w, ${flag}\``).test(cell));
      if (!row) {
        problems.push(`${flag}: no row`);
        continue;
      }
      const [, env, fallback] = row;
      if (option.envVar && !env.includes(`\`${option.envVar}\``)) problems.push(`${flag}: env ${option.envVar} missing (row says ${env})`);
      const expected = option.defaultValueDescription ?? (option.defaultValue === undefined ? undefined : String(option.defaultValue));
      if (expected !== undefined && !fallback.replace(/`/g, '').includes(expected)) problems.push(`${flag}: default ${expected} missing (row says ${fallback})`);
    }
    expect(problems).toEqual([]);
  });

  it('has no row for an option `earshot serve` does not have', () => {
    const flags = new Set(serveOptions().map((o) => o.long));
    const stale = rows.flatMap(([cell]) => [...cell.matchAll(/--[a-z-]+/g)].map((m) => m[0])).filter((flag) => !flags.has(flag));
    expect(stale).toEqual([]);
  });
});

describe('docs/http-api.md → Every error code', () => {
  it('lists every code of `errors` with its status', () => {
    const rows = tableAfter(read('docs/http-api.md'), '## Every error code');
    const problems: string[] = [];
    for (const factory of Object.values(errors)) {
      const row = rows.find(([code]) => code === `\`${factory.code}\``);
      if (!row) problems.push(`${factory.code}: no row`);
      else if (row[1] !== String(factory.statusCode)) problems.push(`${factory.code}: status ${factory.statusCode}, row says ${row[1]}`);
    }
    expect(problems).toEqual([]);
  });
});
