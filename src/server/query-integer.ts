import { errors } from '../errors.js';

/**
 * A query parameter that must be a whole number from `min` to `max`, written in decimal digits.
 * `Number()` would also read `1e3`, `0x10`, ` 5` or `5.0` as numbers; a client that sends those
 * is told what is wanted instead of being served a value it did not write.
 * `undefined` (the parameter is absent) gives `fallback`; a repeated parameter (an array) is refused.
 */
export function queryInteger(value: unknown, fallback: number, min: number, max: number, detail: string): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max)) throw errors.BODY_INVALID(detail);
  return n;
}
