/**
 * Request body types, checked before a body is read (RFC 9110 §15.5.16): a
 * route that takes an SDP offer (WHIP and WHEP POST) takes nothing else, and
 * every other route that reads a body takes JSON (routes that read none are
 * not checked). It runs in an `onRequest` hook, after access control, so the
 * JSON parser never runs on a body sent to a WHIP endpoint (bad JSON there got
 * 400 instead of 415), and an offer or text sent to a control route gets 415
 * instead of a schema error.
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route reads of a body: `sdp` (an offer; any other Content-Type gets 415), `none` (nothing: not checked), or JSON when unset (SDP gets 415). */
    body?: 'sdp' | 'none';
  }
}

const SDP_TYPES = new Set(['application/sdp', 'application/trickle-ice-sdpfrag']);

/** The media type of a Content-Type header, lower case, without parameters. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

/** The request has a body: a length above 0, or a chunked one. */
function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

export function installBodyTypeCheck(app: FastifyInstance): void {
  app.addHook('onRequest', async (req) => {
    const route = req.routeOptions;
    if (route.url === undefined || (req.method !== 'POST' && req.method !== 'PUT')) return;
    const header = req.headers['content-type'];
    const type = mediaType(header);
    if (route.config.body === 'none') return;
    if (route.config.body === 'sdp') {
      if (type !== 'application/sdp') throw errors.UNSUPPORTED_MEDIA_TYPE(header?.slice(0, 100), 'application/sdp');
    } else if (SDP_TYPES.has(type) || (hasBody(req.headers) && type !== 'application/json' && !type.endsWith('+json'))) {
      // fastify would parse text/plain as a string, which then failed the route's schema (400).
      throw errors.UNSUPPORTED_MEDIA_TYPE(header?.slice(0, 100), 'application/json');
    } else if (header !== undefined && !hasBody(req.headers)) {
      // An empty body is no body, whatever its type (a browser's `fetch` with `body: ''` says
      // text/plain, `curl -d ''` a form): without this, fastify parses it by its type, so
      // text/plain reached the route as '' (400) and a form type found no parser (415).
      // fastify reads the header after this hook, and reads no body for a request without one.
      delete req.headers['content-type'];
    }
  });
}
