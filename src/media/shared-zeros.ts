/**
 * Read-only blocks of zeros, one per sample type and thread, grown to the
 * longest asked for. Silence travels a long way (a DTX pause, a long gap, a
 * gate that closed): where its samples are only read, a view of these zeros
 * stands for them instead of a new zeroed array each time (a worker's heap
 * collects such external memory with full collections: at 40 silent talkers,
 * each up to a second of zeros per comfort-noise update, each worker ran one
 * every ~3 s). Never write to a view of them, and never hand one to code
 * that might (user code gets its own array).
 */

/** Every block handed out, current or outgrown, to tell their views apart. */
const blocks = new WeakSet<ArrayBufferLike>();
let f32 = new Float32Array(0);
let s16 = new Int16Array(0);

/** `length` float zeros (a view of the shared block; read only). */
export function sharedZerosF32(length: number): Float32Array {
  // Grown by replacing: views handed out before stay valid (and zero).
  if (f32.length < length) {
    f32 = new Float32Array(length);
    blocks.add(f32.buffer);
  }
  return f32.subarray(0, length);
}

/** `length` 16-bit zeros (a view of the shared block; read only). */
export function sharedZerosS16(length: number): Int16Array {
  if (s16.length < length) {
    s16 = new Int16Array(length);
    blocks.add(s16.buffer);
  }
  return s16.subarray(0, length);
}

/** Whether `data` is a view of shared zeros (never to be written: copy it for code that might). */
export function isSharedZeros(data: Float32Array | Int16Array): boolean {
  return blocks.has(data.buffer);
}

/** Whether every sample of `data` is zero (±0): a view of shared zeros at once, else a pass over it. */
export function allZeros(data: Float32Array | Int16Array): boolean {
  if (isSharedZeros(data)) return true;
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

/**
 * Whether a frame's samples (`data`: all of them, or the part a sink uses)
 * are silence that may go by its length: its peak says so, and the samples
 * confirm it (at once for shared zeros, the worker's frames of silence),
 * since a frame made by hand may carry any peak. Frames of sound cost one
 * comparison.
 */
export function isSilence(peak: number, data: Float32Array | Int16Array): boolean {
  return peak === 0 && allZeros(data);
}
