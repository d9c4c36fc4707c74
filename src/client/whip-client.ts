/**
 * The HTTP half of a WHIP publisher (RFC 9725): POST the offer, read the answer
 * and session URL, DELETE the session at the end. Errors carry the server's
 * problem+json `code` when it sends one; the client's own codes and words come
 * from the catalog (src/errors.ts).
 *
 * @module
 */
import { errors } from '../errors.js';
import { checkFunction, checkMilliseconds, checkOptionNames } from '../option-checks.js';

export class WhipRequestError extends Error {
  override readonly name = 'WhipRequestError';
  constructor(
    readonly status: number,
    /** The server's problem `code` (e.g. EARSHOT_NO_OPUS_AUDIO), or EARSHOT_WHIP_HTTP. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface WhipPublishResult {
  answer: string;
  /** Absolute URL of the session resource (from Location). */
  sessionUrl: string;
  etag?: string;
}

const TIMEOUT_MS = 10_000;

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
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw errors.OPTION_INVALID('url', `must be a URL, got "${url}"`);
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw errors.OPTION_INVALID('url', `must be an http: or https: URL (WHIP runs over HTTP), got "${url}"`);
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
  /** Per-request timeout. Default 10000 ms. */
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

  async publish(url: string, sdpOffer: string): Promise<WhipPublishResult> {
    checkWhipUrl(url);
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method: 'POST',
        headers: this.#headers({ 'content-type': 'application/sdp' }),
        body: sdpOffer,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? TIMEOUT_MS),
      });
    } catch (e) {
      throw whipError(0, errors.WHIP_UNREACHABLE(url, fetchFailure(e)));
    }
    if (res.status !== 201) throw await errorFrom(res, url);
    const location = res.headers.get('location');
    if (!location) throw whipError(res.status, errors.WHIP_NO_LOCATION(url));
    return { answer: await res.text(), sessionUrl: new URL(location, url).href, etag: res.headers.get('etag') ?? undefined };
  }

  /** Ends the session. Resolves to the HTTP status (404 means it had already ended). */
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
  if (/json/.test(type)) {
    const body = (await res.json().catch(() => ({}))) as { code?: string; detail?: string; title?: string };
    const e = errors.WHIP_HTTP(url, String(res.status), body.detail ?? body.title ?? res.statusText);
    return new WhipRequestError(res.status, body.code ?? e.code, e.message);
  }
  const text = (await res.text().catch(() => '')).slice(0, 200);
  return whipError(res.status, errors.WHIP_HTTP(url, `${res.status} ${res.statusText}`, text));
}

/** A catalog error as the `WhipRequestError` this client has always thrown (its `status` is the server's, not the catalog's). */
function whipError(status: number, e: { code: string; message: string }): WhipRequestError {
  return new WhipRequestError(status, e.code, e.message);
}
