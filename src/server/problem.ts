/**
 * HTTP error handling: every error leaves as `application/problem+json`
 * (RFC 9457) with a stable `code`. fastify's own errors (bad content type, body
 * too large, unknown route) are mapped to earshot codes so clients see one format.
 *
 * Problem documents and the log lines about them are bounded in size whatever
 * an error's message holds: messages may quote client input (an SDP line, a URL,
 * a name), and an error that grows with the request would let one request
 * inflate every response and log line about it.
 */
import { RouteMethods } from './route-methods.js';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, isEarshotError, type EarshotError, type ProblemDetails } from '../errors.js';
import { presentedToken } from './access.js';

/** Longest problem `detail` (and logged message), in characters; longer ones are cut, saying so. */
export const MAX_PROBLEM_DETAIL_CHARS = 2048;
/** Longest other string in a problem document (`instance`, extension members, nested values). */
export const MAX_PROBLEM_STRING_CHARS = 1024;
/** Most entries kept of an array extension member (e.g. a pipeline's `problems`). */
export const MAX_PROBLEM_ARRAY_ITEMS = 100;
/** Largest problem document, as JSON; past it the extension members are left out. */
export const MAX_PROBLEM_JSON_CHARS = 32 * 1024;
/** Longest stack trace logged for a 5xx error. */
const MAX_LOGGED_STACK_CHARS = 4096;
/** The members RFC 9457 and earshot define; everything else is an extension. */
const STANDARD_MEMBERS = ['type', 'title', 'status', 'code', 'detail', 'instance'];

/** The problem to answer `err` with; `contentType`: the request's, which a refusal of it quotes. */
export function problemFor(err: unknown, contentType?: string): EarshotError {
  if (isEarshotError(err)) return err;
  const e = err as FastifyError & { validation?: unknown };
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errors.UNSUPPORTED_MEDIA_TYPE(contentType?.slice(0, 100), 'a type this route accepts (application/sdp for WHIP, application/json for the control API)');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.BODY_TOO_LARGE();
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return errors.BODY_INVALID(`The JSON body could not be parsed: ${e.message}`);
  }
  if (e.validation) return errors.BODY_INVALID(e.message);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return errors.BAD_REQUEST.withStatus(e.statusCode, e.message);
  }
  return errors.INTERNAL(e instanceof Error ? e.message : String(e));
}

/**
 * `problem` with `detail` cut to `MAX_PROBLEM_DETAIL_CHARS`, every other string
 * to `MAX_PROBLEM_STRING_CHARS` and arrays to `MAX_PROBLEM_ARRAY_ITEMS`
 * entries; if the document is still larger than `MAX_PROBLEM_JSON_CHARS`, its
 * extension members are left out. When anything was cut, `truncated: true`
 * says so. The safety net behind the bounds each error message keeps itself.
 */
export function boundedProblem(problem: ProblemDetails): ProblemDetails {
  const state = { truncated: false };
  const { detail, ...rest } = problem;
  let bounded = { ...(bound(rest, state, 0) as Record<string, unknown>), detail: clip(detail, MAX_PROBLEM_DETAIL_CHARS, state) } as ProblemDetails;
  if (JSON.stringify(bounded).length > MAX_PROBLEM_JSON_CHARS) {
    state.truncated = true;
    bounded = Object.fromEntries(Object.entries(bounded).filter(([k]) => STANDARD_MEMBERS.includes(k))) as ProblemDetails;
  }
  return state.truncated ? { ...bounded, truncated: true } : bounded;
}

/** Longest path parameter (a room, peer, session id) the router matches; longer ones get 414 (`frameworkProblem`). Names are checked for their own, shorter limit. */
export const MAX_PATH_PARAMETER_CHARS = 1024;
/** Default of `requestTimeoutMs`: how long a client may take to send a whole request (headers and body); then 408 and the connection is closed. */
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * The Fastify options every earshot HTTP server shares (one machine, and the
 * front of `--processes` / `--cluster`): body and time limits, and problem
 * documents for the errors the router raises before any hook runs.
 */
export function httpServerLimits(requestTimeoutMs = REQUEST_TIMEOUT_MS, tls?: object) {
  const server = {
    requestTimeout: requestTimeoutMs,
    // Node takes the smaller of the two as the headers' limit and the larger as the request's:
    // left at its 60 s, the headers' limit would make a shorter request limit 60 s.
    headersTimeout: Math.min(requestTimeoutMs, 60_000),
    // Node checks for requests past their time every `connectionsCheckingInterval` (default 30 s,
    // which would let a 30 s limit run to a minute): a quarter of the limit, 0.25–5 s.
    connectionsCheckingInterval: Math.min(5000, Math.max(250, requestTimeoutMs / 4)),
    // Node answers an HTTP/1.1 request without Host with a bare 400 of its own; refuseDuplicateHost
    // (host-header.ts) refuses it as a problem document instead.
    requireHostHeader: false,
  };
  return {
    ...(tls ? { https: { ...tls, ...server } } : { http: server }),
    bodyLimit: 16 * 1024,
    // Fastify's default (0) lets a client that never finishes its body hold a connection for ever.
    requestTimeout: requestTimeoutMs,
    // Fastify's default (100) answered a 101-character peer name with its own 414 JSON instead of EARSHOT_NAME_INVALID.
    routerOptions: { maxParamLength: MAX_PATH_PARAMETER_CHARS },
    frameworkErrors: frameworkProblem,
    clientErrorHandler: clientProblem,
  };
}

/**
 * A request Node's HTTP parser refused before any route saw it (not valid
 * HTTP, an unknown method, headers over the size limit, a request not sent
 * within `requestTimeoutMs`), answered as a problem document as every other
 * error is, then the connection closed. Fastify's own answer is JSON of
 * another shape.
 */
function clientProblem(this: FastifyInstance, err: Error & { code?: string }, socket: Duplex): void {
  // A connection reset: the socket is gone, there is no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, why] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'The request was not received in time: a client has requestTimeoutMs (default 30 s) to send a whole request.']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'The request headers are larger than the server takes.']
        : [400, `The request is not valid HTTP (${clip(err.code ?? err.message, 60)}).`];
  this.log.debug({ code: err.code, status }, 'client error');
  writeRawProblem(socket, errors.BAD_REQUEST.withStatus(status, why));
  socket.destroy(err);
}

/**
 * `problem` written straight to `socket` as a whole HTTP/1.1 response that closes the connection,
 * for the answers no reply object exists for (a request Node's parser refused, a WebSocket handshake
 * ws refused). The caller closes the socket.
 */
export function writeRawProblem(socket: Duplex, problem: EarshotError, headers: Record<string, string> = {}): void {
  if (!socket.writable) return;
  const body = JSON.stringify(boundedProblem(problem.toProblem()));
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(`HTTP/1.1 ${problem.statusCode} ${STATUS_CODES[problem.statusCode]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`);
}

/** A URL the router cannot take (a bad escape, a path parameter over `MAX_PATH_PARAMETER_CHARS`), as a problem document. */
export function frameworkProblem(error: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const problem = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? errors.BAD_REQUEST.withStatus(414, `A segment of the path is longer than ${MAX_PATH_PARAMETER_CHARS} characters.`)
    : errors.BAD_REQUEST(`The path is not a valid URL: ${clip(error.message, 200)}`);
  req.log.info({ code: problem.code, status: problem.statusCode }, problem.message);
  void reply.code(problem.statusCode).type('application/problem+json').send(boundedProblem(problem.toProblem(clip(req.url, 200))));
}

/** Installs the error and not-found handlers; returns the index of the routes added from now on (route-methods.ts). */
export function installProblemHandling(app: FastifyInstance): RouteMethods {
  app.setErrorHandler((err, req, reply) => {
    const problem = problemFor(err, req.headers['content-type']);
    // 503 is load or shutdown, an expected condition: a warning without a stack, not an error. 501 is a
    // method this server does not implement (PATCH on a session: one per trickled candidate), the client's matter.
    if (problem.statusCode === 503) req.log.warn({ code: problem.code, status: 503 }, clip(problem.message, MAX_PROBLEM_DETAIL_CHARS));
    else if (problem.statusCode >= 500 && problem.statusCode !== 501) req.log.error({ err: loggableError(err) }, 'request failed');
    else req.log.info({ code: problem.code, status: problem.statusCode }, clip(problem.message, MAX_PROBLEM_DETAIL_CHARS));
    // A 401 names its scheme (RFC 9110 §11.6.1, RFC 6750 §3); a token that was sent and is not valid says so.
    if (problem.statusCode === 401) void reply.header('WWW-Authenticate', presentedToken(req) !== undefined ? 'Bearer realm="earshot", error="invalid_token"' : 'Bearer realm="earshot"');
    void reply.code(problem.statusCode).type('application/problem+json').send(boundedProblem(problem.toProblem(req.url)));
  });
  const methods = new RouteMethods(app, { maxParamLength: MAX_PATH_PARAMETER_CHARS });
  const notFound = (req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = req.url.split('?')[0];
    // A path that exists with other methods: 405 and what it allows, not 404.
    const allowed = methods.allowed(path);
    if (allowed.length > 0) {
      const allow = allowed.join(', ');
      return reply.code(405).header('Allow', allow).type('application/problem+json').send(boundedProblem(errors.METHOD_NOT_ALLOWED(req.method, allow).toProblem(req.url)));
    }
    const problem = errors.ROUTE_NOT_FOUND(req.method, clip(path, 200));
    return reply.code(404).type('application/problem+json').send(boundedProblem(problem.toProblem(req.url)));
  };
  // Answered before the body is read (the not-found handler runs after it is parsed): a method with a
  // body Fastify insists on reading (QUERY without a Content-Type is its 400) still gets its 405, and a
  // request for no resource sends no body and waits for no 100 Continue.
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.url === undefined) return notFound(req, reply);
  });
  app.setNotFoundHandler((req, reply) => {
    notFound(req, reply);
  });
  return methods;
}

/** `text` cut to `max` characters, saying how much was left out. */
function clip(text: string, max: number, state?: { truncated: boolean }): string {
  if (text.length <= max) return text;
  if (state) state.truncated = true;
  return `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

/** Strings and arrays bounded, to a fixed depth (deeper values are dropped: problem documents are shallow). */
function bound(value: unknown, state: { truncated: boolean }, depth: number): unknown {
  if (typeof value === 'string') return clip(value, MAX_PROBLEM_STRING_CHARS, state);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= 4) {
    state.truncated = true;
    return null;
  }
  if (Array.isArray(value)) {
    if (value.length > MAX_PROBLEM_ARRAY_ITEMS) state.truncated = true;
    return value.slice(0, MAX_PROBLEM_ARRAY_ITEMS).map((v) => bound(v, state, depth + 1));
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, bound(v, state, depth + 1)]));
}

/** What pino logs of a 5xx error: its message and stack, bounded (the message may quote the request). */
function loggableError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: clip(String(err), MAX_PROBLEM_DETAIL_CHARS) };
  const message = clip(err.message, MAX_PROBLEM_DETAIL_CHARS);
  // The stack begins with the message: cut it there too, so the frames survive.
  const stack = typeof err.stack === 'string' ? clip(err.stack.replace(err.message, message), MAX_LOGGED_STACK_CHARS) : undefined;
  const code = (err as { code?: unknown }).code;
  return { type: err.name, message, ...(typeof code === 'string' ? { code: clip(code, 100) } : {}), ...(stack ? { stack } : {}) };
}
