/**
 * Signal levels of PCM blocks, computed in the worker for every output frame so
 * the main thread (stats, meters) never has to touch samples.
 */

/** Linear levels of a block of samples. */
export interface Levels {
  /** Root mean square, linear 0..1 (a full-scale sine is ≈ 0.707). */
  rms: number;
  /** Largest absolute sample, linear 0..1 (may exceed 1 if the input clips). */
  peak: number;
  /** Samples at or beyond full scale (|x| ≥ 32767/32768): clipped in 16-bit terms. */
  clipped: number;
}

/** The 16-bit full-scale level: a float sample this loud or louder is clipped once written as s16. */
export const CLIP_LEVEL = 32767 / 32768;

/**
 * RMS, peak and clipped samples over all samples of `data` (interleaved
 * channels count together). An empty block measures 0 / 0 / 0. One pass, no allocation beyond the result.
 */
export function measureLevels(data: Float32Array): Levels {
  let sum = 0;
  let peak = 0;
  let clipped = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    sum += v * v;
    const a = v < 0 ? -v : v;
    if (a > peak) peak = a;
    if (a >= CLIP_LEVEL) clipped++;
  }
  return { rms: data.length > 0 ? Math.sqrt(sum / data.length) : 0, peak, clipped };
}

/**
 * The lowest level `toDbfs` reports. Digital silence is −∞ dBFS, which JSON
 * cannot carry (it becomes `null`) and which breaks averages and Prometheus
 * gauges; −120 dBFS is far below the noise floor of any real input (16-bit
 * audio bottoms out near −96 dBFS, a 24-bit converter near −144 in theory, ~−120 in practice).
 */
export const DBFS_FLOOR = -120;

/**
 * Converts a linear level (RMS or peak, 1 = full scale) to dBFS, `20·log10(x)`,
 * clamped below at {@link DBFS_FLOOR}. Zero, negative and NaN inputs give the floor.
 */
export function toDbfs(linear: number): number {
  if (!(linear > 0)) return DBFS_FLOOR;
  const db = 20 * Math.log10(linear);
  return db < DBFS_FLOOR ? DBFS_FLOOR : db;
}
