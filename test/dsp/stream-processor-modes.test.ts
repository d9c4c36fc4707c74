/**
 * StreamProcessor beyond the plain Opus chain: PCM input (positions, gaps,
 * late frames, Int16), stages that emit several chunks per input (reframe),
 * s16 output packing, and custom stages registered by name.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { measureLevels } from '../../src/dsp/levels.js';
import { registerStageFactory, stageTypes, unregisterStageFactory } from '../../src/dsp/registry.js';
import { loadDspModules, StreamProcessor, type PcmInput, type StreamSpec } from '../../src/dsp/stream-processor.js';
import type { PcmChunk, Stage, StageSpec } from '../../src/dsp/types.js';
import type { AudioFormat, AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { concat, dominantFrequency, encodeOpusFrames, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { floatData, joinFrames } from './frames.js';

let tone: Float32Array; // 1 kHz, 3 s, 48 kHz mono
let toneFrames: EncodedFrame[];

beforeAll(async () => {
  await loadDspModules();
  tone = (await readFixture('tone-1k-48k.wav')).channels[0];
  toneFrames = encodeOpusFrames(tone);
});

function run(spec: StreamSpec, inputs: EncodedFrame[]) {
  const processor = new StreamProcessor(spec);
  const out = processor.process(inputs);
  processor.close();
  return out;
}

function runPcm(spec: StreamSpec, inputs: PcmInput[]) {
  const processor = new StreamProcessor(spec);
  const out = processor.processPcm(inputs);
  const counters = { ...processor.counters };
  processor.close();
  return { out, counters };
}

/** PCM frames of `size` samples per channel cut from `pcm`, at consecutive positions from `start`. */
function pcmFrames(pcm: Float32Array, size: number, channels = 1, start = 0): PcmInput[] {
  const frames: PcmInput[] = [];
  for (let i = 0; i + size * channels <= pcm.length; i += size * channels) {
    frames.push({ position: start + i / channels, data: pcm.slice(i, i + size * channels), arrival: frames.length * 20 });
  }
  return frames;
}

function expectContiguous(frames: AudioFrame[]): void {
  for (let i = 1; i < frames.length; i++) expect(frames[i].position).toBe(frames[i - 1].position + frames[i - 1].data.length / frames[i - 1].channels);
}

const mono16k = { sampleRate: 16000, channels: 1 as const };

describe('StreamProcessor with PCM input', () => {
  it('runs PCM frames through the branches at their own positions and rate', async () => {
    const speech16k = (await readFixture('speech-16k.wav')).channels[0].subarray(0, 16000);
    const inputs = pcmFrames(speech16k, 320, 1, 16000); // starts 1 s into the stream
    const { out, counters } = runPcm({ input: mono16k, branches: [{ stages: [] }, { stages: [{ type: 'resample', sampleRate: 48000 }] }] }, inputs);
    expect(counters.decoded).toBe(50);
    expect(out[0].map((f) => f.position)).toEqual(inputs.map((f) => f.position));
    expect(sameSamples(joinFrames(out[0]), speech16k)).toBe(true);
    expect(out[0][0]).toMatchObject({ sampleRate: 16000, channels: 1, sampleFormat: 'f32', arrival: 0 });
    expect(out[1][0].position).toBe(48000); // the first input position at the branch's rate
    expectContiguous(out[1]);
  });

  it('fills gaps in the positions with silence and drops late or overlapping frames', () => {
    const pcm = tone.subarray(0, 48000).slice();
    const frames = pcmFrames(pcm, 960);
    const inputs = [frames[0], frames[1], frames[3], { ...frames[2] }, { ...frames[3], position: 3 * 960 + 100 }, frames[4], frames[6]];
    const { out, counters } = runPcm({ input: { sampleRate: 48000, channels: 1 }, branches: [{ stages: [] }] }, inputs);
    expect(counters).toMatchObject({ decoded: 5, late: 2, silenceSamples: 2 * 960 });
    const pcmOut = joinFrames(out[0]);
    expect(pcmOut.length).toBe(7 * 960);
    expectContiguous(out[0]);
    expect(pcmOut.subarray(2 * 960, 3 * 960).every((v) => v === 0)).toBe(true); // frame 2's slot
    expect(sameSamples(pcmOut.subarray(3 * 960, 5 * 960), pcm.subarray(3 * 960, 5 * 960))).toBe(true);
    expect(pcmOut.subarray(5 * 960, 6 * 960).every((v) => v === 0)).toBe(true); // frame 5's slot
  });

  it('converts Int16 input to floats, and an s16 stream with no stages comes back bit for bit', () => {
    const ints = Int16Array.from({ length: 640 }, (_, i) => ((i * 2654435761) % 65536) - 32768);
    const frame = (position: number, data: Int16Array): PcmInput => ({ position, data: data.slice(), arrival: 0 });
    const inputs = [frame(0, ints.subarray(0, 320)), frame(320, ints.subarray(320))];
    const s16 = runPcm({ input: { ...mono16k, sampleFormat: 's16' }, branches: [{ stages: [] }, { stages: [{ type: 'format', sampleFormat: 'f32' }] }] }, inputs).out;
    expect(s16[0][0].sampleFormat).toBe('s16');
    expect(s16[0][0].data).toBeInstanceOf(Int16Array);
    expect([...s16[0][0].data, ...s16[0][1].data]).toEqual([...ints]);
    expect(s16[1][0].sampleFormat).toBe('f32');
    expect(sameSamples(concat(s16[1].map(floatData)), Float32Array.from(ints, (v) => v / 32768))).toBe(true);
    // An f32 stream takes Int16 data too (the producer's choice of array decides).
    const f32 = runPcm({ input: mono16k, branches: [{ stages: [] }] }, inputs).out;
    expect(f32[0][0].data).toBeInstanceOf(Float32Array);
  });

  it('carries vad and speech given with the input through stages that keep them', () => {
    const inputs: PcmInput[] = [{ position: 0, data: new Float32Array(320), arrival: 0, vad: 0.8, speech: true }];
    const { out } = runPcm({ input: mono16k, branches: [{ stages: [{ type: 'gain', db: 3 }, { type: 'upmix' }] }] }, inputs);
    expect(out[0][0]).toMatchObject({ vad: 0.8, speech: true, channels: 2 });
  });

  it('takes only the kind of input it was built for', () => {
    const pcm = new StreamProcessor({ input: mono16k, branches: [{ stages: [] }] });
    expect(() => pcm.process(toneFrames.slice(0, 1))).toThrow('StreamProcessor: this stream takes PCM input (spec.input is set); use processPcm()');
    pcm.close();
    const opus = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    expect(() => opus.processPcm([])).toThrow('StreamProcessor: this stream decodes Opus (spec.input is not set); use process()');
    opus.close();
  });

  it('rejects a bad input format and malformed frames with the problem spelled out', () => {
    const make = (input: unknown) => () => new StreamProcessor({ input, branches: [] } as unknown as StreamSpec);
    expect(make({ sampleRate: 4000, channels: 1 })).toThrow(RangeError);
    expect(make({ sampleRate: 4000, channels: 1 })).toThrow('StreamProcessor: "input.sampleRate" must be an integer from 8000 to 48000, got 4000');
    expect(make({ sampleRate: 16000, channels: 3 })).toThrow('StreamProcessor: "input.channels" must be 1 or 2, got 3');
    expect(make({ sampleRate: 16000, channels: 1, sampleFormat: 'u8' })).toThrow('"input.sampleFormat" must be "f32" or "s16", got "u8"');
    const stereo = new StreamProcessor({ input: { sampleRate: 16000, channels: 2 }, branches: [{ stages: [] }] });
    expect(() => stereo.processPcm([{ position: 0, data: new Float32Array(3), arrival: 0 }])).toThrow('PCM input: 3 samples is not a whole number of 2-channel frames');
    expect(() => stereo.processPcm([{ position: 0, data: [0, 0] as unknown as Float32Array, arrival: 0 }])).toThrow(TypeError);
    stereo.close();
  });

  it('starts denoise-free branches from the input format, so rate-bound stages see it', () => {
    expect(() => new StreamProcessor({ input: mono16k, branches: [{ stages: [{ type: 'denoise' }] }] })).toThrow('branch 0, stage 0 (denoise): denoise needs 48000 Hz audio but gets 16000 Hz');
    const p = new StreamProcessor({ input: { sampleRate: 44100, channels: 2, sampleFormat: 's16' }, branches: [{ stages: [{ type: 'downmix' }] }] });
    expect(p.outputs).toEqual([{ sampleRate: 44100, channels: 1, sampleFormat: 's16' }]);
    p.close();
  });
});

describe('StreamProcessor with stages that emit several chunks', () => {
  it('turns each 20 ms Opus frame into two 10 ms frames at exact positions', () => {
    const out = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'reframe', durationMs: 10 }] }] }, toneFrames.slice(0, 50));
    expect(out[1]).toHaveLength(100);
    expect(out[1].map((f) => f.position)).toEqual(Array.from({ length: 100 }, (_, i) => i * 480));
    expect(sameSamples(joinFrames(out[1]), joinFrames(out[0]))).toBe(true);
    // Both halves of a packet carry its arrival.
    expect(out[1][7].arrival).toBe(toneFrames[3].arrival);
  });

  it('runs every emitted chunk through the stages after the reframe, in order', () => {
    const spec: StreamSpec = {
      channels: 1,
      branches: [
        { stages: [{ type: 'resample', sampleRate: 16000 }] },
        { stages: [{ type: 'reframe', durationMs: 10 }, { type: 'resample', sampleRate: 16000 }] },
        { stages: [{ type: 'reframe', durationMs: 30 }, { type: 'gain', db: 0 }] },
      ],
    };
    const out = run(spec, toneFrames.slice(0, 60));
    // Speex is a stream: cutting its input finer changes when samples come out, not which.
    const whole = joinFrames(out[0]);
    const fine = joinFrames(out[1]);
    expect(sameSamples(fine, whole.subarray(0, fine.length))).toBe(true);
    expect(out[1].every((f) => f.position % 1 === 0)).toBe(true);
    expectContiguous(out[1]);
    expect(out[2]).toHaveLength(40);
    expect(out[2].map((f) => f.position)).toEqual(Array.from({ length: 40 }, (_, i) => i * 1440));
  });

  it('keeps positions exact at 44.1 kHz with 10 ms frames of 441 samples', async () => {
    const speech = (await readFixture('speech-44k1.wav')).channels[0].subarray(0, 44100);
    const { out } = runPcm({ input: { sampleRate: 44100, channels: 1 }, branches: [{ stages: [{ type: 'reframe', durationMs: 10 }] }] }, pcmFrames(speech, 882));
    expect(out[0]).toHaveLength(100);
    expect(out[0].every((f, i) => f.position === i * 441 && f.data.length === 441)).toBe(true);
  });
});

describe('StreamProcessor s16 output', () => {
  it('packs a branch ending in format s16 to Int16Array with the exact quantized values', () => {
    const out = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'format', sampleFormat: 's16' }] }, { stages: [{ type: 'format', sampleFormat: 'f32' }] }] }, toneFrames.slice(0, 25));
    const floats = joinFrames(out[0]);
    const ints = out[1].map((f) => f.data);
    expect(out[1].every((f) => f.sampleFormat === 's16' && f.data instanceof Int16Array)).toBe(true);
    const expected = Int16Array.from(floats, (x) => Math.max(-32768, Math.min(32767, Math.round(x * 32768))));
    expect(Buffer.from(concatInt16(ints).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    // Levels are of the (quantized) floats, not of the integers.
    out[1].forEach((f) => expect({ rms: f.rms, peak: f.peak, clipped: f.clipped ?? 0 }).toEqual(measureLevels(Float32Array.from(f.data, (v) => v / 32768))));
    // f32 leaves everything as decoded.
    expect(out[2].every((f) => f.sampleFormat === 'f32')).toBe(true);
    expect(sameSamples(joinFrames(out[2]), floats)).toBe(true);
  });

  it('lets stages after format s16 see the quantized floats, and packs what they make (clipped)', () => {
    const seen: Float32Array[] = [];
    registerStageFactory('spy', (_spec: StageSpec, input: AudioFormat): Stage => ({
      output: input,
      process: (chunk: PcmChunk) => {
        seen.push(chunk.data.slice());
        return chunk;
      },
      close() {},
    }));
    try {
      const out = run({ channels: 1, branches: [{ stages: [{ type: 'format', sampleFormat: 's16' }, { type: 'spy' }, { type: 'gain', db: 20 }] }] }, toneFrames.slice(0, 10));
      for (const data of seen) for (const v of data) expect(Number.isInteger(v * 32768)).toBe(true);
      const packed = concatInt16(out[0].map((f) => f.data));
      // +20 dB takes the −12 dBFS peaks past full scale: they clip at the Int16 limits instead of wrapping.
      expect(Math.max(...packed)).toBe(32767);
      expect(Math.min(...packed)).toBe(-32768);
      expect(out[0][5].peak).toBeGreaterThan(1); // measured before packing
    } finally {
      unregisterStageFactory('spy');
    }
  });
});

describe('custom stages', () => {
  afterEach(() => {
    unregisterStageFactory('invert');
  });

  const invert = (_spec: StageSpec, input: AudioFormat): Stage => ({
    output: input,
    process(chunk: PcmChunk) {
      for (let i = 0; i < chunk.data.length; i++) chunk.data[i] = -chunk.data[i];
      return chunk;
    },
    close() {},
  });

  it('uses a registered factory by name, after the built-ins in the list of types', () => {
    registerStageFactory('invert', invert);
    expect(stageTypes().at(-1)).toBe('invert');
    expect(stageTypes()).toContain('denoise');
    const out = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'invert' }, { type: 'resample', sampleRate: 16000 }] }] }, toneFrames.slice(0, 25));
    const plain = joinFrames(out[0]);
    const inverted = joinFrames(run({ channels: 1, branches: [{ stages: [{ type: 'invert' }] }] }, toneFrames.slice(0, 25))[0]);
    expect(sameSamples(inverted, plain.map((v) => -v))).toBe(true);
    expect(Math.abs(dominantFrequency(joinFrames(out[1]), 16000) - 1000)).toBeLessThanOrEqual(10);
  });

  it('replaces a re-registered type and forgets an unregistered one, listing it in errors while it exists', () => {
    registerStageFactory('invert', invert);
    registerStageFactory('invert', (_spec, input) => ({ output: { ...input, channels: 2 }, process: (c) => c, close() {} }));
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'invert' }] }] });
    expect(p.outputs[0].channels).toBe(2);
    p.close();
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'reverb' }] }] })).toThrow(/known types: .*normalize, invert$/);
    expect(unregisterStageFactory('invert')).toBe(true);
    expect(stageTypes()).not.toContain('invert');
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'invert' }] }] })).toThrow('unknown stage type "invert"');
  });

  it('refuses built-in names and names a pipeline could not spell', () => {
    expect(() => registerStageFactory('denoise', invert)).toThrow(TypeError);
    expect(() => registerStageFactory('denoise', invert)).toThrow('"denoise" is a built-in stage type; give the custom stage another name');
    expect(() => registerStageFactory('Invert', invert)).toThrow('a custom stage type must be lower-case letters, digits and "-", starting with a letter (like "dc-blocker"), got "Invert"');
    expect(() => registerStageFactory('1x', invert)).toThrow(TypeError);
    expect(() => registerStageFactory('ok-name', 'nope' as unknown as typeof invert)).toThrow('the factory of custom stage "ok-name" must be a function');
    expect(unregisterStageFactory('denoise')).toBe(false);
  });
});

function concatInt16(parts: ReadonlyArray<Float32Array | Int16Array>): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    if (!(p instanceof Int16Array)) throw new TypeError('expected s16 frames');
    out.set(p, o);
    o += p.length;
  }
  return out;
}
