/**
 * Starting the HTTP listener of a server or a cluster front: fastify's
 * `listen`, with the failures an operator meets as typed errors naming the
 * address instead of Node's raw ones: the port already taken
 * (`EARSHOT_PORT_IN_USE`), and an address this machine does not have, a name
 * that does not resolve or a port it may not bind (`EARSHOT_LISTEN_FAILED`).
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';

/** Listens on `host`:`port`; resolves to the base URL fastify reports. */
export async function listenOn(app: FastifyInstance, host: string, port: number): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw Object.assign(errors.PORT_IN_USE(host, port), { cause: e });
    const why = LISTEN_FAILURES[code ?? ''];
    if (why) throw Object.assign(errors.LISTEN_FAILED(host, port, `${why} (${code}).`), { cause: e });
    throw e;
  }
}

/** What each refusal of the operating system means to an operator, and what to change. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRNOTAVAIL: 'no network interface of this machine has that address. Bind one it has (ip addr), or 0.0.0.0 for all; behind 1:1 NAT, bind the local address and announce the public one with --ice-host',
  ENOTFOUND: 'the host name does not resolve. Use an IP address, or a name this machine resolves',
  EAI_AGAIN: 'the host name could not be resolved now (a DNS failure). Use an IP address',
  EACCES: 'this process may not bind that port (ports below 1024 need privileges). Use a port from 1024 up, or give node the capability (CAP_NET_BIND_SERVICE)',
  EAFNOSUPPORT: 'this machine does not support that address family (IPv6 off?). Use an IPv4 address',
};
