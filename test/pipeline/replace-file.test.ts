/**
 * Replacing a file of the pipelines directory: the new text whole, no
 * temporary file left behind, the old file untouched when the write fails.
 * (What a power cut does between the flush and the rename cannot be staged in
 * a test; that the data is flushed before the rename is in the code.)
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replaceFile } from '../../src/pipeline/replace-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-replace-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('replaceFile', () => {
  it('puts the new text in place, concurrent writers each whole, and leaves no temporary file', async () => {
    const file = join(dir, 'a.json');
    await writeFile(file, 'old');
    const texts = Array.from({ length: 16 }, (_, i) => `${String(i).repeat(10_000)}\n`);
    await Promise.all(texts.map((t) => replaceFile(file, t)));
    expect(texts).toContain(await readFile(file, 'utf8'));
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('a write that fails leaves the old file and no temporary file, and rejects with the system\'s code', async () => {
    const file = join(dir, 'b.json');
    await mkdir(file); // a directory where the file goes: the rename fails
    await expect(replaceFile(file, 'new')).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect((await readdir(dir)).sort()).toEqual(['a.json', 'b.json']);
    await rm(file, { recursive: true });
  });
});
