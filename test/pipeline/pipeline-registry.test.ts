/**
 * The pipeline registry's own behaviour with the file system: a directory the
 * system will not watch must not stop a server, only its reloading.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PipelineRegistry } from '../../src/pipeline/pipeline-registry.js';

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
