/**
 * Signed download links for recordings. A browser's `<audio src>` and a plain
 * link cannot send an Authorization header, so the admin listing hands out
 * URLs that carry their own short-lived proof instead:
 * `/recordings/NAME?expires=UNIX&signature=HMAC`. The key is random per server
 * start (links die with the process) and the signature covers the name and
 * the expiry, so a link opens exactly one file until it expires.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { errors } from '../errors.js';

export class DownloadLinks {
  readonly #key = randomBytes(32);

  /** @param ttlSeconds how long a link stays valid. */
  constructor(readonly ttlSeconds: number) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw errors.OPTION_INVALID('downloadLinkSeconds', `must be an integer ≥ 1, got ${ttlSeconds}`);
  }

  /** A URL path (with query) that downloads `name` without a token until it expires. */
  sign(name: string, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + this.ttlSeconds;
    return `/recordings/${name.split('/').map(encodeURIComponent).join('/')}?expires=${expires}&signature=${this.#mac(name, expires)}`;
  }

  /** True when `signature` was made by `sign(name)` and has not expired. */
  verify(name: string, expires: unknown, signature: unknown, now = Date.now()): boolean {
    return this.check(name, expires, signature, now) === 'valid';
  }

  /**
   * What a request's link parameters are: `none` (neither given), `valid`,
   * `expired` (well formed, past its time: the time is the link's own, so
   * saying so tells nothing secret) or `invalid` (malformed, or a signature
   * that does not match: altered, or made by another server or process).
   */
  check(name: string, expires: unknown, signature: unknown, now = Date.now()): 'none' | 'valid' | 'expired' | 'invalid' {
    if (expires === undefined && signature === undefined) return 'none';
    if (typeof expires !== 'string' || typeof signature !== 'string' || !/^\d{1,12}$/.test(expires)) return 'invalid';
    const expected = Buffer.from(this.#mac(name, Number(expires)));
    const given = Buffer.from(signature);
    if (!(given.length === expected.length && timingSafeEqual(given, expected))) return 'invalid';
    return Number(expires) * 1000 < now ? 'expired' : 'valid';
  }

  #mac(name: string, expires: number): string {
    return createHmac('sha256', this.#key).update(`${name}\n${expires}`).digest('base64url');
  }
}
