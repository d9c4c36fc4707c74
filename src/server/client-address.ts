/**
 * Who a request is from, as the per-client limits count it (sessions not yet
 * connected, event streams, downloads): the client's address as fastify gives
 * it (`req.ip`: the connection's peer, or with `trustProxy` the client that a
 * trusted reverse proxy names in `X-Forwarded-For`), made into one key per
 * client:
 *
 * - an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
 *   listener sees of an IPv4 client) is its IPv4 address;
 * - any other IPv6 address is its /64 prefix (`2001:db8:1:2::/64`): an IPv6
 *   host usually has a whole /64 to itself (SLAAC, privacy addresses) and can
 *   send from any address in it, so a limit per full address would let one
 *   host open as many slots as it cares to pick addresses.
 */
import { isIP } from 'node:net';

/**
 * The header in which the front of `--processes N` tells its engines which
 * client a request is from (every request reaches an engine from the front's
 * loopback address), and a cluster node tells the node it forwards an offer
 * to. Only an engine trusts it (`createEngineServer`), and a front only from
 * a node that proved it holds the peer's placement lock; a front sets it
 * itself on everything it forwards, over whatever the client sent.
 */
export const CLIENT_HEADER = 'x-earshot-client';

/**
 * Whether `name` (lower case) is a header in which a reverse proxy says whom
 * it forwards for: RFC 7239's `Forwarded`, `Via` (RFC 9110 §7.6.3),
 * `X-Real-IP` (nginx), and the `X-Forwarded-*` family (`-For`, `-Host`,
 * `-Proto`, `-Port` …). A request carrying one came through a proxy, or
 * claims to.
 */
export function isForwardingHeader(name: string): boolean {
  return name === 'forwarded' || name === 'via' || name === 'x-real-ip' || name.startsWith('x-forwarded-');
}

/** The first forwarding header (`isForwardingHeader`) among `headers`, by its name; undefined if there is none. */
export function forwardingHeaderOf(headers: Record<string, unknown>): string | undefined {
  return Object.keys(headers).find((name) => headers[name] !== undefined && isForwardingHeader(name));
}

/** Longest client key taken from `CLIENT_HEADER` (an IPv6 /64 is at most 24 characters). */
const MAX_CLIENT_KEY = 64;

/**
 * The key of the client `req` is from (`clientKey` of `req.ip`). An `ip` that
 * is no address — a trusted proxy passed on what its client wrote in
 * `X-Forwarded-For`, or wrote `address:port` (Azure's gateways do) — is read
 * for its address if it has one, else the request counts as the connection's
 * peer: a client must not pick a key of any length and content.
 */
export function requestClient(req: { ip: string; socket?: { remoteAddress?: string } }): string {
  return clientKey(addressOf(req.ip) ?? addressOf(req.socket?.remoteAddress ?? '') ?? '');
}

/** `text` as an IP address: itself, or without the port of `192.0.2.1:443` / `[2001:db8::1]:443`; undefined if it holds none. */
function addressOf(text: string): string | undefined {
  if (isIP(text)) return text;
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(text) ?? /^\[([^\]]+)\](?::\d{1,5})?$/.exec(text);
  return m && isIP(m[1]) ? m[1] : undefined;
}

/** The client an engine's request is from: what the front said in `CLIENT_HEADER`, else (a request not through the front) its address. */
export function forwardedClient(headers: Record<string, string | string[] | undefined>, ip: string): string {
  const v = headers[CLIENT_HEADER];
  return typeof v === 'string' && v !== '' ? v.slice(0, MAX_CLIENT_KEY) : clientKey(ip);
}

export function clientKey(ip: string): string {
  // A zone (`fe80::1%eth0`) names the interface, not the host.
  const address = ip.replace(/%.*$/, '');
  if (isIP(address) !== 6) return address;
  const groups = ipv6Groups(address);
  if (!groups) return address;
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) return [groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff].join('.');
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail read as two groups). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => parseInt(g, 16));
}
