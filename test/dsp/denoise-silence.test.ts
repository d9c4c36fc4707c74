/**
 * The `denoise` stage on silence: digitally silent frames (DTX gaps, muted
 * senders) are not run through RNNoise once its state has settled, come out as
 * silence at their position and length with VAD 0, and are counted; speech
 * after a gap is denoised as when every frame ran. "Ran" is observed on
 * RnnoiseState.processFrame, the one way the stage reaches RNNoise.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDenoiseStage, SILENCE_PEAK } from '../../src/dsp/denoise.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { PcmChunk, StageSpec } from '../../src/dsp/types.js';
import type { AudioFrame } from '../../src/media/frames.js';
import { RnnoiseState } from '../../wasm/rnnoise.js';
import { channelOf, concat, encodeOpusFrames, interleave, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

const FRAME = 480; // one RNNoise frame, 10 ms at 48 kHz
const SECOND = 48000;
/** Zero frames RNNoise may run after sound before it settles (measured 23–28; the stage's safety net is 60). */
const MAX_SETTLE = 60;
let noisy: Float32Array; // speech-noisy-48k.wav: no silent frame of its own, raw or through Opus
let pink: Float32Array;

beforeAll(async () => {
  await loadDspModules();
  noisy = (await readFixture('speech-noisy-48k.wav')).channels[0];
  pink = (await readFixture('noise-pink-48k.wav')).channels[0];
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Counts RNNoise runs from here on. */
const countRuns = () => vi.spyOn(RnnoiseState.prototype, 'processFrame');

/** Feeds `pcm` (interleaved) to a fresh denoise stage in chunks of `chunk` samples per channel; returns what it emitted. */
function denoise(pcm: Float32Array, options: Omit<StageSpec, 'type'> = {}, channels = 1, chunk = 960) {
  const stage = createDenoiseStage({ type: 'denoise', ...options }, { sampleRate: 48000, channels });
  const chunks: PcmChunk[] = [];
  for (let i = 0; i < pcm.length; i += chunk * channels) {
    const c = stage.process({ data: pcm.slice(i, i + chunk * channels) });
    if (c) chunks.push({ ...c });
  }
  const skipped = stage.framesSkippedSilent!;
  stage.close();
  return { out: concat(chunks.map((c) => c.data)), chunks, skipped };
}

/**
 * The stage as it was before it skipped anything: RNNoise on every frame of
 * mono `pcm`, mixed with the original delayed by one frame. Runs outside any
 * spy's count only if called before countRuns().
 */
function everyFrame(pcm: Float32Array, mix = 0): Float32Array {
  const state = new RnnoiseState();
  const frames = Math.floor(pcm.length / FRAME);
  const out = new Float32Array(frames * FRAME);
  const frame = new Float32Array(FRAME);
  for (let f = 0; f < frames; f++) {
    frame.set(pcm.subarray(f * FRAME, (f + 1) * FRAME));
    state.processFrame(frame);
    for (let i = 0; i < FRAME; i++) out[f * FRAME + i] = (1 - mix) * frame[i] + mix * (f > 0 ? pcm[(f - 1) * FRAME + i] : 0);
  }
  state.close();
  return out;
}

/** `parts` one after the other, numbers standing for that many samples of digital silence. */
function sequence(...parts: Array<Float32Array | number>): Float32Array {
  return concat(parts.map((p) => (typeof p === 'number' ? new Float32Array(p) : p)));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const isZero = (x: Float32Array) => x.every((v) => v === 0);

describe('denoise on silence', () => {
  it('skips digital silence without running RNNoise, emits zeros of the same length, VAD 0, and counts it', () => {
    const runs = countRuns();
    const { out, chunks, skipped } = denoise(new Float32Array(SECOND));
    expect(runs).not.toHaveBeenCalled();
    expect(skipped).toBe(SECOND / FRAME);
    expect(out.length).toBe(SECOND);
    expect(isZero(out)).toBe(true);
    for (const c of chunks) {
      expect(c.vad).toBe(0);
      expect(c.speech).toBe(false);
    }
  });

  it('counts a frame as silent up to one 16-bit step of peak, and not above', () => {
    const lsb = 1 / 32768;
    expect(SILENCE_PEAK).toBe(lsb);
    // ±1 step, what Opus decodes encoded digital silence to: silence, and comes out as exact zeros.
    const dust = Float32Array.from({ length: SECOND / 2 }, (_, i) => [0, lsb, -lsb, 0, lsb][i % 5]);
    let runs = countRuns();
    const quiet = denoise(dust);
    expect(runs).not.toHaveBeenCalled();
    expect(quiet.skipped).toBe(SECOND / 2 / FRAME);
    expect(isZero(quiet.out)).toBe(true);
    vi.restoreAllMocks();
    // Two steps is sound: RNNoise runs on every frame.
    runs = countRuns();
    const louder = denoise(dust.map((v) => 2 * v));
    expect(louder.skipped).toBe(0);
    expect(runs).toHaveBeenCalledTimes(SECOND / 2 / FRAME);
  });

  it('gives speech after leading silence exactly the output it has without the silence, shifted by the gap', () => {
    const speech = noisy.subarray(0, 2 * SECOND);
    const alone = denoise(speech).out;
    const gap = SECOND / 2;
    const runs = countRuns();
    const late = denoise(sequence(gap, speech));
    expect(late.skipped).toBe(gap / FRAME); // a fresh state is settled: no RNNoise for any of the gap
    expect(runs).toHaveBeenCalledTimes(speech.length / FRAME);
    expect(isZero(late.out.subarray(0, gap))).toBe(true);
    expect(sameSamples(late.out.subarray(gap), alone)).toBe(true);
  });

  it('denoises speech after a silent gap as when every frame ran: same samples to float rounding, same place', () => {
    for (const [before, after] of [
      [noisy.subarray(0, 2 * SECOND), noisy.subarray(2 * SECOND, 4 * SECOND)],
      [pink.subarray(0, SECOND), noisy.subarray(SECOND, 3 * SECOND)],
    ]) {
      const gap = SECOND; // a 1 s DTX pause
      const input = sequence(before, gap, after);
      const reference = everyFrame(input);
      const runs = countRuns();
      const { out, skipped } = denoise(input);
      // The last 10 ms before the gap still come out (RNNoise's delay line is flushed by running the first silent frames).
      expect(maxAbsDiff(out, reference)).toBeLessThan(1e-7); // measured ≤ 6e-8 (one float step at full scale)
      const speechStart = before.length + gap + FRAME; // RNNoise delays by one frame
      let peak = 0;
      for (let i = speechStart; i < speechStart + 4800; i++) peak = Math.max(peak, Math.abs(out[i]));
      expect(peak).toBeGreaterThan(0.01); // speech is there, where it belongs
      expect(skipped).toBeGreaterThanOrEqual(gap / FRAME - MAX_SETTLE);
      expect(runs).toHaveBeenCalledTimes(input.length / FRAME - skipped);
      vi.restoreAllMocks();
    }
  });

  it('keeps the delayed original aligned across a skipped gap with mix', () => {
    const input = sequence(noisy.subarray(0, SECOND), SECOND, noisy.subarray(SECOND, 2 * SECOND));
    const reference = everyFrame(input, 0.3);
    const { out, skipped } = denoise(input, { mix: 0.3 });
    expect(skipped).toBeGreaterThan(0);
    expect(maxAbsDiff(out, reference)).toBeLessThan(1e-7);
  });

  it('skips a silent stereo channel while the other is denoised exactly as on its own', () => {
    const speech = noisy.subarray(0, 2 * SECOND);
    const mono = denoise(speech).out;
    const { out, skipped } = denoise(interleave([speech, new Float32Array(speech.length)]), {}, 2);
    expect(sameSamples(channelOf(out, 0, 2), mono)).toBe(true);
    expect(isZero(channelOf(out, 1, 2))).toBe(true);
    expect(skipped).toBe(speech.length / FRAME);
  });
});

describe('StreamProcessor with denoise on silence', () => {
  const joined = (frames: AudioFrame[]) => concat(frames.map((f) => f.data as Float32Array));

  /** Output frames follow each other with no gap or overlap from `start`; returns the samples covered. */
  function contiguous(frames: AudioFrame[], start = 0): number {
    let next = start;
    for (const f of frames) {
      expect(f.position).toBe(next);
      next += f.data.length / f.channels;
    }
    return next - start;
  }

  it('turns a DTX gap into silence of the gap’s length at its place, without running RNNoise on it, and counts it', () => {
    const gap = 2 * SECOND; // no packets for 2 s, as a browser with usedtx=1 sends a pause
    const first = encodeOpusFrames(noisy.subarray(0, SECOND));
    const second = encodeOpusFrames(noisy.subarray(SECOND, 2 * SECOND), 1, { startPosition: SECOND + gap });
    // Decoded audio without denoise, to build the every-frame reference from.
    const plain = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    const decoded = joined(plain.process([...first, ...second])[0]);
    plain.close();
    const reference = everyFrame(decoded);

    const runs = countRuns();
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] });
    const frames = [...processor.process(first)[0], ...processor.process(second)[0]];
    const counters = { ...processor.counters };
    processor.close();

    expect(contiguous(frames)).toBe(2 * SECOND + gap);
    expect(counters.silenceSamples).toBe(gap);
    expect(counters.framesSkippedSilent).toBeGreaterThanOrEqual(gap / FRAME - MAX_SETTLE);
    expect(runs).toHaveBeenCalledTimes((2 * SECOND + gap) / FRAME - counters.framesSkippedSilent!);
    const out = joined(frames);
    // Exact silence from the end of RNNoise's settling to the end of the gap.
    expect(isZero(out.subarray(SECOND + MAX_SETTLE * FRAME, SECOND + gap))).toBe(true);
    expect(maxAbsDiff(out, reference)).toBeLessThan(1e-7);
    // Frames inside the gap carry VAD 0 once RNNoise is skipped.
    for (const f of frames) if (f.position >= SECOND + MAX_SETTLE * FRAME && f.position + f.data.length <= SECOND + gap) expect(f.vad).toBe(0);
  });

  it("gives each stream exact silence for its gaps while another stream's denoiser runs on a gap of its own (silence is shared, never written)", () => {
    const speech = encodeOpusFrames(noisy.subarray(0, SECOND));
    const afterGap = (at: number) => encodeOpusFrames(noisy.subarray(0, SECOND / 10), 1, { startPosition: at });
    const denoised = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] });
    const plain = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    plain.process(encodeOpusFrames(new Float32Array(SECOND / 10)));
    denoised.process(speech);
    // The denoiser has sound in its state: it runs RNNoise on the start of this gap, writing its tail.
    const tail = joined(denoised.process(afterGap(2 * SECOND))[0]);
    expect(isZero(tail.subarray(0, MAX_SETTLE * FRAME))).toBe(false);
    // The other stream's gap, and the denoised stream's own later one once settled, are exact zeros.
    const out = plain.process(afterGap(SECOND))[0];
    expect(out[0].position).toBe(SECOND / 10);
    const gap = joined(out).subarray(0, SECOND - SECOND / 10);
    expect(isZero(gap)).toBe(true);
    denoised.process(afterGap(4 * SECOND));
    denoised.close();
    plain.close();
  });

  it('skips a muted sender without DTX too: Opus-coded digital silence decodes to at most one 16-bit step', () => {
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] });
    const frames = processor.process(encodeOpusFrames(new Float32Array(2 * SECOND)))[0];
    expect(contiguous(frames)).toBe(2 * SECOND);
    expect(processor.counters.framesSkippedSilent).toBe((2 * SECOND) / FRAME);
    expect(frames.every((f) => f.vad === 0 && f.peak === 0)).toBe(true);
    processor.close();
  });

  it('sums skipped frames over every denoise branch, for PCM input too, and reports 0 without denoise', () => {
    const processor = new StreamProcessor({
      input: { sampleRate: 48000, channels: 1 },
      branches: [{ stages: [{ type: 'denoise' }] }, { stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }] }, { stages: [] }],
    });
    expect(processor.counters.framesSkippedSilent).toBe(0);
    const out = processor.processPcm([{ position: 0, data: new Float32Array(SECOND), arrival: 0 }]);
    expect(processor.counters.framesSkippedSilent).toBe((2 * SECOND) / FRAME);
    expect(contiguous(out[0])).toBe(SECOND);
    processor.close();

    const plain = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    plain.process(encodeOpusFrames(new Float32Array(SECOND / 10)));
    expect(plain.counters.framesSkippedSilent).toBe(0);
    plain.close();
  });
});
