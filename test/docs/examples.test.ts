/**
 * The TypeScript examples in README.md and docs/ compile against the current
 * API: every ```ts block that imports from 'earshot' is type-checked as a
 * module of its own, with 'earshot' resolved to src/index.ts (blocks without
 * that import are fragments and are skipped). Nothing is run or written.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const documents = [
  join(root, 'README.md'),
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(root, 'docs', name)),
];

/** Virtual file (at the repository root, so relative imports like './examples/…' resolve) → its source. */
const snippets = new Map<string, { source: string; where: string }>();
for (const file of documents) {
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    if (!/from 'earshot'/.test(m[1])) continue;
    const line = text.slice(0, m.index).split('\n').length + 1;
    snippets.set(join(root, `__doc_example_${snippets.size + 1}.ts`), { source: m[1], where: `${relative(root, file)}:${line}` });
  }
}

describe('examples in the documentation', () => {
  it('finds the examples', () => {
    expect(snippets.size).toBeGreaterThanOrEqual(5);
  });

  it('type-check against src/index.ts', () => {
    const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
    const options: ts.CompilerOptions = { ...config!.options, noEmit: true, skipLibCheck: true, paths: { earshot: [join(root, 'src', 'index.ts')] } };
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.getSourceFile = (name, language, ...rest) => {
      const snippet = snippets.get(name);
      return snippet ? ts.createSourceFile(name, snippet.source, language) : getSourceFile.call(host, name, language, ...rest);
    };
    host.fileExists = (name) => snippets.has(name) || fileExists.call(host, name);
    host.readFile = (name) => snippets.get(name)?.source ?? readFile.call(host, name);
    const program = ts.createProgram([...snippets.keys()], options, host);
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && snippets.has(d.file.fileName))
      .map((d) => {
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        const { where } = snippets.get(d.file!.fileName)!;
        const [doc, first] = where.split(':');
        return `${doc}:${Number(first) + line}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
  }, 60_000);
});
