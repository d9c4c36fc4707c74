/**
 * The pipeline registry's own behaviour with the file system: a directory the
 * system will not watch must not stop a server, only its reloading; concurrent
 * PUTs of a name never mix their files; hidden and reserved names are left
 * alone; a directory whose files change through a swapped link is reloaded.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PipelineRegistry } from '../../src/pipeline/pipeline-registry.js';
import { until } from '../helpers/until.js';

const SHIPPED = join(import.meta.dirname, '..', '..', 'pipelines');

describe('PipelineRegistry.watch', () => {
  it('reports a directory it cannot watch instead of throwing, and keeps the pipelines it loaded', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-registry-'));
    await copyFile(join(SHIPPED, 'default.json'), join(dir, 'default.json'));
    const watchErrors: NodeJS.ErrnoException[] = [];
    const registry = await PipelineRegistry.load({ dir, onWatchError: (e) => watchErrors.push(e) });
    // The directory goes away between loading and watching: fs.watch throws synchronously,
    // as it does when the machine's inotify instances or watches are used up (EMFILE/ENOSPC).
    await rm(dir, { recursive: true });
    expect(() => registry.watch()).not.toThrow();
    expect(watchErrors.map((e) => e.code)).toEqual(['ENOENT']);
    expect(registry.names()).toEqual(['default']);
    registry.close();
  });
});

describe('PipelineRegistry with its directory', () => {
  const doc = (name: string, description: string) => ({ name, description, stages: [], sinks: [{ type: 'stats' }] });
  const withDir = async (run: (dir: string) => Promise<void>) => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-registry-'));
    try {
      await copyFile(join(SHIPPED, 'default.json'), join(dir, 'default.json'));
      await run(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('takes concurrent PUTs of one pipeline one at a time: each answered, and the file, memory and last answer agree', async () => {
    await withDir(async (dir) => {
      const registry = await PipelineRegistry.load({ dir });
      // Sizes that differ a lot: interleaved writes of a shared temporary file left a short document
      // followed by the tail of a long one.
      const puts = Array.from({ length: 24 }, (_, i) => registry.put('race', doc('race', `${i} `.repeat(i % 3 === 0 ? 20_000 : 10))));
      const results = await Promise.allSettled(puts);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      const file = JSON.parse(await readFile(join(dir, 'race.json'), 'utf8')) as { description: string };
      expect(file.description).toBe(`23 `.repeat(10));
      expect(registry.get('race').description).toBe(file.description);
      expect(results.map((r) => (r as PromiseFulfilledResult<{ created: boolean }>).value.created)).toEqual([true, ...Array(23).fill(false)]);
      expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    });
  });

  it('refuses a broken file at start, unless given previous versions (a restarted engine): then it loads those and reports the files', async () => {
    await withDir(async (dir) => {
      await writeFile(join(dir, 'edited.json'), '{"name": "edited", "stages": [');
      await writeFile(join(dir, 'never.json'), JSON.stringify({ name: 'never', stages: [{ type: 'no-such-stage' }], sinks: [] }));
      await expect(PipelineRegistry.load({ dir })).rejects.toMatchObject({ code: 'EARSHOT_PIPELINE_INVALID' });
      const registry = await PipelineRegistry.load({ dir, previousVersions: { 'edited.json': doc('edited', 'as the other engines run it') } });
      expect(registry.names()).toEqual(['default', 'edited']);
      expect(registry.get('edited').description).toBe('as the other engines run it');
      expect(registry.fileProblems().map((p) => [p.file, p.previousVersionLoaded, p.code])).toEqual([
        ['edited.json', true, 'EARSHOT_PIPELINE_INVALID'],
        ['never.json', false, 'EARSHOT_PIPELINE_INVALID'],
      ]);
      // Fixed on disk, the file's own version replaces the one given, and the problem goes.
      registry.watch();
      await writeFile(join(dir, 'edited.json'), JSON.stringify(doc('edited', 'fixed')));
      await until('the fixed file loaded', () => (registry.get('edited').description === 'fixed' ? true : undefined), 5000);
      expect(registry.fileProblems().map((p) => p.file)).toEqual(['never.json']);
      registry.close();
    });
  });

  it('refuses a name whose file would not be read back (package.json), and ignores hidden files such as an editor\'s lock', async () => {
    await withDir(async (dir) => {
      // Emacs' lock file: a dangling symlink named .#default.json.
      await symlink('user@host.1234:1700000000', join(dir, '.#default.json'));
      const registry = await PipelineRegistry.load({ dir });
      expect(registry.names()).toEqual(['default']);
      await expect(registry.put('package', doc('package', 'x'))).rejects.toMatchObject({ code: 'EARSHOT_BODY_INVALID', statusCode: 400 });
      expect(registry.has('package')).toBe(false);
    });
  });

  it('reloads every file when the directory swaps versions through a link (a Kubernetes ConfigMap: ..data)', async () => {
    await withDir(async (dir) => {
      for (const [version, description] of [['..v1', 'first'], ['..v2', 'second']]) {
        await mkdir(join(dir, version));
        await writeFile(join(dir, version, 'telephony.json'), JSON.stringify(doc('telephony', description)));
      }
      await symlink('..v1', join(dir, '..data'));
      await symlink(join('..data', 'telephony.json'), join(dir, 'telephony.json'));
      const registry = await PipelineRegistry.load({ dir });
      registry.watch();
      try {
        expect(registry.get('telephony').description).toBe('first');
        // As the kubelet does: a new link, renamed over the old one (the pipeline's own file is untouched).
        await symlink('..v2', join(dir, '..data_tmp'));
        await rename(join(dir, '..data_tmp'), join(dir, '..data'));
        await until('the new version', () => (registry.get('telephony').description === 'second' ? true : undefined), 5000);
        expect(registry.names()).toEqual(['default', 'telephony']);
      } finally {
        registry.close();
      }
    });
  });
});
