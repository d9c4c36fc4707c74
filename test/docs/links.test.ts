/**
 * The documents a newcomer reads stay navigable: every relative link in
 * README.md and docs/ points at a file that exists (and, into a Markdown file,
 * at a heading it has), the README stays short, and no document uses words a
 * reader cannot look up (documents that are not in the repository, internal
 * names).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(dir, name))
    .sort();
}

const documents = [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))];
/** Hand-written documents (docs/api/ is generated from the sources' doc comments). */
const written = documents.filter((file) => !relative(root, file).startsWith(join('docs', 'api')));

/** Markdown text without fenced code blocks. */
function withoutFences(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** Markdown text without code (fenced or inline), where links are not links. */
function prose(text: string): string {
  return withoutFences(text).replace(/`[^`\n]*`/g, '');
}

/** The targets of `[text](target)` links and `![alt](target)` images. */
function links(text: string): string[] {
  const out: string[] = [];
  for (const m of prose(text).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  for (const m of text.matchAll(/<a\s[^>]*href="([^"]+)"/g)) out.push(m[1]);
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of withoutFences(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]
      .replace(/<[^>]+>/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) out.add(m[1]);
  return out;
}

describe('documentation links', () => {
  it('finds the documents', () => {
    expect(documents.length).toBeGreaterThan(5);
  });

  /** Broken relative links of one document. */
  function brokenLinks(file: string): string[] {
    const text = readFileSync(file, 'utf8');
    const broken: string[] = [];
    for (const target of links(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const into = path === '' ? file : resolve(dirname(file), decodeURIComponent(path));
      const where = relative(root, file);
      if (!into.startsWith(root)) broken.push(`${where}: ${target} (outside the repository)`);
      else if (!existsSync(into)) broken.push(`${where}: ${target} (no such file)`);
      else if (anchor && into.endsWith('.md') && statSync(into).isFile() && !anchors(readFileSync(into, 'utf8')).has(anchor)) {
        broken.push(`${where}: ${target} (no heading #${anchor} in ${relative(root, into)})`);
      }
    }
    return broken;
  }

  for (const file of written) {
    const name = relative(root, file);
    it(`${name}: every relative link points at an existing file and heading`, () => {
      expect(brokenLinks(file)).toEqual([]);
    });
  }

  it('docs/api (generated): every relative link points at an existing file and heading', () => {
    expect(documents.filter((file) => !written.includes(file)).flatMap(brokenLinks)).toEqual([]);
  });

  it('README.md stays short (≤ 220 lines): reference material lives in docs/', () => {
    const lines = readFileSync(join(root, 'README.md'), 'utf8').split('\n').length;
    expect(lines).toBeLessThanOrEqual(220);
  });

  it('README.md links every page in docs/', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const linked = new Set(links(readme).map((target) => target.split('#')[0]));
    const pages = readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`);
    expect(pages.filter((page) => !linked.has(page))).toEqual([]);
  });

  it('no document uses words a reader cannot look up', () => {
    const unknown = [/DESIGN\.md/, /design card/i, /\bseed(['’]s)? API\b/i, /seed-style/i, /issue notes/i, /\binvariant \d/i];
    const found: string[] = [];
    for (const file of written) {
      const text = readFileSync(file, 'utf8');
      for (const word of unknown) {
        const m = word.exec(text);
        if (m) found.push(`${relative(root, file)}: "${m[0]}"`);
      }
    }
    expect(found).toEqual([]);
  });
});
