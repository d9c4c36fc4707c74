/**
 * (d) TS stage vs. a WASM kernel of our own, per 20 ms frame of 48 kHz mono
 * (960 samples), for the two kernels where WASM could plausibly win: the biquad
 * (scalar, recursive) and gain (SIMD). The WASM side includes copying the frame
 * into WASM memory and back, as a stage fed from the worker's JS arrays must.
 * The biquad candidate is compiled from bench/kernels/filters.wat with wabt at
 * bench time (it does not ship: 1.2–1.4×); gain is measured with the kernel the
 * `gain` stage ships (wasm/gain-kernel.ts) against the plain TS loop.
 *
 * Run alone: `node --import tsx bench/kernels.ts`.
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import wabtInit from 'wabt';
import { biquadCoefficients, createHighpassStage } from '../src/dsp/biquad.js';
import { scaleInPlace } from '../wasm/gain-kernel.js';
import type { PcmChunk, Stage } from '../src/dsp/types.js';

export interface KernelResult {
  name: string;
  tsUs: number;
  wasmUs: number;
  /** TS time ÷ WASM time: ≥ 2 would justify a kernel in wasm/. */
  speedup: number;
}

interface Kernels {
  memory: { buffer: ArrayBuffer };
  biquad(p: number, n: number, b0: number, b1: number, b2: number, a1: number, a2: number, s: number): void;
}

const FRAME = 960;

async function compile(): Promise<Kernels> {
  const wabt = await wabtInit();
  const text = await readFile(new URL('./kernels/filters.wat', import.meta.url), 'utf8');
  const module = wabt.parseWat('filters.wat', text, { simd: true });
  const { buffer } = module.toBinary({});
  module.destroy();
  // The DOM lib (WebAssembly's types) is not in this project's tsconfig; the global is there at runtime.
  const wasm = (globalThis as unknown as { WebAssembly: { instantiate(bytes: Uint8Array): Promise<{ instance: { exports: unknown } }> } }).WebAssembly;
  const { instance } = await wasm.instantiate(buffer);
  return instance.exports as Kernels;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median µs of `fn` over `rounds` calls after as many warm-up calls. */
function time(rounds: number, fn: () => void): number {
  for (let i = 0; i < rounds; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return median(times);
}

export async function benchKernels(rounds = 5000): Promise<KernelResult[]> {
  const k = await compile();
  const frame = new Float32Array(FRAME);
  for (let i = 0; i < FRAME; i++) frame[i] = 0.3 * Math.sin((2 * Math.PI * 440 * i) / 48000);
  const heap = new Float32Array(k.memory.buffer, 64, FRAME); // samples at byte 64; state at byte 0
  const runWasm = (kernel: () => void) => () => {
    heap.set(frame);
    kernel();
    frame.set(heap);
  };
  const runTs = (stage: Stage) => {
    const chunk: PcmChunk = { data: frame };
    return () => stage.process(chunk);
  };
  const mono = { sampleRate: 48000, channels: 1 };
  const c = biquadCoefficients('highpass', 80, Math.SQRT1_2, 48000);
  const results: KernelResult[] = [];
  const add = (name: string, tsUs: number, wasmUs: number) => results.push({ name, tsUs, wasmUs, speedup: tsUs / wasmUs });
  add(
    'highpass 80 Hz (biquad)',
    time(rounds, runTs(createHighpassStage({ type: 'highpass', frequency: 80 }, mono))),
    time(rounds, runWasm(() => k.biquad(64, FRAME, c.b0, c.b1, c.b2, c.a1, c.a2, 0))),
  );
  // Gain: the TS loop the stage used before, against the kernel it ships now (wasm/gain-kernel.ts).
  const g = 10 ** (-1 / 20); // stays bounded over many rounds
  const tsGain = (data: Float32Array, factor: number) => {
    for (let i = 0; i < data.length; i++) data[i] *= factor;
  };
  add('gain −1 dB (shipped kernel)', time(rounds, () => tsGain(frame, g)), time(rounds, () => scaleInPlace(frame, g)));
  return results;
}

export function printKernels(results: KernelResult[]): void {
  console.log('\n(d) TS stage vs. own WASM kernel, µs per 20 ms frame (WASM includes the copy in and out)');
  console.log('  kernel'.padEnd(30) + 'TS'.padStart(8) + 'WASM'.padStart(8) + 'TS/WASM'.padStart(10));
  for (const r of results) console.log(`  ${r.name}`.padEnd(30) + r.tsUs.toFixed(2).padStart(8) + r.wasmUs.toFixed(2).padStart(8) + r.speedup.toFixed(2).padStart(10));
  console.log('  a kernel moves into wasm/ only at TS/WASM ≥ 2');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) printKernels(await benchKernels());
