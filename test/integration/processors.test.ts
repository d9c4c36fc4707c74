/**
 * Custom processing over real loopback WebRTC: a custom worker stage named in
 * the pipeline JSON, main-thread processors (pipeline sinks and runtime
 * attachments), their isolation, `server.streams$`, and pipelines that must
 * not start.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { finalize, interval, map, merge, type Observable } from 'rxjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { WhipRequestError } from '../../src/client/whip-client.js';
import { ProcessorRegistry, type AudioFrame, type ProcessorEvent } from '../../src/index.js';
import { energyDetector } from '../../examples/energy-detector.js';
import { readWav } from '../helpers/audio.js';
import { fixtureModule, fixturePath } from '../helpers/fixtures.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const EXAMPLE_STAGE = fileURLToPath(new URL('../../examples/dc-blocker-stage.js', import.meta.url));
const STRICT_STAGE = fixtureModule('strict-options.js');

/** A test's own server, for the tests that need one configured differently. */
let own: TestServer | undefined;
afterEach(async () => {
  await own?.close();
  own = undefined;
});

// The processors the tests on the shared server use: each test attaches or names its own.
let goodFrames = 0;
const sharedProcessors = new ProcessorRegistry();
sharedProcessors.register('energy', energyDetector);
sharedProcessors.register('boom', () => ({
  next(f: AudioFrame) {
    if (f.position >= 48000) throw new Error('processor failed at 1 s');
  },
}));
sharedProcessors.register('count', () => (frames$: Observable<AudioFrame>) => frames$.pipe(map(() => goodFrames++)));

let shared: Promise<TestServer> | undefined;
/**
 * One server for the tests that differ only in pipeline (picked with `?pipeline=`)
 * and processors: a server's workers take seconds to start on a busy machine.
 */
function sharedServer(): Promise<TestServer> {
  return (shared ??= startServer({
    processors: sharedProcessors,
    stageModules: [EXAMPLE_STAGE],
    extraPipelines: [
      {
        name: 'detect',
        stages: [{ type: 'dc-blocker', cutoffHz: 20 }, { type: 'denoise' }],
        sinks: [{ type: 'processor', name: 'energy', options: { thresholdDb: -35 } }, { type: 'record' }, { type: 'stats' }],
      },
      { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] },
      { name: 'two', channels: 1, branches: { raw: { stages: [], sinks: [{ type: 'stats' }] }, low: { stages: [{ type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'stats' }] } } },
    ],
  }));
}
afterAll(async () => (await shared)?.close());

type PeerStats = {
  rtp: { packetsReceived: number };
  processing: { sinkErrors: number; processorErrors: number; processors: Array<{ name: string; branch: string; state: string }> };
  recording: { name: string; seconds: number };
};
const statsOf = async (t: TestServer, peer: string) => (await (await fetch(`${t.url}/stats/${peer}`)).json()) as PeerStats;

describe('custom processors over WebRTC', () => {
  it('runs a custom worker stage named in the pipeline and a processor sink whose events reach server.events$', async () => {
    const t = await sharedServer();
    const events: ProcessorEvent[] = [];
    const sub = t.server.events$.subscribe((e) => events.push(e));
    const sent = await sendAudio({ url: `${t.url}/whip/talk/ann?pipeline=detect`, source: fixturePath('speech-48k.wav'), seconds: 4, speed: FAST });
    sub.unsubscribe();
    await expectComplete(t.url, 'ann', sent);

    const s = await statsOf(t, 'ann');
    // It finished with the stream: completed, not still running.
    expect(s.processing.processors).toEqual([{ name: 'energy', branch: 'main', state: 'completed' }]);
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.every((e) => e.peerId === 'ann' && e.roomId === 'talk' && e.processor === 'energy')).toBe(true);
    // Starts and ends alternate, starting with a start, in media order, within the 4 s sent.
    events.forEach((e, i) => expect(e.event).toBe(i % 2 === 0 ? 'speech-start' : 'speech-end'));
    const times = events.map((e) => (e.data as { time: number }).time);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(times[0]).toBeGreaterThanOrEqual(0);
    expect(times[times.length - 1]).toBeLessThanOrEqual(4.05);
    const wav = await readWav(join(t.recordingsDir, s.recording.name));
    expect(Math.abs(wav.durationSec - 4)).toBeLessThan(0.05);
  });

  it('detaches a processor that throws, counts it, and keeps recording and the other processors going', async () => {
    const t = await sharedServer();
    goodFrames = 0;
    const detachBoom = t.server.attachProcessor('boom', { room: 'r1' });
    // Left attached: no other test publishes as bob or in room "elsewhere".
    t.server.attachProcessor('count', { peer: 'bob' });
    t.server.attachProcessor('count', { room: 'elsewhere' }); // matches nobody here
    const sent = await sendAudio({ url: `${t.url}/whip/r1/bob?pipeline=raw`, source: fixturePath('tone-1k-48k.wav'), seconds: 2, speed: FAST });
    detachBoom();
    await expectComplete(t.url, 'bob', sent);

    const s = await statsOf(t, 'bob');
    expect(s.processing.processorErrors).toBe(1);
    expect(s.processing.sinkErrors).toBe(1);
    expect(s.processing.processors).toEqual([
      { name: 'boom', branch: 'main', state: 'failed' },
      { name: 'count', branch: 'main', state: 'completed' },
    ]);
    expect(goodFrames).toBe(100); // every 20 ms frame of 2 s
    const wav = await readWav(join(t.recordingsDir, s.recording.name));
    expect(Math.abs(wav.durationSec - 2)).toBeLessThan(0.04);
    expect(() => t.server.attachProcessor('nope')).toThrow(expect.objectContaining({ code: 'EARSHOT_PROCESSOR_NOT_FOUND' }));
  });

  it('announces every stream on server.streams$ with its audio, encoded frames and stats', async () => {
    const t = await sharedServer();
    const seen: Array<{ peer: string; room: string; pipeline: string; audio: number; low: number; lowRate: number; encoded: number; positions: number[]; statsPeer: string }> = [];
    const sub = t.server.streams$.subscribe((s) => {
      const entry = { peer: s.peerId, room: s.roomId, pipeline: s.pipeline, audio: 0, low: 0, lowRate: 0, encoded: 0, positions: [] as number[], statsPeer: s.stats().peer };
      seen.push(entry);
      s.audio$.subscribe((f) => (entry.audio += f.data.length));
      s.branches.low.subscribe((f) => {
        entry.low += f.data.length;
        entry.lowRate = f.sampleRate;
      });
      s.encoded$.subscribe((f) => {
        entry.encoded++;
        entry.positions.push(f.position);
      });
    });
    const sent = await sendAudio({ url: `${t.url}/whip/room9/cat?pipeline=two`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, speed: FAST });
    sub.unsubscribe();
    await expectComplete(t.url, 'cat', sent);
    expect(seen).toHaveLength(1);
    const e = seen[0];
    expect([e.peer, e.room, e.pipeline, e.statsPeer]).toEqual(['cat', 'room9', 'two', 'cat']);
    expect(e.encoded).toBe(sent.packetsSent);
    expect(e.positions.every((p, i) => p === i * 960)).toBe(true);
    expect(e.audio).toBe(48000);
    expect(e.lowRate).toBe(16000);
    expect(Math.abs(e.low - 16000)).toBeLessThanOrEqual(16); // resampler start-up, within 1 ms
  });

  it('unsubscribes a processor that does not complete when its stream ends, after processorDrainTimeoutMs; one that completes is left to do so', async () => {
    own = await startServer({ processorDrainTimeoutMs: 300 });
    let ticks = 0;
    let completed = 0;
    // A timer merged into the frames: its output never completes by itself.
    own.server.registerProcessor('ticker', () => (frames$: Observable<AudioFrame>) => merge(frames$, interval(20).pipe(map(() => ticks++))));
    own.server.registerProcessor('finite', () => (frames$: Observable<AudioFrame>) => frames$.pipe(finalize(() => completed++)));
    own.server.attachProcessor('ticker', {});
    own.server.attachProcessor('finite', {});
    await sendAudio({ url: `${own.url}/whip/room/tick`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.5, speed: FAST });
    const ended = await until('the stream to end', async () => ((await (await fetch(`${own!.url}/stats/tick`)).json()) as { endReason?: string }).endReason);
    expect(ended).toBeTruthy();
    expect(completed).toBe(1);
    await new Promise((r) => setTimeout(r, 600)); // past the 300 ms drain
    const after = ticks;
    await new Promise((r) => setTimeout(r, 300));
    expect(ticks).toBe(after); // its timer was unsubscribed with it
    expect(after).toBeGreaterThan(0);
  });

  it('refuses to start a pipeline whose processor is not registered or whose custom stage rejects its options (422, no session)', async () => {
    const t = (own = await startServer({
      processors: new ProcessorRegistry(),
      stageModules: [STRICT_STAGE],
      pipeline: { name: 'bad', branches: { a: { stages: [{ type: 'invert', strength: 2 }], sinks: [{ type: 'processor', name: 'asr' }] } } },
    }));
    const first = await sendAudio({ url: `${t.url}/whip/x/p1`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.2 }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(WhipRequestError);
    expect(first).toMatchObject({ status: 422, code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringMatching(/branches\/a\/sinks\/0\/name.*"asr" is not registered/s) });

    t.server.registerProcessor('asr', () => ({ next() {} }));
    const second = await sendAudio({ url: `${t.url}/whip/x/p1`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.2 }).catch((e: unknown) => e);
    expect(second).toMatchObject({ status: 422, code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringMatching(/branches\/a\/stages\/0.*strength/s) });
    expect((await fetch(`${t.url}/stats/p1`)).status).toBe(404);
  });

  it('rejects an unknown custom stage type in the pipeline at startup with a hint', async () => {
    await expect(startServer({ pipeline: { name: 'typo', stages: [{ type: 'dc-bloker' }], sinks: [{ type: 'stats' }] } })).rejects.toMatchObject({
      code: 'EARSHOT_PIPELINE_INVALID',
      message: expect.stringMatching(/stages\/0\/type: "dc-bloker" is not a stage type.*register/s),
    });
  });
});
