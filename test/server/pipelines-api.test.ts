/**
 * Pipelines over HTTP and on disk: listing, PUT (validated, saved), DELETE
 * (refused while in use), room bindings and their precedence, and reloading
 * files edited on disk — running streams keep their version.
 */
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

const BUNDLED = join(import.meta.dirname, '..', '..', 'pipelines');

let t: TestServer;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-pipelines-'));
  await cp(BUNDLED, dir, { recursive: true });
  t = await startServer({ pipelinesDir: dir });
});
afterAll(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

const json = (method: string, body?: unknown): RequestInit =>
  body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
const api = async (path: string, init?: RequestInit) => {
  const res = await fetch(`${t.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
};
const recordingOf = async (peer: string) => {
  const s = (await api(`/stats/${peer}`)).body as { pipeline: string; recording: { name: string } };
  return { pipeline: s.pipeline, wav: await readWav(join(t.recordingsDir, s.recording.name)) };
};
/** Sends the tone: faster than real time unless a test needs the stream to last. */
const send = (room: string, peer: string, query = '', seconds = 0.6, speed = FAST) =>
  sendAudio({ url: `${t.url}/whip/${room}/${peer}${query}`, source: fixturePath('tone-1k-48k.wav'), seconds, speed });
const until = async (check: () => Promise<boolean>, ms = 3000) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
};

const QUIET = { name: 'quiet', description: 'gain −12 dB', stages: [{ type: 'gain', db: -12 }], sinks: [{ type: 'record' }] };

describe('pipelines API', () => {
  it('lists the directory\'s pipelines and returns each document as written', async () => {
    const list = await api('/pipelines');
    expect(list.status).toBe(200);
    expect(list.body!.default).toBe('default');
    const names = (list.body!.pipelines as Array<{ name: string }>).map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['default', 'telephony', 'podcast', 'voice-agent', 'call-recording']));
    // Built-in stages only: each branch's format is known, not assumed.
    const voiceAgent = (list.body!.pipelines as Array<{ name: string; branches: Array<{ sampleRate: number; formatKnown: boolean }> }>).find((p) => p.name === 'voice-agent')!;
    expect(voiceAgent.branches.every((b) => b.formatKnown)).toBe(true);
    const telephony = await api('/pipelines/telephony');
    expect(telephony.body).toEqual(JSON.parse(await readFile(join(dir, 'telephony.json'), 'utf8')));
    expect((await api('/pipelines/nope')).body).toMatchObject({ status: 404, code: 'EARSHOT_PIPELINE_NOT_FOUND' });
  });

  it('PUT validates first (422 with every problem, nothing saved), then saves and serves the new pipeline', async () => {
    const bad = await api('/pipelines/quiet', json('PUT', { ...QUIET, stages: [{ type: 'gain', db: 100 }, { type: 'denoize' }] }));
    expect(bad.status).toBe(422);
    expect(bad.body!.code).toBe('EARSHOT_PIPELINE_INVALID');
    const paths = (bad.body!.problems as Array<{ path: string }>).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['/stages/0/db', '/stages/1/type']));
    expect((await api('/pipelines/quiet')).status).toBe(404);
    // A sink header may not read any variable of the process (the admin token would read every secret).
    process.env.EARSHOT_TEST_SECRET = 'not-for-sinks';
    try {
      const leak = await api('/pipelines/leak', json('PUT', { name: 'leak', stages: [], sinks: [{ type: 'websocket', url: 'ws://127.0.0.1:9/', headers: { 'X-Leak': '${EARSHOT_TEST_SECRET}' } }] }));
      expect(leak.status).toBe(422);
      expect(leak.body!.problems).toEqual([expect.objectContaining({ path: '/sinks/0/headers/X-Leak', found: '${EARSHOT_TEST_SECRET}' })]);
      expect(JSON.stringify(leak.body)).not.toContain('not-for-sinks');
      expect((await api('/pipelines/leak')).status).toBe(404);
    } finally {
      delete process.env.EARSHOT_TEST_SECRET;
    }

    expect((await api('/pipelines/quiet', json('PUT', { ...QUIET, name: 'other' }))).body).toMatchObject({ status: 400, code: 'EARSHOT_PIPELINE_NAME_MISMATCH' });
    // A key given twice: JSON.parse would keep the last (here a +60 dB gain over the -12 meant) without a word.
    const twice = await api('/pipelines/quiet', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"name": "quiet",\n "stages": [{"type": "gain", "db": -12,\n "db": 60}], "sinks": [{"type": "record"}]}' });
    expect(twice.body).toMatchObject({ status: 400, code: 'EARSHOT_BODY_INVALID', detail: 'The JSON body has the key /stages/0/db twice (lines 2 and 3); JSON keeps only the last, so the first would be lost: rename or remove one.' });
    expect(existsSync(join(dir, 'quiet.json'))).toBe(false);
    // Nested too deeply to read: a 400 like any unreadable body, not the stack overflow's 500.
    const deep = await api('/pipelines/quiet', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: `${'['.repeat(120_000)}${']'.repeat(120_000)}` });
    expect(deep.body).toMatchObject({ status: 400, code: 'EARSHOT_BODY_INVALID', detail: 'The JSON body is nested too deeply to read (thousands of arrays or objects inside one another)' });

    const created = await api('/pipelines/quiet', json('PUT', QUIET));
    expect(created.status).toBe(201);
    expect(JSON.parse(await readFile(join(dir, 'quiet.json'), 'utf8'))).toEqual(QUIET);
    expect((await api('/pipelines/quiet', json('PUT', QUIET))).status).toBe(200); // replaced

    await send('r0', 'q1', '?pipeline=quiet');
    const { pipeline, wav } = await recordingOf('q1');
    expect(pipeline).toBe('quiet');
    expect(wav.durationSec).toBeGreaterThan(0.5);
  });

  it('binds rooms to pipelines: ?pipeline= beats the room binding, which beats the default', async () => {
    expect((await api('/rooms/pstn', json('PUT', { pipeline: 'telephony' }))).body).toEqual({ room: 'pstn', pipeline: 'telephony', bound: true });
    expect((await api('/rooms/pstn', json('PUT', { pipeline: 'nope' }))).body).toMatchObject({ status: 404, code: 'EARSHOT_PIPELINE_NOT_FOUND' });
    expect((await api('/rooms/pstn', json('PUT', { pipe: 'x' }))).body).toMatchObject({ status: 400, code: 'EARSHOT_BODY_INVALID' });
    expect((await api('/rooms')).body).toEqual({ default: 'default', rooms: { pstn: 'telephony' } });
    // Room names that are also names of every object's methods are rooms like any other.
    for (const room of ['constructor', 'toString', 'hasOwnProperty']) {
      expect((await api(`/rooms/${room}`)).body).toEqual({ room, pipeline: 'default', bound: false });
    }
    expect((await api('/rooms/constructor', json('PUT', { pipeline: 'telephony' }))).body).toEqual({ room: 'constructor', pipeline: 'telephony', bound: true });
    expect((await api('/rooms/constructor')).body).toEqual({ room: 'constructor', pipeline: 'telephony', bound: true });
    expect((await api('/rooms/constructor', { method: 'DELETE' })).status).toBeLessThan(300);

    await Promise.all([send('pstn', 'caller'), send('pstn', 'override', '?pipeline=quiet'), send('lobby', 'guest')]);
    expect((await recordingOf('caller')).wav.sampleRate).toBe(8000);
    expect((await recordingOf('override')).pipeline).toBe('quiet');
    expect((await recordingOf('guest')).pipeline).toBe('default');

    const unknown = await sendAudio({ url: `${t.url}/whip/pstn/x?pipeline=nope`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.2 }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ status: 404, code: 'EARSHOT_PIPELINE_NOT_FOUND' });
  });

  it('DELETE refuses a pipeline in use (default, bound room) with 409 and deletes an unused one', async () => {
    expect((await api('/pipelines/default', json('DELETE'))).body).toMatchObject({ status: 409, code: 'EARSHOT_PIPELINE_IN_USE', detail: expect.stringMatching(/default pipeline/) });
    expect((await api('/pipelines/telephony', json('DELETE'))).body).toMatchObject({ status: 409, detail: expect.stringMatching(/room pstn/) });
    expect((await api('/rooms/pstn', json('DELETE'))).status).toBe(204);
    expect((await api('/pipelines/telephony', json('DELETE'))).status).toBe(204);
    expect((await api('/pipelines/telephony')).status).toBe(404);
    await expect(readFile(join(dir, 'telephony.json'))).rejects.toThrow(/ENOENT/);
  });

  it('reloads a file edited on disk for new streams, keeps the running stream on its version, and ignores a broken edit', async () => {
    const file = join(dir, 'podcast.json');
    const original = JSON.parse(await readFile(file, 'utf8')) as { stages: unknown[]; sinks: unknown[] };
    // A stream that starts on the old version and is still running when the file changes.
    const running = send('studio', 'before', '?pipeline=podcast', 2.5, 1); // real time: still running when the file changes
    expect(await until(async () => (await api('/stats/before')).status === 200, 10_000)).toBe(true);
    await writeFile(file, JSON.stringify({ ...original, stages: [...original.stages, { type: 'resample', sampleRate: 16000 }] }));
    expect(await until(async () => ((await api('/pipelines/podcast')).body!.stages as unknown[]).length === 5)).toBe(true);
    await running;
    expect((await recordingOf('before')).wav.sampleRate).toBe(48000);
    await send('studio', 'after', '?pipeline=podcast');
    expect((await recordingOf('after')).wav.sampleRate).toBe(16000);

    await writeFile(file, '{ "name": "podcast", "stages": [ {"type": "resample"} ');
    await new Promise((r) => setTimeout(r, 500));
    expect(((await api('/pipelines/podcast')).body!.stages as unknown[]).length).toBe(5); // the last good version stays
    // ... and says so until the file is fixed: in GET /pipelines and as a metric.
    const invalidFiles = async () => (await api('/pipelines')).body!.invalidFiles as Array<Record<string, unknown>>;
    const gauge = async () => Number(/^earshot_pipeline_files_invalid (\d+)$/m.exec(await (await fetch(`${t.url}/metrics`)).text())?.[1]);
    expect(await invalidFiles()).toEqual([expect.objectContaining({ file: 'podcast.json', pipeline: 'podcast', previousVersionLoaded: true, code: 'EARSHOT_PIPELINE_INVALID', since: expect.any(String) })]);
    expect(await gauge()).toBe(1);
    // A new file that never loaded: no version runs; removing it ends the problem.
    await writeFile(join(dir, 'typo.json'), '{ "name": "typo", "stages": [{ "type": "denoize" }], "sinks": [{ "type": "stats" }] }');
    expect(await until(async () => (await invalidFiles()).length === 2)).toBe(true);
    const typo = (await invalidFiles()).find((f) => f.file === 'typo.json')!;
    expect(typo).toMatchObject({ pipeline: 'typo', previousVersionLoaded: false, code: 'EARSHOT_PIPELINE_INVALID' });
    expect(JSON.stringify(typo.problems)).toContain('denoize');
    await unlink(join(dir, 'typo.json'));
    await writeFile(file, JSON.stringify({ ...original, stages: [...original.stages, { type: 'resample', sampleRate: 16000 }] }));
    expect(await until(async () => (await invalidFiles()).length === 0)).toBe(true);
    expect(await gauge()).toBe(0);

    await unlink(join(dir, 'quiet.json'));
    expect(await until(async () => (await api('/pipelines/quiet')).status === 404)).toBe(true);
  });
});

describe('pipeline files removed on disk', () => {
  it('the default and a room\'s pipeline stay loaded (new sessions would have none); another one is unloaded', async () => {
    expect((await api('/rooms/phones', json('PUT', { pipeline: 'call-recording' }))).status).toBe(200);
    const saved = Object.fromEntries(await Promise.all(['default', 'call-recording', 'podcast'].map(async (n) => [n, await readFile(join(dir, `${n}.json`), 'utf8')] as const)));
    try {
      for (const n of ['default', 'call-recording', 'podcast']) await unlink(join(dir, `${n}.json`));
      expect(await until(async () => (await api('/pipelines/podcast')).status === 404)).toBe(true);
      await new Promise((r) => setTimeout(r, 300)); // the watcher has seen all three
      expect((await api('/pipelines/default')).status).toBe(200);
      expect((await api('/pipelines/call-recording')).status).toBe(200);
      // A session without ?pipeline= still gets the default, and the room its pipeline.
      await send('any', 'after-removal');
      expect((await recordingOf('after-removal')).pipeline).toBe('default');
      await send('phones', 'phone-after-removal');
      expect((await recordingOf('phone-after-removal')).pipeline).toBe('call-recording');
    } finally {
      for (const [n, text] of Object.entries(saved)) await writeFile(join(dir, `${n}.json`), text);
      await api('/rooms/phones', json('DELETE'));
    }
  });
});

describe('the bundled pipelines', () => {
  it('are read-only over HTTP: PUT and DELETE get 409 EARSHOT_PIPELINES_READ_ONLY and the package files stay as they are', async () => {
    const bundled = await startServer({ pipelinesDir: BUNDLED });
    try {
      const before = await readFile(join(BUNDLED, 'podcast.json'), 'utf8');
      const put = await fetch(`${bundled.url}/pipelines/quiet`, json('PUT', QUIET));
      expect(put.status).toBe(409);
      const problem = (await put.json()) as { code: string; detail: string };
      expect(problem.code).toBe('EARSHOT_PIPELINES_READ_ONLY');
      expect(problem.detail).toMatch(/--pipelines DIR/);
      expect(existsSync(join(BUNDLED, 'quiet.json'))).toBe(false);
      // Replacing or deleting a bundled one is refused alike.
      expect((await fetch(`${bundled.url}/pipelines/podcast`, json('PUT', { ...JSON.parse(before), description: 'mine' }))).status).toBe(409);
      expect((await fetch(`${bundled.url}/pipelines/podcast`, json('DELETE'))).status).toBe(409);
      // The default pipeline is in use as the default, but it is read-only that the client must hear: it can never be deleted.
      const inUse = await fetch(`${bundled.url}/pipelines/default`, json('DELETE'));
      expect(inUse.status).toBe(409);
      expect(((await inUse.json()) as { code: string }).code).toBe('EARSHOT_PIPELINES_READ_ONLY');
      expect(await readFile(join(BUNDLED, 'podcast.json'), 'utf8')).toBe(before);
      expect(((await (await fetch(`${bundled.url}/pipelines`)).json()) as { writable: boolean }).writable).toBe(false);
      // An unknown one is not offered a PUT that would get 409.
      const unknown = (await (await fetch(`${bundled.url}/pipelines/nope`)).json()) as { code: string; detail: string };
      expect(unknown.code).toBe('EARSHOT_PIPELINE_NOT_FOUND');
      expect(unknown.detail).toMatch(/The bundled pipelines are read-only: start the server with --pipelines DIR/);
      expect(unknown.detail).not.toMatch(/PUT/);
      expect((await api('/pipelines/nope')).body).toMatchObject({ detail: expect.stringMatching(/PUT \/pipelines\/nope adds one\.$/) });
      // A directory of the user's own is writable, and says so.
      expect((await api('/pipelines')).body!.writable).toBe(true);
    } finally {
      await bundled.close();
    }
  });
});
