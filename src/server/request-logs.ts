/**
 * Request logs: fastify logs every request at info ("incoming request",
 * "request completed"). For the routes that machines call all the time —
 * `/health` (load balancers), `/metrics` (Prometheus), `/events` (dashboards
 * reconnecting) and the dashboard's own files — those two lines go to debug
 * instead, so an info log shows what people and publishers did, not the
 * polling. Failures on those routes are still logged by the error handler
 * (problem.ts) at their usual level.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

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

  override incomingRequest(request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (!this.#isQuiet(request)) return super.incomingRequest(request, reply, metadata);
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error || !this.#isQuiet(request)) return super.requestCompleted(error, request, reply, metadata);
    reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
