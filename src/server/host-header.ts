/**
 * A request with more than one Host header, or an HTTP/1.1 request without one, is refused with
 * 400, as RFC 9112 §3.2 requires. Node
 * keeps the first and drops the rest, while a proxy in front may have routed or checked by
 * another, and earshot's access control reads Host (an open role answers only loopback hosts):
 * two servers reading one request two ways is how such checks are got round.
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';

/** Call first, before any hook that reads Host (CORS, access control). */
export function refuseDuplicateHost(app: FastifyInstance): void {
  app.addHook('onRequest', async (req) => {
    const raw = req.raw.rawHeaders;
    let hosts = 0;
    for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') hosts++;
    if (hosts > 1) throw errors.BAD_REQUEST(`The request has ${hosts} Host headers; HTTP/1.1 allows one (RFC 9112 §3.2).`);
    // HTTP/1.0 may omit it; HTTP/1.1 must send it (Node's own check, turned off in httpServerLimits, answered with no body).
    if (hosts === 0 && req.raw.httpVersion !== '1.0') throw errors.BAD_REQUEST('The request has no Host header; HTTP/1.1 requires one (RFC 9112 §3.2).');
  });
}
