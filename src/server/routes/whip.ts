/**
 * WHIP (RFC 9725): POST an SDP offer to /whip/:room/:peer, get 201 with the
 * answer (all candidates, no trickle) and a Location; DELETE that Location to end
 * the session. OPTIONS answers CORS preflight and advertises Accept-Post.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, EarshotError } from '../../errors.js';
import type { EarshotCore } from '../earshot-core.js';

const SDP_LIMIT = 64 * 1024;
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkName(kind: 'room' | 'peer', value: string): void {
  if (!NAME_PATTERN.test(value)) {
    throw new EarshotError('EARSHOT_NAME_INVALID', 400, 'Invalid name',
      `The ${kind} "${value}" is not allowed: use 1–64 letters, digits, "_", "." or "-", starting with a letter or digit.`);
  }
}

export function registerWhipRoutes(app: FastifyInstance, core: EarshotCore, token: string | undefined): void {
  app.addContentTypeParser(['application/sdp', 'application/trickle-ice-sdpfrag'], { parseAs: 'string', bodyLimit: SDP_LIMIT }, (_req, body, done) => done(null, body));

  const requireToken = async (req: FastifyRequest) => {
    if (!token) return;
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !timingSafeEqualStrings(m[1].trim(), token)) throw errors.UNAUTHORIZED();
  };

  const preflight = (methods: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    void reply
      .header('Access-Control-Allow-Methods', methods)
      .header('Access-Control-Allow-Headers', 'Authorization, Content-Type, If-Match')
      .header('Access-Control-Max-Age', '86400');
    if (methods.includes('POST')) void reply.header('Accept-Post', 'application/sdp');
    return reply.code(204).send();
  };

  app.options('/whip/:room/:peer', preflight('POST, OPTIONS'));
  app.options('/whip/sessions/:id', preflight('DELETE, PATCH, OPTIONS'));

  app.post<{ Params: { room: string; peer: string }; Querystring: Record<string, string> }>(
    '/whip/:room/:peer',
    { onRequest: requireToken, bodyLimit: SDP_LIMIT },
    async (req, reply) => {
      const { room, peer } = req.params;
      checkName('room', room);
      checkName('peer', peer);
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/sdp') throw errors.UNSUPPORTED_MEDIA_TYPE(req.headers['content-type'], 'application/sdp');
      const offer = typeof req.body === 'string' ? req.body : '';
      // ?pipeline=NAME picks the pipeline for this session (before the room's binding and the default).
      const pipeline = req.query.pipeline;
      if (pipeline !== undefined && (typeof pipeline !== 'string' || pipeline === '')) throw errors.BODY_INVALID('?pipeline= must name a pipeline (GET /pipelines lists them).');
      const session = await core.publish(room, peer, offer, { pipeline });
      const location = `/whip/sessions/${session.id}`;
      return reply
        .code(201)
        .header('Location', location)
        .header('ETag', `"${session.id}"`)
        .type('application/sdp')
        .send(session.answer);
    },
  );

  app.delete<{ Params: { id: string } }>('/whip/sessions/:id', { onRequest: requireToken }, async (req) => {
    const result = await core.endSession(req.params.id, 'deleted');
    return { session: req.params.id, peer: result.peer, room: result.room, recordings: result.recordings };
  });

  app.patch<{ Params: { id: string } }>('/whip/sessions/:id', { onRequest: requireToken }, async (req, reply) => {
    if (!core.hasSession(req.params.id)) throw errors.SESSION_NOT_FOUND(req.params.id);
    void reply.header('Allow', 'DELETE, OPTIONS');
    throw errors.TRICKLE_NOT_SUPPORTED();
  });
}

/** Constant-time comparison (of digests, so lengths leak nothing either). */
function timingSafeEqualStrings(a: string, b: string): boolean {
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(a), digest(b));
}
