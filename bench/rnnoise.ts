/**
 * RNNoise builds compared frame by frame on the fixtures, in one run:
 *
 * - `simd`: `rnnoise_simd.wasm` of `@sapphi-red/web-noise-suppressor` (what
 *   wasm/rnnoise.ts loads),
 * - `scalar`: the same package's non-SIMD `rnnoise.wasm`,
 * - `echogarden`: `@echogarden/rnnoise-wasm`, the build used before, when it is
 *   installed (it is no longer a dependency: `npm i --no-save @echogarden/rnnoise-wasm`
 *   to include it).
 *
 * Every build gets the same 480-sample frames (int16-range floats, as RNNoise
 * wants) with its own fresh state per fixture. Reported against the first build:
 * the largest absolute sample difference (in int16 units and dBFS), the RMS of the
 * difference in dB relative to the RMS of the reference output, and the largest
 * VAD difference. Speed: each frame is timed for every build in turn (so all see
 * the same machine state), over `ROUNDS` passes after a warm-up pass; medians of
 * µs per 480-sample frame, the WASM call only (copying in and out is the same for all).
 *
 * Run: `node --import tsx bench/rnnoise.ts`
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { instantiateRnnoise, RNNOISE_FRAME_SAMPLES } from '../wasm/rnnoise.js';
import { readWav } from '../test/helpers/audio.js';

const FRAME = RNNOISE_FRAME_SAMPLES;
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const FIXTURES = ['speech-noisy-48k.wav', 'noise-pink-48k.wav', 'speech-48k.wav'];
const fixture = (name: string) => join(fileURLToPath(new URL('.', import.meta.url)), '..', 'test', 'fixtures', name);

/** One build behind a common face: a state, a frame in, a frame out. */
interface Build {
  name: string;
  newState(): number;
  freeState(state: number): void;
  /** Heap float index of the frame buffer (in and out). */
  base: number;
  heap(): Float32Array;
  run(state: number): number;
}

async function sapphi(kind: 'simd' | 'scalar'): Promise<Build> {
  const m = await instantiateRnnoise(kind);
  const ptr = m.malloc(FRAME * 4);
  return { name: kind, newState: () => m.create(), freeState: (s) => m.destroy(s), base: ptr >> 2, heap: () => m.heapF32(), run: (s) => m.processFrame(s, ptr, ptr) };
}

interface EmscriptenRnnoise {
  _rnnoise_create(model: number): number;
  _rnnoise_destroy(state: number): void;
  _rnnoise_process_frame(state: number, outPtr: number, inPtr: number): number;
  _malloc(bytes: number): number;
  HEAPF32: Float32Array;
}

async function echogarden(): Promise<Build | undefined> {
  let factory: () => Promise<EmscriptenRnnoise>;
  try {
    const name = '@echogarden/rnnoise-wasm'; // a variable, so TypeScript does not require the package
    factory = ((await import(name)) as { default: () => Promise<EmscriptenRnnoise> }).default;
  } catch {
    return undefined;
  }
  const m = await factory();
  const ptr = m._malloc(FRAME * 4);
  return { name: 'echogarden', newState: () => m._rnnoise_create(0), freeState: (s) => m._rnnoise_destroy(s), base: ptr >> 2, heap: () => m.HEAPF32, run: (s) => m._rnnoise_process_frame(s, ptr, ptr) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const db = (x: number) => (x > 0 ? 20 * Math.log10(x) : -Infinity);

/** Runs every frame of `pcm` (−1..1) through a fresh state of `b`; returns the output (int16 range) and VADs. */
function runAll(b: Build, pcm: Float32Array): { out: Float32Array; vad: Float32Array } {
  const frames = Math.floor(pcm.length / FRAME);
  const out = new Float32Array(frames * FRAME);
  const vad = new Float32Array(frames);
  const state = b.newState();
  for (let f = 0; f < frames; f++) {
    const heap = b.heap();
    for (let i = 0; i < FRAME; i++) heap[b.base + i] = pcm[f * FRAME + i] * 32768;
    vad[f] = b.run(state);
    out.set(b.heap().subarray(b.base, b.base + FRAME), f * FRAME);
  }
  b.freeState(state);
  return { out, vad };
}

/** What `--json` carries: each fixture's differences from the reference build, and each build's speed. */
export interface RnnoiseResult {
  reference: string;
  fixtures: Array<{ name: string; frames: number; builds: Array<{ name: string; maxAbsDiffInt16: number; rmsDiffDb: number | null; maxVadDiff: number; meanVad: number }> }>;
  usPerFrame: Array<{ name: string; median: number; timesReference: number; framesTimed: number }>;
}

export async function benchRnnoise(): Promise<RnnoiseResult> {
  const builds = [await sapphi('simd'), await sapphi('scalar')];
  const eg = await echogarden();
  if (eg) builds.unshift(eg);
  else console.log('(@echogarden/rnnoise-wasm not installed: comparing the two sapphi-red builds only)');
  const reference = builds[0];
  console.log(`RNNoise builds, 480-sample frames, reference = ${reference.name}; ${ROUNDS} timed rounds per fixture`);

  const times = new Map<string, number[]>(builds.map((b) => [b.name, []]));
  const result: RnnoiseResult = { reference: reference.name, fixtures: [], usPerFrame: [] };
  for (const name of FIXTURES) {
    const pcm = (await readWav(fixture(name))).channels[0];
    const frames = Math.floor(pcm.length / FRAME);
    const results = builds.map((b) => runAll(b, pcm));
    const ref = results[0];
    let refEnergy = 0;
    for (const v of ref.out) refEnergy += v * v;
    const refMeanVad = ref.vad.reduce((s, v) => s + v, 0) / frames;
    const fixtureResult: RnnoiseResult['fixtures'][number] = { name, frames, builds: [] };
    result.fixtures.push(fixtureResult);
    console.log(`\n${name}: ${frames} frames, reference output RMS ${db(Math.sqrt(refEnergy / ref.out.length) / 32768).toFixed(1)} dBFS, mean VAD ${refMeanVad.toFixed(3)}`);
    for (let k = 1; k < builds.length; k++) {
      const r = results[k];
      let maxAbs = 0;
      let diffEnergy = 0;
      let maxVad = 0;
      for (let i = 0; i < r.out.length; i++) {
        const d = Math.abs(r.out[i] - ref.out[i]);
        if (d > maxAbs) maxAbs = d;
        diffEnergy += d * d;
      }
      for (let f = 0; f < frames; f++) maxVad = Math.max(maxVad, Math.abs(r.vad[f] - ref.vad[f]));
      const meanVad = r.vad.reduce((s, v) => s + v, 0) / frames;
      const rmsRel = diffEnergy === 0 ? -Infinity : 10 * Math.log10(diffEnergy / refEnergy);
      // JSON has no -Infinity: identical outputs are null.
      fixtureResult.builds.push({ name: builds[k].name, maxAbsDiffInt16: maxAbs, rmsDiffDb: Number.isFinite(rmsRel) ? rmsRel : null, maxVadDiff: maxVad, meanVad });
      console.log(
        `  ${r === ref ? '' : builds[k].name.padEnd(10)} max |Δsample| ${maxAbs.toExponential(2)} int16 units (${db(maxAbs / 32768).toFixed(1)} dBFS), ` +
          `RMS Δ ${rmsRel.toFixed(1)} dB re output, max |ΔVAD| ${maxVad.toExponential(2)}, mean VAD ${meanVad.toFixed(3)}`,
      );
    }

    // Speed: each frame through every build in turn, fresh states per round.
    const states = builds.map((b) => b.newState());
    const pass = (timed: boolean) => {
      for (let f = 0; f < frames; f++) {
        for (let k = 0; k < builds.length; k++) {
          const b = builds[k];
          const heap = b.heap();
          for (let i = 0; i < FRAME; i++) heap[b.base + i] = pcm[f * FRAME + i] * 32768;
          const t0 = process.hrtime.bigint();
          b.run(states[k]);
          if (timed) times.get(b.name)!.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
      }
    };
    pass(false);
    for (let r = 0; r < ROUNDS; r++) pass(true);
    builds.forEach((b, k) => b.freeState(states[k]));
  }

  console.log('\nµs per 480-sample frame (median over all fixtures and rounds):');
  const base = median(times.get(reference.name)!);
  for (const b of builds) {
    const m = median(times.get(b.name)!);
    console.log(`  ${b.name.padEnd(10)} ${m.toFixed(1)} µs  (${(base / m).toFixed(2)}× ${reference.name}), ${times.get(b.name)!.length} frames timed`);
    result.usPerFrame.push({ name: b.name, median: m, timesReference: base / m, framesTimed: times.get(b.name)!.length });
  }
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchRnnoise();
