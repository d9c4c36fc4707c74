/**
 * Processor stages (main-thread processors whose output is the branch's
 * audio): where validation allows them and what it says when they are
 * misplaced or name no stage processor, the check before a stream starts, and
 * the chain that runs them (map and operator forms, declared output formats,
 * failures, flushing on close), then a real worker and a real WAV file for a
 * stage that changes the rate.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { bufferCount, concatWith, filter, mergeMap, NEVER, type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { PipelineChecks } from '../../src/core/pipeline-checks.js';
import type { AudioFrame, BranchFormat } from '../../src/media/frames.js';
import { parsePipeline, validatePipeline } from '../../src/pipeline/pipeline.js';
import { processorStage } from '../../src/pipeline/pipeline-builder.js';
import { ProcessorStageChain, type ProcessorStageCutOff } from '../../src/pipeline/processor-stage-chain.js';
import { processorStages, workerStages } from '../../src/pipeline/processor-stages.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { usePipelineRig } from '../helpers/pipeline-rig.js';
import { ProcessorRegistry, registerProcessor, defaultProcessors, type ProcessorStageContext } from '../../src/sinks/processors.js';
import { readWav } from '../helpers/audio.js';

const F48: BranchFormat = { sampleRate: 48000, channels: 1, sampleFormat: 'f32' };

/** A 20 ms frame at `index` (48 kHz mono) holding `value` in every sample. */
function frame(index: number, value = 0.5, rate = 48000): AudioFrame {
  const n = rate / 50;
  return { position: index * n, sampleRate: rate, channels: 1, sampleFormat: 'f32', data: new Float32Array(n).fill(value), rms: value, peak: value, arrival: 0 };
}

const times = (gain: number) => ({ map: (f: AudioFrame) => ({ ...f, data: (f.data as Float32Array).map((v) => v * gain) }) });

function registry(): ProcessorRegistry {
  const r = new ProcessorRegistry();
  r.register('half', () => times(0.5), { stage: true });
  r.register('sink-only', () => ({ next() {} }));
  return r;
}

describe('validation of processor stages', () => {
  it('accepts processor stages after the worker stages and keeps them out of the worker', () => {
    const p = parsePipeline({ name: 'p', stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'processor', name: 'half', options: { x: 1 } }, { type: 'processor', name: 'other' }], sinks: [{ type: 'record' }] });
    expect(workerStages(p.branches[0].stages)).toEqual([{ type: 'resample', sampleRate: 16000 }]);
    expect(processorStages(p.branches[0].stages).map((s) => [s.index, s.stage.name])).toEqual([[1, 'half'], [2, 'other']]);
    // The JSON round-trips unchanged.
    expect(parsePipeline(p.toJSON()).toJSON()).toEqual(p.toJSON());
  });

  it('refuses a worker stage after a processor stage, with its JSON path, in single-chain and branch form', () => {
    const single = validatePipeline({ name: 'p', stages: [{ type: 'processor', name: 'half' }, { type: 'gain', db: -6 }], sinks: [{ type: 'stats' }] });
    expect(single.problems).toEqual([
      expect.objectContaining({ path: '/stages/1', message: expect.stringMatching(/^worker stage "gain" cannot follow processor stage "half" \(stages\/0\).*worker stage module/), hint: 'move it before stages/0' }),
    ]);
    const branches = validatePipeline({
      name: 'p',
      branches: {
        ok: { stages: [{ type: 'denoise' }, { type: 'processor', name: 'half' }], sinks: [{ type: 'stats' }] },
        asr: { stages: [{ type: 'denoise' }, { type: 'processor', name: 'half' }, { type: 'resample', sampleRate: 16000 }, { type: 'processor', name: 'half' }], sinks: [{ type: 'stats' }] },
      },
    });
    expect(branches.problems.map((p) => p.path)).toEqual(['/branches/asr/stages/2']);
  });

  it('checks the processor stage options like a sink\'s, and does not take "processor" for a custom worker stage', () => {
    const { problems } = validatePipeline({ name: 'p', stages: [{ type: 'processor', nmae: 'half' }], sinks: [{ type: 'stats' }] }, { customStages: ['processor'] });
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ['/stages/0/nmae', expect.stringMatching(/unknown option "nmae" for stage "processor"; allowed: name, options \(did you mean "name"\?\)/)],
      ['/stages/0/name', expect.stringMatching(/^missing/)],
    ]);
    const unknownType = validatePipeline({ name: 'p', stages: [{ type: 'procesor', name: 'x' }], sinks: [{ type: 'stats' }] });
    expect(unknownType.problems[0].message).toMatch(/one of .*, processor \(did you mean "processor"\?\)/);
  });

  it('names unregistered processors and sink-only ones when the registry is given, and only then', () => {
    const doc = { name: 'p', stages: [{ type: 'processor', name: 'nope' }, { type: 'processor', name: 'sink-only' }, { type: 'processor', name: 'half' }], sinks: [{ type: 'stats' }] };
    expect(validatePipeline(doc).problems).toEqual([]);
    const { problems } = validatePipeline(doc, { processors: registry() });
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ['/stages/0/name', 'processor "nope" is not registered; registered as stages: half (registerProcessor(name, factory, { stage: true }) before streams start)'],
      ['/stages/1/name', expect.stringMatching(/^processor "sink-only" is registered, but not as a stage/)],
    ]);
  });

  it('refuses an ogg-opus recording on a branch with processor stages (it is encoded before them)', () => {
    const { problems } = validatePipeline({ name: 'p', stages: [{ type: 'processor', name: 'half' }], sinks: [{ type: 'record', format: 'ogg-opus' }] });
    expect(problems).toContainEqual(expect.objectContaining({ path: '/sinks/0/format', message: expect.stringMatching(/before the processor stages/) }));
  });

  it('builds processor stages in code with processorStage()', () => {
    expect(processorStage('half', { gain: 2 })).toEqual({ type: 'processor', name: 'half', options: { gain: 2 } });
    expect(() => processorStage('')).toThrow(/processorStage\(\): name: "" is not allowed/);
  });

  it('refuses before a stream starts a pipeline whose processor stage is not registered as a stage', () => {
    const checks = new PipelineChecks(new WorkerPool({ threads: 1 }), registry());
    const bad = parsePipeline({ name: 'bad', branches: { a: { stages: [{ type: 'processor', name: 'sink-only' }], sinks: [{ type: 'stats' }] } } });
    expect(() => checks.checkProcessors(bad)).toThrow(expect.objectContaining({ code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringMatching(/branches\/a\/stages\/0\/name.*not as a stage/s) }));
    expect(() => checks.checkProcessors(parsePipeline({ name: 'good', stages: [{ type: 'processor', name: 'half' }], sinks: [{ type: 'stats' }] }))).not.toThrow();
  });
});

describe('registration', () => {
  it('keeps registerProcessor backwards compatible and marks stage processors', () => {
    const r = new ProcessorRegistry({ fallback: defaultProcessors });
    registerProcessor('global-stage-test', () => times(2), { stage: true });
    try {
      r.register('local', () => ({ next() {} }));
      expect(r.isStage('global-stage-test')).toBe(true);
      expect(r.isStage('local')).toBe(false);
      expect(r.stageNames()).toContain('global-stage-test');
      // Registered again without `stage`: no longer a stage.
      r.register('global-stage-test', () => ({ next() {} }));
      expect(r.isStage('global-stage-test')).toBe(false);
      expect(() => r.register('x', () => times(1), { stage: 'yes' as never })).toThrow(expect.objectContaining({ code: 'EARSHOT_PROCESSOR_INVALID' }));
    } finally {
      defaultProcessors.unregister('global-stage-test');
    }
  });
});

/** Runs `frames` through a chain of the given processor stages; returns what came out, the failures and the chain. */
async function run(r: ProcessorRegistry, names: Array<string | { name: string; options?: Record<string, unknown> }>, frames: AudioFrame[], input: BranchFormat = F48, completeTimeoutMs?: number) {
  const out: AudioFrame[] = [];
  const failures: string[] = [];
  const events: string[] = [];
  const cutOff: ProcessorStageCutOff[] = [];
  const chain = new ProcessorStageChain({
    completeTimeoutMs,
    onCutOff: (cut) => cutOff.push(cut),
    branch: 'main',
    stages: names.map((n, index) => ({ index, stage: { type: 'processor', ...(typeof n === 'string' ? { name: n } : n) } })),
    processors: r,
    input,
    contextFor: (name, options) => ({ peerId: 'p', roomId: 'r', sessionId: 's', branch: 'main', options, emit: (e) => events.push(`${name}:${e}`), messages$: undefined as never, send: () => false }),
    deliver: (f) => out.push(f),
    onFailed: (name, e) => failures.push(`${name}: ${e.message}`),
  });
  for (const f of frames) chain.push(f);
  await chain.complete();
  return { out, failures, events, chain, cutOff };
}

describe('the chain of processor stages', () => {
  it('runs map and operator stages in order, keeps positions, measures the output and counts each stage', async () => {
    const r = registry();
    r.register('double-op', () => (frames$: Observable<AudioFrame>) => frames$.pipe(mergeMap((f) => [{ ...f, data: (f.data as Float32Array).map((v) => v * 2) }])), { stage: true });
    const { out, failures, chain } = await run(r, ['half', 'double-op', 'half'], [frame(0), frame(1), frame(2)]);
    expect(failures).toEqual([]);
    expect(out.map((f) => f.position)).toEqual([0, 960, 1920]);
    expect(out.every((f) => f.data.every((v) => v === 0.25))).toBe(true);
    // Levels are the output's, not the worker's measure of the input.
    expect(out[0].rms).toBeCloseTo(0.25, 6);
    expect(out[0].peak).toBeCloseTo(0.25, 6);
    expect(chain.stats().map((s) => [s.name, s.stage, s.state, s.framesIn, s.framesOut])).toEqual([
      ['half', 0, 'completed', 3, 3],
      ['double-op', 1, 'completed', 3, 3],
      ['half', 2, 'completed', 3, 3],
    ]);
    expect(chain.stats().every((s) => s.cpuSeconds >= 0)).toBe(true);
  });

  it('waits for what an operator still holds when the stream ends', async () => {
    const r = new ProcessorRegistry();
    // Emits frames in pairs: the last, odd one only when its input completes.
    r.register('pairs', () => (frames$: Observable<AudioFrame>) => frames$.pipe(bufferCount(2), mergeMap((fs) => fs)), { stage: true });
    const { out } = await run(r, ['pairs'], [frame(0), frame(1), frame(2)]);
    expect(out.map((f) => f.position)).toEqual([0, 960, 1920]);
  });

  it('cuts off an operator that has not completed within the bound: what it held goes on as silence, counted, and the next stage gets it', async () => {
    const r = registry();
    // Passes the first two frames, holds the rest, never completes.
    r.register('stuck', () => (frames$: Observable<AudioFrame>) => frames$.pipe(filter((f) => f.position < 2 * 960), concatWith(NEVER)), { stage: true });
    const { out, chain, cutOff } = await run(r, ['stuck', 'half'], [0, 1, 2, 3, 4].map((i) => frame(i)), F48, 50);
    // The media time stays whole: two frames of audio (halved by the next stage), then 60 ms of silence.
    expect(out.map((f) => [f.position, f.data.length])).toEqual([[0, 960], [960, 960], [1920, 2880]]);
    expect(out[0].data.every((v) => v === 0.25)).toBe(true);
    expect(out[2].data.every((v) => v === 0)).toBe(true);
    expect(chain.stats().map((s) => [s.name, s.framesIn, s.framesOut, s.framesCutOff])).toEqual([
      ['stuck', 5, 2, 3],
      ['half', 3, 3, 0],
    ]);
    expect(cutOff).toEqual([{ name: 'stuck', branch: 'main', stage: 0, frames: 3, seconds: 0.06, timeoutMs: 50 }]);
  });

  it('gives the factory the formats and options, and writes frames in a declared output format', async () => {
    const r = new ProcessorRegistry();
    let seen: ProcessorStageContext | undefined;
    r.register(
      'decimate',
      (ctx: ProcessorStageContext) => {
        seen = ctx;
        return { map: (f: AudioFrame) => ({ ...f, position: f.position / 2, sampleRate: 24000, data: (f.data as Float32Array).filter((_, i) => i % 2 === 0) }) };
      },
      { stage: { outputFormat: (input) => ({ sampleRate: input.sampleRate / 2 }) } },
    );
    const { out, failures, chain } = await run(r, [{ name: 'decimate', options: { by: 2 } }], [frame(0), frame(1)]);
    expect(failures).toEqual([]);
    expect(chain.output).toEqual({ sampleRate: 24000, channels: 1, sampleFormat: 'f32' });
    expect(seen).toMatchObject({ branch: 'main', options: { by: 2 }, input: { sampleRate: 48000, channels: 1 }, output: { sampleRate: 24000, channels: 1 } });
    expect(out.map((f) => [f.position, f.sampleRate, f.data.length])).toEqual([
      [0, 24000, 480],
      [480, 24000, 480],
    ]);
  });

  it('detaches a stage that throws and goes on with the audio it got', async () => {
    const r = registry();
    r.register('boom', () => ({ map: (f: AudioFrame) => (f.position >= 960 ? (() => { throw new Error('bad frame'); })() : f) }), { stage: true });
    const { out, failures, chain } = await run(r, ['boom', 'half'], [frame(0, 0.8), frame(1, 0.8), frame(2, 0.8)]);
    expect(failures).toEqual(['boom: bad frame']);
    expect(out.map((f) => [f.position, f.data[0]])).toEqual([
      [0, expect.closeTo(0.4, 6)],
      [960, expect.closeTo(0.4, 6)],
      [1920, expect.closeTo(0.4, 6)],
    ]);
    expect(chain.stats()[0]).toMatchObject({ state: 'failed', error: 'bad frame', framesIn: 3, framesOut: 1 });
  });

  it('detaches a stage whose factory throws, whose operator errors, or that emits a frame of another format', async () => {
    const r = new ProcessorRegistry();
    r.register('refuses', () => { throw new Error('no'); }, { stage: true });
    r.register('errors', () => (frames$: Observable<AudioFrame>) => frames$.pipe(mergeMap((f) => { if (f.position > 0) throw new Error('operator failed'); return [f]; })), { stage: true });
    r.register('stereo', () => ({ map: (f: AudioFrame) => ({ ...f, channels: 2 }) }), { stage: true });
    for (const [name, message] of [['refuses', 'no'], ['errors', 'operator failed'], ['stereo', 'emitted a 48000 Hz, 2-channel frame; its output is 48000 Hz, 1 channel']] as const) {
      const { out, failures } = await run(r, [name], [frame(0), frame(1)]);
      expect(failures).toEqual([expect.stringContaining(`${name}: ${message}`)]);
      // The media time stays whole: every frame reaches the sinks, processed or as it came.
      expect(out.map((f) => [f.position, f.channels])).toEqual([
        [0, 1],
        [960, 1],
      ]);
    }
  });

  it('detaches a stage that changes the array type: a map written for f32 frames on an s16 branch made a full-scale square wave', async () => {
    const S16: BranchFormat = { sampleRate: 48000, channels: 1, sampleFormat: 's16' };
    const s16Frame = (index: number): AudioFrame => ({ ...frame(index), sampleFormat: 's16', data: new Int16Array(960).fill(8192), rms: 0.25, peak: 0.25 });
    const r = new ProcessorRegistry();
    // The docs' gain as it read before: Float32Array.from whatever it was given.
    r.register('float-gain', () => ({ map: (f: AudioFrame) => ({ ...f, data: Float32Array.from(f.data, (v) => v * 0.5) }) }), { stage: true });
    r.register('int-gain', () => ({ map: (f: AudioFrame) => ({ ...f, data: Int16Array.from(f.data, (v) => v * 16384) }) }), { stage: true });
    r.register('kept-type', () => ({ map: (f: AudioFrame) => ({ ...f, data: (f.data as Int16Array).map((v) => v / 2) }) }), { stage: true });
    const onS16 = await run(r, ['float-gain'], [s16Frame(0), s16Frame(1)], S16);
    expect(onS16.failures).toEqual([expect.stringContaining('float-gain: emitted a Float32Array frame on an s16 branch; its frames are Int16Array')]);
    // What reaches the sinks is the branch's s16 audio as it came, not 4096.0 read as a sample of −1..1.
    expect(onS16.out.map((f) => [f.position, f.data instanceof Int16Array, f.data[0]])).toEqual([
      [0, true, 8192],
      [960, true, 8192],
    ]);
    const onF32 = await run(r, ['int-gain'], [frame(0)]);
    expect(onF32.failures).toEqual([expect.stringContaining('int-gain: emitted an Int16Array frame on an f32 branch')]);
    // A stage that keeps the type it was given runs, and its levels are measured on s16's scale.
    const kept = await run(r, ['kept-type'], [s16Frame(0)], S16);
    expect(kept.failures).toEqual([]);
    expect(kept.out.map((f) => [f.sampleFormat, f.data[0], f.peak])).toEqual([['s16', 4096, 0.125]]);
  });

  it('fills an s16 branch\'s gap after a failed format-changing stage with s16 silence', async () => {
    const r = new ProcessorRegistry();
    r.register('to-16k-then-fail', () => ({ map: () => { throw new Error('gone'); } }), { stage: { outputFormat: () => ({ sampleRate: 16000 }) } });
    const s16Frame = (index: number): AudioFrame => ({ ...frame(index), sampleFormat: 's16', data: new Int16Array(960).fill(100) });
    const { out } = await run(r, ['to-16k-then-fail'], [s16Frame(0), s16Frame(1)], { sampleRate: 48000, channels: 1, sampleFormat: 's16' });
    expect(out.map((f) => [f.sampleFormat, f.data instanceof Int16Array, f.data.length])).toEqual([
      ['s16', true, 320],
      ['s16', true, 320],
    ]);
  });

  it('keeps the declared format after a format-changing stage fails: silence at the same media time', async () => {
    const r = new ProcessorRegistry();
    r.register('to-16k-then-fail', () => ({ map: () => { throw new Error('gone'); } }), { stage: { outputFormat: () => ({ sampleRate: 16000 }) } });
    const { out, failures } = await run(r, ['to-16k-then-fail'], [frame(0), frame(1), frame(3)]);
    expect(failures).toEqual(['to-16k-then-fail: gone']);
    expect(out.map((f) => [f.position, f.sampleRate, f.data.length, f.rms])).toEqual([
      [0, 16000, 320, 0],
      [320, 16000, 320, 0],
      [960, 16000, 320, 0],
    ]);
  });
});

describe('a processor stage on a real stream', () => {
  const FRAMES = 50;
  const rig = usePipelineRig({ fixture: 'tone-1k-48k.wav', frames: FRAMES });

  it('records a stage that halves the rate at the rate it declares, for the media duration; subscribers and processor sinks get its output', async () => {
    const processors = new ProcessorRegistry();
    processors.register(
      'halve-rate',
      (ctx: ProcessorStageContext) => ({
        map: (f: AudioFrame) => ({ ...f, position: f.position / 2, sampleRate: ctx.output.sampleRate, data: (f.data as Float32Array).filter((_, i) => i % 2 === 0) }),
      }),
      { stage: { outputFormat: (input) => ({ sampleRate: input.sampleRate / 2 }) } },
    );
    const sinkRates: number[] = [];
    processors.register('rates', () => ({ next: (f: AudioFrame) => void sinkRates.push(f.sampleRate) }));
    const problems: string[] = [];
    const doc = { name: 'halve', stages: [{ type: 'processor', name: 'halve-rate' }], sinks: [{ type: 'record' }, { type: 'processor', name: 'rates' }] };
    const pipeline = await rig.open('halve', parsePipeline(doc), { processors, problems });
    const seen: AudioFrame[] = [];
    pipeline.branches[0].audio$.subscribe((f) => seen.push(f));
    const [info] = await rig.feed(pipeline);
    // Subscribers and processor sinks get the stage's output, at its positions.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((f, i) => f.sampleRate === 24000 && f.data.length === 480 && (i === 0 || f.position === seen[i - 1].position + 480))).toBe(true);
    expect(sinkRates).toHaveLength(FRAMES);
    expect(new Set(sinkRates)).toEqual(new Set([24000]));
    expect(problems).toEqual([]);
    expect(pipeline.branches[0].sampleRate).toBe(24000);
    expect(info).toMatchObject({ sampleRate: 24000, gapFrames: 0 });
    const files = await readdir(join(rig.dir, 'halve'));
    const wav = await readWav(join(rig.dir, 'halve', files.find((f) => f.endsWith('.wav'))!));
    expect(wav.sampleRate).toBe(24000);
    expect(wav.channels[0].length).toBe((FRAMES * 960) / 2);
    expect(pipeline.processorStages()).toMatchObject([{ name: 'halve-rate', state: 'completed', framesIn: FRAMES, framesOut: FRAMES }]);
  });
});
