/**
 * The front's hop to an engine: a client's request replayed over loopback HTTP
 * to the engine's own listener, and the engine's answer copied back.
 *
 * The request keeps its method, path, query, body and the headers that decide
 * access (`Authorization`, `Host`), so the engine's routes check and answer
 * it exactly as a single-process server would — a replacement of a live peer
 * still needs a proven publisher, an open role still only answers loopback
 * Host names. CORS stays with the front: `Origin` is not forwarded and the
 * engine's `Access-Control-*` headers are not copied back. The engine sees
 * the front's address, so the client's goes with it (`CLIENT_HEADER`), for
 * the limit on sessions pending per client: the client as the front saw it,
 * which with `trustProxy` is the one a trusted proxy named.
 *
 * Bodies are small here (SDP, JSON up to 256 KiB) and buffered; recordings,
 * the one large thing, are served by the front itself from the shared directory.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CLIENT_HEADER, forwardedClient, isForwardingHeader, requestClient } from '../server/client-address.js';

export interface EngineResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1), and those the hop sets itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'content-length']);
/** Longest answer taken from an engine (an SDP answer or a statistics document is far smaller). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** A WHIP answer waits for ICE gathering; nothing an engine answers should take longer than this, ms. */
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * A read between cluster nodes (a peer's statistics, a listing, a node's part of
 * `/cluster/stats`) is answered in milliseconds; a node that says nothing for this
 * long is frozen (stopped, swapping, its host hung) and is not waited for, ms. Its
 * registry entry expires within 5 s, after which it is no longer asked at all.
 */
export const NODE_READ_TIMEOUT_MS = 5_000;

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Sends one request to the engine listening on 127.0.0.1:`port`. Rejects on a connection failure (the engine died). */
export function requestEngine(port: number, method: string, path: string, headers: OutgoingHttpHeaders, body?: Buffer, timeoutMs = REQUEST_TIMEOUT_MS): Promise<EngineResponse> {
  return requestUrl(new URL(`http://127.0.0.1:${port}`), method, path, headers, body, timeoutMs);
}

const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 256 });

/**
 * Sends one request to `base` (an engine on loopback, or another cluster
 * node at its public URL, HTTP or HTTPS) and buffers the answer. Rejects on a
 * connection failure or timeout.
 */
export function requestUrl(base: URL, method: string, path: string, headers: OutgoingHttpHeaders, body?: Buffer, timeoutMs = REQUEST_TIMEOUT_MS): Promise<EngineResponse> {
  return new Promise((resolve, reject) => {
    const req = open(base, method, path, headers, body, timeoutMs, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Replays a client's GET on `base` and streams the answer back as it comes
 * (a recording may be far larger than what `requestUrl` buffers). Ranges,
 * ETags and the status pass through untouched.
 */
export function streamFrom(base: URL, reply: FastifyReply, path: string, headers: OutgoingHttpHeaders): Promise<FastifyReply> {
  return new Promise((resolve, reject) => {
    const out = open(base, 'GET', path, headers, undefined, REQUEST_TIMEOUT_MS, (res) => {
      for (const [name, value] of Object.entries(res.headers)) {
        // Content-Length stays: the body is passed on as it is.
        if (value === undefined || (HOP_BY_HOP.has(name) && name !== 'content-length') || name.startsWith('access-control-') || name === 'vary' || name === 'date') continue;
        void reply.header(name, value);
      }
      // The response is done or its client went away: stop reading from the node too.
      reply.raw.once('close', () => res.destroy());
      resolve(reply.code(res.statusCode ?? 502).send(res));
    });
    out.on('error', reject);
    out.end();
  });
}

function open(base: URL, method: string, path: string, headers: OutgoingHttpHeaders, body: Buffer | undefined, timeoutMs: number, onResponse: (res: IncomingMessage) => void): http.ClientRequest {
  const secure = base.protocol === 'https:';
  const req = (secure ? https : http).request(
    {
      host: base.hostname.replace(/^\[|\]$/g, ''),
      port: base.port || (secure ? 443 : 80),
      method,
      path,
      agent: secure ? httpsAgent : agent,
      timeout: timeoutMs,
      headers: { ...headers, ...(body ? { 'content-length': body.length } : {}) },
    },
    onResponse,
  );
  req.on('timeout', () => req.destroy(new Error(`${base.host} did not answer within ${timeoutMs} ms`)));
  return req;
}

/** Requests whose client a cluster node vouched for (see `vouchForClient`). */
const vouched = new WeakMap<object, string>();

/**
 * Who `req` is from, for the per-client limits: the client a cluster node
 * that forwarded it vouched for, else its address.
 */
export function clientOf(req: FastifyRequest): string {
  return vouched.get(req.raw) ?? requestClient(req);
}

/**
 * Takes `CLIENT_HEADER` of `req` as its client: only for a request from a
 * cluster node that proved itself (it holds the peer's placement lock), whose
 * own peer address is that node's, not the client's.
 */
export function vouchForClient(req: FastifyRequest): void {
  const v = req.headers[CLIENT_HEADER];
  if (typeof v === 'string' && v !== '') vouched.set(req.raw, forwardedClient(req.headers, req.ip));
}

/**
 * The client's headers as sent on to an engine or another node: hop-by-hop
 * ones and `Origin` dropped, and `CLIENT_HEADER` saying who the client is
 * (whatever the client itself put there is replaced: it is not believed).
 * A proxy's forwarding headers (`X-Forwarded-For` …) are dropped too: this
 * front has read them already (`trustProxy`) into `CLIENT_HEADER`, and passed
 * on they would be believed by a node whose `trustProxy` covers this node's
 * address even where this front did not believe them (a client that wrote
 * its own and connected directly).
 */
export function forwardedHeaders(req: FastifyRequest): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || name === 'origin' || name.startsWith('access-control-request-') || isForwardingHeader(name)) continue;
    out[name] = value;
  }
  out[CLIENT_HEADER] = clientOf(req);
  return out;
}

/** The client's body as received (the front parses no body: every content type arrives as a Buffer). */
export function bodyOf(req: FastifyRequest): Buffer | undefined {
  return Buffer.isBuffer(req.body) ? req.body : undefined;
}

/** Replays the client's request on an engine. */
export function forward(port: number, req: FastifyRequest, path: string = req.url): Promise<EngineResponse> {
  return requestEngine(port, req.method, path, forwardedHeaders(req), bodyOf(req));
}

/** Sends an engine's answer to the client, minus hop-by-hop and CORS headers (the front's CORS layer set its own). */
export function relay(reply: FastifyReply, res: EngineResponse): FastifyReply {
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || name.startsWith('access-control-') || name === 'vary' || name === 'date') continue;
    void reply.header(name, value);
  }
  // Hop-by-hop, but a 426 must name the protocol to upgrade to (RFC 9110 §15.5.22), whoever answers.
  if (res.status === 426 && res.headers.upgrade !== undefined) void reply.header('upgrade', res.headers.upgrade);
  return reply.code(res.status).send(res.body);
}

/** Parses an engine's JSON answer (undefined if it is not JSON). */
export function jsonOf<T>(res: EngineResponse): T | undefined {
  try {
    return JSON.parse(res.body.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}
