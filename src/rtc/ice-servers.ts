/**
 * STUN/TURN servers for clients: checked once at start, so a typo is a clear
 * error at startup rather than a client that silently cannot connect, and so
 * nothing that ends up in a `Link` header (RFC 9725 §4.6) can break or inject
 * into it.
 *
 * URL syntax: `stun:`/`stuns:` HOST[:PORT] (RFC 7064) and `turn:`/`turns:`
 * HOST[:PORT][?transport=…] (RFC 7065). HOST is narrowed to DNS names, IPv4
 * and bracketed IPv6 (RFC 3986 allows more in a reg-name, but `,` and `;`
 * there would split a Link header and no real server uses them).
 */
import { isIP } from 'node:net';
import type { RTCIceServer } from 'werift';
import { errors } from '../errors.js';
import { clip } from './bounded-text.js';

export type IceServerScheme = 'stun' | 'stuns' | 'turn' | 'turns';

/** One URL of an ICE server, with the credentials that go with it (TURN only). */
export interface IceServerUrl {
  url: string;
  scheme: IceServerScheme;
  username?: string;
  credential?: string;
}

const URL_PATTERN = /^(stuns?|turns?):(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:\?transport=([A-Za-z0-9._~-]+))?$/i;
/** Printable ASCII: what a quoted-string in an HTTP header carries without extra encoding. */
const PRINTABLE = /^[\x20-\x7e]+$/;

/**
 * Checks `servers` and flattens them to one entry per URL. Credentials stay
 * on TURN URLs only (a server may list `stun:` and `turn:` URLs with one set
 * of credentials, as in the W3C `RTCIceServer`). Throws `EARSHOT_ICE_SERVER_INVALID`.
 */
export function checkIceServers(servers: readonly RTCIceServer[], name: (index: number) => string = (i) => `options.iceServers[${i}]`): IceServerUrl[] {
  if (!Array.isArray(servers)) throw errors.ICE_SERVER_INVALID('options.iceServers', 'must be an array of { urls, username?, credential? }');
  const out: IceServerUrl[] = [];
  servers.forEach((server, i) => {
    const where = name(i);
    const urls = typeof server?.urls === 'string' ? [server.urls] : server?.urls;
    if (!Array.isArray(urls) || urls.length === 0 || urls.some((u) => typeof u !== 'string')) {
      throw errors.ICE_SERVER_INVALID(where, '"urls" must be a URL or a non-empty array of URLs');
    }
    const { username, credential } = server;
    for (const [name, value] of [['username', username], ['credential', credential]] as const) {
      if (value === undefined) continue;
      // Never quote a credential back: the message may end up in a log.
      if (typeof value !== 'string' || !PRINTABLE.test(value)) {
        throw errors.ICE_SERVER_INVALID(where, `"${name}" must be a non-empty string of printable ASCII characters (a Link header cannot carry others)`);
      }
    }
    let turn = false;
    for (const url of urls) {
      const m = URL_PATTERN.exec(url);
      if (!m) throw errors.ICE_SERVER_INVALID(`${where} "${clip(url, 200)}"`, 'is not a STUN or TURN URL');
      const scheme = m[1].toLowerCase() as IceServerScheme;
      const [, , host, port, transport] = m;
      if (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6) throw errors.ICE_SERVER_INVALID(`${where} "${clip(url, 200)}"`, `${host} is not an IPv6 address`);
      if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) throw errors.ICE_SERVER_INVALID(`${where} "${clip(url, 200)}"`, `port ${port} is not 1–65535`);
      const isTurn = scheme === 'turn' || scheme === 'turns';
      if (transport !== undefined && !isTurn) throw errors.ICE_SERVER_INVALID(`${where} "${clip(url, 200)}"`, '?transport= belongs to turn: and turns: URLs only (RFC 7064 STUN URLs take no query)');
      if (isTurn && (username === undefined || credential === undefined)) {
        throw errors.ICE_SERVER_INVALID(`${where} "${clip(url, 200)}"`, 'a TURN server needs a username and a credential (browsers refuse TURN URLs without them)');
      }
      turn ||= isTurn;
      out.push(isTurn ? { url, scheme, username, credential } : { url, scheme });
    }
    if (!turn && (username !== undefined || credential !== undefined)) {
      throw errors.ICE_SERVER_INVALID(where, 'a username or credential was given but no turn: or turns: URL: STUN servers take no credentials');
    }
  });
  return out;
}

/**
 * The command-line form of one server, `URL[,username,credential]`: the
 * credential is everything after the second comma, so it may hold commas.
 * Checked like `checkIceServers`.
 */
export function parseIceServerSpec(spec: string, option = '--ice-server'): RTCIceServer {
  const first = spec.indexOf(',');
  let server: RTCIceServer = { urls: spec };
  if (first >= 0) {
    const rest = spec.slice(first + 1);
    const second = rest.indexOf(',');
    if (second < 0) throw errors.ICE_SERVER_INVALID(`${option} "${clip(spec.slice(0, first), 200)},…"`, 'give both a username and a credential: URL,username,credential');
    server = { urls: spec.slice(0, first), username: rest.slice(0, second), credential: rest.slice(second + 1) };
  }
  checkIceServers([server], () => option);
  return server;
}

/** Whether `servers` name a TURN server (a `turn:` or `turns:` URL): what relaying needs. */
export function hasTurnServer(servers: readonly RTCIceServer[] | undefined): boolean {
  return (servers ?? []).some((server) => [server.urls].flat().some((url) => /^turns?:/i.test(url)));
}
