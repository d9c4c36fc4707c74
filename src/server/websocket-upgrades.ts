/**
 * A WebSocket upgrade asked of a route that has none (`GET /stats` with
 * `Upgrade: websocket`) is refused with a problem document, before the
 * upgrade. @fastify/websocket otherwise completes the handshake (101) for
 * any route and then closes the socket at once, so a client saw a WebSocket
 * that opened and closed without a word (RFC 6455 §4.2.2 lets a server refuse
 * with an HTTP error instead, and that says why).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';
import { writeRawProblem } from './problem.js';
import { loggedUrl } from './request-logs.js';

/** What an upgrade to a route without a WebSocket handler gets (the multi-process front says the same). */
export function noWebSocketHere(path: string): Error {
  return errors.BAD_REQUEST(`${path.slice(0, 200)} takes no WebSocket upgrade: the WebSocket endpoint is GET /peers/:peer/audio (docs/websocket.md in the earshot repository).`);
}

/** Call after registering @fastify/websocket (whose hook marks upgrade requests) and before the routes. */
export function refuseUpgradesWithoutHandler(app: FastifyInstance): void {
  const websocketRoutes = new Set<string>();
  app.addHook('onRoute', (route) => {
    if ((route as { wsHandler?: unknown; websocket?: unknown }).wsHandler !== undefined || (route as { websocket?: unknown }).websocket === true) websocketRoutes.add(route.url);
  });
  app.addHook('onRequest', async (req) => {
    if ((req as { ws?: boolean }).ws !== true) return;
    const route = req.routeOptions.url;
    // No route at all: the not-found handler answers (404, or 405 for a path with other methods).
    if (route !== undefined && !websocketRoutes.has(route)) throw noWebSocketHere(req.url.split('?')[0]);
  });
}

/**
 * A handshake ws refuses (a malformed `Sec-WebSocket-Key`, a `Sec-WebSocket-Version` other than 13
 * or 8, an `Upgrade` that is not `websocket`, an unparseable `Sec-WebSocket-Protocol`) is answered
 * with a problem document like every other refusal, not ws's `text/html` one, and keeps ws's status
 * and its `Sec-WebSocket-Version` list (RFC 6455 §4.4). Call after registering @fastify/websocket.
 */
export function answerRefusedHandshakes(app: FastifyInstance): void {
  app.websocketServer.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
    const version = /Sec-WebSocket-Version/.test(err.message);
    const problem = errors.BAD_REQUEST.withStatus(req.method === 'GET' ? 400 : 405, `The WebSocket handshake is not valid: ${err.message} (RFC 6455 §4.2.1).`);
    app.log.info({ code: problem.code, status: problem.statusCode, url: loggedUrl(req.url ?? '') }, problem.message);
    writeRawProblem(socket, problem, version ? { 'Sec-WebSocket-Version': '13, 8' } : {});
    socket.once('finish', () => socket.destroy());
    socket.end();
  });
}
