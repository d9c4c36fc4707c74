/**
 * The `resample` stage (Speex, WASM SIMD): pitch and duration survive the rate
 * change, equal rates pass through, and bad options fail with the option named.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { SpeexResampler } from '../../wasm/speex.js';
import { createResampleStage } from '../../src/dsp/resample.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { PcmChunk, StageSpec } from '../../src/dsp/types.js';
import { concat, dominantFrequency, encodeOpusFrames, rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { joinFrames } from './frames.js';

let tone: Float32Array; // 1 kHz, 3 s, 48 kHz mono

beforeAll(async () => {
  await loadDspModules();
  tone = (await readFixture('tone-1k-48k.wav')).channels[0];
});

const mono48k = { sampleRate: 48000, channels: 1 };

describe('resample stage', () => {
  it('turns Opus-decoded 48 kHz into 16 kHz frames of the same duration and pitch', () => {
    const inputs = encodeOpusFrames(tone);
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 16000 }] }] });
    const frames = processor.process(inputs)[0];
    processor.close();
    const pcm = joinFrames(frames);
    expect(frames.every((f) => f.sampleRate === 16000 && f.channels === 1)).toBe(true);
    // Duration within one 20 ms frame (320 samples at 16 kHz) of the media duration.
    expect(Math.abs(pcm.length - (inputs.length * 960) / 3)).toBeLessThanOrEqual(320);
    expect(Math.abs(dominantFrequency(pcm, 16000) - 1000)).toBeLessThanOrEqual(10);
    expect(Math.abs(rmsDb(pcm.subarray(1600)) - rmsDb(tone.subarray(4800)))).toBeLessThan(1);
    frames.forEach((f, i) => i > 0 && expect(f.position).toBe(frames[i - 1].position + frames[i - 1].data.length));
  });

  it('emits exactly the rate ratio of samples over time, even when it is not a whole number per chunk', () => {
    for (const sampleRate of [44100, 22050, 11025, 8000]) {
      const stage = createResampleStage({ type: 'resample', sampleRate }, mono48k);
      let total = 0;
      for (let i = 0; i + 960 <= tone.length; i += 960) total += stage.process({ data: tone.slice(i, i + 960) })?.data.length ?? 0;
      // The filter's delay is cut from the start, so the end comes out at the flush.
      total += (stage.flush?.() as PcmChunk | null)?.data.length ?? 0;
      stage.close();
      expect(total).toBe((tone.length * sampleRate) / 48000);
    }
  });

  it('passes a pause without filtering it, with output identical to filtering it', () => {
    const run = vi.spyOn(SpeexResampler.prototype, 'process');
    try {
      for (const [sampleRate, channels, quality] of [[16000, 1, 6], [44100, 1, 6], [11025, 2, 10], [8000, 1, 3], [24000, 2, 6]] as const) {
        // Sound, short zeros (DTX-sized), five 1 s pieces of a long gap, an odd-sized remainder, sound again.
        const sound = (from: number) => Array.from({ length: 25 }, (_, k) => Float32Array.from({ length: 960 * channels }, (_, i) => tone[(from + k * 960 + Math.floor(i / channels)) % tone.length] * (i % channels ? -0.5 : 1)));
        const zeros = (n: number) => new Float32Array(n * channels);
        const chunks = [...sound(0), zeros(960), zeros(960), zeros(4800), ...Array.from({ length: 5 }, () => zeros(48000)), zeros(19320), ...sound(30000)];
        const stage = createResampleStage({ type: 'resample', sampleRate, quality }, { sampleRate: 48000, channels });
        run.mockClear();
        const got = concat(chunks.map((c) => (stage.process({ data: c }) as PcmChunk | null)?.data ?? new Float32Array(0)));
        const calls = run.mock.calls.length;
        stage.close();
        const reference = new SpeexResampler(channels, 48000, sampleRate, quality);
        // The stage cuts the filter's delay from the start; otherwise it is Speex's output.
        const want = concat(chunks.map((c) => reference.process(c))).subarray(reference.outputLatency * channels);
        reference.close();
        // At least the five 1 s pieces were not filtered (at rest after the first short zeros), and nothing differs.
        expect(calls).toBeLessThanOrEqual(chunks.length - 5);
        expect(got.length).toBe(want.length);
        expect(got).toEqual(want);
      }
    } finally {
      run.mockRestore();
    }
  });

  it('keeps a 1 kHz tone at 1 kHz at 44.1 kHz and quality 10', () => {
    const stage = createResampleStage({ type: 'resample', sampleRate: 44100, quality: 10 }, mono48k);
    const out = stage.process({ data: tone.slice() })!.data;
    stage.close();
    expect(Math.abs(dominantFrequency(out, 44100) - 1000)).toBeLessThanOrEqual(5);
  });

  it('resamples a 16 kHz recording up to 48 kHz without changing its length', async () => {
    const speech16k = (await readFixture('speech-16k.wav')).channels[0];
    const stage = createResampleStage({ type: 'resample', sampleRate: 48000 }, { sampleRate: 16000, channels: 1 });
    expect(stage.output).toEqual({ sampleRate: 48000, channels: 1 });
    const out = concat([stage.process({ data: speech16k })!.data, (stage.flush?.() as PcmChunk).data]);
    stage.close();
    expect(out.length).toBe(speech16k.length * 3);
    expect(Math.abs(rmsDb(out) - rmsDb(speech16k))).toBeLessThan(1);
  });

  it('compensates its filter delay: an impulse comes out at its own time, and the stream keeps its length to the end', () => {
    for (const quality of [0, 3, 6, 10]) {
      for (const [from, to] of [[48000, 8000], [48000, 16000], [48000, 24000], [48000, 44100], [16000, 48000]]) {
        const spf = from / 50;
        // Frame positions from 9600 on (a stream that starts mid-media); an impulse at input sample 5 × spf,
        // and one in the last frame's last samples, which only the end's flush brings out.
        const sp = new StreamProcessor({ input: { sampleRate: from, channels: 1 }, branches: [{ stages: [{ type: 'resample', sampleRate: to, quality }] }] });
        const frames = Array.from({ length: 10 }, (_, k) => ({
          position: 9600 + k * spf,
          data: Float32Array.from({ length: spf }, (_, i) => (k === 5 && i === 0 ? 1 : k === 9 && i === spf - 8 ? 1 : 0)),
          arrival: 0,
        }));
        const got = [...sp.processPcm(frames)[0], ...sp.drain()[0]];
        sp.close();
        const out = concat(got.map((f) => f.data as Float32Array));
        const label = `quality ${quality}, ${from} → ${to} Hz`;
        // Contiguous from the stream's first position at the new rate, and as long as the media.
        expect(got[0].position, label).toBe(Math.round((9600 * to) / from));
        got.forEach((f, i) => i > 0 && expect(f.position, label).toBe(got[i - 1].position + got[i - 1].data.length));
        expect(out.length, label).toBe((10 * spf * to) / from);
        let peak = 0;
        for (let i = 0; i < out.length / 2; i++) if (Math.abs(out[i]) > Math.abs(out[peak])) peak = i;
        expect(Math.abs(peak - (5 * spf * to) / from), label).toBeLessThanOrEqual(1);
        // The impulse 8 input samples before the end arrives in the output's last samples.
        let last = out.length - 1;
        for (let i = Math.floor(out.length * 0.75); i < out.length; i++) if (Math.abs(out[i]) > Math.abs(out[last])) last = i;
        expect(Math.abs(last - ((10 * spf - 8) * to) / from), label).toBeLessThanOrEqual(1);
      }
    }
  });

  it('keeps stereo channels interleaved and carries vad through', () => {
    const stage = createResampleStage({ type: 'resample', sampleRate: 16000 }, { sampleRate: 48000, channels: 2 });
    expect(stage.output).toEqual({ sampleRate: 16000, channels: 2 });
    const out = stage.process({ data: new Float32Array(1920), vad: 0.75 })!;
    const end = stage.flush?.() as PcmChunk;
    stage.close();
    // 640 samples (2 × 320) in all: the filter's delay (2 × 48) comes out at the end.
    expect(out.data.length + end.data.length).toBe(640);
    expect(out.vad).toBe(0.75);
  });

  it('passes chunks through untouched when the rate already matches', () => {
    const stage = createResampleStage({ type: 'resample', sampleRate: 48000 }, mono48k);
    const chunk: PcmChunk = { data: tone.slice(0, 960), vad: 0.5 };
    expect(stage.process(chunk)).toBe(chunk);
    stage.close();
  });

  it('rejects bad options naming the option and the allowed values', () => {
    const make = (spec: Omit<StageSpec, 'type'>) => () => createResampleStage({ type: 'resample', ...spec }, mono48k);
    expect(make({})).toThrow(TypeError);
    expect(make({})).toThrow('resample: option "sampleRate" is required (an integer from 8000 to 48000)');
    expect(make({ sampleRate: 4000 })).toThrow(RangeError);
    expect(make({ sampleRate: 4000 })).toThrow('resample: option "sampleRate" must be an integer from 8000 to 48000, got 4000');
    expect(make({ sampleRate: 16000.5 })).toThrow(RangeError);
    expect(make({ sampleRate: '16000' })).toThrow(TypeError);
    expect(make({ sampleRate: '16000' })).toThrow('got "16000" (string)');
    expect(make({ sampleRate: 16000, quality: 11 })).toThrow('resample: option "quality" must be an integer from 0 to 10, got 11');
    expect(make({ sampleRate: 16000, rate: 8000 })).toThrow('resample: unknown option "rate"; allowed: sampleRate, quality');
  });
});
