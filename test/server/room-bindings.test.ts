/**
 * Room bindings outlive a restart: PUT /rooms/:room is written to rooms.json
 * in the pipelines directory before it applies, read back at start, and a
 * failed write changes nothing. The bundled (read-only) pipelines keep them
 * in memory, and a bad file stops the server from starting.
 */
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

const BUNDLED = join(import.meta.dirname, '..', '..', 'pipelines');

const put = (url: string, room: string, pipeline: string) =>
  fetch(`${url}/rooms/${room}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pipeline }) });
const roomsOf = async (url: string) => ((await (await fetch(`${url}/rooms`)).json()) as { rooms: Record<string, string> }).rooms;
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
    const t = await start();
    expect((await put(t.url, 'kept', 'telephony')).status).toBe(200);
    // A directory where the file goes: renaming the new file over it fails, even for root.
    await rm(join(dir, 'rooms.json'));
    await mkdir(join(dir, 'rooms.json'));
    try {
      await expectProblem(await put(t.url, 'refused', 'podcast'), { status: 500, code: 'EARSHOT_ROOM_BINDINGS_WRITE_FAILED' });
      await expectProblem(await fetch(`${t.url}/rooms/kept`, { method: 'DELETE' }), { status: 500, code: 'EARSHOT_ROOM_BINDINGS_WRITE_FAILED' });
      expect(await roomsOf(t.url)).toEqual({ kept: 'telephony' });
    } finally {
      await rm(join(dir, 'rooms.json'), { recursive: true });
    }
    expect((await fetch(`${t.url}/rooms/kept`, { method: 'DELETE' })).status).toBe(204);
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
      ['{"rooms": ', /is not JSON/],
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
