/**
 * Starting the HTTP listener of a server or a cluster front: fastify's
 * `listen`, with the one failure an operator meets at every start of a
 * second instance — the port already taken — as a typed error naming the
 * address (`EARSHOT_PORT_IN_USE`) instead of Node's raw `EADDRINUSE`.
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';

/** Listens on `host`:`port`; resolves to the base URL fastify reports. */
export async function listenOn(app: FastifyInstance, host: string, port: number): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw Object.assign(errors.PORT_IN_USE(host, port), { cause: e });
    throw e;
  }
}
