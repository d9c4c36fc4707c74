/**
 * The one float → 16-bit quantizer of recordings: round to nearest, clipped,
 * on a 32767 scale so that +1.0 stays in range (+1 and above → 32767, −1
 * and below → −32768, NaN → 0). The WAV writer uses it for float input, and
 * pool workers use it to hand s16 record sinks samples ready to copy (the main
 * thread then only copies bytes), so a recording is bit-identical whichever
 * side quantized.
 */

/** Quantizes one sample. */
export function quantizeSample(v: number): number {
  return v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
}

/** Quantizes `count` samples of `src` from `from` into `dst` from `to` (default: all of `src` to the start of `dst`). */
export function quantizeS16(src: Float32Array, dst: Int16Array, from = 0, to = 0, count = src.length - from): void {
  for (let i = 0; i < count; i++) {
    const v = src[from + i];
    dst[to + i] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
  }
}
