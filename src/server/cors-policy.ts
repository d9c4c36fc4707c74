/**
 * CORS per route family (served by @fastify/cors):
 *
 * - WHIP (`/whip/…`): the allow-list, default `*` (RFC 9725 §4.1: browsers
 *   publish from any page; the publish token protects the endpoint). WHIP's
 *   own OPTIONS handler answers after the CORS headers are set, so it can add
 *   `Accept-Post` and, for a plain OPTIONS without CORS, still reply.
 * - WHEP (`/whep/…`): WHIP's methods and headers (PATCH, so that a player's
 *   page can read its 501), with the control API's origins.
 * - Everything else: only the origins the operator lists; none by default, so a
 *   page on another origin that the operator happens to visit cannot read
 *   recordings or statistics from a server on their machine. Never `*`.
 */
import type { FastifyCorsOptions } from '@fastify/cors';
import { errors } from '../errors.js';
import { describeValue } from '../core/option-checks.js';
import type { RouteMethods } from './route-methods.js';

const WHIP_EXPOSED = ['Location', 'ETag', 'Link', 'Accept-Post', 'Retry-After', 'WWW-Authenticate', 'Allow'];
const API_EXPOSED = ['Location', 'ETag', 'Retry-After', 'Content-Range', 'Accept-Ranges', 'Content-Disposition', 'WWW-Authenticate', 'Allow'];

/**
 * WHIP's resources and WHEP's, which follow it: POST an offer, DELETE or PATCH
 * the session (PATCH answers 501, and a page must be able to read that). Their
 * OPTIONS routes reply themselves, adding Allow and Accept-Post.
 */
function sdpResourcePolicy(origin: FastifyCorsOptions['origin'], maxAge: number): FastifyCorsOptions {
  return {
    origin,
    methods: ['POST', 'DELETE', 'PATCH', 'OPTIONS'],
    allowedHeaders: ['Authorization', 'Content-Type', 'If-Match'],
    exposedHeaders: WHIP_EXPOSED,
    maxAge,
    preflightContinue: true,
    strictPreflight: false,
  };
}

/**
 * The CORS options of a request, for @fastify/cors's `delegator`. An OPTIONS request to a
 * path no route has (`paths` knows them once the routes exist) gets no CORS: it then falls
 * through to the 404 every unknown path gets, instead of a preflight's 204.
 */
export function corsDelegator(apiOrigins: string[], whipOrigins: string[], paths: () => RouteMethods | undefined) {
  return (req: { url: string; method: string }, callback: (error: Error | null, options: FastifyCorsOptions) => void): void => {
    const known = paths();
    if (req.method === 'OPTIONS' && known !== undefined && known.allowed(req.url.split('?')[0]).length === 0) return callback(null, { origin: false });
    callback(null, corsPolicy(req.url, apiOrigins, whipOrigins));
  };
}

export function corsPolicy(url: string, apiOrigins: string[], whipOrigins: string[]): FastifyCorsOptions {
  if (url.startsWith('/whip/')) return sdpResourcePolicy(whipOrigins.includes('*') ? '*' : whipOrigins.length > 0 ? whipOrigins : false, 86400);
  // WHEP: WHIP's methods and headers, with the control API's origins (a peer's audio is an operator's to hear).
  if (url.startsWith('/whep/')) return sdpResourcePolicy(apiOrigins.length > 0 ? apiOrigins : false, 600);
  return {
    origin: apiOrigins.length > 0 ? apiOrigins : false,
    methods: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Range'],
    exposedHeaders: API_EXPOSED,
    maxAge: 600,
    // An OPTIONS without `Origin` is a plain HTTP request, not a broken preflight: 204, not a text/plain 400.
    strictPreflight: false,
  };
}

/** An origin as browsers send it: `scheme://host[:port]`, no path; `*` only where allowed. */
export function checkOrigin(option: string, origin: string, starAllowed: boolean): void {
  if (origin === '*') {
    if (starAllowed) return;
    throw errors.OPTION_INVALID(option, 'must not contain "*": the control API reveals recordings and statistics; list the origins that may call it');
  }
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw errors.OPTION_INVALID(option, `must list origins like https://ops.example.com, got ${describeValue(origin)}`);
  }
  if (url.origin !== origin) throw errors.OPTION_INVALID(option, `must list origins (scheme, host and port only): ${describeValue(origin)} is not an origin; use "${url.origin}"`);
}
