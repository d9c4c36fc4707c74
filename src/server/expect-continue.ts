/**
 * `Expect: 100-continue` (curl sends it with every body over 1 KB, so with
 * every SDP offer): Node answers `100 Continue` as soon as the headers
 * arrive, before any check, so a client uploaded its whole body and was then
 * refused (401 without the token, 415 for a wrong Content-Type, 413 for a body
 * over the route's limit). Here the 100 is sent only once the request has
 * passed access control and the body-type check (both `onRequest`) and is
 * about to be read (`preParsing`), and not at all when the declared length is
 * over the route's limit: a refused client sends nothing more (RFC 9110
 * §10.1.1).
 */
import type { FastifyInstance } from 'fastify';

export function continueOnlyWhenRead(app: FastifyInstance): void {
  // With a listener, Node sends no 100 itself and hands the request over as 'checkContinue' instead of 'request'.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  app.addHook('preParsing', async (req, reply, payload) => {
    if (!/100-continue/i.test(String(req.headers.expect ?? ''))) return payload;
    const length = Number(req.headers['content-length']);
    const limit = req.routeOptions.bodyLimit;
    if (!(Number.isFinite(length) && limit !== undefined && length > limit) && !reply.raw.headersSent) reply.raw.writeContinue();
    return payload;
  });
}
