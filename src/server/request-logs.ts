/**
 * Request logs: fastify logs every request at info ("incoming request",
 * "request completed"). For the routes that machines call all the time —
 * `/health` (load balancers), `/metrics` (Prometheus), `/events` (dashboards
 * reconnecting) and the dashboard's own files — those two lines go to debug
 * instead, so an info log shows what people and publishers did, not the
 * polling. Failures on those routes are still logged by the error handler
 * (problem.ts) at their usual level, and their "request completed" line at
 * info with the request (method, URL, client address): without it the error
 * line did not say which route failed, nor for whom (a scraper with a stale
 * token, a scanner).
 *
 * Every request line carries its URL as `loggedUrl` gives it: no signed
 * link's signature, at most `MAX_LOGGED_URL_CHARS`.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/** Longest URL a request log line carries; the rest is cut, saying how long it was. */
export const MAX_LOGGED_URL_CHARS = 200;

/**
 * The URL as logged: a signed link's `signature` replaced (the link opens its
 * recording without a token until it expires, and logs travel further than
 * links should), and cut to `MAX_LOGGED_URL_CHARS` (a client's 15 KB query
 * string must not become 15 KB of log per request).
 */
export function loggedUrl(url: string): string {
  const redacted = withoutSignature(url);
  return redacted.length <= MAX_LOGGED_URL_CHARS ? redacted : `${redacted.slice(0, MAX_LOGGED_URL_CHARS)}… (${redacted.length} characters)`;
}

/**
 * `url` with the value of every query parameter named `signature` replaced,
 * however its name is spelt: the server decodes names (`%73ignature` is
 * `signature` to it), so the log must too. A name that does not decode is
 * redacted as well: nothing says what a client's parser made of it.
 */
function withoutSignature(url: string): string {
  const q = url.indexOf('?');
  if (q < 0 || !/signature|%/i.test(url)) return url;
  const hash = url.indexOf('#', q);
  const end = hash < 0 ? url.length : hash;
  const params = url.slice(q + 1, end).split('&').map((param) => {
    const eq = param.indexOf('=');
    const name = eq < 0 ? param : param.slice(0, eq);
    return isSignatureName(name) ? `${name}=…` : param;
  });
  return `${url.slice(0, q + 1)}${params.join('&')}${url.slice(end)}`;
}

function isSignatureName(name: string): boolean {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' ')).trim().toLowerCase() === 'signature';
  } catch {
    return true;
  }
}

/** What fastify's request serializer reads, with the URL as `loggedUrl` gives it. */
function loggedRequest(request: FastifyRequest) {
  return { method: request.method, url: loggedUrl(request.url), headers: { 'accept-version': request.headers['accept-version'] }, host: request.host, ip: request.ip, socket: request.socket };
}

export class QuietRoutesLogController extends LogController {
  readonly #quiet: ReadonlySet<string>;

  /** @param quietRoutes route paths (as registered, e.g. `/health`) logged at debug */
  constructor(quietRoutes: Iterable<string>) {
    super();
    this.#quiet = new Set(quietRoutes);
  }

  #isQuiet(request: FastifyRequest): boolean {
    const url = request.routeOptions?.url;
    return url !== undefined && this.#quiet.has(url);
  }

  override incomingRequest(request: FastifyRequest, _reply: FastifyReply, _metadata?: Record<string, unknown>): void {
    if (this.isLogDisabled(request)) return;
    const req = loggedRequest(request);
    if (this.#isQuiet(request)) request.log.debug({ req }, 'incoming request');
    else request.log.info({ req }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error || !this.#isQuiet(request)) return super.requestCompleted(error, request, reply, metadata);
    if (reply.statusCode >= 400) reply.log.info({ req: loggedRequest(request), res: reply, responseTime: reply.elapsedTime }, 'request completed');
    else reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
