/**
 * Processor stages over real loopback WebRTC: a main-thread processor placed
 * in a branch's stages makes the audio its sinks get. The recording holds its
 * output (a ×0.5 gain records 6 dB quieter than the same audio without it),
 * after a resample it records at the resampled rate, a stage that throws is
 * detached while the recording goes on with the audio it got, a pipeline
 * naming a processor that is not registered as a stage never starts, and at
 * the end of a stream a stage that still holds audio is waited for up to
 * `processorDrainTimeoutMs`, then cut off with what it held counted.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { concatWith, delay, filter, from, map, mergeMap, NEVER, toArray, type Observable } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { WhipRequestError } from '../../src/client/whip-client.js';
import { ProcessorRegistry, type AudioFrame, type PeerStatsSnapshot, type ProcessorStageContext } from '../../src/index.js';
import { readWav, rmsDb } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

const TONE = fixturePath('tone-1k-48k.wav');
const SECONDS = 2;

/** A frame with its float samples times `gain` (a new frame: the input is left as it came). */
function scaled(frame: AudioFrame, gain: number): AudioFrame {
  const data = new Float32Array(frame.data.length);
  for (let i = 0; i < data.length; i++) data[i] = frame.data[i] * gain;
  return { ...frame, data };
}

const processors = new ProcessorRegistry();
// The synchronous form: { map(frame) }.
processors.register('gain', (ctx: ProcessorStageContext) => ({ map: (f: AudioFrame) => scaled(f, Number(ctx.options.gain ?? 1)) }), { stage: true });
// The RxJS operator form.
processors.register('gain-op', (ctx: ProcessorStageContext) => (frames$: Observable<AudioFrame>) => frames$.pipe(map((f) => scaled(f, Number(ctx.options.gain ?? 1)))), { stage: true });
// Halves the audio for its first second, then throws.
processors.register(
  'boom',
  () => ({
    map: (f: AudioFrame) => {
      if (f.position >= f.sampleRate) throw new Error('processor stage failed at 1 s');
      return scaled(f, 0.5);
    },
  }),
  { stage: true },
);
// Registered as a sink only.
processors.register('listener', () => ({ next() {} }));
// Holds every frame until its input completes, then emits them all DRAIN_LATE_MS later: longer than the default wait (2 s).
const DRAIN_LATE_MS = 2500;
processors.register('late', () => (frames$: Observable<AudioFrame>) => frames$.pipe(toArray(), delay(DRAIN_LATE_MS), mergeMap((fs) => from(fs))), { stage: true });
// Passes the first second on, holds the rest, and never completes: it can only be cut off.
processors.register('stuck', () => (frames$: Observable<AudioFrame>) => frames$.pipe(filter((f) => f.position < f.sampleRate), concatWith(NEVER)), { stage: true });
/** The wait for processor stages at a stream's end on the test server: longer than `late` needs. */
const DRAIN_TIMEOUT_MS = 4000;

/** Every line the server logs (JSON). */
const logLines: string[] = [];
const logDestination = new Writable({
  write(chunk: Buffer, _encoding, done) {
    logLines.push(chunk.toString());
    done();
  },
});

let server: Promise<TestServer> | undefined;
function testServer(): Promise<TestServer> {
  return (server ??= startServer({
    processors,
    logger: pino({ level: 'warn' }, logDestination),
    extraPipelines: [
      { name: 'plain', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] },
      { name: 'half', stages: [{ type: 'processor', name: 'gain', options: { gain: 0.5 } }], sinks: [{ type: 'record' }, { type: 'stats' }] },
      {
        name: 'half16',
        stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'processor', name: 'gain-op', options: { gain: 0.5 } }],
        sinks: [{ type: 'record', sampleFormat: 'f32' }],
      },
      { name: 'boom', stages: [{ type: 'processor', name: 'boom' }], sinks: [{ type: 'record' }, { type: 'stats' }] },
      { name: 'late', stages: [{ type: 'processor', name: 'late' }], sinks: [{ type: 'record' }, { type: 'stats' }] },
      { name: 'stuck', stages: [{ type: 'processor', name: 'stuck' }], sinks: [{ type: 'record' }, { type: 'stats' }] },
    ],
    processorDrainTimeoutMs: DRAIN_TIMEOUT_MS,
  }));
}
afterAll(async () => (await server)?.close());

async function publish(t: TestServer, peer: string, pipeline: string): Promise<{ stats: PeerStatsSnapshot; samples: Float32Array; sampleRate: number; duration: number }> {
  const sent = await sendAudio({ url: `${t.url}/whip/stage-room/${peer}?pipeline=${pipeline}`, source: TONE, seconds: SECONDS, speed: FAST });
  const stats = await expectComplete(t.url, peer, sent);
  const wav = await readWav(join(t.recordingsDir, stats.recordings[0].name));
  return { stats, samples: wav.channels[0], sampleRate: wav.sampleRate, duration: wav.durationSec };
}

/** Level of the tone in dB, away from the edges (the codec's start-up and the last frame). */
const levelDb = (samples: Float32Array, rate: number, from = 0.2, to = SECONDS - 0.2) => rmsDb(samples.subarray(Math.round(from * rate), Math.round(to * rate)));

describe('processor stages', () => {
  it('records what a processor stage outputs: a ×0.5 gain is 6 dB below the same audio without it, same duration', async () => {
    const t = await testServer();
    const plain = await publish(t, 'plain-1', 'plain');
    const half = await publish(t, 'half-1', 'half');
    expect(half.sampleRate).toBe(48000);
    expect(Math.abs(half.duration - SECONDS)).toBeLessThan(0.03);
    expect(Math.abs(plain.duration - SECONDS)).toBeLessThan(0.03);
    expect(levelDb(half.samples, 48000) - levelDb(plain.samples, 48000)).toBeCloseTo(20 * Math.log10(0.5), 1);
    // The stats measure the stage's output too, and the stage's work is counted.
    expect(half.stats.audio.sessionPeakDbfs - plain.stats.audio.sessionPeakDbfs).toBeCloseTo(20 * Math.log10(0.5), 0);
    expect(half.stats.processing.processorStages).toEqual([
      { name: 'gain', branch: 'main', stage: 0, state: 'completed', framesIn: SECONDS * 50, framesOut: SECONDS * 50, cpuSeconds: expect.any(Number), framesCutOff: 0 },
    ]);
    expect(half.stats.processing.processorStages[0].cpuSeconds).toBeGreaterThan(0);
    expect(half.stats.processing.processorErrors).toBe(0);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(Number(/^earshot_processor_stage_seconds_total (\S+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
  });

  it('after a resample stage, records the processor output at the resampled rate', async () => {
    const t = await testServer();
    const plain = await publish(t, 'plain-2', 'plain');
    const half16 = await publish(t, 'half16-1', 'half16');
    expect(half16.sampleRate).toBe(16000);
    expect(Math.abs(half16.duration - SECONDS)).toBeLessThan(0.03);
    expect(levelDb(half16.samples, 16000) - levelDb(plain.samples, 48000)).toBeCloseTo(20 * Math.log10(0.5), 1);
    // One frame more than the media's 20 ms frames: the resampler's delay (48 samples), brought out at the end.
    expect(half16.stats.processing.processorStages).toMatchObject([{ name: 'gain-op', stage: 1, state: 'completed', framesIn: SECONDS * 50 + 1, framesOut: SECONDS * 50 + 1 }]);
  });

  it('detaches a stage that throws; the recording goes on with the audio the stage got, for the whole duration', async () => {
    const t = await testServer();
    const plain = await publish(t, 'plain-3', 'plain');
    const boom = await publish(t, 'boom-1', 'boom');
    expect(Math.abs(boom.duration - SECONDS)).toBeLessThan(0.03);
    expect(boom.stats.processing.processorErrors).toBe(1);
    expect(boom.stats.processing.sinkErrors).toBe(1);
    expect(boom.stats.processing.processorStages).toMatchObject([{ name: 'boom', state: 'failed', error: 'processor stage failed at 1 s', framesIn: SECONDS * 50, framesOut: 50 }]);
    // Logged once, as the processor stage it is (it was logged as a failed sink).
    const logged = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.peer === 'boom-1');
    expect(logged).toEqual([
      expect.objectContaining({
        level: 50,
        processorStage: 'boom',
        branch: 'main',
        stage: 0,
        err: 'processor stage failed at 1 s',
        msg: 'processor stage "boom" (stage 0 of branch "main") failed and was detached; the branch goes on without it',
      }),
    ]);
    // First second: halved by the stage; after it failed: the audio as it came.
    expect(levelDb(boom.samples, 48000, 0.2, 0.9) - levelDb(plain.samples, 48000, 0.2, 0.9)).toBeCloseTo(20 * Math.log10(0.5), 1);
    expect(levelDb(boom.samples, 48000, 1.1, 1.8) - levelDb(plain.samples, 48000, 1.1, 1.8)).toBeCloseTo(0, 1);
  });

  it('refuses, before any audio flows, a pipeline whose processor stage is not registered as a stage, and checks names at PUT /pipelines', async () => {
    const t = await testServer();
    const put = (name: string, stages: unknown[]) =>
      fetch(`${t.url}/pipelines/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stages, sinks: [{ type: 'record' }] }) });

    const unknown = await put('unknown-stage', [{ type: 'processor', name: 'nope' }]);
    expect(unknown.status).toBe(422);
    const body = (await unknown.json()) as { code: string; problems: Array<{ path: string; message: string }> };
    expect(body.code).toBe('EARSHOT_PIPELINE_INVALID');
    expect(body.problems).toEqual([expect.objectContaining({ path: '/stages/0/name', message: expect.stringMatching(/"nope" is not registered; registered as stages: boom, gain, gain-op/) })]);

    const sinkOnly = await put('sink-only', [{ type: 'processor', name: 'listener' }]);
    expect(sinkOnly.status).toBe(422);
    expect(((await sinkOnly.json()) as { problems: Array<{ message: string }> }).problems[0].message).toMatch(/"listener" is registered, but not as a stage/);

    const misplaced = await put('misplaced', [{ type: 'processor', name: 'gain' }, { type: 'resample', sampleRate: 16000 }]);
    expect(misplaced.status).toBe(422);
    expect(((await misplaced.json()) as { problems: Array<{ path: string }> }).problems).toEqual([expect.objectContaining({ path: '/stages/1' })]);

    // A pipeline file is loaded without knowing the processors; the stream refuses it before it starts.
    expect((await put('good', [{ type: 'processor', name: 'gain' }])).status).toBe(201);
    processors.unregister('gain');
    try {
      const refused = await sendAudio({ url: `${t.url}/whip/stage-room/never?pipeline=good`, source: TONE, seconds: 0.2 }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(WhipRequestError);
      expect(refused).toMatchObject({ status: 422, code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringMatching(/stages\/0\/name.*"gain" is not registered/s) });
      expect((await fetch(`${t.url}/stats/never`)).status).toBe(404);
    } finally {
      processors.register('gain', (ctx: ProcessorStageContext) => ({ map: (f: AudioFrame) => scaled(f, Number(ctx.options.gain ?? 1)) }), { stage: true });
    }
  });

  it('waits up to processorDrainTimeoutMs for a stage that still holds audio when the stream ends: all of it is recorded', async () => {
    const t = await testServer();
    const late = await publish(t, 'late-1', 'late');
    expect(Math.abs(late.duration - SECONDS)).toBeLessThan(0.03);
    expect(late.stats.processing.processorStages).toMatchObject([{ name: 'late', state: 'completed', framesIn: SECONDS * 50, framesOut: SECONDS * 50, framesCutOff: 0 }]);
    expect(late.stats.recordings[0]).toMatchObject({ droppedFrames: 0, gapFrames: 0, droppedBy: { processorStage: 0 } });
  });

  it('cuts off a stage that has not completed within processorDrainTimeoutMs: what it held is counted, reported and recorded as silence', async () => {
    const t = await testServer();
    const events: Array<{ event: string; peerId: string; data: unknown }> = [];
    const sub = t.server.events$.subscribe((e) => events.push(e));
    try {
      const sent = await sendAudio({ url: `${t.url}/whip/stage-room/stuck-1?pipeline=stuck`, source: TONE, seconds: SECONDS, speed: FAST });
      expect(sent.packetsSent).toBe(SECONDS * 50);
      const stats = (await (await fetch(`${t.url}/stats/stuck-1`)).json()) as PeerStatsSnapshot;
      // The second second never left the stage: 50 frames of 20 ms, counted where the recording's losses are.
      expect(stats.processing.processorStages).toMatchObject([{ name: 'stuck', state: 'completed', framesIn: SECONDS * 50, framesOut: 50, framesCutOff: 50 }]);
      const recording = stats.recordings[0];
      expect(recording).toMatchObject({ droppedFrames: 50, droppedBy: { processorStage: 50 }, gapSeconds: 1 });
      // The file keeps the media duration: the first second as the stage emitted it, then silence for what it held.
      const wav = await readWav(join(t.recordingsDir, recording.name));
      expect(Math.abs(wav.durationSec - SECONDS)).toBeLessThan(0.03);
      expect(levelDb(wav.channels[0], 48000, 0.2, 0.9)).toBeGreaterThan(-20);
      expect(wav.channels[0].subarray(48000).every((v) => v === 0)).toBe(true);
      expect(events.filter((e) => e.peerId === 'stuck-1' && e.event === 'processor-stage-cut-off').map((e) => e.data)).toEqual([
        { branch: 'main', stage: 0, processor: 'stuck', frames: 50, seconds: 1, timeoutMs: DRAIN_TIMEOUT_MS, recording: true },
      ]);
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      expect(metrics).toMatch(/^earshot_frames_dropped_total\{reason="processor_stage"\} 50$/m);
    } finally {
      sub.unsubscribe();
    }
  });
});
