/**
 * WHEP (the WebRTC-HTTP Egress Protocol draft, WHIP's sibling): an
 * operator's player POSTs a receive-only SDP offer to /whep/:peer and gets
 * 201 with the answer (all candidates, no trickle) and a Location; it hears
 * the peer's processed audio (`?branch=`, default the pipeline's first
 * branch), Opus-encoded once per peer however many listen. DELETE the
 * Location to stop. Listening to someone is an operator's act: admin token.
 *
 * The session URL names the peer (`/whep/<peer>/<id>`), so that whatever
 * process or node runs the peer can be found from the URL alone.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { checkIfMatch } from '../if-match.js';
import { errors, isEarshotError } from '../../errors.js';
import type { EarshotCore } from '../../core/earshot-core.js';
import { MAX_SDP_BYTES } from '../../rtc/sdp-offer.js';
import { checkName } from '../../core/names.js';
import { notAllowed, RETRY_AFTER_SECONDS } from './whip.js';

export function registerWhepRoutes(app: FastifyInstance, core: EarshotCore): void {
  const options = (methods: string) => async (_req: unknown, reply: FastifyReply) => {
    void reply.header('Allow', methods);
    if (methods.includes('POST')) void reply.header('Accept-Post', 'application/sdp');
    return reply.code(204).header('Content-Length', '0').send();
  };
  app.options('/whep/:peer', options('POST, OPTIONS'));
  app.options('/whep/:peer/:id', options('DELETE, OPTIONS'));
  notAllowed(app, '/whep/:peer', ['GET', 'PUT', 'DELETE', 'PATCH'], 'POST, OPTIONS');
  notAllowed(app, '/whep/:peer/:id', ['GET', 'PUT', 'POST'], 'DELETE, OPTIONS');

  app.post<{ Params: { peer: string }; Querystring: Record<string, string> }>('/whep/:peer', { bodyLimit: MAX_SDP_BYTES, config: { body: 'sdp' } }, async (req, reply) => {
    const { peer } = req.params;
    checkName('peer', peer);
    const branch = req.query.branch;
    if (branch !== undefined && (typeof branch !== 'string' || branch === '')) throw errors.BODY_INVALID('?branch= must name a branch of the peer\'s pipeline.');
    let session;
    try {
      session = await core.listen(peer, typeof req.body === 'string' ? req.body : '', branch);
    } catch (e) {
      if (isEarshotError(e) && e.statusCode === 503) void reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
      throw e;
    }
    return reply
      .code(201)
      .header('Location', `/whep/${encodeURIComponent(peer)}/${session.id}`)
      .header('ETag', `"${session.id}"`)
      .header('Cache-Control', 'no-store')
      .type('application/sdp')
      .send(session.answer);
  });

  app.delete<{ Params: { peer: string; id: string } }>('/whep/:peer/:id', async (req) => {
    const listener = core.listeners.list(req.params.peer).find((l) => l.id === req.params.id);
    if (!listener) throw errors.LISTENER_NOT_FOUND(req.params.id, req.params.peer);
    checkIfMatch(req, `"${listener.id}"`);
    const info = await core.listeners.end(listener.id);
    return { listener: info.id, peer: info.peer, branch: info.branch, packetsSent: info.packetsSent };
  });

  app.patch<{ Params: { peer: string; id: string } }>('/whep/:peer/:id', { config: { methodNotAllowed: true } }, async (req, reply) => {
    if (!core.listeners.list(req.params.peer).some((l) => l.id === req.params.id)) throw errors.LISTENER_NOT_FOUND(req.params.id, req.params.peer);
    void reply.header('Allow', 'DELETE, OPTIONS');
    throw errors.TRICKLE_NOT_SUPPORTED();
  });
}
