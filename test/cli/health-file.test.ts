/**
 * The file a container's health check reads (src/cli/health-file.ts): the
 * URL `serve` listens on, as a client on the same machine reaches it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { localUrlOf, writeHealthFile } from '../../src/cli/health-file.js';

describe('the health file', () => {
  it('holds the listening URL with an all-interfaces address made loopback', () => {
    expect(localUrlOf('http://0.0.0.0:9000')).toBe('http://127.0.0.1:9000');
    expect(localUrlOf('https://[::]:8443')).toBe('https://[::1]:8443');
    expect(localUrlOf('http://10.1.2.3:8080')).toBe('http://10.1.2.3:8080');
    expect(localUrlOf('http://127.0.0.1:80')).toBe('http://127.0.0.1');
  });

  it('is written where EARSHOT_HEALTH_FILE says, not at all without it, and a failure is a warning, not a stop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-health-'));
    try {
      const file = join(dir, 'earshot.url');
      expect(await writeHealthFile('https://0.0.0.0:9443', { EARSHOT_HEALTH_FILE: file })).toBeUndefined();
      expect(await readFile(file, 'utf8')).toBe('https://127.0.0.1:9443\n');
      expect(await writeHealthFile('http://0.0.0.0:1', {})).toBeUndefined();
      expect(await writeHealthFile('http://0.0.0.0:1', { EARSHOT_HEALTH_FILE: join(dir, 'no', 'such', 'dir') })).toMatch(/could not write EARSHOT_HEALTH_FILE .*ENOENT.*falls back to PORT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
