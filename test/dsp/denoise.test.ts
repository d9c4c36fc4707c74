/**
 * The `denoise` stage (RNNoise) on real recordings, through Opus at 32 kb/s as
 * in production. Denoising is judged on pink noise and in the
 * pauses of noisy speech (speech dominates the energy of the whole file; white
 * noise survives Opus looking like speech, so it proves nothing).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createDenoiseStage } from '../../src/dsp/denoise.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { ChunkStage, PcmChunk } from '../../src/dsp/types.js';
import type { AudioFrame } from '../../src/media/frames.js';
import { channelOf, concat, encodeOpusFrames, interleave, rmsDb, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { joinFrames } from './frames.js';

beforeAll(async () => {
  await loadDspModules();
});

const FRAME = 960; // 20 ms at 48 kHz

/** Runs 48 kHz mono PCM through Opus and a single denoise branch. */
function denoiseThroughOpus(pcm: Float32Array): AudioFrame[] {
  const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] });
  const frames = processor.process(encodeOpusFrames(pcm))[0];
  processor.close();
  return frames;
}

const meanVad = (frames: AudioFrame[]) => frames.reduce((s, f) => s + f.vad!, 0) / frames.length;

/** Energy mean in dB over the 20 ms frames listed (dB of the mean power, not mean of dBs). */
function levelOver(pcm: Float32Array, frameIndexes: number[], offset = 0): number {
  return rmsDb(concat(frameIndexes.map((i) => pcm.subarray(i * FRAME + offset, (i + 1) * FRAME + offset))));
}

/** Feeds `pcm` to a fresh stage in chunks of `size` samples and returns everything it emitted. */
function runInChunks(stage: ChunkStage, pcm: Float32Array, size: number): { out: Float32Array; nulls: number; vads: number[] } {
  const parts: Float32Array[] = [];
  const vads: number[] = [];
  let nulls = 0;
  for (let i = 0; i < pcm.length; i += size) {
    const chunk: PcmChunk | null = stage.process({ data: pcm.slice(i, i + size) });
    if (chunk) {
      parts.push(chunk.data);
      vads.push(chunk.vad!);
    } else nulls++;
  }
  return { out: concat(parts), nulls, vads };
}

describe('denoise stage', () => {
  it('cuts pink noise by more than 20 dB and reports almost no voice', async () => {
    const pink = (await readFixture('noise-pink-48k.wav')).channels[0];
    const frames = denoiseThroughOpus(pink);
    const out = joinFrames(frames);
    expect(out.length).toBe(Math.floor(pink.length / FRAME) * FRAME);
    // Skip RNNoise's first 100 ms while its noise estimate settles.
    expect(rmsDb(pink) - rmsDb(out.subarray(4800))).toBeGreaterThan(20);
    expect(meanVad(frames)).toBeLessThan(0.1);
  });

  it('finds speech in noisy speech far more often than in pink noise', async () => {
    const noisy = (await readFixture('speech-noisy-48k.wav')).channels[0];
    const pink = (await readFixture('noise-pink-48k.wav')).channels[0];
    const speechFrames = denoiseThroughOpus(noisy);
    const noiseFrames = denoiseThroughOpus(pink);
    const voiced = speechFrames.filter((f) => f.vad! >= 0.5).length / speechFrames.length;
    expect(voiced).toBeGreaterThan(0.3);
    expect(noiseFrames.filter((f) => f.vad! >= 0.5).length / noiseFrames.length).toBeLessThan(0.05);
    expect(meanVad(speechFrames) - meanVad(noiseFrames)).toBeGreaterThan(0.4); // measured 0.68 vs 0.01
  });

  it('lowers the noise floor in speech pauses by over 20 dB while keeping speech within 3 dB', async () => {
    const clean = (await readFixture('speech-48k.wav')).channels[0];
    const noisy = (await readFixture('speech-noisy-48k.wav')).channels[0];
    const out = joinFrames(denoiseThroughOpus(noisy));
    const frames = Math.floor(out.length / FRAME) - 1;
    const cleanDb = Array.from({ length: frames }, (_, i) => rmsDb(clean.subarray(i * FRAME, (i + 1) * FRAME)));
    // Pauses: silent in the clean recording, and their neighbours too (so codec and RNNoise delays of < 20 ms don't leak speech in).
    const pauses = cleanDb.map((_, i) => i).filter((i) => i > 5 && i < frames - 1 && cleanDb[i - 1] < -60 && cleanDb[i] < -60 && cleanDb[i + 1] < -60);
    const loud = cleanDb.map((_, i) => i).filter((i) => i > 5 && cleanDb[i] > -25);
    expect(pauses.length).toBeGreaterThan(20);
    expect(loud.length).toBeGreaterThan(50);
    // Output lags input by Opus (312 samples) + RNNoise (480): measured that much later (cross-correlation peaks at 792).
    const lag = 792;
    expect(levelOver(noisy, pauses) - levelOver(out, pauses, lag)).toBeGreaterThan(20); // measured ~26 dB
    expect(Math.abs(levelOver(clean, loud) - levelOver(out, loud, lag))).toBeLessThan(3); // measured ~0.6 dB
  });

  it('buffers chunks that are not multiples of 480 samples and emits the same audio', async () => {
    const noisy = (await readFixture('speech-noisy-48k.wav')).channels[0].subarray(0, 48000 * 2);
    const input = { sampleRate: 48000, channels: 1 };
    const reference = runInChunks(createDenoiseStage({ type: 'denoise' }, input), noisy, 960);
    const odd = runInChunks(createDenoiseStage({ type: 'denoise' }, input), noisy, 700);
    const tiny = runInChunks(createDenoiseStage({ type: 'denoise' }, input), noisy, 100);
    // Only whole RNNoise frames come out; the rest waits for the next call.
    expect(odd.out.length).toBe(Math.floor(noisy.length / 480) * 480);
    expect(tiny.out.length).toBe(Math.floor(noisy.length / 480) * 480);
    expect(tiny.nulls).toBeGreaterThan(0);
    // The chunking changes when audio comes out, never what comes out.
    expect(sameSamples(odd.out, reference.out.subarray(0, odd.out.length))).toBe(true);
    expect(sameSamples(tiny.out, reference.out.subarray(0, tiny.out.length))).toBe(true);
    for (const v of odd.vads) expect(v).toBeGreaterThanOrEqual(0);
  });

  it('gives out, at the end of the stream, the input that did not fill an RNNoise frame: as many samples out as in', async () => {
    const noisy = (await readFixture('speech-noisy-48k.wav')).channels[0].subarray(0, 51712); // 101 frames of 512
    for (const [channels, frameSamples] of [[1, 512], [1, 120], [2, 700]] as const) {
      const sp = new StreamProcessor({ input: { sampleRate: 48000, channels }, branches: [{ stages: [{ type: 'denoise' }] }] });
      const signal = channels === 1 ? noisy : interleave([noisy, noisy]);
      const step = frameSamples * channels;
      const frames = [];
      for (let i = 0, k = 0; i < signal.length; i += step, k++) frames.push({ position: k * frameSamples, data: signal.slice(i, i + step), arrival: 0 });
      const out = [...sp.processPcm(frames)[0], ...sp.drain()[0]];
      const total = out.reduce((n, f) => n + f.data.length, 0);
      expect(total, `${channels} ch, ${frameSamples}-sample frames`).toBe(signal.length);
      // Contiguous in media time up to the last input sample.
      const last = out.at(-1)!;
      expect(last.position + last.data.length / channels).toBe(signal.length / channels);
      sp.close();
    }
  });

  it('denoises each stereo channel with its own state', async () => {
    const noisy = (await readFixture('speech-noisy-48k.wav')).channels[0].subarray(0, 48000 * 2);
    const pink = (await readFixture('noise-pink-48k.wav')).channels[0].subarray(0, 48000 * 2);
    const stereo = runInChunks(createDenoiseStage({ type: 'denoise' }, { sampleRate: 48000, channels: 2 }), interleave([noisy, pink]), 1920);
    const left = runInChunks(createDenoiseStage({ type: 'denoise' }, { sampleRate: 48000, channels: 1 }), noisy, 960);
    const right = runInChunks(createDenoiseStage({ type: 'denoise' }, { sampleRate: 48000, channels: 1 }), pink, 960);
    // Exactly what two mono denoisers make: the speech channel doesn't hold the noise channel open.
    expect(sameSamples(channelOf(stereo.out, 0, 2), left.out)).toBe(true);
    expect(sameSamples(channelOf(stereo.out, 1, 2), right.out)).toBe(true);
    expect(rmsDb(pink) - rmsDb(channelOf(stereo.out, 1, 2).subarray(4800))).toBeGreaterThan(20);
  });

  it('needs 48 kHz input and says where to put the resampler', () => {
    expect(() => createDenoiseStage({ type: 'denoise' }, { sampleRate: 16000, channels: 1 })).toThrow(RangeError);
    expect(() => createDenoiseStage({ type: 'denoise' }, { sampleRate: 16000, channels: 1 })).toThrow(
      'denoise needs 48000 Hz audio but gets 16000 Hz here; move "denoise" before any "resample" stage',
    );
  });

  it('rejects unknown options, listing the ones it takes', () => {
    expect(() => createDenoiseStage({ type: 'denoise', strength: 0.5 }, { sampleRate: 48000, channels: 1 })).toThrow(TypeError);
    expect(() => createDenoiseStage({ type: 'denoise', strength: 0.5 }, { sampleRate: 48000, channels: 1 })).toThrow(
      'denoise: unknown option "strength"; allowed: mix, vadThreshold',
    );
  });
});
