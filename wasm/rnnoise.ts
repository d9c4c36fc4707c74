/**
 * RNNoise: one WASM instance per thread, many denoiser states inside its heap.
 *
 * The build is `rnnoise_simd.wasm` from `@sapphi-red/web-noise-suppressor`
 * (Shiguredo's SIMD build of RNNoise with the standard model). It ships for an
 * AudioWorklet, so its JS glue is not used here: the `.wasm` is instantiated
 * directly with the three imports it needs (memcpy, heap growth, assert). It
 * is loaded from the dependency's own install (resolved through the package's
 * `exports`), never from a path relative to this source tree, so it works the
 * same from `src/`, from `dist/` and from an installed package. Node ≥ 20 runs
 * WASM SIMD. Measured against `@echogarden/rnnoise-wasm` (the build used before)
 * on the fixtures: same output to float rounding and the same VAD, ~1.4× faster
 * (`node --import tsx bench/rnnoise.ts`).
 *
 * RNNoise works on 480-sample frames at 48 kHz and wants samples in int16 range
 * (±32768) as float: fed −1..1 it silently does nothing. Heap growth replaces
 * the heap's ArrayBuffer, so the Float32Array view is re-taken whenever the
 * buffer changed (checked on every call, not cached across a `malloc`).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

export const RNNOISE_FRAME_SAMPLES = 480;
export const RNNOISE_SAMPLE_RATE = 48000;

/** The two builds the package ships: SIMD (used) and scalar (for comparison in the bench). */
export type RnnoiseBuild = 'simd' | 'scalar';

/** Absolute path of the RNNoise `.wasm` inside the installed `@sapphi-red/web-noise-suppressor`. */
export function rnnoiseWasmPath(build: RnnoiseBuild = 'simd'): string {
  const require = createRequire(import.meta.url);
  return require.resolve(`@sapphi-red/web-noise-suppressor/${build === 'simd' ? 'rnnoise_simd.wasm' : 'rnnoise.wasm'}`);
}

/** The parts of the WebAssembly API used here (the DOM lib, which types it, is not in this project's tsconfig). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmGlobal {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: unknown } }>;
}

interface RnnoiseExports {
  memory: WasmMemory;
  __wasm_call_ctors(): void;
  emscripten_stack_init(): void;
  rnnoise_create(model: number): number;
  rnnoise_destroy(state: number): void;
  rnnoise_process_frame(state: number, outPtr: number, inPtr: number): number;
  malloc(bytes: number): number;
  free(ptr: number): void;
}

/** One instantiated RNNoise module: its C API plus a view of its heap that follows heap growth. */
export interface RnnoiseWasm {
  /** A new denoiser state with the built-in model (0 if the heap is exhausted). */
  create(): number;
  destroy(state: number): void;
  /** Denoises 480 int16-range floats at `inPtr` into `outPtr` (may be the same); returns the VAD probability. */
  processFrame(state: number, outPtr: number, inPtr: number): number;
  malloc(bytes: number): number;
  free(ptr: number): void;
  /** The heap as floats, re-taken if the heap grew since the last call. */
  heapF32(): Float32Array;
}

/** Largest heap Emscripten builds address (2 GiB). */
const MAX_HEAP = 2 ** 31;

/** Compiles and instantiates one RNNoise build (each call is a separate instance with its own heap). */
export async function instantiateRnnoise(build: RnnoiseBuild = 'simd'): Promise<RnnoiseWasm> {
  const bytes = await readFile(rnnoiseWasmPath(build));
  let memory: WasmMemory | undefined;
  const mem = (): WasmMemory => memory!;
  const cString = (ptr: number): string => {
    const heap = new Uint8Array(mem().buffer);
    let end = ptr;
    while (end < heap.length && heap[end] !== 0) end++;
    return Buffer.from(heap.subarray(ptr, end)).toString('utf8');
  };
  const env = {
    emscripten_memcpy_big(dest: number, src: number, n: number): void {
      new Uint8Array(mem().buffer).copyWithin(dest, src, src + n);
    },
    // Emscripten's policy: grow by 20 % (at least to the request), in 64 KiB pages, up to 2 GiB; 0 = failed.
    emscripten_resize_heap(requested: number): number {
      requested >>>= 0;
      const old = mem().buffer.byteLength;
      if (requested > MAX_HEAP) return 0;
      const target = Math.min(MAX_HEAP, Math.max(requested, Math.ceil((old * 1.2) / 65536) * 65536));
      try {
        mem().grow((target - old + 65535) >>> 16);
        return 1;
      } catch {
        return 0;
      }
    },
    __assert_fail(condition: number, file: number, line: number, fn: number): never {
      throw new Error(`RNNoise assertion failed: ${cString(condition)} at ${cString(file)}:${line} (${cString(fn)})`);
    },
  };
  const wasm = (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly;
  const { instance } = await wasm.instantiate(bytes, { env, wasi_snapshot_preview1: env });
  const x = instance.exports as unknown as RnnoiseExports;
  memory = x.memory;
  x.emscripten_stack_init();
  x.__wasm_call_ctors();
  let buffer = memory.buffer;
  let heap = new Float32Array(buffer);
  return {
    create: () => x.rnnoise_create(0),
    destroy: (state) => x.rnnoise_destroy(state),
    processFrame: (state, outPtr, inPtr) => x.rnnoise_process_frame(state, outPtr, inPtr),
    malloc: (n) => x.malloc(n),
    free: (p) => x.free(p),
    heapF32() {
      if (mem().buffer !== buffer) {
        buffer = mem().buffer;
        heap = new Float32Array(buffer);
      }
      return heap;
    },
  };
}

let modulePromise: Promise<RnnoiseWasm> | undefined;
let loaded: RnnoiseWasm | undefined;
let framePtr = 0;

/** Loads (once per thread) and compiles the WASM module. */
export async function loadRnnoise(): Promise<void> {
  modulePromise ??= instantiateRnnoise('simd');
  try {
    loaded = await modulePromise;
  } catch (e) {
    modulePromise = undefined; // let a later call try again
    throw e;
  }
  if (!framePtr) {
    framePtr = loaded.malloc(RNNOISE_FRAME_SAMPLES * 4);
    if (!framePtr) throw new Error('RNNoise could not allocate its frame buffer (WASM heap exhausted)');
  }
}

function rnnoise(): RnnoiseWasm {
  if (!loaded) throw new Error('RNNoise WASM is not loaded: await loadRnnoise() first');
  return loaded;
}

/** One stream's denoiser state (18.5 KB of the thread's WASM heap). */
export class RnnoiseState {
  readonly #state: number;
  #closed = false;

  constructor() {
    this.#state = rnnoise().create();
    if (!this.#state) throw new Error('RNNoise could not allocate a state (WASM heap exhausted)');
  }

  /**
   * Denoises 480 samples in place (values in −1..1) and returns the voice
   * activity probability (0..1) RNNoise reports for the frame.
   */
  processFrame(frame: Float32Array): number {
    if (this.#closed) throw new Error('RnnoiseState is closed');
    const m = rnnoise();
    const heap = m.heapF32(); // the live heap: a state created since the last call may have grown it
    const base = framePtr >> 2;
    for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) heap[base + i] = frame[i] * 32768;
    const vad = m.processFrame(this.#state, framePtr, framePtr);
    const out = m.heapF32(); // processing never grows the heap, but stay safe
    for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) frame[i] = out[base + i] / 32768;
    return vad;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    rnnoise().destroy(this.#state);
  }
}
