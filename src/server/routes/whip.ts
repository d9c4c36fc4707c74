/**
 * WHIP (RFC 9725): POST an SDP offer to /whip/:room/:peer, get 201 with the
 * answer (all candidates, no trickle) and a Location; DELETE that Location to end
 * the session. OPTIONS answers CORS preflight and advertises Accept-Post.
 *
 * Only the publisher that created a session (and admins, through the control
 * API) ever learns its URL: it is the right to end the session.
 *
 * Configured STUN/TURN servers are advertised to clients as `Link: <…>;
 * rel="ice-server"` fields (RFC 9725 §4.6) on the 201 and on a plain OPTIONS
 * of the endpoint (for clients that must know them before making their offer),
 * never on a CORS preflight (the RFC's SHOULD NOT). TURN credentials go only
 * to a request with publish rights: OPTIONS needs no token, so an anonymous
 * OPTIONS on a server with a publish token gets the STUN servers alone.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { checkIfMatch } from '../if-match.js';
import { errors, isEarshotError } from '../../errors.js';
import type { Access } from '../access.js';
import { MAX_SDP_BYTES } from '../../rtc/sdp-offer.js';
import type { EarshotCore } from '../../core/earshot-core.js';
import type { IceServerUrl } from '../../rtc/ice-servers.js';
import { iceServerLinks } from '../ice-server-links.js';
import { requestClient } from '../client-address.js';
import { checkName } from '../../core/names.js';
import { problemFor } from '../problem.js';

const SDP_LIMIT = MAX_SDP_BYTES;
/** Seconds a client refused for load should wait before retrying (RFC 9725 §4.2, RFC 9110 §10.2.3). */
export const RETRY_AFTER_SECONDS = 5;

export interface WhipRouteOptions {
  /** STUN/TURN servers to advertise to clients (checked, one entry per URL). Default none. */
  iceServers?: readonly IceServerUrl[];
  /** Who an offer is from, for the limit on pending sessions per client. Default: its address (`requestClient`). */
  clientOf?: (req: FastifyRequest) => string;
  /** Count offers refused for load (503) in the server's `refusedBy`. Default true (see `EarshotCore.publish`). */
  countLoadRefusals?: boolean;
}

export function registerWhipRoutes(app: FastifyInstance, core: EarshotCore, access: Access, routeOptions: WhipRouteOptions = {}): void {
  app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string', bodyLimit: SDP_LIMIT }, (_req, body, done) => done(null, body));
  const iceServers = routeOptions.iceServers ?? [];
  const clientOf = routeOptions.clientOf ?? requestClient;
  const links = (req: FastifyRequest) => iceServerLinks(iceServers, mayPublish(access, req));

  // CORS headers (allow-list, methods, exposed headers) come from the CORS layer;
  // this adds what WHIP itself says about the endpoint.
  const options = (methods: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    void reply.header('Allow', methods);
    if (methods.includes('POST')) {
      void reply.header('Accept-Post', 'application/sdp');
      const preflight = req.headers['access-control-request-method'] !== undefined;
      const link = preflight ? [] : links(req);
      if (link.length > 0) void reply.header('Link', link);
    }
    return reply.code(204).header('Content-Length', '0').send();
  };

  // The session resource does not take PATCH (no trickle ICE, no ICE restart: 501 below, as RFC 9725 §4.3.1 asks of a
  // session that takes PATCH for no purpose), so its
  // Allow says so; the CORS preflight still lets a browser send PATCH, so that it reads that 501.
  app.options('/whip/:room/:peer', options(ENDPOINT_METHODS));
  app.options('/whip/sessions/:id', options(SESSION_METHODS));
  // Any other /whip/ path is no resource: 404 (the CORS layer's catch-all answered 200, empty).
  app.options('/whip/*', { config: { notAResource: true } }, async (req) => {
    throw errors.ROUTE_NOT_FOUND(req.method, req.url.split('?')[0].slice(0, 200));
  });
  // Other methods get 405 and Allow (RFC 9110 §15.5.6), not 404. POST on a session URL must not
  // publish to a room called "sessions": that name is the session resources'.
  notAllowed(app, '/whip/:room/:peer', ['GET', 'PUT', 'DELETE', 'PATCH'], ENDPOINT_METHODS);
  notAllowed(app, '/whip/sessions/:id', ['GET', 'PUT', 'POST'], SESSION_METHODS);

  app.post<{ Params: { room: string; peer: string }; Querystring: Record<string, string> }>(
    '/whip/:room/:peer',
    {
      config: { access: 'publish', body: 'sdp' },
      bodyLimit: SDP_LIMIT,
      // Every refused offer is counted (earshot_sessions_refused_total), also those refused before the
      // handler or before publish (415, 413, a bad name or query); not a missing or wrong token (401, 403).
      onError: async (req, _reply, error) => {
        const problem = problemFor(error, req.headers['content-type']);
        if (problem.statusCode !== 401 && problem.statusCode !== 403) core.countRefusal(problem);
      },
    },
    async (req, reply) => {
      const { room, peer } = req.params;
      checkName('room', room);
      checkName('peer', peer);
      const offer = typeof req.body === 'string' ? req.body : '';
      // ?pipeline=NAME picks the pipeline for this session (before the room's binding and the default).
      const pipeline = req.query.pipeline;
      if (pipeline !== undefined && (typeof pipeline !== 'string' || pipeline === '')) throw errors.BODY_INVALID('?pipeline= must name a pipeline (GET /pipelines lists them).');
      // Replacing a live peer ends someone's stream: only a proven publisher or an admin may. The
      // open admin role counts only where the admin API would serve the request: not from another
      // site's page, which may publish (browser WHIP clients are cross-origin) but not take a live peer.
      const grant = access.grantOf(req);
      const mayReplace = access.holds(req, 'admin') || (grant.publish && !access.publishOpen);
      let session;
      try {
        session = await core.publish(room, peer, offer, { pipeline, mayReplace, client: clientOf(req), countLoadRefusal: routeOptions.countLoadRefusals });
      } catch (e) {
        if (isEarshotError(e) && (e.statusCode === 503 || e.code === errors.PEER_BUSY.code)) {
          void reply.header('Retry-After', String(e.code === errors.PEER_BUSY.code ? 1 : RETRY_AFTER_SECONDS));
        }
        throw e;
      }
      const location = `/whip/sessions/${session.id}`;
      const link = links(req);
      if (link.length > 0) void reply.header('Link', link);
      return reply
        .code(201)
        .header('Location', location)
        .header('ETag', `"${session.id}"`)
        .header('Cache-Control', 'no-store')
        .type('application/sdp')
        .send(session.answer);
    },
  );

  app.delete<{ Params: { id: string } }>('/whip/sessions/:id', { config: { access: 'publish' } }, async (req) => {
    if (core.hasSession(req.params.id)) checkIfMatch(req, `"${req.params.id}"`);
    const result = await core.endSession(req.params.id, 'deleted');
    return { session: req.params.id, peer: result.peer, room: result.room, recordings: result.recordings };
  });

  app.patch<{ Params: { id: string } }>('/whip/sessions/:id', { config: { access: 'publish', methodNotAllowed: true } }, async (req, reply) => {
    if (!core.hasSession(req.params.id)) throw errors.SESSION_NOT_FOUND(req.params.id);
    void reply.header('Allow', SESSION_METHODS);
    throw errors.TRICKLE_NOT_SUPPORTED();
  });
}

const ENDPOINT_METHODS = 'POST, OPTIONS';
const SESSION_METHODS = 'DELETE, OPTIONS';

/**
 * Answers `methods` on `url` with 405 and `Allow: allowed`; it reveals no more than OPTIONS does, so it
 * needs no token. HEAD goes with GET (RFC 9110 §9.3.2): left to the not-found handler, HEAD on a WHIP
 * session URL matched the endpoint's route (room "sessions") and was told POST.
 */
export function notAllowed(app: FastifyInstance, url: string, methods: HTTPMethods[], allowed: string): void {
  app.route({
    method: methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : methods,
    url,
    config: { access: 'public', body: 'none', methodNotAllowed: true },
    exposeHeadRoute: false,
    // Refused before the body is read: a PUT with a body of any type (or none) is a 405, not a 415 from
    // parsing a body that no route here takes.
    onRequest: async (req, reply) => {
      void reply.header('Allow', allowed);
      throw errors.METHOD_NOT_ALLOWED(req.method, allowed);
    },
    handler: async () => undefined,
  });
}

/** Whether `req` could publish here (so it may learn the TURN credentials): OPTIONS skips the access check, so it is made here. */
function mayPublish(access: Access, req: FastifyRequest): boolean {
  if (!access.grantOf(req).publish) return false;
  try {
    access.checkHost(req, 'publish');
    return true;
  } catch {
    return false;
  }
}
