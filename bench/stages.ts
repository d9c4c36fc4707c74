/**
 * (a) Single-thread cost of each worker stage per 20 ms frame of 48 kHz mono
 * audio, on real fixtures encoded with Opus at 32 kb/s beforehand (not timed).
 *
 * Each figure is the median over every frame of the fixture, timed one frame at
 * a time with `process.hrtime.bigint()` after an untimed warm-up pass (JIT, WASM
 * tier-up, first-use allocations). Medians, because a frame now and then lands
 * on a GC pause or a scheduler hiccup that says nothing about the stage.
 *
 * Run alone: `node --import tsx bench/stages.ts`. `bench/run.ts` calls `benchStages()`.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { OpusDecoder, OpusEncoder, OPUS_MAX_FRAME_SAMPLES } from '../wasm/opus.js';
import { createDenoiseStage } from '../src/dsp/denoise.js';
import { measureLevels } from '../src/dsp/levels.js';
import { createStage } from '../src/dsp/registry.js';
import { createResampleStage } from '../src/dsp/resample.js';
import { loadDspModules, StreamProcessor } from '../src/dsp/stream-processor.js';
import type { StageSpec } from '../src/dsp/types.js';
import { readWav } from '../test/helpers/audio.js';

/** Median µs per 20 ms frame (960 samples, 48 kHz mono), one thread. */
export interface StageBenchResult {
  /** Opus decode of a 32 kb/s packet (libopus WASM). */
  opusDecode: number;
  /** `denoise` stage: RNNoise on 2 × 480 samples of noisy speech. */
  denoise: number;
  /** `resample` stage 48 → 16 kHz at quality 5 (Speex SIMD). */
  resample16kQ5: number;
  /** The same at quality 6, the stage's default. */
  resample16kQ6: number;
  /** RMS + peak of one frame. */
  levels: number;
  /** decode → denoise → levels: the default pipeline, one stream through StreamProcessor. */
  defaultChain: number;
  /** decode → denoise → resample 16 kHz → levels: the speech-recognition pipeline. */
  asrChain: number;
  /**
   * The default chain on digital silence sent without DTX (Opus-coded zeros,
   * every packet): `denoise` skips RNNoise on it. `bench/silence.ts` has the
   * before/after comparison and the DTX cases.
   */
  defaultChainSilence: number;
  /** Streams one core can carry in real time on the default chain: 20 000 µs / `defaultChain`. */
  streamsPerCore: number;
  /** The same for the ASR chain: 20 000 µs / `asrChain`. */
  asrStreamsPerCore: number;
  /**
   * Every built-in stage on its own (label → median µs per 20 ms frame of
   * 48 kHz mono; `downmix` gets the same audio as stereo), created through
   * the registry as a pipeline would, options as in {@link PER_STAGE}.
   */
  perStage: Record<string, number>;
  /** Frames timed per figure (frames in the fixture × rounds). */
  framesTimed: number;
}

/** The stages timed one by one: label, spec, input channels. */
export const PER_STAGE: ReadonlyArray<readonly [label: string, spec: StageSpec, channels: 1 | 2]> = [
  ['passthrough', { type: 'passthrough' }, 1],
  ['downmix (stereo in)', { type: 'downmix' }, 2],
  ['upmix', { type: 'upmix' }, 1],
  ['format s16', { type: 'format', sampleFormat: 's16' }, 1],
  ['reframe 10 ms', { type: 'reframe', durationMs: 10 }, 1],
  ['gain +6 dB', { type: 'gain', db: 6 }, 1],
  ['highpass 80 Hz', { type: 'highpass', frequency: 80 }, 1],
  ['lowpass 8 kHz', { type: 'lowpass', frequency: 8000 }, 1],
  ['bandpass 300–3400 Hz', { type: 'bandpass', lowFrequency: 300, highFrequency: 3400 }, 1],
  ['notch 50 Hz', { type: 'notch', frequency: 50 }, 1],
  ['gate', { type: 'gate' }, 1],
  ['limiter', { type: 'limiter' }, 1],
  ['normalize', { type: 'normalize' }, 1],
  ['denoise mix 0.2', { type: 'denoise', mix: 0.2 }, 1],
];

const FIXTURE = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'test', 'fixtures', 'speech-noisy-48k.wav');
const FRAME = 960;
const FRAME_US = 20_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Times `run(i)` once per frame over `rounds` passes after one untimed warm-up
 * pass; `prepare(i)`, if given, runs untimed before each call (e.g. to refill a
 * buffer a stage modifies in place). Returns the median in µs.
 */
function timePerFrame(frames: number, rounds: number, run: (i: number) => void, prepare?: (i: number) => void): number {
  for (let i = 0; i < frames; i++) {
    prepare?.(i);
    run(i);
  }
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < frames; i++) {
      prepare?.(i);
      const t0 = process.hrtime.bigint();
      run(i);
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  }
  return median(times);
}

export async function benchStages(options: { rounds?: number } = {}): Promise<StageBenchResult> {
  const rounds = options.rounds ?? 3;
  await loadDspModules();
  const speech = (await readWav(FIXTURE)).channels[0];
  const n = Math.floor(speech.length / FRAME);
  const encoder = new OpusEncoder({ bitrate: 32000 });
  const packets = Array.from({ length: n }, (_, i) => encoder.encode(speech.subarray(i * FRAME, (i + 1) * FRAME)));
  encoder.close();

  // Stages see decoded audio in production, so they are timed on it too (RNNoise cost depends on content).
  const decoder = new OpusDecoder(1);
  const out = new Float32Array(OPUS_MAX_FRAME_SAMPLES);
  const decoded = packets.map((p) => out.slice(0, decoder.decode(p, out)));
  const opusDecode = timePerFrame(n, rounds, (i) => decoder.decode(packets[i], out));
  decoder.close();

  const mono48k = { sampleRate: 48000, channels: 1 };
  const work = new Float32Array(FRAME);
  const denoiser = createDenoiseStage({ type: 'denoise' }, mono48k);
  const denoise = timePerFrame(n, rounds, () => denoiser.process({ data: work }), (i) => work.set(decoded[i]));
  denoiser.close();

  const resampler = createResampleStage({ type: 'resample', sampleRate: 16000, quality: 5 }, mono48k);
  const resample16kQ5 = timePerFrame(n, rounds, (i) => resampler.process({ data: decoded[i] }));
  resampler.close();
  const resamplerQ6 = createResampleStage({ type: 'resample', sampleRate: 16000, quality: 6 }, mono48k);
  const resample16kQ6 = timePerFrame(n, rounds, (i) => resamplerQ6.process({ data: decoded[i] }));
  resamplerQ6.close();

  const levels = timePerFrame(n, rounds, (i) => measureLevels(decoded[i]));

  // Stages work in place, so each timed call gets a fresh copy of the frame (copied untimed).
  const perStage: Record<string, number> = {};
  for (const [label, spec, channels] of PER_STAGE) {
    const stage = createStage(spec, { sampleRate: 48000, channels });
    const input = channels === 1 ? decoded : decoded.map((d) => interleaveTwice(d));
    const buffer = new Float32Array(FRAME * channels);
    perStage[label] = timePerFrame(n, rounds, () => stage.process({ data: buffer }), (i) => buffer.set(input[i]));
    stage.close();
  }

  const chain = (stages: StageSpec[], input = packets): number => {
    const processor = new StreamProcessor({ channels: 1, branches: [{ stages }] });
    // Media positions keep advancing across passes, as in a long call (a repeat would be dropped as late).
    let position = 0;
    const us = timePerFrame(n, rounds, (i) => {
      processor.process([{ position, payload: input[i], samples: FRAME, arrival: 0 }]);
      position += FRAME;
    });
    processor.close();
    return us;
  };
  const defaultChain = chain([{ type: 'denoise' }]);
  const asrChain = chain([{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }]);
  const silenceEncoder = new OpusEncoder({ bitrate: 32000 });
  const zeros = new Float32Array(FRAME);
  const silencePackets = Array.from({ length: n }, () => silenceEncoder.encode(zeros));
  silenceEncoder.close();
  const defaultChainSilence = chain([{ type: 'denoise' }], silencePackets);
  return {
    opusDecode,
    denoise,
    resample16kQ5,
    resample16kQ6,
    levels,
    defaultChain,
    asrChain,
    defaultChainSilence,
    streamsPerCore: Math.floor(FRAME_US / defaultChain),
    asrStreamsPerCore: Math.floor(FRAME_US / asrChain),
    perStage,
    framesTimed: n * rounds,
  };
}

/** The frame as stereo with the same samples in both channels (what a mono sender decoded as stereo gives). */
function interleaveTwice(mono: Float32Array): Float32Array {
  const out = new Float32Array(mono.length * 2);
  for (let i = 0; i < mono.length; i++) out[2 * i] = out[2 * i + 1] = mono[i];
  return out;
}

export function printStages(r: StageBenchResult): void {
  const rows: Array<[string, number]> = [
    ['opus decode', r.opusDecode],
    ['denoise (RNNoise, 2 × 480)', r.denoise],
    ['resample 48→16 kHz q5 (Speex SIMD)', r.resample16kQ5],
    ['resample 48→16 kHz q6, the default (Speex SIMD)', r.resample16kQ6],
    ['levels (RMS + peak)', r.levels],
    ...Object.entries(r.perStage).map(([label, us]): [string, number] => [label, us]),
    ['chain: decode → denoise → levels (default)', r.defaultChain],
    ['chain: decode → denoise → resample 16k → levels', r.asrChain],
    ['chain: default, on digital silence (no DTX)', r.defaultChainSilence],
  ];
  console.log(`\n(a) Stage cost per 20 ms frame, 48 kHz mono, one thread (median of ${r.framesTimed} frames)`);
  console.log('  stage'.padEnd(52) + 'µs/frame'.padStart(10) + 'streams/core'.padStart(14));
  for (const [name, us] of rows) console.log(`  ${name}`.padEnd(52) + us.toFixed(1).padStart(10) + Math.floor(FRAME_US / us).toString().padStart(14));
  console.log(`  streams per core, default chain: ${r.streamsPerCore}; ASR chain: ${r.asrStreamsPerCore}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) printStages(await benchStages());
