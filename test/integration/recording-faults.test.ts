/**
 * Recordings never fail silently, end to end over loopback WebRTC: sessions
 * that never carry audio leave no file; a full disk marks recordings failed
 * (with a header that matches the file) while streams go on, later sessions
 * say why they record nothing, and `required` recording refuses sessions up
 * front; audio dropped under overload is counted in the recording and
 * reported once per episode.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { parsePipeline } from '../../src/pipeline/pipeline.js';
import type { ProcessorEvent } from '../../src/sinks/processors.js';
import type { RecordingInfo } from '../../src/sinks/recorder.js';
import { fixtureModule, fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

const STALL_STAGE = fixtureModule('stall.js');

let t: TestServer | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await t?.close();
  t = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, tries = 300): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const name = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await filesUnder(dir, name)));
    else out.push(name);
  }
  return out.sort();
}

function earshotEvents(server: TestServer): ProcessorEvent[] {
  const events: ProcessorEvent[] = [];
  const sub = server.server.events$.subscribe((e) => {
    if (e.processor === 'earshot') events.push(e);
  });
  cleanups.push(() => sub.unsubscribe());
  return events;
}

async function peerStats(url: string, peer: string): Promise<{ recording: RecordingInfo | null; rtp: { packetsReceived: number } }> {
  const r = await fetch(`${url}/stats/${peer}`);
  expect(r.status).toBe(200);
  return (await r.json()) as { recording: RecordingInfo | null; rtp: { packetsReceived: number } };
}

async function endSession(url: string, sessionUrl: string): Promise<RecordingInfo[]> {
  const r = await fetch(new URL(sessionUrl, url), { method: 'DELETE' });
  expect(r.status).toBe(200);
  return ((await r.json()) as { recordings: RecordingInfo[] }).recordings;
}

/** The WAV parses, and its header's data size is the file's size minus the header. */
async function expectConsistentWav(path: string): Promise<{ dataBytes: number; samples: number }> {
  const buf = await readFile(path);
  const wav = new wavefile.WaveFile(buf);
  const dataBytes = (wav as unknown as { data: { chunkSize: number } }).data.chunkSize;
  const headerBytes = buf.indexOf('data', 12, 'ascii') + 8;
  expect(dataBytes).toBe((await stat(path)).size - headerBytes);
  return { dataBytes, samples: (wav.getSamples(true, Float64Array) as unknown as Float64Array).length };
}

/** Mounts a tmpfs of `size`; undefined where mounting is not permitted (not root). */
async function mountTmpfs(size: string): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'earshot-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  cleanups.push(async () => {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  return dir;
}

describe('recording faults', () => {
  it('leaves no file for sessions that never connect (files are created by the first audio)', async () => {
    t = await startServer({ connectTimeoutMs: 500 }); // default pipeline: records every stream
    const ended: string[] = [];
    const sub = t.server.sessions$.subscribe((e) => {
      if (e.type === 'ended') ended.push(`${e.peer}:${e.reason}:${e.recordings?.length}`);
    });
    cleanups.push(() => sub.unsubscribe());
    const peers = ['ghost-1', 'ghost-2', 'ghost-3', 'ghost-4', 'ghost-5'];
    for (const peer of peers) {
      const r = await fetch(`${t.url}/whip/demo/${peer}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
      expect(r.status).toBe(201);
    }
    await waitFor('the sessions to time out', () => (ended.length === peers.length ? true : undefined));
    expect(ended.sort()).toEqual(peers.map((p) => `${p}:connect-timeout:0`));
    expect(await filesUnder(t.recordingsDir)).toEqual([]);
  });

  it('reports why a session records nothing when the recordings directory is unusable, and refuses "required" sessions with 507', async () => {
    t = await startServer();
    const server = t;
    server.server.core.pipelines.add(parsePipeline({ name: 'must-record', stages: [], sinks: [{ type: 'record', required: true }, { type: 'stats' }] }));
    const events = earshotEvents(server);
    const ended: Array<string[] | undefined> = [];
    const watching = server.server.core.sessions$.subscribe((e) => {
      if (e.type === 'ended') ended.push(e.recordings);
    });
    // The directory turns into a file after start: every write into it fails with ENOTDIR.
    await rm(server.recordingsDir, { recursive: true });
    await writeFile(server.recordingsDir, 'not a directory');

    const refused = await fetch(`${server.url}/whip/demo/strict?pipeline=must-record`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
    expect(refused.status).toBe(507);
    expect(refused.headers.get('content-type')).toMatch(/application\/problem\+json/);
    const problem = (await refused.json()) as { code: string; detail: string };
    expect(problem.code).toBe('EARSHOT_RECORDING_UNAVAILABLE');
    expect(problem.detail).toMatch(/Pipeline "must-record" requires recording/);
    expect(problem.detail).toMatch(/ENOTDIR.*is a file, not a directory/);
    expect(server.server.core.refusedBy()).toMatchObject({ EARSHOT_RECORDING_UNAVAILABLE: 1 });

    // Without "required" the session starts; its stats and an event say why nothing is recorded.
    const sent = await sendAudio({ url: `${server.url}/whip/demo/lenient`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, skipDelete: true, speed: FAST });
    const stats = await waitFor('the failed recording', async () => {
      const s = await peerStats(server.url, 'lenient');
      return s.recording?.state === 'failed' ? s : undefined;
    });
    expect(stats.recording).toMatchObject({ state: 'failed', code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE', bytes: 0 });
    expect(stats.recording!.error).toMatch(/ENOTDIR.*is a file, not a directory/);
    expect(stats.recording!.error).not.toMatch(/Create the directory/);
    const recordings = await endSession(server.url, sent.sessionUrl);
    // The DELETE answer tells of the recording that never started, with its reason; the ended event names no file.
    expect(recordings).toMatchObject([{ state: 'failed', bytes: 0, code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE' }]);
    watching.unsubscribe();
    expect(ended).toEqual([[]]);
    expect(events.filter((e) => e.event === 'recording-failed')).toEqual([
      expect.objectContaining({ peerId: 'lenient', data: expect.objectContaining({ code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE', branch: 'main' }) }),
    ]);
  });

  it('on a full disk: the recording fails with a header matching the file, the stream goes on, the next session says "disk is full", "required" gets 507', async (ctx) => {
    const disk = await mountTmpfs('256k');
    if (!disk) return ctx.skip('mounting a tmpfs is not permitted here');
    // 32-bit float mono: 192 KB/s fills 256 KiB in about 1.4 s.
    t = await startServer({ recordingsDir: disk, pipeline: { name: 'archive', stages: [], sinks: [{ type: 'record', sampleFormat: 'f32' }, { type: 'stats' }] } });
    const server = t;
    server.server.core.pipelines.add(parsePipeline({ name: 'must-record', stages: [], sinks: [{ type: 'record', required: true }, { type: 'stats' }] }));
    const events = earshotEvents(server);

    const first = await sendAudio({ url: `${server.url}/whip/demo/first`, source: fixturePath('tone-1k-48k.wav'), seconds: 3, skipDelete: true, speed: FAST });
    const during = await waitFor('all audio to arrive', async () => {
      const s = await peerStats(server.url, 'first');
      return s.rtp.packetsReceived >= first.packetsSent - first.packetsDropped ? s : undefined;
    });
    // The stream went on after the disk filled: all 3 s arrived, the recording holds less.
    expect(during.recording).toMatchObject({ state: 'failed', code: 'EARSHOT_RECORDING_WRITE_FAILED' });
    expect(during.recording!.error).toMatch(/ENOSPC.*the disk is full/);
    const [rec] = await endSession(server.url, first.sessionUrl);
    expect(rec.state).toBe('failed');
    expect(rec.seconds).toBeGreaterThan(0.5);
    expect(rec.seconds).toBeLessThan(2.5);
    const { dataBytes, samples } = await expectConsistentWav(join(disk, rec.name));
    expect(rec.bytes).toBe(94 + dataBytes);
    expect(samples / 48000).toBeCloseTo(rec.seconds, 6);

    // A new session on the full disk: 201, no (empty) file, and the reason in its stats.
    const second = await sendAudio({ url: `${server.url}/whip/demo/second`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, skipDelete: true, speed: FAST });
    const stats = await waitFor('the second recording to fail', async () => {
      const s = await peerStats(server.url, 'second');
      return s.recording?.state === 'failed' ? s : undefined;
    });
    expect(stats.recording!.error).toMatch(/ENOSPC.*the disk is full/);
    expect(stats.recording!.error).not.toMatch(/Create the directory/);
    await endSession(server.url, second.sessionUrl);
    expect(await filesUnder(disk)).toEqual([rec.name]);
    const failed = events.filter((e) => e.event === 'recording-failed');
    expect(failed.map((e) => e.peerId)).toEqual(['first', 'second']);
    // The event is sent once the file is consistent: it reports what the file holds.
    expect(failed[0].data).toMatchObject({ recording: rec.name, code: 'EARSHOT_RECORDING_WRITE_FAILED', seconds: rec.seconds, bytes: rec.bytes });

    const refused = await fetch(`${server.url}/whip/demo/third?pipeline=must-record`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
    expect(refused.status).toBe(507);
    const problem = (await refused.json()) as { code: string; detail: string };
    expect(problem.code).toBe('EARSHOT_RECORDING_UNAVAILABLE');
    expect(problem.detail).toMatch(/ENOSPC.*free.*needed.*the disk is full/);
  });

  it('counts audio dropped under overload in the recording and reports the episode once', async () => {
    t = await startServer({
      threads: 1,
      stageModules: [STALL_STAGE],
      // After half a second the worker needs 3 s for 10 frames (300 ms each: slow, not hung): the stream's 2 s queue overflows and drops its oldest frames.
      pipeline: { name: 'overloaded', stages: [{ type: 'stall', afterChunks: 25, ms: 300, times: 10 }], sinks: [{ type: 'record' }, { type: 'stats' }] },
    });
    const server = t;
    const events = earshotEvents(server);
    const sent = await sendAudio({ url: `${server.url}/whip/demo/busy`, source: fixturePath('tone-1k-48k.wav'), seconds: 5, skipDelete: true });
    const stats = (await (await fetch(`${server.url}/stats/busy`)).json()) as { processing: { dropped: { queueFull: number } } };
    const [rec] = await endSession(server.url, sent.sessionUrl);

    expect(rec.state).toBe('stopped');
    expect(rec.droppedBy.queueFull).toBeGreaterThan(0);
    expect(rec.droppedBy.queueFull).toBeGreaterThanOrEqual(stats.processing.dropped.queueFull);
    expect(rec.droppedFrames).toBe(rec.droppedBy.queueFull + rec.droppedBy.late + rec.droppedBy.workerRestart + rec.droppedBy.stageFailed + rec.droppedBy.backlog + rec.droppedBy.processorStage);
    // Every dropped 20 ms frame is 960 samples of silence in the file (the worker filled the timeline).
    expect(rec.gapFrames).toBeGreaterThanOrEqual(rec.droppedBy.queueFull * 960);
    expect(rec.gapSeconds).toBeCloseTo(rec.gapFrames / 48000, 3);
    const { samples } = await expectConsistentWav(join(server.recordingsDir, rec.name));
    expect(samples).toBe(Math.round(rec.seconds * 48000));

    const dropping = events.filter((e) => e.event === 'audio-dropping');
    const dropped = events.filter((e) => e.event === 'audio-dropped');
    expect(dropping.length).toBeGreaterThanOrEqual(1);
    expect(dropped).toHaveLength(dropping.length); // every episode is summarized, at the latest when the stream ends
    expect(dropping[0]).toMatchObject({ peerId: 'busy', data: expect.objectContaining({ cause: expect.stringMatching(/worker queue is full/) }) });
    const summarized = dropped.reduce((n, e) => n + (e.data as { frames: number }).frames, 0);
    expect(summarized).toBe(rec.droppedBy.queueFull + rec.droppedBy.late + rec.droppedBy.workerRestart + rec.droppedBy.stageFailed);
    // Logged per episode, not per frame.
    expect(dropping.length).toBeLessThan(rec.droppedFrames);
  });
});
