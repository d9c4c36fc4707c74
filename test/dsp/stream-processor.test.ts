/**
 * Worker-side processing on real fixtures: decode with concealment and gap
 * filling at media time, RNNoise, the Speex resampler, and branches.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { ProcessedFrame } from '../../src/dsp/types.js';
import { dominantFrequency, readWav, rmsDb } from '../helpers/audio.js';
import { concat, encodeOpusFrames } from '../helpers/opus-frames.js';

const fixture = (n: string) => join(import.meta.dirname, '..', 'fixtures', n);
const joined = (frames: ProcessedFrame[]) => concat(frames.map((f) => f.data));

beforeAll(async () => {
  await loadDspModules();
});

function run(spec: ConstructorParameters<typeof StreamProcessor>[0], inputs: Parameters<StreamProcessor['process']>[0]) {
  const p = new StreamProcessor(spec);
  const out = p.process(inputs);
  const counters = { ...p.counters };
  p.close();
  return { out, counters };
}

describe('StreamProcessor', () => {
  it('decodes a 1 kHz tone to 1 kHz at the source level, frame positions contiguous', async () => {
    const tone = (await readWav(fixture('tone-1k-48k.wav'))).channels[0];
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }] }, encodeOpusFrames(tone));
    const pcm = joined(out[0]);
    expect(pcm.length).toBe(Math.floor(tone.length / 960) * 960);
    expect(dominantFrequency(pcm, 48000)).toBeGreaterThan(990);
    expect(dominantFrequency(pcm, 48000)).toBeLessThan(1010);
    expect(Math.abs(rmsDb(pcm.subarray(4800)) - rmsDb(tone.subarray(4800, pcm.length)))).toBeLessThan(1);
    out[0].forEach((f, i) => expect(f.position).toBe(i * 960));
    expect(counters.decoded).toBe(out[0].length);
  });

  it('cuts pink noise by more than 20 dB and reports low voice activity', async () => {
    const pink = (await readWav(fixture('noise-pink-48k.wav'))).channels[0];
    const { out } = run({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] }, encodeOpusFrames(pink));
    const pcm = joined(out[0]);
    expect(rmsDb(pink) - rmsDb(pcm.subarray(4800))).toBeGreaterThan(20);
    const meanVad = out[0].reduce((s, f) => s + f.vad!, 0) / out[0].length;
    expect(meanVad).toBeLessThan(0.1);
  });

  it('reports speech in noisy speech far more often than in noise', async () => {
    const noisy = (await readWav(fixture('speech-noisy-48k.wav'))).channels[0];
    const { out } = run({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] }, encodeOpusFrames(noisy));
    const speech = out[0].filter((f) => f.vad! >= 0.5).length / out[0].length;
    expect(speech).toBeGreaterThan(0.3);
  });

  it('conceals a lost packet with exactly its duration and counts it', async () => {
    const tone = (await readWav(fixture('tone-1k-48k.wav'))).channels[0];
    const frames = encodeOpusFrames(tone.subarray(0, 960 * 20));
    frames[10] = { ...frames[10], payload: null };
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }] }, frames);
    expect(joined(out[0]).length).toBe(960 * 20);
    expect(counters.concealed).toBe(1);
    expect(counters.decoded).toBe(19);
    // PLC continues the tone rather than going silent.
    expect(rmsDb(out[0][10].data)).toBeGreaterThan(rmsDb(tone.subarray(0, 960)) - 10);
  });

  it('fills a gap with no packets (DTX) with silence of the right length', async () => {
    const tone = (await readWav(fixture('tone-1k-48k.wav'))).channels[0];
    const frames = encodeOpusFrames(tone.subarray(0, 960 * 10));
    const later = frames.slice(5).map((f) => ({ ...f, position: f.position + 960 * 7 }));
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }] }, [...frames.slice(0, 5), ...later]);
    const pcm = joined(out[0]);
    expect(pcm.length).toBe(960 * 17);
    expect(counters.silenceSamples).toBe(960 * 7);
    expect(pcm.subarray(960 * 5, 960 * 12).every((v) => v === 0)).toBe(true);
  });

  it('drops late and duplicate frames and counts them', async () => {
    const tone = (await readWav(fixture('tone-1k-48k.wav'))).channels[0];
    const frames = encodeOpusFrames(tone.subarray(0, 960 * 6));
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }] }, [frames[0], frames[1], frames[1], frames[2], frames[0], frames[3]]);
    expect(joined(out[0]).length).toBe(960 * 4);
    expect(counters.late).toBe(2);
  });

  it('conceals a corrupt packet instead of throwing', async () => {
    const tone = (await readWav(fixture('tone-1k-48k.wav'))).channels[0];
    const frames = encodeOpusFrames(tone.subarray(0, 960 * 5));
    frames[2] = { ...frames[2], payload: new Uint8Array([0x0b, 0xff, 0xff, 0xff]) }; // code-3 packet claiming 63 frames
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }] }, frames);
    expect(joined(out[0]).length).toBe(960 * 5);
    expect(counters.corrupt).toBe(1);
  });

  it('resamples to 16 kHz keeping duration and pitch', async () => {
    const tone = (await readWav(fixture('tone-1k-48k.wav'))).channels[0];
    const frames = encodeOpusFrames(tone);
    const { out } = run({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 16000 }] }] }, frames);
    const pcm = joined(out[0]);
    expect(out[0][0].sampleRate).toBe(16000);
    expect(Math.abs(pcm.length - (frames.length * 960) / 3)).toBeLessThanOrEqual(320);
    expect(Math.abs(dominantFrequency(pcm, 16000) - 1000)).toBeLessThan(10);
    out[0].forEach((f, i) => i > 0 && expect(f.position).toBe(out[0][i - 1].position + out[0][i - 1].data.length));
  });

  it('feeds every branch from one decode: raw and denoised differ on noise', async () => {
    const pink = (await readWav(fixture('noise-pink-48k.wav'))).channels[0];
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'denoise' }] }] }, encodeOpusFrames(pink.subarray(0, 48000)));
    expect(counters.decoded).toBe(50);
    expect(rmsDb(joined(out[0])) - rmsDb(joined(out[1]).subarray(4800))).toBeGreaterThan(15);
  });

  it('decodes stereo keeping the channels apart', async () => {
    const st = await readWav(fixture('tone-stereo-48k.wav'));
    const inter = new Float32Array(st.channels[0].length * 2);
    for (let i = 0; i < st.channels[0].length; i++) [inter[2 * i], inter[2 * i + 1]] = [st.channels[0][i], st.channels[1][i]];
    const { out } = run({ channels: 2, branches: [{ stages: [] }] }, encodeOpusFrames(inter, 2, 64000));
    const pcm = joined(out[0]);
    const left = pcm.filter((_, i) => i % 2 === 0);
    const right = pcm.filter((_, i) => i % 2 === 1);
    expect(Math.abs(dominantFrequency(left, 48000) - 440)).toBeLessThan(10);
    expect(Math.abs(dominantFrequency(right, 48000) - 880)).toBeLessThan(10);
  });

  it('rejects bad stage specs with errors that name the branch, stage and problem', () => {
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'denoise' }] }] })).toThrow(
      /branch 0, stage 1 \(denoise\): denoise needs 48000 Hz input, got 16000 Hz/,
    );
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'reverb' }] }] })).toThrow(/unknown stage type "reverb"; known types: denoise, resample/);
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 4000 }] }] })).toThrow(/"sampleRate" must be an integer from 8000 to 48000, got 4000/);
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise', strength: 2 }] }] })).toThrow(/unknown option "strength"/);
  });
});
