/**
 * The preflight for `required` recording: a session whose pipeline requires
 * recording is refused up front (507) when the recordings directory cannot
 * take a recording, saying why; other pipelines are never checked.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EarshotError } from '../../src/errors.js';
import { recordingPreflight } from '../../src/sinks/recording-preflight.js';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-preflight-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('recordingPreflight', () => {
  const pipeline = (required: boolean | undefined) => ({ name: 'calls', branches: [{ sinks: [{ type: 'record', ...(required === undefined ? {} : { required }) }, { type: 'stats' }] }] });

  it('passes a usable directory, and never checks pipelines that do not require recording', async () => {
    await expect(recordingPreflight(pipeline(true), new RecordingsStore(dir, { minFreeBytes: 0 }))).resolves.toBeUndefined();
    const file = join(dir, 'file');
    await writeFile(file, '');
    await expect(recordingPreflight(pipeline(undefined), new RecordingsStore(file))).resolves.toBeUndefined();
    await expect(recordingPreflight(pipeline(false), new RecordingsStore(file))).resolves.toBeUndefined();
  });

  it('refuses with EARSHOT_RECORDING_UNAVAILABLE (507) saying the disk is full when free space is below the minimum', async () => {
    const store = new RecordingsStore(dir, { minFreeBytes: Number.MAX_SAFE_INTEGER });
    const e = await recordingPreflight(pipeline(true), store).catch((x: EarshotError) => x);
    expect(e).toMatchObject({ code: 'EARSHOT_RECORDING_UNAVAILABLE', statusCode: 507 });
    expect((e as Error).message).toMatch(/Pipeline "calls" requires recording/);
    expect((e as Error).message).toMatch(/ENOSPC.*free.*needed.*the disk is full/);
  });

  it('refuses when the recordings path is not a directory, saying so', async () => {
    const file = join(dir, 'file');
    await writeFile(file, '');
    const e = (await recordingPreflight(pipeline(true), new RecordingsStore(file)).catch((x: EarshotError) => x)) as EarshotError;
    expect(e.code).toBe('EARSHOT_RECORDING_UNAVAILABLE');
    expect(e.message).toMatch(/ENOTDIR.*is a file, not a directory/);
  });

  it('checks a required sink\'s own directory for this session, and names it: "calls/{room}" where a file is in the way', async () => {
    const store = new RecordingsStore(dir, { minFreeBytes: 0 });
    const own = (directory: string) => ({ name: 'calls', branches: [{ name: 'main', sinks: [{ type: 'record', required: true, directory }] }] });
    await mkdir(join(dir, 'calls'));
    await writeFile(join(dir, 'calls', 'sales'), '');
    // Room "sales" cannot have its directory: refused before the session starts (it was answered, and recorded nothing).
    const e = (await recordingPreflight(own('calls/{room}'), store, { room: 'sales', peer: 'alice' }).catch((x: EarshotError) => x)) as EarshotError;
    expect(e).toMatchObject({ code: 'EARSHOT_RECORDING_UNAVAILABLE', statusCode: 507 });
    expect(e.message).toContain(`"${join(dir, 'calls', 'sales')}"`);
    expect(e.message).toMatch(/ENOTDIR/);
    // Another room's is taken (the recording makes it); a segment naming the date or the session is not
    // known yet: checked up to it. Nothing is created before audio: a session that never connects leaves nothing.
    await expect(recordingPreflight(own('calls/{room}/{date}'), store, { room: 'support', peer: 'bob' })).resolves.toBeUndefined();
    expect(await readdir(join(dir, 'calls'))).toEqual(['sales']);
    // A link to a directory outside the recordings directory, where the recording would be refused: refused now.
    const outside = await mkdtemp(join(tmpdir(), 'earshot-outside-'));
    try {
      await symlink(outside, join(dir, 'linked'));
      const linked = (await recordingPreflight(own('linked/{room}'), store, { room: 'sales', peer: 'alice' }).catch((x: EarshotError) => x)) as EarshotError;
      expect(linked).toMatchObject({ code: 'EARSHOT_RECORDING_UNAVAILABLE' });
      expect(linked.message).toMatch(/"linked" in it is a link to a directory outside the recordings directory/);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('recreates a recordings directory that was removed', async () => {
    const gone = join(dir, 'gone');
    const store = new RecordingsStore(gone, { minFreeBytes: 0 });
    await mkdir(gone);
    await rm(gone, { recursive: true });
    await store.checkUsable();
    expect(await readdir(dir)).toEqual(['gone']);
  });
});
