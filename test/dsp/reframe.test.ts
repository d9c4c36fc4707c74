/**
 * The `reframe` stage: it only regroups samples. Fed chunks of random sizes,
 * its outputs are all exactly one frame long and, joined, equal the input
 * sample for sample up to the tail it still holds, which comes out, shorter,
 * at the end of the stream.
 */
import { describe, expect, it } from 'vitest';
import { createReframeStage } from '../../src/dsp/reframe.js';
import type { PcmChunk } from '../../src/dsp/types.js';
import { concat, sameSamples } from '../helpers/audio.js';
import { chunksOf } from './frames.js';

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('reframe stage', () => {
  for (const sampleRate of [48000, 44100]) {
    for (const channels of [1, 2]) {
      for (const durationMs of [10, 20, 30, 40, 60]) {
        it(`cuts random 1–2000-sample chunks into exact ${durationMs} ms frames at ${sampleRate} Hz, ${channels} channel(s), losing and repeating nothing`, () => {
          const next = random(sampleRate + channels * 7 + durationMs);
          const frame = (durationMs * sampleRate) / 1000;
          const stage = createReframeStage({ type: 'reframe', durationMs }, { sampleRate, channels });
          const inputs: Float32Array[] = [];
          const outputs: PcmChunk[] = [];
          for (let i = 0; i < 300; i++) {
            const frames = 1 + Math.floor(next() * 2000);
            const data = Float32Array.from({ length: frames * channels }, () => next() * 2 - 1);
            inputs.push(data.slice());
            outputs.push(...chunksOf(stage.process({ data })));
          }
          const input = concat(inputs);
          const output = concat(outputs.map((c) => c.data));
          for (const c of outputs) expect(c.data.length).toBe(frame * channels);
          const whole = Math.floor(input.length / channels / frame);
          expect(outputs.length).toBe(whole); // the rest (under one frame) is still buffered
          expect(sameSamples(output, input.subarray(0, whole * frame * channels))).toBe(true);
          // At the end of the stream the rest comes out, shorter: joined, everything that went in.
          const rest = chunksOf(stage.flush!());
          expect(rest.length).toBe(input.length > whole * frame * channels ? 1 : 0);
          expect(sameSamples(concat([output, ...rest.map((c) => c.data)]), input)).toBe(true);
          expect(chunksOf(stage.flush!())).toEqual([]);
        });
      }
    }
  }

  it('turns 10 ms at 44.1 kHz into 441 samples', () => {
    const stage = createReframeStage({ type: 'reframe', durationMs: 10 }, { sampleRate: 44100, channels: 1 });
    const out = chunksOf(stage.process({ data: new Float32Array(882) }));
    expect(out.map((c) => c.data.length)).toEqual([441, 441]);
  });

  it('hands an already aligned chunk on as it is, and returns null while it buffers', () => {
    const stage = createReframeStage({ type: 'reframe', durationMs: 20 }, { sampleRate: 48000, channels: 1 });
    const aligned: PcmChunk = { data: new Float32Array(960) };
    expect(stage.process(aligned)).toBe(aligned);
    expect(stage.process({ data: new Float32Array(500) })).toBeNull();
    expect(chunksOf(stage.process({ data: new Float32Array(500) }))).toHaveLength(1);
  });

  it('gives each frame the vad and speech of the latest input that contributed to it', () => {
    const stage = createReframeStage({ type: 'reframe', durationMs: 30 }, { sampleRate: 48000, channels: 1 });
    expect(stage.process({ data: new Float32Array(960), vad: 0.1, speech: false })).toBeNull();
    const [first] = chunksOf(stage.process({ data: new Float32Array(960), vad: 0.9, speech: true }));
    expect(first).toMatchObject({ vad: 0.9, speech: true });
    const [second] = chunksOf(stage.process({ data: new Float32Array(960) }));
    expect(second.vad).toBeUndefined(); // completed by an input that carried none
  });

  it('keeps the input format', () => {
    expect(createReframeStage({ type: 'reframe', durationMs: 10 }, { sampleRate: 16000, channels: 2, sampleFormat: 's16' }).output).toEqual({
      sampleRate: 16000,
      channels: 2,
      sampleFormat: 's16',
    });
  });

  it('refuses a duration that is not a whole number of samples at the input rate, naming the ones that are', () => {
    const make = () => createReframeStage({ type: 'reframe', durationMs: 10 }, { sampleRate: 22050, channels: 1 });
    expect(make).toThrow(RangeError);
    expect(make).toThrow('reframe: option "durationMs": 10 ms is 220.5 samples at the 22050 Hz this stage gets, not a whole number; use one of 20, 40, 60');
  });

  it('requires durationMs to be one of 10, 20, 30, 40, 60', () => {
    const make = (spec: Record<string, unknown>) => () => createReframeStage({ type: 'reframe', ...spec }, { sampleRate: 48000, channels: 1 });
    expect(make({})).toThrow(TypeError);
    expect(make({})).toThrow('reframe: option "durationMs" is required (one of 10, 20, 30, 40, 60)');
    expect(make({ durationMs: 25 })).toThrow(RangeError);
    expect(make({ durationMs: 25 })).toThrow('reframe: option "durationMs" must be one of 10, 20, 30, 40, 60, got 25');
    expect(make({ durationMs: '20' })).toThrow(TypeError);
    expect(make({ durationMs: 20, samples: 960 })).toThrow('reframe: unknown option "samples"; allowed: durationMs');
  });
});
