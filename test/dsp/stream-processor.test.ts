/**
 * StreamProcessor, the unit a pool worker hosts per stream: one decode feeding
 * every branch's stage chain, output at media time, on real fixtures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureLevels } from '../../src/dsp/levels.js';
import { registerStageFactory, unregisterStageFactory } from '../../src/dsp/registry.js';
import { loadDspModules, StageFailure, StreamProcessor, type StreamSpec } from '../../src/dsp/stream-processor.js';
import type { PcmChunk, Stage } from '../../src/dsp/types.js';
import type { AudioFormat, AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { channelOf, concat, dominantFrequency, encodeOpusFrames, interleave, rmsDb, sameSamples } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';
import { floatData, joinFrames } from './frames.js';

let tone: Float32Array; // 1 kHz, 3 s, 48 kHz mono
let pink: Float32Array; // pink noise, 4 s
let toneFrames: EncodedFrame[];

beforeAll(async () => {
  await loadDspModules();
  tone = (await readFixture('tone-1k-48k.wav')).channels[0];
  pink = (await readFixture('noise-pink-48k.wav')).channels[0];
  toneFrames = encodeOpusFrames(tone);
  // A mono stage that throws on the chunk starting at sample `at` of the stream, and passes every other through.
  registerStageFactory('throw-at', (spec, input: AudioFormat): Stage => {
    let seen = 0;
    return {
      output: input,
      process(c: PcmChunk) {
        if (seen === spec.at) throw new Error(`thrown at ${String(spec.at)}`);
        seen += c.data.length;
        return c;
      },
      close() {},
    };
  });
});
afterAll(() => unregisterStageFactory('throw-at'));

const joined = joinFrames;

/** Runs `inputs` as a whole stream: processed, then drained as at its end (unless `ends` is false). */
function run(spec: StreamSpec, inputs: EncodedFrame[], ends = true) {
  const processor = new StreamProcessor(spec);
  const out = processor.process(inputs);
  if (ends) processor.drain().forEach((held, b) => out[b].push(...held));
  const counters = { ...processor.counters };
  processor.close();
  return { out, counters };
}

/** Frames must tile the branch's media time: each starts where the previous one ended. */
function expectContiguous(frames: AudioFrame[]): void {
  for (let i = 1; i < frames.length; i++) expect(frames[i].position).toBe(frames[i - 1].position + frames[i - 1].data.length / frames[i - 1].channels);
}

describe('StreamProcessor', () => {
  it('passes a 1 kHz tone through with no stages at its pitch and level', () => {
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }] }, toneFrames);
    const frames = out[0];
    const pcm = joined(frames);
    expect(pcm.length).toBe(toneFrames.length * 960);
    expect(Math.abs(dominantFrequency(pcm, 48000) - 1000)).toBeLessThanOrEqual(10);
    expect(Math.abs(rmsDb(pcm.subarray(4800)) - rmsDb(tone.subarray(4800, pcm.length)))).toBeLessThan(1);
    expect(frames[0]).toMatchObject({ position: 0, sampleRate: 48000, channels: 1 });
    expect(frames[0].vad).toBeUndefined();
    expectContiguous(frames);
    expect(counters.decoded).toBe(toneFrames.length);
  });

  it('attaches the levels of each output frame and the arrival of the packet that completed it', () => {
    const { out } = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'resample', sampleRate: 16000 }] }] }, toneFrames.slice(0, 50), false);
    for (const frames of out) {
      expect(frames).toHaveLength(50);
      frames.forEach((f, i) => {
        expect({ rms: f.rms, peak: f.peak, clipped: f.clipped ?? 0 }).toEqual(measureLevels(floatData(f)));
        expect(f.arrival).toBe(toneFrames[i].arrival);
      });
    }
    // A −12 dBFS-peak tone reads about that: the levels are of real audio, not of silence.
    expect(toDb(out[0][25].peak)).toBeCloseTo(toDb(measureLevels(tone).peak), 0);
  });

  it('feeds raw and denoised branches from one decode without one altering the other', () => {
    const inputs = encodeOpusFrames(pink.subarray(0, 48000 * 2));
    const raw = run({ channels: 1, branches: [{ stages: [] }] }, inputs).out[0];
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'denoise' }] }] }, inputs);
    expect(counters.decoded).toBe(100); // decoded once, not once per branch
    expect(out[0]).toHaveLength(100);
    expect(out[1]).toHaveLength(100);
    // Denoise works in place; the raw branch must still hold exactly the decoded audio.
    expect(sameSamples(joined(out[0]), joined(raw))).toBe(true);
    expect(rmsDb(joined(out[0])) - rmsDb(joined(out[1]).subarray(4800))).toBeGreaterThan(20);
    expect(out[1].every((f) => f.vad !== undefined)).toBe(true);
    out[0].forEach((f, i) => expect(f.data).not.toBe(out[1][i].data));
  });

  it('counts positions at each branch’s own rate', () => {
    const spec: StreamSpec = {
      channels: 1,
      branches: [{ stages: [] }, { stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }] }, { stages: [{ type: 'resample', sampleRate: 8000, quality: 3 }] }],
    };
    const { out } = run(spec, toneFrames.slice(0, 25));
    expect(out.map((frames) => frames[0].sampleRate)).toEqual([48000, 16000, 8000]);
    // The resampled branches' first frames are short by the filter's delay (48 and 24 samples): frame 10 starts that much early.
    expect(out.map((frames) => frames[10].position)).toEqual([9600, 3200 - 48, 1600 - 24]);
    expect(out.map((frames) => frames[0].position)).toEqual([0, 0, 0]);
    for (const frames of out) expectContiguous(frames);
  });

  it('continues at the right media time when a stream is rebuilt mid-way (worker restart)', () => {
    const spec: StreamSpec = { channels: 1, branches: [{ stages: [{ type: 'denoise' }] }, { stages: [{ type: 'resample', sampleRate: 16000 }] }] };
    const first = run(spec, toneFrames.slice(0, 50), false).out; // the worker dies: no end
    const second = run(spec, toneFrames.slice(50, 100)).out; // a new processor, as on another worker
    expect(second[0][0].position).toBe(first[0].at(-1)!.position + 960);
    // The 16 kHz branch's last 48 samples (the resampler's delay) died with the first worker.
    expect(second[1][0].position).toBe(first[1].at(-1)!.position + 320 + 48);
    expect(second[0][0].position).toBe(50 * 960);
    expect(second[1][0].position).toBe((50 * 960) / 3);
  });

  it('produces the same audio whether frames come one per batch or all at once', () => {
    const spec: StreamSpec = { channels: 1, branches: [{ stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }] }] };
    const inputs = encodeOpusFrames(pink.subarray(0, 48000));
    const batched = run(spec, inputs).out[0];
    const processor = new StreamProcessor(spec);
    const single = inputs.flatMap((f) => processor.process([f])[0]);
    single.push(...processor.drain()[0]);
    processor.close();
    expect(single.map((f) => f.position)).toEqual(batched.map((f) => f.position));
    expect(sameSamples(joined(single), joined(batched))).toBe(true);
  });

  it('keeps the media duration at 16 kHz under 10 % packet loss and counts the concealment', () => {
    const inputs = toneFrames.map((f, i) => (i % 10 === 5 ? { ...f, payload: null } : f));
    const { out, counters } = run({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 16000 }] }] }, inputs);
    expect(counters.concealed).toBe(inputs.filter((f) => f.payload === null).length);
    expect(Math.abs(joined(out[0]).length - (inputs.length * 960) / 3)).toBeLessThanOrEqual(320);
    expect(Math.abs(dominantFrequency(joined(out[0]), 16000) - 1000)).toBeLessThanOrEqual(10);
  });

  it('turns a gap in the packets into silence in every branch', () => {
    const later = toneFrames.slice(10, 20).map((f) => ({ ...f, position: f.position + 25 * 960 }));
    const { out, counters } = run({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'resample', sampleRate: 16000 }] }] }, [...toneFrames.slice(0, 10), ...later]);
    expect(counters.silenceSamples).toBe(25 * 960);
    expect(joined(out[0]).length).toBe(45 * 960);
    expect(joined(out[1]).length).toBe(45 * 320);
    const gap16k = joined(out[1]).subarray(11 * 320, 34 * 320); // inside the gap, clear of filter ringing
    expect(rmsDb(gap16k)).toBeLessThan(-80);
  });

  describe('a stage that throws', () => {
    /** Frames 0, 1, 4, 5 of the tone: frames 2 and 3 never came (a DTX gap), so 2 × 960 samples of silence go before frame 4. */
    const withGap = () => [0, 1, 4, 5].map((i) => toneFrames[i]);
    function failure(spec: StreamSpec, inputs: EncodedFrame[]): StageFailure {
      const processor = new StreamProcessor(spec);
      try {
        processor.process(inputs);
      } catch (e) {
        expect(e).toBeInstanceOf(StageFailure);
        return e as StageFailure;
      } finally {
        processor.close();
      }
      throw new Error('expected the stage to throw');
    }

    it('counts as done the input frames whose every chunk went through, a gap\'s silence with the frame after it', () => {
      // On frame 4, after frame 0, frame 1 and the gap's silence came out: 2 input frames done, 2 lost.
      const onFrame = failure({ channels: 1, branches: [{ stages: [{ type: 'throw-at', at: 4 * 960 }] }] }, withGap());
      // The message names the stage that threw: a custom module's own error says nothing of where it ran.
      expect(onFrame.message).toBe(`branch 0, stage 0 (throw-at): thrown at ${4 * 960}`);
      expect(onFrame.processed).toBe(2);
      expect(onFrame.outputs[0].map((f) => [f.position, f.data.length])).toEqual([[0, 960], [960, 960], [1920, 1920]]);
      // On the gap's silence: it belongs to frame 4, so still 2 done.
      expect(failure({ channels: 1, branches: [{ stages: [{ type: 'throw-at', at: 2 * 960 }] }] }, withGap()).processed).toBe(2);
      // On frame 5: 3 done.
      expect(failure({ channels: 1, branches: [{ stages: [{ type: 'throw-at', at: 5 * 960 }] }] }, withGap()).processed).toBe(3);
      // In a branch before the last: the branches after it processed nothing of the call.
      const early = failure({ channels: 1, branches: [{ stages: [{ type: 'throw-at', at: 5 * 960 }] }, { stages: [] }] }, withGap());
      expect(early.processed).toBe(0);
      expect(early.outputs[0]).toHaveLength(4);
      expect(early.outputs[1]).toEqual([]);
    });

    it('counts PCM input the same way', () => {
      const processor = new StreamProcessor({ channels: 1, input: { sampleRate: 48000, channels: 1 }, branches: [{ stages: [{ type: 'throw-at', at: 4 * 960 }] }] });
      const pcm = [0, 1, 4, 5].map((i) => ({ position: i * 960, data: tone.slice(i * 960, (i + 1) * 960), arrival: 0 }));
      let failed: unknown;
      try {
        processor.processPcm(pcm);
      } catch (e) {
        failed = e;
      }
      processor.close();
      expect(failed).toBeInstanceOf(StageFailure);
      expect((failed as StageFailure).processed).toBe(2);
    });

    it("refuses a custom stage's output that breaks the contract, naming the stage: undefined, data not Float32Array, a length that is not whole frames", () => {
      // What each returns for a chunk; the stage before it is a built-in one (gain 0 dB), whose output is not checked.
      const returns: Record<string, (c: PcmChunk) => unknown> = {
        'forgot-return': (c) => {
          for (let i = 0; i < c.data.length; i++) c.data[i] *= 0.5; // in place, then no return
        },
        'int16-out': (c) => ({ data: Int16Array.from(c.data, (x) => x * 32767) }),
        'odd-stereo': (c) => ({ data: new Float32Array(c.data.length * 2 + 1) }),
        'bad-in-list': (c) => [c, { data: [0, 0] }],
      };
      for (const [type, fn] of Object.entries(returns)) {
        registerStageFactory(type, (_spec, input: AudioFormat): Stage => ({
          output: type === 'odd-stereo' ? { ...input, channels: 2 } : input,
          process: fn as Stage['process'],
          close() {},
        }));
      }
      try {
        const message = (type: string) => failure({ channels: 1, branches: [{ stages: [{ type: 'gain', db: 0 }, { type }] }] }, toneFrames.slice(0, 2)).message;
        expect(message('forgot-return')).toBe('branch 0, stage 1 (forgot-return): process() returned undefined: return the chunk (changed in place or new), an array of chunks, or null for no output yet');
        expect(message('int16-out')).toBe('branch 0, stage 1 (int16-out): process() must return chunks whose data is a Float32Array (samples from -1 to 1, channels interleaved), got data Int16Array');
        expect(message('odd-stereo')).toBe('branch 0, stage 1 (odd-stereo): process() returned 1921 samples, not whole frames of 2 channels (its declared output): interleaved samples come in groups of 2');
        expect(message('bad-in-list')).toBe('branch 0, stage 1 (bad-in-list): process() must return chunks whose data is a Float32Array (samples from -1 to 1, channels interleaved), got data Array');
        // The frames before the failure still come out: none here, the first chunk failed.
        expect(failure({ channels: 1, branches: [{ stages: [{ type: 'forgot-return' }] }] }, toneFrames.slice(0, 2)).processed).toBe(0);
        // What flush() returns at the end of the stream is checked too, and what skipSilence() throws is named.
        registerStageFactory('bad-flush', (_spec, input: AudioFormat): Stage => ({ output: input, process: (c) => c, flush: () => ({ data: new Int16Array(4) as unknown as Float32Array }), close() {} }));
        registerStageFactory('bad-skip', (_spec, input: AudioFormat): Stage => ({ output: input, process: (c) => c, skipSilence: () => { throw new Error('skip failed'); }, close() {} }));
        const flushing = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'bad-flush' }] }] });
        flushing.process(toneFrames.slice(0, 2));
        expect(() => flushing.drain()).toThrow('branch 0, stage 0 (bad-flush): flush() must return chunks whose data is a Float32Array (samples from -1 to 1, channels interleaved), got data Int16Array');
        flushing.close();
        expect(failure({ channels: 1, branches: [{ stages: [{ type: 'bad-skip' }] }] }, [0, 1, 4, 5].map((i) => toneFrames[i])).message).toBe('branch 0, stage 0 (bad-skip): skip failed');
      } finally {
        for (const type of [...Object.keys(returns), 'bad-flush', 'bad-skip']) unregisterStageFactory(type);
      }
    });

    it('counts a late frame, which makes no chunk, with the frames before the failure', () => {
      // Frame 1 comes twice (the second time late, dropped): it is not lost to the failure on frame 2.
      const inputs = [toneFrames[0], toneFrames[1], toneFrames[1], toneFrames[2]];
      expect(failure({ channels: 1, branches: [{ stages: [{ type: 'throw-at', at: 2 * 960 }] }] }, inputs).processed).toBe(3);
    });
  });

  it('denoises stereo and keeps both channels', async () => {
    const stereo = await readFixture('tone-stereo-48k.wav');
    const inputs = encodeOpusFrames(interleave(stereo.channels.map((c) => c.subarray(0, 48000))), 2, 64000);
    const { out } = run({ channels: 2, branches: [{ stages: [] }, { stages: [{ type: 'denoise' }] }] }, inputs);
    expect(out[1][0].channels).toBe(2);
    expect(out[1].every((f) => typeof f.vad === 'number')).toBe(true);
    const raw = joined(out[0]);
    expect(Math.abs(dominantFrequency(channelOf(raw, 0, 2), 48000) - 440)).toBeLessThanOrEqual(5);
    expect(Math.abs(dominantFrequency(channelOf(raw, 1, 2), 48000) - 880)).toBeLessThanOrEqual(5);
  });

  it('rejects a denoise placed after a resample to 16 kHz, naming branch, stage and fix', () => {
    const spec: StreamSpec = { channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'denoise' }] }] };
    expect(() => new StreamProcessor(spec)).toThrow(RangeError);
    expect(() => new StreamProcessor(spec)).toThrow('branch 1, stage 1 (denoise): denoise needs 48000 Hz audio but gets 16000 Hz here; move "denoise" before any "resample" stage');
  });

  it('rejects an unknown stage type listing the known ones', () => {
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'reverb' }] }] })).toThrow(TypeError);
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'reverb' }] }] })).toThrow(
      'branch 0, stage 0 (reverb): unknown stage type "reverb"; known types: passthrough, denoise, resample, downmix, upmix, format, reframe, gain, highpass, lowpass, bandpass, notch, gate, limiter, normalize',
    );
  });

  it('rejects bad options and malformed specs with the problem spelled out', () => {
    const bad = (spec: unknown) => () => new StreamProcessor(spec as StreamSpec);
    expect(bad({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 4000 }] }] })).toThrow(
      'branch 0, stage 0 (resample): resample: option "sampleRate" must be an integer from 8000 to 48000, got 4000',
    );
    expect(bad({ channels: 1, branches: [{ stages: [{ type: 'resample' }] }] })).toThrow('option "sampleRate" is required');
    expect(bad({ channels: 1, branches: [{ stages: [{ type: 'denoise', strength: 2 }] }] })).toThrow('unknown option "strength"');
    expect(bad({ channels: 3, branches: [] })).toThrow('"channels" must be 1 or 2, got 3');
    expect(bad({ channels: 1, branches: [{}] })).toThrow('branch 0: "stages" must be an array');
    expect(bad({ channels: 1, branches: [{ stages: ['denoise'] }] })).toThrow('branch 0, stage 0 (no type): a stage must be an object');
    expect(bad({ channels: 1 })).toThrow('"branches" must be an array');
  });

  it('closes idempotently and refuses work afterwards', () => {
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }] }] });
    processor.process(toneFrames.slice(0, 2));
    processor.close();
    processor.close();
    expect(() => processor.process(toneFrames.slice(2, 3))).toThrow('StreamProcessor is closed');
  });
});

function toDb(linear: number): number {
  return 20 * Math.log10(linear);
}
