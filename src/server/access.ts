/**
 * Who may do what. Two roles, each granted by its own bearer token:
 *
 * - **publish**: WHIP POST and DELETE (send audio, end your own session);
 * - **admin**: everything else that reveals or changes data — statistics,
 *   events, recordings, pipelines, rooms, recording control, metrics — and
 *   publishing too.
 *
 * A role without a configured token is open to whoever reaches the port. That
 * is only allowed on a loopback address (the server refuses to bind elsewhere
 * without an admin token unless `insecure` is set), and then requests must
 * also name a loopback host, so a web page that rebinds its own DNS name to
 * 127.0.0.1 still cannot read the open API, and must carry no proxy's
 * forwarding header, so a reverse proxy on the same machine does not open it
 * to the proxy's clients.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { describeValue } from '../core/option-checks.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../errors.js';
import { isLoopbackHost } from '../rtc/ice-config.js';
import { forwardingHeaderOf } from './client-address.js';

export type Role = 'publish' | 'admin';

export interface AccessOptions {
  /** Token for the publish role. Undefined: publishing is open. */
  publishToken?: string;
  /** Token for the admin role. Undefined: the admin API is open (loopback only, unless insecure). */
  adminToken?: string;
  /** Accept any Host header, and requests through a proxy, even while a role is open (the operator took responsibility, `--insecure`). */
  insecure?: boolean;
  /** Origins whose pages may call the admin API (`corsOrigins`): while it is open, other sites' pages may not. */
  adminOrigins?: readonly string[];
}

/** The roles a request has proven; computed once per request. */
export interface Grant {
  publish: boolean;
  admin: boolean;
  /** The request presented a token that matched (a proven publisher or admin, not just an open role). */
  authenticated: boolean;
}

const GRANT = Symbol('earshot.grant');

export class Access {
  readonly #publish: Buffer | undefined;
  readonly #admin: Buffer | undefined;
  readonly #insecure: boolean;

  constructor(options: AccessOptions) {
    for (const [name, value] of [['token', options.publishToken], ['adminToken', options.adminToken]] as const) {
      if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) throw errors.OPTION_INVALID(name, `must be a non-empty string, got ${describeValue(value)}`);
      const bad = value === undefined ? -1 : badBearerCharacter(value);
      // No client could present it: `Authorization: Bearer` carries one token, and a space ends it.
      if (bad >= 0) {
        throw errors.OPTION_INVALID(name, `must be usable as an HTTP bearer token (visible ASCII characters only: no spaces, line breaks or non-ASCII), but character ${bad + 1} of ${value!.length} is ${JSON.stringify(value![bad])}`);
      }
    }
    this.#publish = options.publishToken === undefined ? undefined : digest(options.publishToken);
    this.#admin = options.adminToken === undefined ? undefined : digest(options.adminToken);
    this.#insecure = options.insecure === true;
    this.#adminOrigins = new Set(options.adminOrigins ?? []);
  }

  readonly #adminOrigins: ReadonlySet<string>;

  /** True when some role needs no token. */
  get hasOpenRole(): boolean {
    return this.#publish === undefined || this.#admin === undefined;
  }

  get adminOpen(): boolean {
    return this.#admin === undefined;
  }

  get publishOpen(): boolean {
    return this.#publish === undefined;
  }

  /** What this request may do. The admin token also grants publishing. */
  grantOf(req: RequestHead): Grant {
    const cached = (req as unknown as Record<symbol, Grant | undefined>)[GRANT];
    if (cached) return cached;
    const presented = presentedToken(req);
    const isAdmin = presented !== undefined && this.#admin !== undefined && safeEqual(presented, this.#admin);
    const isPublisher = presented !== undefined && this.#publish !== undefined && safeEqual(presented, this.#publish);
    const grant: Grant = {
      admin: isAdmin || this.#admin === undefined,
      publish: isAdmin || isPublisher || this.#publish === undefined,
      authenticated: isAdmin || isPublisher,
    };
    (req as unknown as Record<symbol, Grant>)[GRANT] = grant;
    return grant;
  }

  /**
   * Whether the request holds `role` as `check` would let it through: with
   * its token, or with the role open and the host checks passed (for the
   * admin role: not from another site's page).
   */
  holds(req: RequestHead, role: Role): boolean {
    // Without the role, no error is built: this runs for every publisher's offer.
    if (!this.grantOf(req)[role]) return false;
    try {
      this.checkHost(req, role);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * An `onRequest` hook that lets the request through only with `role`:
   * 401 without a usable token, 403 with a token for the other role.
   */
  require(role: Role) {
    return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => this.check(req, role);
  }

  /**
   * Throws unless the request carries `role`: 401 without a usable token, 403
   * with a token for the other role, 403 `EARSHOT_HOST_NOT_ALLOWED` for a
   * non-loopback Host while the role is open. For requests no route sees
   * (a WebSocket upgrade the multi-process front splices), as for routes.
   */
  check(req: RequestHead, role: Role): void {
    this.checkHost(req, role);
    const grant = this.grantOf(req);
    if (grant[role]) return;
    const presented = presentedToken(req);
    // A valid token of the other role: the caller is known but not allowed.
    if (presented !== undefined && grant.authenticated) throw errors.FORBIDDEN(role);
    // A token that matches neither: say it was refused, not that none was sent.
    throw errors.UNAUTHORIZED(role, presented !== undefined);
  }

  /**
   * While `role` is open (no token), only clients on this machine are served:
   *
   * - only loopback Host names: a browser that was tricked into calling
   *   127.0.0.1 under another name (DNS rebinding) sends that name as Host;
   * - no request that carries a proxy's forwarding header (`X-Forwarded-For`,
   *   `Forwarded`, `X-Real-IP`, `Via`, `X-Forwarded-*`): a reverse proxy on
   *   this machine connects from loopback, and may send a loopback Host
   *   (nginx's default `Host: $proxy_host` is `127.0.0.1:8080`), so it would
   *   pass the other checks and hand the open role to everyone who reaches it.
   *   A proxy that adds none of these headers and rewrites Host is not seen:
   *   `trustProxy` therefore needs the tokens (trust-proxy.ts), and the docs
   *   say to set them behind any proxy.
   * - for the admin role, no request a browser sends from another site's page
   *   (`Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` that is not
   *   this server's own nor one of `adminOrigins`): a page the operator visits
   *   could otherwise start recordings with a form-like POST (no preflight)
   *   or listen to a peer over a WebSocket (not subject to CORS), since the
   *   browser addresses 127.0.0.1 by its loopback name. Publishing stays open
   *   to other sites' pages: browser WHIP clients are cross-origin by design
   *   (RFC 9725 §4.8).
   */
  checkHost(req: RequestHead, role: Role): void {
    if (this.#insecure) return;
    const open = role === 'admin' ? this.#admin === undefined : this.#publish === undefined;
    if (!open) return;
    // A target in absolute form (`GET http://name/stats`) names the host itself, and Host is then
    // ignored (RFC 9112 §3.2.2): its authority is the name checked.
    const target = req.raw?.url ?? req.url;
    const absolute = target !== undefined && !target.startsWith('/') && target !== '*' ? authorityOf(target) : undefined;
    const named = absolute ?? req.headers.host;
    const host = hostName(named);
    if (host === undefined || !isLoopbackHost(host)) throw errors.HOST_NOT_ALLOWED(String(named ?? '').slice(0, 100));
    const proxied = forwardingHeaderOf(req.headers);
    if (proxied !== undefined) throw errors.PROXY_NOT_ALLOWED(proxyHeaderName(proxied), role);
    if (role === 'admin') this.#checkSite(req, named);
  }

  /** Throws `EARSHOT_CROSS_SITE_NOT_ALLOWED` for a request from another site's page (see `checkHost`). */
  #checkSite(req: RequestHead, host: string | undefined): void {
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
    if (origin !== undefined && this.#adminOrigins.has(origin)) return;
    const site = req.headers['sec-fetch-site'];
    const fromElsewhere = site === 'cross-site' || site === 'same-site' || (origin !== undefined && !sameOrigin(origin, host));
    if (fromElsewhere) throw errors.CROSS_SITE_NOT_ALLOWED(origin === undefined ? String(site) : origin.slice(0, 100));
  }
}

/** Whether an `Origin` header names the server the request is addressed to (its Host: name and port). */
function sameOrigin(origin: string, host: string | string[] | undefined): boolean {
  if (typeof host !== 'string') return false;
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false; // "null" (a sandboxed page, a file) or garbage: not this server's
  }
}

/** What access control reads of a request: its headers (a fastify request, or a raw one on an upgrade). */
export interface RequestHead {
  headers: IncomingHttpHeaders;
  /** The request's method: a token in a subprotocol is read on a GET upgrade only. */
  method?: string;
  /** The request target (a raw request's; a fastify request's own is read from `raw`). */
  url?: string;
  raw?: { url?: string };
}

/**
 * The token a request presents: its `Authorization: Bearer` header, or, on a
 * WebSocket upgrade only (browsers cannot set headers on one), an offered
 * subprotocol `earshot-bearer.<token, base64url>` (the way Kubernetes takes
 * tokens from browsers). See WEBSOCKET_TOKEN_PROTOCOL.
 */
export function presentedToken(req: RequestHead): string | undefined {
  return bearer(req.headers.authorization) ?? protocolToken(req);
}

/** Prefix of the WebSocket subprotocol that carries a token: `earshot-bearer.` + the token in base64url. */
export const WEBSOCKET_TOKEN_PROTOCOL = 'earshot-bearer.';

/**
 * A WebSocket opening handshake (RFC 6455 §4.1): a GET with `Upgrade: websocket` and `Connection: Upgrade`.
 * Node hands only those to the upgrade handlers; a plain request that merely carries the headers is not one.
 */
function isWebSocketUpgrade(req: RequestHead): boolean {
  if (req.method !== 'GET' || String(req.headers.upgrade).toLowerCase() !== 'websocket') return false;
  return String(req.headers.connection ?? '').toLowerCase().split(',').some((token) => token.trim() === 'upgrade');
}

function protocolToken(req: RequestHead): string | undefined {
  const offered = req.headers['sec-websocket-protocol'];
  if (offered === undefined || !isWebSocketUpgrade(req)) return undefined;
  for (const p of String(offered).split(',')) {
    const v = p.trim();
    if (v.startsWith(WEBSOCKET_TOKEN_PROTOCOL) && /^[A-Za-z0-9_-]{1,1400}$/.test(v.slice(WEBSOCKET_TOKEN_PROTOCOL.length))) {
      return Buffer.from(v.slice(WEBSOCKET_TOKEN_PROTOCOL.length), 'base64url').toString('utf8');
    }
  }
  return undefined;
}

/**
 * Where `token` has a character no `Authorization: Bearer` header can carry
 * as part of one token, or −1: anything but visible ASCII (a space or tab
 * ends it, a newline ends the header, non-ASCII is not sent as such).
 * RFC 6750's b64token is stricter, but clients send other visible characters
 * (`!`, `#`, `%` from password generators) and this server has always
 * accepted them. (The message names the character only, never the secret.)
 */
function badBearerCharacter(token: string): number {
  return token.search(/[^\x21-\x7e]/);
}

/** The token of an `Authorization: Bearer …` header (scheme case-insensitive, RFC 6750). */
function bearer(header: string | undefined): string | undefined {
  const m = header ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return m ? m[1] : undefined;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time comparison of digests, so neither content nor length leaks. */
function safeEqual(presented: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(presented), expected);
}

/** A forwarding header's name as proxies spell it (`x-forwarded-for` → `X-Forwarded-For`), for the message. */
function proxyHeaderName(name: string): string {
  return name === 'x-real-ip' ? 'X-Real-IP' : name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** The authority (`name:port`) of a request target in absolute form; '' when it has none or does not parse (no name is loopback). */
function authorityOf(target: string): string {
  try {
    return new URL(target).host;
  } catch {
    return '';
  }
}

/** The name part of a Host header: `127.0.0.1:8080` → `127.0.0.1`, `[::1]:80` → `::1`. */
function hostName(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(host) ?? /^([^:]+)(?::\d+)?$/.exec(host);
  return m ? m[1].toLowerCase() : undefined;
}
