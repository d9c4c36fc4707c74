/**
 * The HTTP half of a WHIP publisher (RFC 9725): POST the offer, read the answer
 * and session URL, DELETE the session at the end. Errors carry the server's
 * problem+json `code` when it sends one; the client's own codes and words come
 * from the catalog (src/errors.ts).
 *
 * @module
 */
import LinkHeader from 'http-link-header';
import type { RTCIceServer } from 'werift';
import { EarshotError, errors } from '../errors.js';
import { checkFunction, checkMilliseconds, checkOptionNames } from '../option-checks.js';
import { checkIceServers } from '../rtc/ice-servers.js';

/**
 * A failed WHIP exchange. An `EarshotError` (`isEarshotError()` catches it with
 * the others) whose `statusCode` is 502, a server upstream having failed, and
 * whose `status` is that server's own (0 when none answered).
 */
export class WhipRequestError extends EarshotError {
  override readonly name = 'WhipRequestError';
  constructor(
    readonly status: number,
    /** The server's problem `code` (e.g. EARSHOT_NO_OPUS_AUDIO), or the client's own (EARSHOT_WHIP_HTTP, EARSHOT_WHIP_UNREACHABLE, …). */
    code: string,
    message: string,
    /** Seconds the server asked to wait before trying again (its `Retry-After`, e.g. with 503 or 429), if it said. */
    readonly retryAfter?: number,
    /**
     * The server's problem document (RFC 9457) when it sent one, whole: what it adds beside the
     * code and detail is there, e.g. earshot's `variable` and `path` with
     * `EARSHOT_SINK_ENV_MISSING`, or `problems` with `EARSHOT_PIPELINE_INVALID`.
     */
    readonly problem?: Readonly<Record<string, unknown>>,
  ) {
    super(code, 502, 'WHIP request failed', message, { status, ...(retryAfter !== undefined ? { retryAfter } : {}), ...(problem !== undefined ? { problem } : {}) });
  }
}

export interface WhipPublishResult {
  answer: string;
  /** Absolute URL of the session resource (from Location). */
  sessionUrl: string;
  etag?: string;
}

const TIMEOUT_MS = 10_000;
/** Redirects of an offer followed before giving up (a loop between two servers ends here). */
const MAX_REDIRECTS = 5;
/** Redirects that keep the method: the offer is posted again to the new URL (RFC 9725 §4.5, RFC 9110 §15.4). */
const REPOST = new Set([301, 302, 307, 308]);

/**
 * Why a fetch failed, as a user can act on it: fetch itself says only "fetch
 * failed", and what failed is its cause (connect ECONNREFUSED 127.0.0.1:1,
 * getaddrinfo ENOTFOUND …, a certificate not trusted, …).
 */
export function fetchFailure(e: unknown): string {
  const error = e as Error;
  const cause = error?.cause;
  if (cause instanceof Error) {
    // undici wraps several attempts (IPv6 and IPv4) in an AggregateError with an empty message.
    const inner = cause instanceof AggregateError && cause.errors.length > 0 ? cause.errors.map((x: Error) => x.message).join('; ') : cause.message;
    const code = (cause as NodeJS.ErrnoException).code;
    // The Fetch standard's "bad port" list (ports of other protocols: 9, 25, 6000, …): nothing was sent.
    if (inner === 'bad port') return 'bad port: fetch does not connect to this port (it belongs to another protocol, see the Fetch standard\'s list of bad ports); nothing was sent. Use another port';
    return inner || code || error.message;
  }
  return error?.message ?? String(e);
}

/**
 * Throws `EARSHOT_OPTION_INVALID` unless `url` is an http: or https: URL. Any other reached
 * fetch, which failed as "fetch failed", reported as an endpoint that did not answer.
 */
export function checkWhipUrl(url: string | undefined): void {
  if (url === undefined) throw errors.OPTION_INVALID('url', 'is required: the WHIP endpoint to publish to (or give signaling instead)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw errors.OPTION_INVALID('url', `must be a URL, got "${withoutCredentials(url)}"`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw errors.OPTION_INVALID('url', `must be an http: or https: URL (WHIP runs over HTTP), got "${withoutCredentials(url)}"`);
  const credentials = credentialsProblem(url);
  if (credentials) throw errors.OPTION_INVALID('url', credentials);
}

/**
 * Why a URL that carries a user name or password cannot be used, or undefined:
 * fetch refuses such a URL ("cannot be constructed from a URL that includes
 * credentials"), which read as a server that did not answer, with the password
 * in the message. The message shows the URL without them.
 */
export function credentialsProblem(url: string, token = 'the token option'): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.username === '' && parsed.password === '') return undefined;
  return `must not carry a user name or password ("${withoutCredentials(url)}"): earshot authenticates with a bearer token (${token}), which is sent as Authorization: Bearer`;
}

/** `url` with any user name and password replaced by "***" (for messages and logs). */
export function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username === '' && parsed.password === '') return url;
    parsed.username = '***';
    parsed.password = '';
    return parsed.href;
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
}

/**
 * Where `token` has a character other than visible ASCII (a space, a control character such as
 * the newline of a file read whole, or non-ASCII), or −1: only visible ASCII goes into the
 * Authorization header; fetch failed on the rest as "invalid header value".
 */
export function badTokenCharacter(token: string): number {
  return token.search(/[^\x21-\x7e]/);
}

/** Throws `EARSHOT_OPTION_INVALID` unless `token` is visible ASCII; the message does not repeat the secret. */
export function checkToken(token: string | undefined): void {
  const at = token === undefined ? -1 : badTokenCharacter(token);
  if (at < 0) return;
  throw errors.OPTION_INVALID('token', `must be visible ASCII characters (a bearer token, sent in a header), but character ${at + 1} of ${token!.length} is ${JSON.stringify(token![at])}`);
}

export interface WhipClientOptions {
  /** Bearer token (RFC 9725 §4.5). */
  token?: string;
  /** Timeout of each request (each hop of a redirect, the answer's body included). Default 10000 ms. */
  timeoutMs?: number;
  /**
   * The `fetch` to use. Default: the global one, which trusts the system's
   * certificate authorities (plus `NODE_EXTRA_CA_CERTS`). Pass your own to
   * trust another CA (a self-signed test server), go through a proxy, or
   * record requests.
   */
  fetch?: typeof globalThis.fetch;
}

/** The names `WhipClientOptions` has, to refuse misspelt ones (a `tokn` would publish without a token). */
const WHIP_CLIENT_OPTIONS: Readonly<Record<keyof WhipClientOptions, true>> = { token: true, timeoutMs: true, fetch: true };

export class WhipClient {
  readonly #fetch: typeof globalThis.fetch;

  /** Throws `EARSHOT_OPTION_INVALID` for an option it cannot use, or one it does not have (with the nearest it has). */
  constructor(private readonly options: WhipClientOptions = {}) {
    checkOptionNames('WhipClient', options, WHIP_CLIENT_OPTIONS);
    checkToken(options.token);
    checkMilliseconds('timeoutMs', options.timeoutMs);
    checkFunction('fetch', options.fetch);
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...extra, ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}) };
  }

  /**
   * POSTs the offer; resolves to the answer and the session's URL. Follows
   * 307/308 (and 301/302) redirects itself, posting the offer again (fetch
   * would drop the token on the way to another port, and turn a 302 into a
   * GET), at most 5; the session URL is resolved against the URL that
   * answered. The token follows a redirect to the same host, or to any host
   * over https; a redirect that would send it in clear text to another host,
   * or from https to http, is refused (`EARSHOT_WHIP_REDIRECT`). `signal` aborts the request
   * (`EARSHOT_SEND_ABORTED`).
   */
  async publish(url: string, sdpOffer: string, signal?: AbortSignal): Promise<WhipPublishResult> {
    checkWhipUrl(url);
    let at = url;
    let res: Response;
    for (let hops = 0; ; hops++) {
      // Before this hop's POST: none made a session (an earlier hop was redirected).
      if (signal?.aborted) throw errors.SEND_ABORTED('while publishing the offer', 'none');
      // Each request of a redirect chain has the whole timeout (it covers the answer's body too).
      const timeout = AbortSignal.timeout(this.options.timeoutMs ?? TIMEOUT_MS);
      try {
        res = await this.#fetch(at, { method: 'POST', headers: this.#headers({ 'content-type': 'application/sdp' }), body: sdpOffer, redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      } catch (e) {
        // The offer was out: the server may have made a session, whose Location never arrived.
        if (signal?.aborted) throw errors.SEND_ABORTED('while publishing the offer', 'maybe');
        throw whipError(0, errors.WHIP_UNREACHABLE(at, fetchFailure(e)));
      }
      if (res.status === 303 || (REPOST.has(res.status) && hops < MAX_REDIRECTS)) at = await this.#redirect(res, at);
      else if (REPOST.has(res.status)) throw whipError(res.status, errors.WHIP_REDIRECT(at, res.status, `more than ${MAX_REDIRECTS} times in a row`));
      else break;
    }
    if (res.status !== 201) {
      if (res.ok) {
        await res.body?.cancel();
        throw whipError(res.status, errors.WHIP_HTTP(at, `${res.status} ${res.statusText}`, 'a WHIP endpoint answers an offer with 201 Created and the session\'s Location (RFC 9725 §4.2)'));
      }
      throw await errorFrom(res, at);
    }
    const location = res.headers.get('location');
    let sessionUrl: string | undefined;
    try {
      sessionUrl = location ? new URL(location, at).href : undefined;
    } catch {
      // not a URL: refused below
    }
    if (sessionUrl === undefined) {
      await res.body?.cancel();
      throw whipError(res.status, errors.WHIP_NO_LOCATION(at, location ? `with Location "${location.slice(0, 200)}", which is not a URL` : undefined));
    }
    let answer: string;
    try {
      answer = await res.text();
    } catch (e) {
      // The session exists on the server: end it rather than leave it until the server's connect timeout.
      await this.end(sessionUrl).catch(() => undefined);
      if (signal?.aborted) throw errors.SEND_ABORTED('while the answer arrived', 'ended');
      throw whipError(res.status, errors.WHIP_UNREACHABLE(at, `its answer's body did not arrive (${fetchFailure(e)}); the session it created was ended`));
    }
    return { answer, sessionUrl, etag: res.headers.get('etag') ?? undefined };
  }

  /** The URL a redirect of the offer at `from` leads to, or `EARSHOT_WHIP_REDIRECT` saying why it is not followed. */
  async #redirect(res: Response, from: string): Promise<string> {
    await res.body?.cancel();
    if (res.status === 303) throw whipError(res.status, errors.WHIP_REDIRECT(from, res.status, 'with 303 See Other, which asks for a GET: a WHIP endpoint redirects an offer with 307 (RFC 9725 §4.5)'));
    const location = res.headers.get('location');
    if (!location) throw whipError(res.status, errors.WHIP_REDIRECT(from, res.status, 'without a Location header'));
    let to: URL;
    try {
      to = new URL(location, from);
    } catch {
      throw whipError(res.status, errors.WHIP_REDIRECT(from, res.status, `to "${location.slice(0, 200)}", which is not a URL`));
    }
    if (to.protocol !== 'http:' && to.protocol !== 'https:') throw whipError(res.status, errors.WHIP_REDIRECT(from, res.status, `to ${to.href}, which is not an http: or https: URL`));
    const was = new URL(from);
    if (this.options.token && to.protocol === 'http:' && (was.protocol === 'https:' || to.hostname !== was.hostname)) {
      const why = was.protocol === 'https:' ? 'from https to plain HTTP' : 'to another host over plain HTTP';
      throw whipError(res.status, errors.WHIP_REDIRECT(from, res.status, `to ${to.href}: the token is not sent ${why} (publish to an https:// endpoint, or to that host directly)`));
    }
    return to.href;
  }

  /**
   * The STUN/TURN servers the WHIP endpoint at `url` advertises for a client that needs them
   * before its offer (RFC 9725 §4.6): the `Link: <…>; rel="ice-server"` fields of its answer to an
   * OPTIONS request, sent with the token (a server gives TURN credentials only to a client that may
   * publish). As W3C `RTCIceServer`s; a TURN server whose `credential-type` is not `password`
   * (the default) is left out, since only a password can be used. An endpoint that advertises none,
   * or answers OPTIONS with an error or a redirect, gives `[]`: its answer to the offer then says what
   * is wrong. Throws `EARSHOT_WHIP_UNREACHABLE` when it does not answer, `EARSHOT_ICE_SERVER_INVALID`
   * when what it advertises is not a STUN or TURN server, `EARSHOT_SEND_ABORTED` on `signal`.
   */
  async iceServers(url: string, signal?: AbortSignal): Promise<RTCIceServer[]> {
    checkWhipUrl(url);
    const timeout = AbortSignal.timeout(this.options.timeoutMs ?? TIMEOUT_MS);
    let res: Response;
    try {
      res = await this.#fetch(url, { method: 'OPTIONS', headers: this.#headers(), redirect: 'manual', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      await res.arrayBuffer();
    } catch (e) {
      if (signal?.aborted) throw errors.SEND_ABORTED('while asking the endpoint for its ICE servers', 'none');
      throw whipError(0, errors.WHIP_UNREACHABLE(url, fetchFailure(e)));
    }
    const field = res.ok ? res.headers.get('link') : null;
    if (!field) return [];
    let links: LinkHeader.Reference[];
    try {
      // fetch joins several Link fields with ", ", which is one field's list (RFC 8288 §3).
      links = LinkHeader.parse(field).rel('ice-server');
    } catch (e) {
      throw errors.ICE_SERVER_INVALID(`The Link header of ${url}`, `cannot be read (${(e as Error).message})`);
    }
    const servers = links
      .filter((l) => l['credential-type'] === undefined || l['credential-type'] === 'password')
      .map((l): RTCIceServer => ({ urls: l.uri, ...(l.username !== undefined ? { username: l.username } : {}), ...(l.credential !== undefined ? { credential: l.credential } : {}) }));
    checkIceServers(servers, (i) => `The ICE server ${url} advertises in its Link header (#${i + 1})`);
    return servers;
  }

  /** Ends the session. Resolves to the HTTP status: 200 or 204, or 404 when the server does not have it (any longer). */
  async end(sessionUrl: string): Promise<number> {
    let res: Response;
    try {
      res = await this.#fetch(sessionUrl, { method: 'DELETE', headers: this.#headers(), signal: AbortSignal.timeout(this.options.timeoutMs ?? TIMEOUT_MS) });
      await res.arrayBuffer();
    } catch (e) {
      // As publish says it: a server that stopped (a raw "fetch failed" TypeError before).
      throw whipError(0, errors.WHIP_UNREACHABLE(sessionUrl, fetchFailure(e)));
    }
    if (res.status !== 200 && res.status !== 204 && res.status !== 404) throw await errorFrom(res, sessionUrl);
    return res.status;
  }
}

async function errorFrom(res: Response, url: string): Promise<WhipRequestError> {
  const type = res.headers.get('content-type') ?? '';
  const retryAfter = retryAfterSeconds(res.headers.get('retry-after'));
  const retry = retryAfter === undefined ? '' : ` (the server asks to retry after ${retryAfter} s)`;
  const status = `${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
  if (/json/.test(type)) {
    const parsed: unknown = await res.json().catch(() => undefined);
    const document = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
    const body = (document ?? {}) as { code?: unknown; detail?: unknown; title?: unknown };
    const detail = [body.detail, body.title].find((x): x is string => typeof x === 'string') ?? '';
    const e = errors.WHIP_HTTP(url, status, detail);
    return new WhipRequestError(res.status, typeof body.code === 'string' ? body.code : e.code, e.message + retry, retryAfter, document);
  }
  const text = (await res.text().catch(() => '')).slice(0, 200);
  return whipError(res.status, errors.WHIP_HTTP(url, status, text), retry, retryAfter);
}

/** `Retry-After` (RFC 9110 §10.2.3) in whole seconds from now: delay-seconds or an HTTP date; undefined when absent or unreadable. */
function retryAfterSeconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** A catalog error as the `WhipRequestError` this client has always thrown (its `status` is the server's, not the catalog's). */
function whipError(status: number, e: { code: string; message: string }, suffix = '', retryAfter?: number): WhipRequestError {
  return new WhipRequestError(status, e.code, e.message + suffix, retryAfter);
}
