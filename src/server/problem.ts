/**
 * HTTP error handling: every error leaves as `application/problem+json`
 * (RFC 9457) with a stable `code`. fastify's own errors (bad content type, body
 * too large, unknown route) are mapped to earshot codes so clients see one format.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { EarshotError, errors, isEarshotError } from '../errors.js';

export function problemFor(err: unknown): EarshotError {
  if (isEarshotError(err)) return err;
  const e = err as FastifyError & { validation?: unknown };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errors.UNSUPPORTED_MEDIA_TYPE(undefined, 'a type this route accepts (application/sdp for WHIP, application/json for the control API)');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new EarshotError('EARSHOT_BODY_TOO_LARGE', 413, 'Request body too large', 'The request body exceeds the limit (64 KiB for SDP, 16 KiB for JSON).');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return errors.BODY_INVALID(`The JSON body could not be parsed: ${e.message}`);
  }
  if (e.validation) return errors.BODY_INVALID(e.message);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new EarshotError('EARSHOT_BAD_REQUEST', e.statusCode, 'Bad request', e.message);
  }
  return errors.INTERNAL(e instanceof Error ? e.message : String(e));
}

export function installProblemHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const problem = problemFor(err);
    if (problem.statusCode >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: problem.code, status: problem.statusCode }, problem.message);
    void reply.code(problem.statusCode).type('application/problem+json').send(problem.toProblem(req.url));
  });
  app.setNotFoundHandler((req, reply) => {
    const problem = new EarshotError('EARSHOT_ROUTE_NOT_FOUND', 404, 'Not found', `No route ${req.method} ${req.url.split('?')[0]}. See the README's HTTP API section.`);
    void reply.code(404).type('application/problem+json').send(problem.toProblem(req.url));
  });
}
