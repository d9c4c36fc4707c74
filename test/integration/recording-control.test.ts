/**
 * Runtime recording control and the recordings API, end to end: a pipeline
 * that does not record by itself, started and stopped over HTTP, listed and
 * downloaded as a valid WAV.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import { sendAudio } from '../../src/client/audio-sender.js';
import { dominantFrequency } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { expectProblem } from '../helpers/problems.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('recording control', () => {
  it('starts on POST with a chosen name, stops on DELETE, lists and serves the file (32-bit float)', async () => {
    t = await startServer({ pipeline: { name: 'manual', stages: [], sinks: [{ type: 'record', sampleFormat: 'f32', autoStart: false }, { type: 'stats' }] } });
    const ended: string[][] = [];
    const watching = t.server.core.sessions$.subscribe((e) => {
      if (e.type === 'ended') ended.push(e.recordings ?? []);
    });
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/studio/host`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal });
    let placeholder = '';
    try {
      // Wait for the peer to exist, then check nothing records yet.
      let stats: { recording: unknown } | undefined;
      for (let i = 0; i < 50 && !stats; i++) {
        const r = await fetch(`${t.url}/stats/host`);
        if (r.ok) stats = (await r.json()) as { recording: unknown };
        else await new Promise((res) => setTimeout(res, 100));
      }
      expect(stats?.recording).toBeNull();

      const start = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'interview-1' }) });
      expect(start.status).toBe(201);
      expect(((await start.json()) as { recordings: Array<{ name: string; state: string }> }).recordings).toMatchObject([{ name: 'interview-1.wav', state: 'recording' }]);
      await new Promise((r) => setTimeout(r, 1500));
      const stop = await fetch(`${t.url}/peers/host/recording`, { method: 'DELETE' });
      expect(stop.status).toBe(200);
      const stopped = (await stop.json()) as { recordings: Array<{ name: string; seconds: number; bytes: number; sampleRate: number }> };
      expect(stopped.recordings).toHaveLength(1);
      const rec = stopped.recordings[0];
      expect(rec.name).toBe('interview-1.wav');
      expect(rec.seconds).toBeGreaterThan(1.0);
      expect(rec.seconds).toBeLessThan(2.5);
      expect(rec.bytes).toBe(94 + Math.round(rec.seconds * 48000) * 4);

      const list = (await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string; seconds: number; bytes: number }> };
      expect(list.recordings).toEqual([expect.objectContaining({ name: 'interview-1.wav', seconds: rec.seconds, bytes: rec.bytes })]);

      const dl = await fetch(`${t.url}/recordings/interview-1.wav`);
      expect(dl.status).toBe(200);
      expect(dl.headers.get('content-type')).toBe('audio/wav');
      const wav = new wavefile.WaveFile(new Uint8Array(await dl.arrayBuffer()));
      expect(wav.fmt).toMatchObject({ audioFormat: 3, bitsPerSample: 32, sampleRate: 48000 });
      const samples = Float32Array.from(wav.getSamples(true, Float64Array) as unknown as Float64Array);
      expect(samples.length / 48000).toBeCloseTo(rec.seconds, 3);
      expect(Math.abs(dominantFrequency(samples, 48000) - 1000)).toBeLessThan(10);

      // The same name again is a conflict, not an overwrite.
      const again = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"interview-1"}' });
      expect(again.status).toBe(409);
      expect(((await again.json()) as { code: string }).code).toBe('EARSHOT_RECORDING_EXISTS');
      // An extension in capitals is the extension: recorded as .wav (it was a 409 for a file that did not exist).
      const loud = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"interview-2.WAV"}' });
      expect(loud.status).toBe(201);
      expect(((await loud.json()) as { recordings: Array<{ name: string }> }).recordings.map((r) => r.name)).toEqual(['interview-2.wav']);
      expect((await fetch(`${t.url}/peers/host/recording`, { method: 'DELETE' })).status).toBe(200);
      const record = (name: string) => fetch(`${t!.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
      // A long name that exists is a conflict too (it was a 400 about "<name>-2", a name never sent).
      const long = 'a'.repeat(124);
      placeholder = `${long}.wav`;
      await writeFile(join(t.recordingsDir, placeholder), '');
      await expectProblem(await record(long), { status: 409, code: 'EARSHOT_RECORDING_EXISTS' });
      // A name for the other format is refused, not recorded as "take.opus.wav".
      await expectProblem(await record('take.opus'), { status: 400, code: 'EARSHOT_RECORDING_NAME_INVALID', detail: /^Recording name "take\.opus" is not allowed: it ends in \.opus, but this recording is WAV \(\.wav\): give the name without an extension, or with \.wav\./ });
      // A refused name is told what is wrong with it: subdirectories are allowed, up to four.
      await expectProblem(await record('a/b/c/d/e/f'), {
        status: 400,
        code: 'EARSHOT_RECORDING_NAME_INVALID',
        detail: /^Recording name "a\/b\/c\/d\/e\/f" is not allowed: it has 5 subdirectory levels; at most 4 are allowed\. A name is a file name with up to 4 directories before it \("calls\/sales\/take1"\)/,
      });
      // The body is optional, also from a client that always says it sends JSON: the template's name.
      const bare = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      expect(bare.status).toBe(201);
      expect(((await bare.json()) as { recordings: Array<{ name: string }> }).recordings[0].name).toMatch(/^studio-host-\d{8}-\d{6}\.wav$/);
      expect((await fetch(`${t.url}/peers/host/recording`, { method: 'DELETE' })).status).toBe(200);
      // An empty body is no body whatever its type: a browser's fetch with body '' says text/plain,
      // `curl -d ''` says application/x-www-form-urlencoded.
      for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
        const empty = await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': type }, body: '' });
        expect(empty.status, `${type}: ${await empty.clone().text()}`).toBe(201);
        expect((await fetch(`${t.url}/peers/host/recording`, { method: 'DELETE' })).status).toBe(200);
      }
      // A body of another type is still refused for what it is.
      await expectProblem(await fetch(`${t.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'name=x' }), {
        status: 415,
        code: 'EARSHOT_UNSUPPORTED_MEDIA_TYPE',
      });
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
    // The session's end names every file it made (it named only the last one), none that is not its own.
    watching.unsubscribe();
    const listed = ((await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string }> }).recordings.map((r) => r.name).filter((n) => n !== placeholder);
    expect(listed).toHaveLength(6);
    expect(ended).toHaveLength(1);
    expect([...ended[0]].sort()).toEqual([...listed].sort());
  });

  it('starts every branch\'s file together, at the same frame, or none when a branch\'s name is taken', async () => {
    // Two branches without stages: the same audio, so files that start at the same frame are identical.
    const branch = { stages: [], sinks: [{ type: 'record' as const, autoStart: false }] };
    t = await startServer({ pipeline: { name: 'two', branches: { a: branch, b: branch } } });
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/studio/host`, source: fixturePath('sweep-48k.wav'), loop: true, signal: controller.signal });
    const record = (name: string) => fetch(`${t!.url}/peers/host/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
    try {
      // Audio flowing (the peer is in /stats as soon as it is answered, before it connects).
      const flowing = async () => {
        const res = await fetch(`${t!.url}/stats/host`);
        return res.ok && ((await res.json()) as { rtp: { packetsReceived: number } }).rtp.packetsReceived > 5;
      };
      for (let i = 0; i < 150 && !(await flowing()); i++) await new Promise((r) => setTimeout(r, 100));
      // Branch b's name is taken: a 409, and branch a did not start either (it went on recording alone).
      await writeFile(join(t.recordingsDir, 'taken-b.wav'), '');
      await expectProblem(await record('taken'), { status: 409, code: 'EARSHOT_RECORDING_EXISTS' });
      expect(((await (await fetch(`${t.url}/stats/host`)).json()) as { recordings: unknown[] }).recordings).toEqual([]);
      for (let take = 1; take <= 3; take++) {
        expect((await record(`take${take}`)).status).toBe(201);
        await new Promise((r) => setTimeout(r, 400));
        const stop = await fetch(`${t.url}/peers/host/recording`, { method: 'DELETE' });
        const { recordings } = (await stop.json()) as { recordings: Array<{ name: string }> };
        expect(recordings.map((r) => r.name)).toEqual([`take${take}-a.wav`, `take${take}-b.wav`]);
        const [a, b] = await Promise.all(recordings.map(async (r) => new Uint8Array(await (await fetch(`${t!.url}/recordings/${r.name}`)).arrayBuffer())));
        expect(a.length).toBeGreaterThan(44 + 0.2 * 96000);
        expect(Buffer.from(a).equals(Buffer.from(b)), `take ${take}: ${a.length} / ${b.length} bytes`).toBe(true);
      }
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('starts an on-demand branch beside one that records every stream, which goes on with its one file; ?branch= stops one', async () => {
    t = await startServer({
      pipeline: {
        name: 'archive-and-clean',
        branches: {
          archive: { stages: [], sinks: [{ type: 'record' }] },
          clean: { stages: [], sinks: [{ type: 'record', autoStart: false }] },
          meter: { stages: [], sinks: [{ type: 'stats' }] },
        },
      },
    });
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/calls/agent`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal });
    const post = (body: Record<string, unknown>) => fetch(`${t!.url}/peers/agent/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const names = async (res: Response) => ((await res.json()) as { recordings: Array<{ name: string }> }).recordings.map((r) => r.name);
    /** The peer's files being written (none before it is answered). */
    const live = async () => {
      const res = await fetch(`${t!.url}/stats/agent`);
      return res.ok ? ((await res.json()) as { recordings: Array<{ name: string; state: string }> }).recordings.filter((r) => r.state === 'recording').map((r) => r.name) : [];
    };
    try {
      for (let i = 0; i < 150 && !(await live()).some((n) => n.endsWith('-archive.wav')); i++) await new Promise((r) => setTimeout(r, 100));
      const [archive] = await live();
      expect(archive).toMatch(/^calls-agent-\d{8}-\d{6}-archive\.wav$/);
      // The archive records: the POST starts the branch that does not (it was a 409 "already recording").
      const first = await post({ name: 'take1' });
      expect(first.status).toBe(201);
      expect(await names(first)).toEqual(['take1-clean.wav']);
      expect((await live()).sort()).toEqual([archive, 'take1-clean.wav'].sort());
      // Every branch asked for records: 409.
      await expectProblem(await post({}), { status: 409, code: 'EARSHOT_RECORDING_ACTIVE' });
      await expectProblem(await post({ branch: 'archive' }), { status: 409, code: 'EARSHOT_RECORDING_ACTIVE' });
      // One branch stopped, the archive untouched; then that branch started again by name.
      await new Promise((r) => setTimeout(r, 400));
      const stopClean = await fetch(`${t.url}/peers/agent/recording?branch=clean`, { method: 'DELETE' });
      expect(await names(stopClean)).toEqual(['take1-clean.wav']);
      expect(await live()).toEqual([archive]);
      expect(await names(await post({ branch: 'clean', name: 'take2' }))).toEqual(['take2-clean.wav']);
      // Branches that do not exist, or cannot record.
      await expectProblem(await post({ branch: 'nope' }), { status: 404, code: 'EARSHOT_BRANCH_NOT_FOUND' });
      await expectProblem(await post({ branch: 'meter' }), { status: 400, code: 'EARSHOT_BODY_INVALID' });
      await expectProblem(await fetch(`${t.url}/peers/agent/recording?branch=nope`, { method: 'DELETE' }), { status: 404, code: 'EARSHOT_BRANCH_NOT_FOUND' });
      // A DELETE without a branch stops all, the archive with its one file.
      const all = await fetch(`${t.url}/peers/agent/recording`, { method: 'DELETE' });
      expect((await names(all)).sort()).toEqual([archive, 'take2-clean.wav'].sort());
      expect((await readdir(t.recordingsDir)).filter((f) => f.includes('archive'))).toEqual([archive]);
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
    }
  });

  it('never writes through a link to a directory outside the recordings directory (400), and writes through one inside it', async () => {
    t = await startServer({ pipeline: { name: 'manual', stages: [], sinks: [{ type: 'record', autoStart: false }, { type: 'stats' }] } });
    const outside = await mkdtemp(join(tmpdir(), 'earshot-outside-'));
    await symlink(outside, join(t.recordingsDir, 'outlink'));
    await mkdir(join(t.recordingsDir, 'sub'));
    await symlink(join(t.recordingsDir, 'sub'), join(t.recordingsDir, 'inlink'));
    const controller = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/studio/linker`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: controller.signal });
    const record = (name: string) => fetch(`${t!.url}/peers/linker/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
    try {
      for (let i = 0; i < 50 && !(await fetch(`${t.url}/stats/linker`)).ok; i++) await new Promise((res) => setTimeout(res, 100));
      for (const name of ['outlink/x', 'outlink/new/x']) {
        await expectProblem(await record(name), { status: 400, code: 'EARSHOT_RECORDING_NAME_INVALID', detail: /"outlink" in it is a link to a directory outside the recordings directory; choose a name without it/ });
      }
      // Nothing was made there, not even the subdirectory.
      expect(await readdir(outside)).toEqual([]);
      expect((await record('inlink/y')).status).toBe(201);
      expect((await fetch(`${t.url}/peers/linker/recording`, { method: 'DELETE' })).status).toBe(200);
      expect(await readdir(join(t.recordingsDir, 'sub'))).toEqual(['y.wav']);
    } finally {
      controller.abort();
      await sending.catch(() => undefined);
      await rm(outside, { recursive: true, force: true });
    }
  });
});
