/**
 * Room bindings outlive a restart: PUT /rooms/:room is written to rooms.json
 * in the pipelines directory before it applies, onto what the file holds then,
 * read back at start and when edited on disk, and a failed write changes
 * nothing. The bundled (read-only) pipelines keep them
 * in memory, and a bad file stops the server from starting.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { createServer } from '../../src/index.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { until } from '../helpers/until.js';

const BUNDLED = join(import.meta.dirname, '..', '..', 'pipelines');

const put = (url: string, room: string, pipeline: string) =>
  fetch(`${url}/rooms/${room}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline }) });
const roomsOf = async (url: string) => ((await (await fetch(`${url}/rooms`)).json()) as { rooms: Record<string, string> }).rooms;
/** Bindings ordered by room, as the server keeps and writes them. */
const byName = (bindings: Record<string, string>) => Object.fromEntries(Object.entries(bindings).sort(([x], [y]) => x.localeCompare(y)));
const fileOf = async (dir: string) => JSON.parse(await readFile(join(dir, 'rooms.json'), 'utf8')) as { rooms: Record<string, string> };

let dir: string;
const servers: TestServer[] = [];
const start = async (options: Parameters<typeof startServer>[0] = {}) => {
  const t = await startServer({ pipelinesDir: dir, ...options });
  servers.push(t);
  return t;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-rooms-'));
  await cp(BUNDLED, dir, { recursive: true });
});
afterEach(async () => {
  for (const t of servers.splice(0)) await t.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('room bindings on disk', () => {
  it('are written to rooms.json and read back by the next server, whose streams in a bound room run its pipeline', async () => {
    const first = await start();
    expect((await put(first.url, 'pstn', 'telephony')).status).toBe(200);
    expect((await put(first.url, 'shows', 'podcast')).status).toBe(200);
    expect((await put(first.url, 'gone', 'podcast')).status).toBe(200);
    expect((await fetch(`${first.url}/rooms/gone`, { method: 'DELETE' })).status).toBe(204);
    expect(await fileOf(dir)).toEqual({ rooms: { pstn: 'telephony', shows: 'podcast' } });
    await first.close();
    servers.length = 0;

    const second = await start();
    expect(await roomsOf(second.url)).toEqual({ pstn: 'telephony', shows: 'podcast' });
    await sendAudio({ url: `${second.url}/whip/pstn/caller`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.4, speed: FAST });
    const stats = (await (await fetch(`${second.url}/stats/caller`)).json()) as { pipeline: string };
    expect(stats.pipeline).toBe('telephony');
    // The file is not a pipeline, nor may a pipeline take its name.
    const names = ((await (await fetch(`${second.url}/pipelines`)).json()) as { pipelines: Array<{ name: string }> }).pipelines.map((p) => p.name);
    expect(names).not.toContain('rooms');
    const reserved = await fetch(`${second.url}/pipelines/rooms`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stages: [], sinks: [{ type: 'stats' }] }) });
    await expectProblem(reserved, { status: 400, code: 'EARSHOT_BODY_INVALID' });
    // Asked for by name, it is not there, and is not offered as something a PUT would add.
    await expectProblem(await fetch(`${second.url}/whip/pstn/x?pipeline=rooms`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() }), {
      status: 404,
      code: 'EARSHOT_PIPELINE_NOT_FOUND',
      detail: /"rooms" cannot be a pipeline's name/,
    });
    for (const room of ['pstn', 'shows']) expect((await fetch(`${second.url}/rooms/${room}`, { method: 'DELETE' })).status).toBe(204);
    expect(await fileOf(dir)).toEqual({ rooms: {} });
  });

  it('concurrent changes leave the file as the server has them', async () => {
    const t = await start();
    const changes = Array.from({ length: 24 }, (_, i) => (i % 3 === 2 ? fetch(`${t.url}/rooms/r${i - 1}`, { method: 'DELETE' }) : put(t.url, `r${i}`, i % 2 ? 'podcast' : 'telephony')));
    for (const res of await Promise.all(changes)) expect(res.status).toBeLessThan(300);
    const rooms = await roomsOf(t.url);
    expect(Object.keys(rooms).length).toBeGreaterThan(0);
    expect((await fileOf(dir)).rooms).toEqual(rooms);
    for (const room of Object.keys(rooms)) await fetch(`${t.url}/rooms/${room}`, { method: 'DELETE' });
    expect(await fileOf(dir)).toEqual({ rooms: {} });
  });

  it('a write that fails is 500 and changes nothing', async () => {
    // The server in a process of its own, whose file-size limit is then set to 0: every write fails (EFBIG), reads do not.
    const server = await spawnServer({ pipelinesDir: dir, recordingsDir: join(dir, 'recordings'), admission: false });
    try {
      expect((await put(server.url, 'kept', 'telephony')).status).toBe(200);
      execFileSync('prlimit', ['--pid', String(server.child.pid), '--fsize=0:unlimited']); // the soft limit: it can be raised again
      await expectProblem(await put(server.url, 'refused', 'podcast'), { status: 500, code: 'EARSHOT_ROOM_BINDINGS_WRITE_FAILED', detail: /EFBIG/ });
      await expectProblem(await fetch(`${server.url}/rooms/kept`, { method: 'DELETE' }), { status: 500, code: 'EARSHOT_ROOM_BINDINGS_WRITE_FAILED' });
      expect(await roomsOf(server.url)).toEqual({ kept: 'telephony' });
      expect(await fileOf(dir)).toEqual({ rooms: { kept: 'telephony' } });
      execFileSync('prlimit', ['--pid', String(server.child.pid), '--fsize=unlimited:unlimited']);
      expect((await fetch(`${server.url}/rooms/kept`, { method: 'DELETE' })).status).toBe(204);
    } finally {
      await server.stop();
      await rm(join(dir, 'recordings'), { recursive: true, force: true });
    }
  });

  it('edited on disk while the server runs, apply; a change over HTTP is made onto the edit, never undoing it', async () => {
    const t = await start();
    expect((await put(t.url, 'pstn', 'telephony')).status).toBe(200);
    // An editor's save, in place: pstn rebound, a room added.
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: { pstn: 'podcast', shows: 'telephony' } }, null, 2));
    await until('the edit applied', async () => (JSON.stringify(await roomsOf(t.url)) === JSON.stringify({ pstn: 'podcast', shows: 'telephony' }) ? true : undefined), 5000, 50);
    await sendAudio({ url: `${t.url}/whip/shows/guest`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.4, speed: FAST });
    expect(((await (await fetch(`${t.url}/stats/guest`)).json()) as { pipeline: string }).pipeline).toBe('telephony');
    expect((await put(t.url, 'support', 'podcast')).status).toBe(200);
    expect(await fileOf(dir)).toEqual({ rooms: { pstn: 'podcast', shows: 'telephony', support: 'podcast' } });
    // An edit and, before the server could have seen it, a change over HTTP: the change is made onto the edit.
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: { pstn: 'podcast', support: 'podcast' } }));
    expect((await fetch(`${t.url}/rooms/pstn`, { method: 'DELETE' })).status).toBe(204);
    expect(await fileOf(dir)).toEqual({ rooms: { support: 'podcast' } });
    expect(await roomsOf(t.url)).toEqual({ support: 'podcast' });
    // The file removed: no bindings.
    await rm(join(dir, 'rooms.json'));
    await until('the removal applied', async () => (Object.keys(await roomsOf(t.url)).length === 0 ? true : undefined), 5000, 50);
  });

  it('with watchPipelines: false, an edit applies at the next change over HTTP, which keeps it', async () => {
    const t = await start({ watchPipelines: false });
    expect((await put(t.url, 'pstn', 'telephony')).status).toBe(200);
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: { pstn: 'telephony', shows: 'podcast' } }));
    await new Promise((r) => setTimeout(r, 500));
    expect(await roomsOf(t.url)).toEqual({ pstn: 'telephony' });
    expect((await put(t.url, 'support', 'podcast')).status).toBe(200);
    expect(await roomsOf(t.url)).toEqual({ pstn: 'telephony', shows: 'podcast', support: 'podcast' });
    expect(await fileOf(dir)).toEqual({ rooms: { pstn: 'telephony', shows: 'podcast', support: 'podcast' } });
    await rm(join(dir, 'rooms.json'));
  });

  it('broken on disk while the server runs: the bindings stay, changes over HTTP are refused with EARSHOT_ROOM_BINDINGS_INVALID, the file untouched', async () => {
    const t = await start();
    expect((await put(t.url, 'pstn', 'telephony')).status).toBe(200);
    for (const [broken, why] of [
      ['{"rooms": {"pstn": "podc', /is not valid JSON: .* \(line 1, column 20\)/],
      ['{"rooms": {"../x": "podcast"}}', /room name that is not allowed/],
    ] as const) {
      await writeFile(join(dir, 'rooms.json'), broken);
      await new Promise((r) => setTimeout(r, 300)); // the watcher has read it (and kept the bindings)
      expect(await roomsOf(t.url)).toEqual({ pstn: 'telephony' });
      const refused = await expectProblem(await put(t.url, 'shows', 'podcast'), { status: 500, code: 'EARSHOT_ROOM_BINDINGS_INVALID', detail: why });
      expect(refused.detail).toMatch(/Fix or remove it: until then a server does not start, and a running one keeps its room bindings as they are and refuses changes to them\.$/);
      expect(await readFile(join(dir, 'rooms.json'), 'utf8')).toBe(broken);
    }
    // Replaced by a directory: it cannot be read either.
    await rm(join(dir, 'rooms.json'));
    await mkdir(join(dir, 'rooms.json'));
    await expectProblem(await fetch(`${t.url}/rooms/pstn`, { method: 'DELETE' }), { status: 500, code: 'EARSHOT_ROOM_BINDINGS_INVALID', detail: /cannot be read \(EISDIR\)/ });
    await rm(join(dir, 'rooms.json'), { recursive: true });
    // Fixed: it applies, and changes go through again.
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: { pstn: 'podcast' } }));
    await until('the fixed file applied', async () => ((await roomsOf(t.url)).pstn === 'podcast' ? true : undefined), 5000, 50);
    expect((await fetch(`${t.url}/rooms/pstn`, { method: 'DELETE' })).status).toBe(204);
    expect(await fileOf(dir)).toEqual({ rooms: {} });
  });

  it('two servers sharing the directory keep each other\'s bindings, made at the same moments, and each applies the other\'s', async () => {
    const [a, b] = [await start(), await start()];
    // 12 bindings on each, all at once: each server reads the file and writes it holding its lock, so none is lost.
    const all: Record<string, string> = {};
    const changes: Array<Promise<Response>> = [];
    for (let i = 0; i < 12; i++) {
      for (const [t, side] of [[a, 'a'], [b, 'b']] as const) {
        all[`${side}${i}`] = i % 2 ? 'podcast' : 'telephony';
        changes.push(put(t.url, `${side}${i}`, all[`${side}${i}`]));
      }
    }
    for (const res of await Promise.all(changes)) expect(res.status).toBe(200);
    expect(await fileOf(dir)).toEqual({ rooms: byName(all) });
    for (const t of [a, b]) await until('every binding on each server', async () => (JSON.stringify(await roomsOf(t.url)) === JSON.stringify(byName(all)) ? true : undefined), 5000, 50);
    expect(existsSync(join(dir, '.rooms.json.lock.tmp'))).toBe(false);
    await Promise.all(Object.keys(all).map((room, i) => fetch(`${(i % 2 ? a : b).url}/rooms/${room}`, { method: 'DELETE' })));
    expect(await fileOf(dir)).toEqual({ rooms: {} });
  });

  it('a room named as a property every object has ("constructor") is unbound when the file no longer binds it', async () => {
    const t = await start();
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: { constructor: 'telephony' } }));
    await until('the binding applied', async () => (((await roomsOf(t.url)) as Record<string, unknown>)['constructor'] === 'telephony' ? true : undefined), 5000, 50);
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: {} }));
    await until('the binding removed', async () => (Object.hasOwn(await roomsOf(t.url), 'constructor') ? undefined : true), 5000, 50);
    // Its streams run the default pipeline again.
    await sendAudio({ url: `${t.url}/whip/constructor/visitor`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.3, speed: FAST });
    expect(((await (await fetch(`${t.url}/stats/visitor`)).json()) as { pipeline: string }).pipeline).toBe('default');
    await rm(join(dir, 'rooms.json'));
  });

  it('a room bound to a pipeline that is no longer there keeps its binding: its streams get 404 naming it', async () => {
    await writeFile(join(dir, 'rooms.json'), JSON.stringify({ rooms: { lost: 'deleted-by-hand', pstn: 'telephony' } }));
    try {
      const t = await start();
      expect(await roomsOf(t.url)).toEqual({ lost: 'deleted-by-hand', pstn: 'telephony' });
      const res = await fetch(`${t.url}/whip/lost/alice`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
      const problem = await expectProblem(res, { status: 404, code: 'EARSHOT_PIPELINE_NOT_FOUND' });
      expect(problem.detail).toContain('deleted-by-hand');
    } finally {
      await rm(join(dir, 'rooms.json'));
    }
  });

  it('a file that is not room bindings stops the server from starting, saying which file and why', async () => {
    for (const [content, why] of [
      ['{"rooms": ', /is not valid JSON: /],
      // JSON would keep the second binding without a word.
      ['{"rooms": {\n  "pstn": "telephony",\n  "pstn": "podcast"\n}}', /has the key \/rooms\/pstn twice \(lines 2 and 3\); JSON keeps only the last/],
      ['{"pstn": "telephony"}', /must be \{"rooms"/],
      ['{"rooms": {"../x": "telephony"}}', /room name that is not allowed/],
      ['{"rooms": {"pstn": 3}}', /binds room "pstn" to no pipeline name/],
    ] as const) {
      await writeFile(join(dir, 'rooms.json'), content);
      const server = await createServer({ port: 0, host: '127.0.0.1', pipelinesDir: dir, recordingsDir: join(dir, 'recordings'), logLevel: 'silent', admission: false });
      try {
        const failed = await server.listen().then(
          () => undefined,
          (e: unknown) => e as { code?: string; message?: string },
        );
        expect(failed?.code).toBe('EARSHOT_ROOM_BINDINGS_INVALID');
        expect(failed?.message).toContain(join(dir, 'rooms.json'));
        expect(failed?.message).toMatch(why);
      } finally {
        await server.close();
      }
    }
    await rm(join(dir, 'rooms.json'));
    await rm(join(dir, 'recordings'), { recursive: true, force: true });
  });

  it('a binding racing the deletion of its pipeline: one of the two wins, never both', async () => {
    const t = await start();
    const outcomes = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const name = `gone-${i}`;
      const doc = { stages: [], sinks: [{ type: 'stats' }] };
      expect((await fetch(`${t.url}/pipelines/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc) })).status).toBe(201);
      const [bind, del] = await Promise.all([put(t.url, `room-${i}`, name), fetch(`${t.url}/pipelines/${name}`, { method: 'DELETE' })]);
      outcomes.add(`${bind.status}/${del.status}`);
      // Bound (and the pipeline kept, 409) or deleted (and the binding refused, 404).
      expect([`${bind.status}/${del.status}`]).toEqual([expect.stringMatching(/^(200\/409|404\/204)$/)]);
      if (bind.status === 200) expect((await fetch(`${t.url}/rooms/room-${i}`, { method: 'DELETE' })).status).toBe(204);
    }
    // Written only if some binding won; every one was taken back.
    if (existsSync(join(dir, 'rooms.json'))) expect(await fileOf(dir)).toEqual({ rooms: {} });
    console.log(`binding against deletion, 30 races: ${[...outcomes].join(', ')}`);
  });

  it('in code, a binding made before listen() keeps those of the file; one with a byte order mark is read', async () => {
    await writeFile(join(dir, 'rooms.json'), `\uFEFF${JSON.stringify({ rooms: { pstn: 'telephony' } })}`);
    const server = await createServer({ port: 0, host: '127.0.0.1', pipelinesDir: dir, recordingsDir: join(dir, 'recordings'), logLevel: 'silent', admission: false });
    try {
      await server.core.bindRoom('shows', 'podcast');
      expect(await fileOf(dir)).toEqual({ rooms: { pstn: 'telephony', shows: 'podcast' } });
      await server.listen();
      expect(server.core.roomBindings()).toEqual({ pstn: 'telephony', shows: 'podcast' });
    } finally {
      await server.close();
      await rm(join(dir, 'rooms.json'));
      await rm(join(dir, 'recordings'), { recursive: true, force: true });
    }
  });

  it('stay in memory with the bundled pipelines, or with persistRoomBindings: false', async () => {
    const bundled = await startServer({ pipelinesDir: BUNDLED });
    servers.push(bundled);
    expect((await put(bundled.url, 'pstn', 'telephony')).status).toBe(200);
    expect(existsSync(join(BUNDLED, 'rooms.json'))).toBe(false);
    const off = await start({ persistRoomBindings: false });
    expect((await put(off.url, 'pstn', 'telephony')).status).toBe(200);
    expect(await roomsOf(off.url)).toEqual({ pstn: 'telephony' });
    expect(existsSync(join(dir, 'rooms.json'))).toBe(false);
  });
});
