/**
 * RNNoise (`@echogarden/rnnoise-wasm`): one WASM instance per thread, many
 * denoiser states inside its heap (18.5 KB each).
 *
 * RNNoise works on 480-sample frames at 48 kHz and wants samples in int16 range
 * (±32768) as float: fed −1..1 it silently does nothing. Heap growth replaces the
 * heap's ArrayBuffer, so views are taken from the live heap on every call.
 */
import createRnnoiseModule from '@echogarden/rnnoise-wasm';

interface RnnoiseModule {
  _rnnoise_create(model: number): number;
  _rnnoise_destroy(state: number): void;
  _rnnoise_process_frame(state: number, outPtr: number, inPtr: number): number;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPF32: Float32Array;
}

export const RNNOISE_FRAME_SAMPLES = 480;
export const RNNOISE_SAMPLE_RATE = 48000;

let modulePromise: Promise<RnnoiseModule> | undefined;
let loaded: RnnoiseModule | undefined;
let framePtr = 0;

/** Loads (once per thread) and compiles the WASM module. */
export async function loadRnnoise(): Promise<void> {
  modulePromise ??= (createRnnoiseModule as () => Promise<RnnoiseModule>)();
  loaded = await modulePromise;
  if (!framePtr) framePtr = loaded._malloc(RNNOISE_FRAME_SAMPLES * 4);
}

function rnnoise(): RnnoiseModule {
  if (!loaded) throw new Error('RNNoise WASM is not loaded: await loadRnnoise() first');
  return loaded;
}

/** One stream's denoiser state. */
export class RnnoiseState {
  readonly #state: number;
  #closed = false;

  constructor() {
    this.#state = rnnoise()._rnnoise_create(0);
    if (!this.#state) throw new Error('RNNoise could not allocate a state (WASM heap exhausted)');
  }

  /**
   * Denoises 480 samples in place (values in −1..1) and returns the voice
   * activity probability (0..1) RNNoise reports for the frame.
   */
  processFrame(frame: Float32Array): number {
    if (this.#closed) throw new Error('RnnoiseState is closed');
    const m = rnnoise();
    const heap = m.HEAPF32;
    const base = framePtr >> 2;
    for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) heap[base + i] = frame[i] * 32768;
    const vad = m._rnnoise_process_frame(this.#state, framePtr, framePtr);
    const out = m.HEAPF32; // re-read: processing never grows the heap, but stay safe
    for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) frame[i] = out[base + i] / 32768;
    return vad;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    rnnoise()._rnnoise_destroy(this.#state);
  }
}
