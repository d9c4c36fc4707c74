/**
 * (a) Single-thread cost of each worker stage per 20 ms frame of 48 kHz mono
 * audio, on real fixtures encoded with Opus at 32 kb/s beforehand (not timed).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OpusDecoder, OpusEncoder } from '../wasm/opus.js';
import { RnnoiseState } from '../wasm/rnnoise.js';
import { SpeexResampler } from '../wasm/speex.js';
import { measureLevels } from '../src/dsp/levels.js';
import { loadDspModules, StreamProcessor } from '../src/dsp/stream-processor.js';
import type { StageSpec } from '../src/dsp/types.js';
import { readWav } from '../test/helpers/audio.js';

export interface StageBenchResult {
  /** Median µs per 20 ms frame. */
  opusDecode: number;
  denoise: number;
  resample16kQ5: number;
  levels: number;
  /** decode → denoise → levels (the default pipeline), one stream. */
  defaultChain: number;
  /** decode → denoise → resample 16 kHz → levels. */
  asrChain: number;
}

const FIXTURES = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'test', 'fixtures');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Times `fn` once per frame over `rounds` passes (after one warm-up pass); median µs. */
function timePerFrame(frames: number, rounds: number, fn: (i: number) => void): number {
  for (let i = 0; i < frames; i++) fn(i);
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < frames; i++) {
      const t0 = process.hrtime.bigint();
      fn(i);
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  }
  return median(times);
}

export async function benchStages(): Promise<StageBenchResult> {
  await loadDspModules();
  const speech = (await readWav(join(FIXTURES, 'speech-noisy-48k.wav'))).channels[0];
  const n = Math.floor(speech.length / 960);
  const enc = new OpusEncoder();
  const packets = Array.from({ length: n }, (_, i) => enc.encode(speech.subarray(i * 960, (i + 1) * 960)));
  enc.close();
  const pcm = Array.from({ length: n }, (_, i) => speech.slice(i * 960, (i + 1) * 960));

  const dec = new OpusDecoder(1);
  const out = new Float32Array(5760);
  const opusDecode = timePerFrame(n, 3, (i) => dec.decode(packets[i], out));
  dec.close();

  const rn = new RnnoiseState();
  const half = new Float32Array(480);
  const denoise = timePerFrame(n, 2, (i) => {
    half.set(pcm[i].subarray(0, 480));
    rn.processFrame(half);
    half.set(pcm[i].subarray(480));
    rn.processFrame(half);
  });
  rn.close();

  const rs = new SpeexResampler(1, 48000, 16000, 5);
  const resample16kQ5 = timePerFrame(n, 3, (i) => rs.process(pcm[i]));
  rs.close();

  const levels = timePerFrame(n, 3, (i) => measureLevels(pcm[i]));

  const chain = (stages: StageSpec[]) => {
    const sp = new StreamProcessor({ channels: 1, branches: [{ stages }] });
    let pos = 0;
    const us = timePerFrame(n, 2, (i) => {
      sp.process([{ position: pos, payload: packets[i], samples: 960, arrival: 0 }]);
      pos += 960;
    });
    sp.close();
    return us;
  };
  const defaultChain = chain([{ type: 'denoise' }]);
  const asrChain = chain([{ type: 'denoise' }, { type: 'resample', sampleRate: 16000, quality: 5 }]);
  return { opusDecode, denoise, resample16kQ5, levels, defaultChain, asrChain };
}

export function printStages(r: StageBenchResult): void {
  const rows: Array<[string, number]> = [
    ['opus decode', r.opusDecode],
    ['denoise (RNNoise, 2 × 480)', r.denoise],
    ['resample 48→16 kHz q5 (Speex SIMD)', r.resample16kQ5],
    ['levels (RMS + peak)', r.levels],
    ['chain: decode → denoise → levels (default)', r.defaultChain],
    ['chain: decode → denoise → resample 16k → levels', r.asrChain],
  ];
  console.log('\n(a) Stage cost per 20 ms frame, 48 kHz mono, one thread (median)');
  console.log('  stage'.padEnd(52) + 'µs/frame'.padStart(10) + 'streams/core'.padStart(14));
  for (const [name, us] of rows) console.log(`  ${name}`.padEnd(52) + us.toFixed(1).padStart(10) + Math.floor(20000 / us).toString().padStart(14));
}

if (import.meta.url === `file://${process.argv[1]}`) printStages(await benchStages());
