/**
 * Which reverse proxies earshot believes (`trustProxy`, `--trust-proxy`).
 *
 * Behind a proxy every request comes from the proxy's address, so the
 * per-client limits (pending sessions, event streams, downloads) would count
 * all clients as one, and the request logs would show the proxy. A proxy says
 * whom it forwards for in `X-Forwarded-For`; fastify (its proxy-addr) reads
 * that header from the right, skipping the addresses it trusts, and takes the
 * first one it does not as `req.ip`.
 *
 * Only a list of the proxies' addresses is taken, never `true` or a hop
 * count: `true` believes every entry, so a client that writes any address in
 * its own `X-Forwarded-For` (which the proxy keeps, appending the real one)
 * is counted as that address — a fresh quota per request, or another
 * client's used up. A hop count cannot tell the proxy from a client that
 * connects directly and sends the header itself (fastify treats a count as
 * believing nobody, for that reason). With a list, a header is believed only from a
 * listed address, and a spoofed entry before the proxy's is never reached.
 */
import { isIP } from 'node:net';
import { errors } from '../errors.js';
import { describeValue } from '../core/option-checks.js';
import { Access } from './access.js';
import { isLoopbackHost } from '../rtc/ice-config.js';

/** The range names proxy-addr expands (loopback: 127.0.0.0/8 and ::1; linklocal: 169.254.0.0/16, fe80::/10; uniquelocal: 10/8, 172.16/12, 192.168/16, fc00::/7). */
export const PROXY_RANGE_NAMES: readonly string[] = ['loopback', 'linklocal', 'uniquelocal'];

const WHAT = 'the proxies to believe: IP addresses, CIDR ranges (address/prefix length, e.g. 10.0.0.0/8 or fd00::/8), or loopback, linklocal, uniquelocal';

const EVERY_ADDRESS =
  'a client could then write any address in X-Forwarded-For and be counted as it (a fresh per-client quota for every request, or another client\'s used up) and logged as it; list your proxies\' addresses or ranges instead (e.g. 127.0.0.1, 10.0.0.0/8)';

/**
 * The entries of a `trustProxy` value (a list, or one string of entries
 * separated by commas or whitespace), each checked; undefined when not set.
 * Throws `EARSHOT_OPTION_INVALID` naming `name`.
 */
export function trustedProxies(value: unknown, name = 'trustProxy'): string[] | undefined {
  if (value === undefined) return undefined;
  if (value === true) throw errors.OPTION_INVALID(name, `must list ${WHAT}, not true (every address): ${EVERY_ADDRESS}`);
  if (typeof value === 'number') throw errors.OPTION_INVALID(name, hopCountProblem(String(value)));
  const parts = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (parts === undefined) throw errors.OPTION_INVALID(name, `must list ${WHAT} (an array, or a string separated by commas), got ${describeValue(value)}`);
  const entries: string[] = [];
  parts.forEach((part: unknown, i) => {
    if (typeof part !== 'string') throw errors.OPTION_INVALID(name, `must list ${WHAT}; entry ${i + 1} is ${describeValue(part)}`);
    entries.push(...part.split(/[\s,]+/).filter(Boolean));
  });
  if (entries.length === 0) throw errors.OPTION_INVALID(name, `must name at least one proxy (${WHAT}); leave it out to believe none`);
  for (const entry of entries) checkEntry(name, entry);
  return entries;
}

function checkEntry(name: string, entry: string): void {
  if (PROXY_RANGE_NAMES.includes(entry)) return;
  const quoted = describeValue(entry);
  if (/^(true|\*|all)$/i.test(entry)) throw errors.OPTION_INVALID(name, `must list ${WHAT}, not ${quoted} (every address): ${EVERY_ADDRESS}`);
  if (/^\d+$/.test(entry)) throw errors.OPTION_INVALID(name, hopCountProblem(entry));
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  // A zone (`fe80::1%eth0`) is read differently by Node and by proxy-addr: refused rather than half-understood.
  const family = address.includes('%') ? 0 : isIP(address);
  if (family === 0) throw errors.OPTION_INVALID(name, `must list ${WHAT}; ${quoted} is none of these`);
  if (slash < 0) return;
  const bits = family === 4 ? 32 : 128;
  const prefix = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) {
    throw errors.OPTION_INVALID(name, `has ${quoted}, whose prefix length is not a number from 1 to ${bits} (an IPv${family} range)`);
  }
  if (Number(prefix) === 0) throw errors.OPTION_INVALID(name, `has ${quoted}, which is every address: ${EVERY_ADDRESS}`);
}

function hopCountProblem(count: string): string {
  return `must list ${WHAT}, not a hop count (${count}): a count cannot tell your proxy from a client that connects directly and sends X-Forwarded-For itself (fastify treats a count as believing nobody, for that reason)`;
}

/**
 * Refuses `trustProxy` while a role is open (no token) and the server is not
 * `insecure`. An open role is served only to clients on this machine (a
 * loopback Host, no proxy's forwarding headers: `Access.checkHost`); naming
 * proxies says the clients come through one, so the open role would refuse
 * every one of them — or, through a proxy that adds no forwarding header and
 * sends a loopback Host (nginx's default), serve them all.
 */
export function checkProxyAccess(trusted: readonly string[] | undefined, access: Access, insecure: boolean | undefined, name = 'trustProxy'): void {
  if (trusted === undefined || insecure === true) return;
  if (access.adminOpen) {
    throw errors.OPTION_INVALID(name, 'needs an admin token (adminToken, --admin-token): without one the admin API (recordings, statistics, pipelines) is open, which earshot allows only to clients on its own machine, and clients through a proxy are not. Set the admin token, or insecure (--insecure) if the proxy authenticates every request by itself');
  }
  if (access.publishOpen) {
    throw errors.OPTION_INVALID(name, 'needs a publish token (token, --token): without one publishing is open, which earshot allows only to clients on its own machine, and clients through a proxy are not. Set the publish token, or insecure (--insecure) to let anyone who reaches the proxy publish (the admin token still guards the admin API)');
  }
}

/**
 * The roles and the proxies to believe of a listener that faces the network
 * (`createServer`, the front of `createCluster`), with its refusals: an open
 * admin API on a reachable `host` (`EARSHOT_INSECURE_BIND`: it would hand out
 * every recording), and proxies named while a role is open (`checkProxyAccess`).
 */
export function listenerAccess(options: { token?: string; adminToken?: string; insecure?: boolean; trustProxy?: unknown; corsOrigins?: readonly string[] }, host: string): { access: Access; trustProxy: string[] | undefined } {
  const access = new Access({ publishToken: options.token, adminToken: options.adminToken, insecure: options.insecure, adminOrigins: options.corsOrigins });
  if (access.adminOpen && !options.insecure && !isLoopbackHost(host)) throw errors.INSECURE_BIND(host);
  const trustProxy = trustedProxies(options.trustProxy);
  checkProxyAccess(trustProxy, access, options.insecure);
  return { access, trustProxy };
}
