/**
 * The recordings directory is created as `mkdir -p` would, and a path that
 * cannot be created is an error that says why, promptly. Node's recursive
 * mkdir never settles on a file system that answers ENOENT for a directory
 * whose parent exists (`/proc/…`): `serve --recordings /proc/x` hung, silent.
 */
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-recdir-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the recordings directory', () => {
  it('is created with its missing parents, and a recording name\'s subdirectories too, at once from several callers', async () => {
    const store = new RecordingsStore(join(dir, 'a', 'b', 'c'));
    await Promise.all([store.init(), store.init(), store.checkUsable()]);
    expect((await stat(join(dir, 'a', 'b', 'c'))).isDirectory()).toBe(true);
    await Promise.all([store.prepare('calls/2026/x.wav'), store.prepare('calls/2026/y.wav')]);
    expect(await readdir(join(dir, 'a', 'b', 'c', 'calls'))).toEqual(['2026']);
  });

  it('that cannot be created is EARSHOT_RECORDINGS_DIR_UNWRITABLE with the reason, and does not hang (/proc)', async () => {
    await expect(new RecordingsStore('/proc/earshot-no-such-dir/recordings').init()).rejects.toMatchObject({
      code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE',
      message: expect.stringMatching(/^Cannot write recordings to "\/proc\/earshot-no-such-dir\/recordings": ENOENT — the directory does not exist\./),
    });
    await expect(new RecordingsStore('/proc/earshot-no-such-dir').checkUsable()).rejects.toMatchObject({ code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE', message: expect.stringContaining(': ENOENT') });
  }, 10_000);

  it("never makes a recording's subdirectories through a link to a directory outside it (ELINKOUT, naming the link)", async () => {
    const store = new RecordingsStore(join(dir, 'rec'));
    await store.init();
    await mkdir(join(dir, 'elsewhere'));
    await symlink(join(dir, 'elsewhere'), join(dir, 'rec', 'out'));
    await mkdir(join(dir, 'rec', 'in'));
    await symlink(join(dir, 'rec', 'in'), join(dir, 'rec', 'inside'));
    for (const name of ['out/x.wav', 'out/deeper/x.wav']) await expect(store.prepare(name)).rejects.toMatchObject({ code: 'ELINKOUT', link: 'out' });
    expect(await readdir(join(dir, 'elsewhere'))).toEqual([]);
    // A link that stays inside is a directory like any other.
    await store.prepare('inside/deeper/x.wav');
    expect(await readdir(join(dir, 'rec', 'in'))).toEqual(['deeper']);
  });

  it('under a file is ENOTDIR, "a file, not a directory"', async () => {
    await writeFile(join(dir, 'file'), 'x');
    await expect(new RecordingsStore(join(dir, 'file', 'sub')).init()).rejects.toMatchObject({ message: expect.stringMatching(/: ENOTDIR — the path \(or part of it\) is a file, not a directory/) });
    await expect(new RecordingsStore(join(dir, 'file')).init()).rejects.toMatchObject({ message: expect.stringMatching(/: ENOTDIR — /) });
  });
});
