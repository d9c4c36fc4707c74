/**
 * RFC 7239's `Forwarded` header, believed as `X-Forwarded-For` is (`trustProxy`).
 *
 * fastify (its proxy-addr) reads whom a proxy forwards for from
 * `X-Forwarded-For` only. A proxy configured for the standard header alone
 * (HAProxy's `option forwarded`, nginx or Envoy set up to send it) sends
 * `Forwarded: for=192.0.2.60;proto=https`, and every client behind it was
 * then counted, limited and logged as the proxy. So a request that carries
 * `Forwarded` and no `X-Forwarded-For` gets the `for` of each element as an
 * `X-Forwarded-For` list, in the same order (each proxy appends its element,
 * as it appends to `X-Forwarded-For`), before fastify reads it: the same
 * rule then applies, believed from the right and only from the listed
 * proxies. An element without an address (`for=unknown`, an obfuscated
 * `for=_hidden`, no `for` at all) stops the walk there, as a proxy's own
 * element would that the list does not name. A request that carries both
 * headers is read by `X-Forwarded-For`, as before.
 */
import type { IncomingMessage, Server } from 'node:http';
import { isIP } from 'node:net';

/** Reads `Forwarded` into `X-Forwarded-For` on `server`'s requests and WebSocket upgrades, before any other listener sees them. */
export function readForwardedHeader(server: Pick<Server, 'prependListener'>): void {
  const read = (req: IncomingMessage) => {
    const value = req.headers.forwarded;
    if (value === undefined || req.headers['x-forwarded-for'] !== undefined) return;
    const chain = forwardedFor(value);
    if (chain !== undefined) req.headers['x-forwarded-for'] = chain;
  };
  server.prependListener('request', read);
  server.prependListener('upgrade', read);
}

/**
 * The `for` address of each element of a `Forwarded` field value (RFC 7239
 * §4), as an `X-Forwarded-For` list: `"[2001:db8::1]:4711"` is `2001:db8::1`,
 * `192.0.2.1:80` is `192.0.2.1`, anything that is not an address `unknown`.
 * Undefined for a value that does not parse (an unclosed quote, a pair
 * without `=`): the header is then ignored.
 */
export function forwardedFor(value: string): string | undefined {
  const elements = splitOutsideQuotes(value, ',');
  if (elements === undefined) return undefined;
  const addresses: string[] = [];
  for (const element of elements) {
    if (element.trim() === '') continue; // RFC 9110 §5.6.1: empty list elements are ignored
    const pairs = splitOutsideQuotes(element, ';');
    if (pairs === undefined) return undefined;
    let address = 'unknown';
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      if (eq <= 0) return undefined;
      if (pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      address = nodeAddress(unquote(pair.slice(eq + 1).trim()));
    }
    addresses.push(address);
  }
  return addresses.length > 0 ? addresses.join(', ') : undefined;
}

/** The IP address of a node (RFC 7239 §6: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port`), or `unknown`. */
function nodeAddress(node: string): string {
  const bracketed = /^\[([^\]]+)\](?::[^:]*)?$/.exec(node);
  const withPort = /^([\d.]+):[^:]*$/.exec(node);
  const address = bracketed ? bracketed[1] : withPort ? withPort[1] : node;
  return isIP(address) ? address : 'unknown';
}

/** A quoted-string's content (backslash escapes undone), or a token as it is. */
function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  return value.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** `text` split at `separator` where it is not inside a quoted string; undefined if a quote is left open. */
function splitOutsideQuotes(text: string, separator: string): string[] | undefined {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && c === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}
