/**
 * The one float → 16-bit quantizer of the project: round(x · 32768) to the
 * nearest, clipped to −32768..32767 (+1.0 and above → 32767, NaN → 0). It is
 * the inverse of every 16-bit → float conversion here (÷32768: Opus decode,
 * PCM input, s16 frames, WAV reading), so 16-bit audio goes through floats
 * and back unchanged. The WAV writer uses it for float input, pool workers to
 * hand s16 record sinks samples ready to copy (so a recording is
 * bit-identical whichever side quantized), the `format` stage to put floats
 * on the 16-bit grid, and the Opus encoder for its input.
 */

/** Quantizes one sample. */
export function quantizeSample(v: number): number {
  const q = Math.round(v * 32768);
  return q > 32767 ? 32767 : q < -32768 ? -32768 : q || 0;
}

/** Quantizes `count` samples of `src` from `from` into `dst` from `to` (default: all of `src` to the start of `dst`). */
export function quantizeS16(src: Float32Array, dst: Int16Array, from = 0, to = 0, count = src.length - from): void {
  for (let i = 0; i < count; i++) {
    const v = src[from + i];
    // Inlined quantizeSample (the hot loop of s16 recordings); NaN stores as 0 in an Int16Array.
    const q = Math.round(v * 32768);
    dst[to + i] = q > 32767 ? 32767 : q < -32768 ? -32768 : q;
  }
}
