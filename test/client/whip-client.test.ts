/**
 * The WHIP client's own failures, against real HTTP servers on loopback: each
 * is a `WhipRequestError` with the catalog's code and words (src/errors.ts),
 * and the server's status; a server's problem `code` wins over the client's.
 * Redirects are followed as RFC 9725 §4.5 asks (the offer posted again, the
 * session URL resolved against the server that answered).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WhipClient, WhipRequestError } from '../../src/client/whip-client.js';
import { errors, isEarshotError } from '../../src/errors.js';
import { fetchTrusting, selfSignedCert } from '../helpers/tls.js';
import { until } from '../helpers/until.js';

let server: Server | undefined;
/** More servers a test started (redirect targets), closed after it. */
const others: Server[] = [];
afterEach(async () => {
  for (const s of [server, ...others.splice(0)]) {
    s?.closeAllConnections();
    await new Promise<void>((done) => (s ? s.close(() => done()) : done()));
  }
  server = undefined;
});

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  contentType?: string;
  body: string;
}

/** A loopback server answering each request with `reply(request, its body)`; resolves to its base URL and the requests it saw. */
async function serving(reply: (req: Seen, res: ServerResponse) => void): Promise<{ base: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b));
    req.on('end', () => {
      const r: Seen = { method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, contentType: req.headers['content-type'], body };
      seen.push(r);
      reply(r, res);
    });
  });
  await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
  others.push(s);
  return { base: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen, server: s };
}

/** A server that answers every request with `status`, `headers` and `body`; resolves to its WHIP URL. */
async function answering(status: number, headers: Record<string, string>, body: string): Promise<string> {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(status, headers).end(body));
  });
  await new Promise<void>((done) => server!.listen(0, '127.0.0.1', done));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/whip/room/peer`;
}

async function failure(url: string): Promise<WhipRequestError> {
  const e = await new WhipClient({ timeoutMs: 5000 }).publish(url, 'v=0\r\n').catch((e: unknown) => e);
  expect(e).toBeInstanceOf(WhipRequestError);
  return e as WhipRequestError;
}

describe('WhipClient failures', () => {
  it('no answer at all is EARSHOT_WHIP_UNREACHABLE with status 0', async () => {
    const url = await answering(200, {}, '');
    await new Promise<void>((done) => server!.close(() => done()));
    server = undefined;
    const e = await failure(url);
    expect(e.code).toBe(errors.WHIP_UNREACHABLE.code);
    expect(e.status).toBe(0);
    // Why, as the system said it: not fetch's bare "fetch failed".
    const port = new URL(url).port;
    expect(e.message).toBe(`WHIP endpoint ${url} did not answer: connect ECONNREFUSED 127.0.0.1:${port}`);
    // Ending a session on a server that has gone is the same error, not a raw "fetch failed" TypeError.
    const ended = await new WhipClient({ timeoutMs: 5000 }).end(`${url}/whip/sessions/abc`).catch((err: unknown) => err);
    expect(ended).toBeInstanceOf(WhipRequestError);
    expect(ended).toMatchObject({ code: errors.WHIP_UNREACHABLE.code, status: 0 });
    expect((ended as Error).message).toMatch(/did not answer: connect ECONNREFUSED /);
    // A port fetch will not connect to at all is not a server that did not answer: it says why.
    const blocked = await failure('http://127.0.0.1:9/whip/a/b');
    expect(blocked.code).toBe(errors.WHIP_UNREACHABLE.code);
    expect(blocked.message).toBe("WHIP endpoint http://127.0.0.1:9/whip/a/b did not answer: bad port: fetch does not connect to this port (it belongs to another protocol, see the Fetch standard's list of bad ports); nothing was sent. Use another port");
  });

  it('a 201 without Location is EARSHOT_WHIP_NO_LOCATION', async () => {
    const url = await answering(201, { 'content-type': 'application/sdp' }, 'v=0\r\n');
    const e = await failure(url);
    expect(e).toMatchObject({ code: 'EARSHOT_WHIP_NO_LOCATION', status: 201, message: `WHIP endpoint ${url} answered 201 without a Location header` });
  });

  it('an error without a problem document is EARSHOT_WHIP_HTTP with the server status and text', async () => {
    const url = await answering(503, { 'content-type': 'text/plain' }, 'busy');
    const e = await failure(url);
    expect(e).toMatchObject({ code: 'EARSHOT_WHIP_HTTP', status: 503, message: `503 Service Unavailable from ${url}: busy` });
  });

  it("a problem document's code and detail are the server's", async () => {
    const url = await answering(422, { 'content-type': 'application/problem+json' }, JSON.stringify({ code: 'EARSHOT_NO_OPUS_AUDIO', detail: 'no Opus' }));
    const e = await failure(url);
    expect(e).toMatchObject({ code: 'EARSHOT_NO_OPUS_AUDIO', status: 422, message: `422 Unprocessable Entity from ${url}: no Opus` });
    // One check catches it with earshot's other errors: an EarshotError of a server upstream (502).
    expect(isEarshotError(e)).toBe(true);
    expect(e).toMatchObject({ name: 'WhipRequestError', statusCode: 502, extensions: { status: 422 } });
  });

  it('refuses a URL other than http(s) and a token that is not visible ASCII, without sending anything', async () => {
    let requests = 0;
    server = createServer((req, res) => void (requests++, res.end()));
    await new Promise<void>((done) => server!.listen(0, '127.0.0.1', done));
    const port = (server.address() as AddressInfo).port;
    await expect(new WhipClient().publish(`ftp://127.0.0.1:${port}/whip/room/peer`, 'v=0\r\n')).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'url' } });
    for (const token of ['s3cr3t\n', 's3cr3t x', 's3cr3t\u00e9', '\u0000s3cr3t']) {
      const e = (() => {
        try {
          new WhipClient({ token });
        } catch (e) {
          return e as Error;
        }
      })();
      expect(e, JSON.stringify(token)).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'token' }, message: expect.stringMatching(/^options\.token must be visible ASCII characters/) });
      expect(e!.message, 'the secret is not repeated').not.toContain('s3cr3t');
    }
    expect(requests).toBe(0);
  });

  it('refuses an option it does not have (naming the nearest) or cannot use, as sendAudio does', () => {
    const made = (options: unknown) => {
      try {
        new WhipClient(options as ConstructorParameters<typeof WhipClient>[0]);
      } catch (e) {
        return e as Error;
      }
      return undefined;
    };
    // A misspelt token would publish without one.
    expect(made({ tokn: 'abc' })).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', message: 'options.tokn is not an option of WhipClient (did you mean token?)' });
    expect(made({ timeoutMs: -1 })).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'timeoutMs' } });
    expect(made({ fetch: 'fetch' })).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'fetch' } });
    expect(made({ token: 'abc', timeoutMs: 5000, fetch: globalThis.fetch })).toBeUndefined();
  });
});

describe('WhipClient redirects and answers', () => {
  const OFFER = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n';
  const ANSWER = 'v=0\r\nanswer\r\n';
  /** The media server: 201 with a Location relative to itself; DELETE 204. */
  const media = () =>
    serving((req, res) => {
      if (req.method === 'DELETE') res.writeHead(204).end();
      else res.writeHead(201, { 'content-type': 'application/sdp', location: 'sessions/abc' }).end(ANSWER);
    });

  it.each([307, 308, 301, 302])('follows a %i by posting the offer again, with its token, and resolves the session URL against the server that answered', async (status) => {
    const target = await media();
    const front = await serving((_req, res) => res.writeHead(status, { location: `${target.base}/whip/room/peer` }).end());
    const client = new WhipClient({ token: 'tok', timeoutMs: 5000 });
    const published = await client.publish(`${front.base}/whip/room/peer`, OFFER);
    expect(published).toMatchObject({ answer: ANSWER, sessionUrl: `${target.base}/whip/room/sessions/abc` });
    expect(target.seen).toEqual([{ method: 'POST', url: '/whip/room/peer', authorization: 'Bearer tok', contentType: 'application/sdp', body: OFFER }]);
    // The session is ended where it lives.
    expect(await client.end(published.sessionUrl)).toBe(204);
    expect(target.seen.at(-1)).toMatchObject({ method: 'DELETE', url: '/whip/room/sessions/abc', authorization: 'Bearer tok' });
    expect(front.seen).toHaveLength(1);
  });

  it('gives each request of a redirect chain the whole timeoutMs, and times out one that takes longer', async () => {
    // Each server answers in 600 ms: the chain takes 1.2 s, each request less than the 1 s timeout.
    const slowly = (reply: (req: Seen, res: ServerResponse) => void) => serving((req, res) => setTimeout(() => reply(req, res), 600));
    const target = await slowly((_req, res) => res.writeHead(201, { 'content-type': 'application/sdp', location: 'sessions/abc' }).end(ANSWER));
    const front = await slowly((_req, res) => res.writeHead(307, { location: `${target.base}/whip/room/peer` }).end());
    const client = new WhipClient({ timeoutMs: 1000 });
    expect(await client.publish(`${front.base}/whip/room/peer`, OFFER)).toMatchObject({ answer: ANSWER, sessionUrl: `${target.base}/whip/room/sessions/abc` });
    const tooSlow = new WhipClient({ timeoutMs: 500 });
    await expect(tooSlow.publish(`${front.base}/whip/room/peer`, OFFER)).rejects.toMatchObject({ code: 'EARSHOT_WHIP_UNREACHABLE', status: 0 });
  });

  it('refuses a redirect it must not follow with EARSHOT_WHIP_REDIRECT, naming why', async () => {
    const target = await media();
    const redirecting = async (status: number, location?: string) => {
      const front = await serving((_req, res) => res.writeHead(status, location === undefined ? {} : { location }).end());
      return `${front.base}/whip/room/peer`;
    };
    const refused = async (url: string, token?: string) => {
      const e = await new WhipClient({ token, timeoutMs: 5000 }).publish(url, OFFER).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(WhipRequestError);
      expect(e).toMatchObject({ code: 'EARSHOT_WHIP_REDIRECT' });
      return (e as Error).message;
    };
    const see = await redirecting(303, `${target.base}/x`);
    expect(await refused(see)).toBe(`WHIP endpoint ${see} redirected (303) with 303 See Other, which asks for a GET: a WHIP endpoint redirects an offer with 307 (RFC 9725 §4.5). Nothing was published.`);
    expect(await refused(await redirecting(307))).toMatch(/redirected \(307\) without a Location header\./);
    expect(await refused(await redirecting(307, 'ftp://127.0.0.1/x'))).toMatch(/redirected \(307\) to ftp:\/\/127\.0\.0\.1\/x, which is not an http: or https: URL\./);
    // A loop between two endpoints ends.
    const loop = await serving((req, res) => res.writeHead(307, { location: req.url }).end());
    expect(await refused(`${loop.base}/whip/room/peer`)).toMatch(/redirected \(307\) more than 5 times in a row\./);
    expect(loop.seen).toHaveLength(6);
    // The token goes in clear text to the same host only: "localhost" is another name.
    const elsewhere = await redirecting(307, `${target.base.replace('127.0.0.1', 'localhost')}/whip/room/peer`);
    expect(await refused(elsewhere, 'tok')).toMatch(/the token is not sent to another host over plain HTTP/);
    expect(target.seen).toEqual([]);
    // Without a token there is nothing to protect.
    expect((await new WhipClient({ timeoutMs: 5000 }).publish(elsewhere, OFFER)).sessionUrl).toMatch(/^http:\/\/localhost:\d+\/whip\/room\/sessions\/abc$/);
  });

  it('does not carry the token from https to plain http, even on the same host', async () => {
    const target = await media();
    const dir = await mkdtemp(join(tmpdir(), 'earshot-whip-tls-'));
    const { cert, key } = selfSignedCert(dir);
    const front = createHttpsServer({ cert, key }, (req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(307, { location: `${target.base}/whip/room/peer` }).end());
    });
    try {
      await new Promise<void>((done) => front.listen(0, '127.0.0.1', done));
      const url = `https://127.0.0.1:${(front.address() as AddressInfo).port}/whip/room/peer`;
      const e = await new WhipClient({ token: 'tok', timeoutMs: 5000, fetch: fetchTrusting(cert) }).publish(url, OFFER).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'EARSHOT_WHIP_REDIRECT', message: expect.stringMatching(/the token is not sent from https to plain HTTP/) });
      expect(target.seen).toEqual([]);
    } finally {
      front.closeAllConnections();
      await new Promise<void>((done) => front.close(() => done()));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("carries a 503's or 429's Retry-After, in seconds, on the error and in its message", async () => {
    const busy = await serving((_req, res) => res.writeHead(503, { 'retry-after': '2', 'content-type': 'application/problem+json' }).end(JSON.stringify({ code: 'EARSHOT_OVERLOADED', detail: 'full' })));
    const e = await failure(`${busy.base}/whip/room/peer`);
    expect(e).toMatchObject({ code: 'EARSHOT_OVERLOADED', status: 503, retryAfter: 2, message: `503 Service Unavailable from ${busy.base}/whip/room/peer: full (the server asks to retry after 2 s)` });
    const date = new Date(Date.now() + 30_000).toUTCString();
    const limited = await serving((_req, res) => res.writeHead(429, { 'retry-after': date, 'content-type': 'text/plain' }).end('slow down'));
    const later = await failure(`${limited.base}/whip/room/peer`);
    expect(later).toMatchObject({ code: 'EARSHOT_WHIP_HTTP', status: 429 });
    expect(later.retryAfter).toBeGreaterThanOrEqual(28);
    expect(later.retryAfter).toBeLessThanOrEqual(31);
  });

  it('says that an offer is answered with 201 when a server answers 200', async () => {
    const ok = await serving((_req, res) => res.writeHead(200, { 'content-type': 'application/sdp', location: '/s/1' }).end(ANSWER));
    const e = await failure(`${ok.base}/whip/room/peer`);
    expect(e).toMatchObject({ code: 'EARSHOT_WHIP_HTTP', status: 200, message: `200 OK from ${ok.base}/whip/room/peer: a WHIP endpoint answers an offer with 201 Created and the session's Location (RFC 9725 §4.2)` });
  });

  it('refuses a Location that is not a URL', async () => {
    const bad = await serving((_req, res) => res.writeHead(201, { 'content-type': 'application/sdp', location: 'http://[x' }).end(ANSWER));
    const e = await failure(`${bad.base}/whip/room/peer`);
    expect(e).toMatchObject({ code: 'EARSHOT_WHIP_NO_LOCATION', status: 201, message: `WHIP endpoint ${bad.base}/whip/room/peer answered 201 with Location "http://[x", which is not a URL` });
  });

  it('ends the session it created when the answer\'s body never arrives', async () => {
    const stalled = await serving((req, res) => {
      if (req.method === 'DELETE') return void res.writeHead(204).end();
      // Headers and half the answer, then nothing.
      res.writeHead(201, { 'content-type': 'application/sdp', location: '/whip/sessions/half', 'content-length': '100' });
      res.write('v=0\r\n');
    });
    const e = await new WhipClient({ timeoutMs: 500 }).publish(`${stalled.base}/whip/room/peer`, OFFER).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WhipRequestError);
    expect(e).toMatchObject({ code: 'EARSHOT_WHIP_UNREACHABLE', status: 201, message: expect.stringMatching(/its answer's body did not arrive \(.+\); the session it created was ended$/) });
    expect(stalled.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /whip/room/peer', 'DELETE /whip/sessions/half']);
  });

  it('stops at once when its signal aborts, with EARSHOT_SEND_ABORTED', async () => {
    const silent = await serving(() => undefined); // never answers
    const controller = new AbortController();
    const publishing = new WhipClient({ timeoutMs: 60_000 }).publish(`${silent.base}/whip/room/peer`, OFFER, controller.signal).catch((x: unknown) => x);
    await until('the offer reached the server', () => (silent.seen.length > 0 ? true : undefined));
    controller.abort();
    // The offer was out and no Location came back: the message does not claim a DELETE it could not send.
    expect(await publishing).toMatchObject({
      code: 'EARSHOT_SEND_ABORTED',
      message: 'Stopped while publishing the offer, before any audio was sent; if the server had created a session already, it ends it when no media arrives.',
    });
    // Aborted before it starts: nothing is sent, and the message says no session was made.
    await expect(new WhipClient().publish(`${silent.base}/whip/room/peer`, OFFER, AbortSignal.abort())).rejects.toMatchObject({
      code: 'EARSHOT_SEND_ABORTED',
      message: expect.stringMatching(/; no session had been created\.$/),
    });
    expect(silent.seen).toHaveLength(1);
  });
});
