/** RMS and peak of a block of samples (linear, 0..1). */
export function measureLevels(data: Float32Array): { rms: number; peak: number } {
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    sum += v * v;
    const a = v < 0 ? -v : v;
    if (a > peak) peak = a;
  }
  return { rms: data.length > 0 ? Math.sqrt(sum / data.length) : 0, peak };
}
