/**
 * The `denoise` stage's options: `mix` (dry signal blended back, delayed by
 * RNNoise's one 480-sample frame so it lines up) and `vadThreshold` (which
 * frames are marked as speech).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createDenoiseStage } from '../../src/dsp/denoise.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { PcmChunk, StageSpec } from '../../src/dsp/types.js';
import { channelOf, concat, encodeOpusFrames, interleave, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

const DELAY = 480; // RNNoise's output for a frame is the input of the frame before
let noisy: Float32Array; // 3 s of speech-noisy-48k.wav
let speech: Float32Array;
let pink: Float32Array;

beforeAll(async () => {
  await loadDspModules();
  noisy = (await readFixture('speech-noisy-48k.wav')).channels[0].subarray(0, 48000 * 3);
  speech = (await readFixture('speech-48k.wav')).channels[0];
  pink = (await readFixture('noise-pink-48k.wav')).channels[0];
});

function denoise(options: Omit<StageSpec, 'type'>, pcm: Float32Array, channels = 1, chunk = 960): { out: Float32Array; chunks: PcmChunk[] } {
  const stage = createDenoiseStage({ type: 'denoise', ...options }, { sampleRate: 48000, channels });
  const chunks: PcmChunk[] = [];
  for (let i = 0; i < pcm.length; i += chunk * channels) {
    const c = stage.process({ data: pcm.slice(i, i + chunk * channels) });
    if (c) chunks.push({ ...c });
  }
  stage.close();
  return { out: concat(chunks.map((c) => c.data)), chunks };
}

/** `x` delayed by `n` samples per channel (zeros first), same length. */
function delayed(x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(x.length);
  out.set(x.subarray(0, x.length - n), n);
  return out;
}

describe('denoise mix', () => {
  it('returns the original, delayed by RNNoise’s one frame, at mix 1', () => {
    const { out } = denoise({ mix: 1 }, noisy);
    expect(sameSamples(out, delayed(noisy, DELAY))).toBe(true);
    // The same in odd chunk sizes (the buffering path).
    expect(sameSamples(denoise({ mix: 1 }, noisy, 1, 700).out, delayed(noisy, DELAY).subarray(0, Math.floor(noisy.length / 480) * 480))).toBe(true);
  });

  it('equals the plain denoise at mix 0', () => {
    expect(sameSamples(denoise({ mix: 0 }, noisy).out, denoise({}, noisy).out)).toBe(true);
  });

  it('blends denoised and delayed original linearly in between', () => {
    const wet = denoise({}, noisy).out;
    const dry = delayed(noisy, DELAY);
    const half = denoise({ mix: 0.25 }, noisy).out;
    let worst = 0;
    for (let i = 0; i < half.length; i++) worst = Math.max(worst, Math.abs(half[i] - (0.75 * wet[i] + 0.25 * dry[i])));
    expect(worst).toBeLessThan(1e-7);
  });

  it('delays each stereo channel’s dry signal on its own', () => {
    const stereo = interleave([noisy, pink.subarray(0, noisy.length)]);
    const { out } = denoise({ mix: 1 }, stereo, 2);
    expect(sameSamples(channelOf(out, 0, 2), delayed(noisy, DELAY))).toBe(true);
    expect(sameSamples(channelOf(out, 1, 2), delayed(pink.subarray(0, noisy.length), DELAY))).toBe(true);
  });
});

describe('denoise vadThreshold', () => {
  const speechShare = (chunks: PcmChunk[]) => chunks.filter((c) => c.speech).length / chunks.length;

  it('marks speech as speech far more often than pink noise, through Opus as in production', () => {
    // Through Opus, as denoising is used: uncoded pink noise reads as speech to RNNoise (measured: 68 % of frames).
    const run = (pcm: Float32Array) => {
      const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise', vadThreshold: 0.5 }] }] });
      const frames = processor.process(encodeOpusFrames(pcm))[0];
      processor.close();
      return frames;
    };
    const talk = run(speech);
    const hiss = run(pink);
    expect(talk.every((f) => typeof f.speech === 'boolean')).toBe(true);
    for (const f of talk) expect(f.speech).toBe(f.vad! >= 0.5);
    const share = (frames: typeof talk) => frames.filter((f) => f.speech).length / frames.length;
    expect(share(talk)).toBeGreaterThan(0.5); // measured 0.735
    expect(share(hiss)).toBeLessThan(0.05); // measured 0
  });

  it('follows the threshold: 0 marks every frame, a stricter one fewer', () => {
    expect(speechShare(denoise({ vadThreshold: 0 }, pink).chunks)).toBe(1);
    const loose = speechShare(denoise({ vadThreshold: 0.3 }, speech).chunks);
    const strict = speechShare(denoise({ vadThreshold: 0.95 }, speech).chunks);
    expect(strict).toBeLessThan(loose);
  });

  it('checks mix and vadThreshold, naming them', () => {
    const make = (options: Record<string, unknown>) => () => createDenoiseStage({ type: 'denoise', ...options }, { sampleRate: 48000, channels: 1 });
    expect(make({ mix: 1.5 })).toThrow(RangeError);
    expect(make({ mix: 1.5 })).toThrow('denoise: option "mix" must be a number from 0 to 1, got 1.5');
    expect(make({ mix: '0.5' })).toThrow(TypeError);
    expect(make({ vadThreshold: -0.1 })).toThrow('denoise: option "vadThreshold" must be a number from 0 to 1, got -0.1');
    expect(make({ vadThreshold: Number.NaN })).toThrow(RangeError);
  });
});
