/**
 * The WHIP client's own failures, against real HTTP servers on loopback: each
 * is a `WhipRequestError` with the catalog's code and words (src/errors.ts),
 * and the server's status; a server's problem `code` wins over the client's.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WhipClient, WhipRequestError } from '../../src/client/whip-client.js';
import { errors } from '../../src/errors.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())));

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
    expect(e).toMatchObject({ code: 'EARSHOT_NO_OPUS_AUDIO', status: 422, message: `422 from ${url}: no Opus` });
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
