/**
 * Every documented error of the WHIP endpoint and the control API, with its
 * HTTP status, problem+json body and stable code — against the real server.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromeLikeOffer, weriftOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { rawExchange } from '../helpers/raw-http.js';

let t: TestServer;
const TOKEN = 's3cret-token';

beforeAll(async () => {
  t = await startServer({ token: TOKEN, connectTimeoutMs: 3000 });
});
afterAll(async () => {
  await t?.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };

async function problem(res: Response) {
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return (await res.json()) as { code: string; status: number; detail: string; title: string };
}

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  return fetch(`${t.url}${path}`, { method: 'POST', body, headers: { ...auth, 'content-type': 'application/sdp', ...headers } });
}

describe('WHIP endpoint errors', () => {
  it('answers OPTIONS without a token, with CORS and Accept-Post', async () => {
    const res = await fetch(`${t.url}/whip/demo/alice`, { method: 'OPTIONS', headers: { origin: 'https://example.test', 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('accept-post')).toBe('application/sdp');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
  });

  it('refuses a POST without the bearer token with 401 EARSHOT_UNAUTHORIZED', async () => {
    const res = await fetch(`${t.url}/whip/demo/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
    expect(res.status).toBe(401);
    expect((await problem(res)).code).toBe('EARSHOT_UNAUTHORIZED');
  });

  it('refuses a wrong token with 401, saying the token was not accepted (not that none was sent)', async () => {
    const res = await post('/whip/demo/alice', chromeLikeOffer(), { authorization: 'Bearer nope' });
    expect(res.status).toBe(401);
    expect((await problem(res)).detail).toMatch(/^The bearer token sent is not accepted here: send "Authorization: Bearer <token>" with the --token/);
    const none = await fetch(`${t.url}/whip/demo/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
    expect((await problem(none)).detail).toMatch(/^Publishing needs a bearer token/);
  });

  it('names the Bearer scheme in WWW-Authenticate on every 401, and says when the token sent is not valid (RFC 6750 §3)', async () => {
    const missing = await fetch(`${t.url}/whip/demo/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="earshot"');
    const wrong = await post('/whip/demo/alice', chromeLikeOffer(), { authorization: 'Bearer nope' });
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="earshot", error="invalid_token"');
    const session = await fetch(`${t.url}/whip/sessions/0123456789abcdef`, { method: 'DELETE' });
    expect(session.status).toBe(401);
    expect(session.headers.get('www-authenticate')).toBe('Bearer realm="earshot"');
    // A browser page may read it: CORS exposes it.
    const cors = await fetch(`${t.url}/whip/demo/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', origin: 'https://example.test' } });
    expect(cors.headers.get('access-control-expose-headers')).toMatch(/WWW-Authenticate/);
  });

  it('answers other methods with 405 EARSHOT_METHOD_NOT_ALLOWED and an Allow that agrees with OPTIONS', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await fetch(`${t.url}/whip/demo/alice`, { method, headers: auth });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow')).toBe('POST, OPTIONS');
      expect((await problem(res)).code).toBe('EARSHOT_METHOD_NOT_ALLOWED');
    }
    const options = await fetch(`${t.url}/whip/sessions/0123456789abcdef`, { method: 'OPTIONS' });
    expect(options.headers.get('allow')).toBe('DELETE, OPTIONS');
    for (const method of ['GET', 'PUT']) {
      const res = await fetch(`${t.url}/whip/sessions/0123456789abcdef`, { method, headers: auth });
      expect(res.status, method).toBe(405);
      expect(res.headers.get('allow')).toBe('DELETE, OPTIONS');
    }
    // HEAD is GET without a body (RFC 9110 §9.3.2): 405 where GET is, not 404, with the same Allow.
    const head = await fetch(`${t.url}/whip/demo/alice`, { method: 'HEAD', headers: auth });
    expect([head.status, head.headers.get('allow')]).toEqual([405, 'POST, OPTIONS']);
    // It matched the endpoint's POST route too (room "sessions") and was told POST.
    const sessionHead = await fetch(`${t.url}/whip/sessions/0123456789abcdef`, { method: 'HEAD', headers: auth });
    expect([sessionHead.status, sessionHead.headers.get('allow')]).toEqual([405, 'DELETE, OPTIONS']);
    // WHEP's resources alike.
    for (const [path, allow] of [['/whep/alice', 'POST, OPTIONS'], ['/whep/alice/0123456789abcdef', 'DELETE, OPTIONS']]) {
      const whepHead = await fetch(`${t.url}${path}`, { method: 'HEAD', headers: auth });
      expect([path, whepHead.status, whepHead.headers.get('allow')]).toEqual([path, 405, allow]);
    }
    // A PUT with a body is refused for its method, whatever the body's type (it was a 415 for a type no route reads).
    for (const type of ['', 'application/octet-stream', 'text/plain', 'application/sdp']) {
      const raw = await rawExchange(t.url, `PUT /whip/demo/alice HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth.authorization}\r\nContent-Type: ${type}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`);
      expect([type, /^HTTP\/1\.1 (\d+)/.exec(raw)?.[1], /\r\nallow: ([^\r]*)/i.exec(raw)?.[1]]).toEqual([type, '405', 'POST, OPTIONS']);
    }
    // Methods no route has (which fetch cannot send): the Allow of the resource the path names. A session
    // URL also matches the endpoint's pattern (room "sessions"), whose POST it does not take, and PATCH is 501.
    for (const [path, allow] of [['/whip/sessions/0123456789abcdef', 'DELETE, OPTIONS'], ['/whep/alice/0123456789abcdef', 'DELETE, OPTIONS'], ['/whip/demo/alice', 'POST, OPTIONS']]) {
      // QUERY without a Content-Type was Fastify's 400 ("must provide a 'Content-Type' header"): it reads a body for QUERY.
      for (const method of ['TRACE', 'PROPFIND', 'QUERY']) {
        const raw = await rawExchange(t.url, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
        expect([method, path, /^HTTP\/1\.1 (\d+)/.exec(raw)?.[1], /\r\nallow: ([^\r]*)/i.exec(raw)?.[1]]).toEqual([method, path, '405', allow]);
      }
    }
  });

  it('answers a method a control route does not take with 405 and what it allows (RFC 9110 §15.5.6), not 404', async () => {
    const cases: Array<[string, string, string]> = [
      ['POST', '/stats', 'GET, HEAD'],
      ['DELETE', '/health', 'GET, HEAD'],
      ['PATCH', '/pipelines/default', 'GET, HEAD, PUT, DELETE'],
      ['PUT', '/peers/x/recording', 'POST, DELETE'],
      // A plain OPTIONS (no Origin) on the control API without --cors-origin: as docs/security.md says.
      ['OPTIONS', '/stats', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await fetch(`${t.url}${path}`, { method, headers: auth });
      expect([method, path, res.status, res.headers.get('allow')]).toEqual([method, path, 405, allow]);
      const p = await problem(res);
      expect(p.code).toBe('EARSHOT_METHOD_NOT_ALLOWED');
      expect(p.detail).toBe(`${method} is not a method of this resource; it allows ${allow} (see the Allow header).`);
    }
  });

  it('sends 100 Continue only to a request it will read: not before a 401, 415 or 413 (RFC 9110 §10.1.1)', async () => {
    const port = Number(new URL(t.url).port);
    // A client that waits for 100 before it sends its body, as some clients do for large bodies.
    const exchange = (headers: Record<string, string>, body: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        let got = '';
        socket.setEncoding('latin1');
        socket.on('data', (d: string) => {
          got += d;
          if (got === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(body);
        });
        socket.on('error', reject);
        socket.on('close', () => resolve(got));
        const head = Object.entries({ host: `127.0.0.1:${port}`, expect: '100-continue', connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}`);
        socket.write(`POST /whip/demo/expecting HTTP/1.1\r\n${head.join('\r\n')}\r\n\r\n`);
      });
    const offer = chromeLikeOffer();
    const sdp = { 'content-type': 'application/sdp', 'content-length': String(Buffer.byteLength(offer)) };
    // Refused on the headers alone: no 100, so the client never sends its body.
    expect(await exchange({ ...sdp }, offer)).toMatch(/^HTTP\/1\.1 401 /);
    expect(await exchange({ ...sdp, ...auth, 'content-type': 'text/plain' }, offer)).toMatch(/^HTTP\/1\.1 415 /);
    expect(await exchange({ ...sdp, ...auth, 'content-length': String(70_000) }, offer)).toMatch(/^HTTP\/1\.1 413 /);
    // Taken: 100 first, then the answer to the body sent after it.
    const taken = await exchange({ ...sdp, ...auth }, offer);
    expect(taken).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    const location = /\r\nlocation: (\S+)\r\n/i.exec(taken)![1];
    expect((await fetch(new URL(location, t.url), { method: 'DELETE', headers: auth })).status).toBe(200);
  });

  it('never publishes a POST to a session URL: 405, not a peer in a room called "sessions"', async () => {
    const res = await post('/whip/sessions/anything', chromeLikeOffer());
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('DELETE, OPTIONS');
    expect((await problem(res)).code).toBe('EARSHOT_METHOD_NOT_ALLOWED');
    expect((await fetch(`${t.url}/stats/anything`)).status).toBe(404);
  });

  it('refuses a body that is not application/sdp with 415 EARSHOT_UNSUPPORTED_MEDIA_TYPE', async () => {
    const res = await post('/whip/demo/alice', '{"sdp":"v=0"}', { 'content-type': 'application/json' });
    expect(res.status).toBe(415);
    expect((await problem(res)).code).toBe('EARSHOT_UNSUPPORTED_MEDIA_TYPE');
    const plain = await post('/whip/demo/alice', 'v=0', { 'content-type': 'text/plain' });
    expect(plain.status).toBe(415);
    expect((await problem(plain)).code).toBe('EARSHOT_UNSUPPORTED_MEDIA_TYPE');
    // Before any body is read: JSON that does not parse is still the wrong type, not a bad body.
    const broken = await post('/whip/demo/alice', '{', { 'content-type': 'application/json' });
    expect(broken.status).toBe(415);
    expect((await problem(broken)).code).toBe('EARSHOT_UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses an SDP or text body on a control route with 415, not a schema error', async () => {
    const res = await fetch(`${t.url}/pipelines/zz`, { method: 'PUT', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
    expect(res.status).toBe(415);
    expect((await problem(res)).detail).toMatch(/must be application\/json/);
    const text = await fetch(`${t.url}/rooms/sales`, { method: 'PUT', body: '{"pipeline":"default"}', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect((await problem(text)).code).toBe('EARSHOT_UNSUPPORTED_MEDIA_TYPE');
    // The same body as JSON is taken.
    const json = await fetch(`${t.url}/rooms/sales`, { method: 'PUT', body: '{"pipeline":"default"}', headers: { 'content-type': 'application/json' } });
    expect(json.status).toBe(200);
    await fetch(`${t.url}/rooms/sales`, { method: 'DELETE' });
  });

  it('takes any +json type as JSON, and says what is wrong with a JSON body: its syntax, a key given twice, or a key that reaches a prototype', async () => {
    const put = (body: string, type = 'application/json') => fetch(`${t.url}/rooms/typed`, { method: 'PUT', body, headers: { 'content-type': type } });
    expect((await put('{"pipeline":"default"}', 'application/vnd.earshot+json')).status).toBe(200);
    await fetch(`${t.url}/rooms/typed`, { method: 'DELETE' });
    for (const [body, detail] of [
      ['{bad', /^The JSON body is not valid JSON: .* \(line 1, column 2\)$/],
      ['{"pipeline":"telephony",\n"pipeline":"default"}', /^The JSON body has the key \/pipeline twice \(lines 1 and 2\); JSON keeps only the last/],
      ['{"__proto__":{"pipeline":"x"}}', /^The JSON body has a "__proto__" key, which is refused/],
      ['{"pipeline":"default","constructor":{"prototype":{"x":1}}}', /^The JSON body has a "constructor\.prototype" key, which is refused/],
    ] as const) {
      const res = await put(body);
      const p = await problem(res);
      expect([res.status, p.code]).toEqual([400, 'EARSHOT_BODY_INVALID']);
      expect(p.detail).toMatch(detail);
    }
  });

  it('keeps "sessions" from being a room: a binding for it is 400 EARSHOT_NAME_INVALID', async () => {
    const res = await fetch(`${t.url}/rooms/sessions`, { method: 'PUT', body: '{"pipeline":"default"}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    const p = await problem(res);
    expect(p.code).toBe('EARSHOT_NAME_INVALID');
    expect(p.detail).toMatch(/"sessions" is taken by the WHIP session URLs/);
  });

  it('refuses an offer from an ICE-lite agent with 400 EARSHOT_SDP_INVALID at once, not a session that can only time out', async () => {
    const offer = chromeLikeOffer().replace(/^(t=.*\r\n)/m, '$1a=ice-lite\r\n');
    expect(offer).toMatch(/^a=ice-lite\r$/m);
    const res = await post('/whip/demo/lite', offer);
    expect(res.status).toBe(400);
    const p = await problem(res);
    expect(p.code).toBe('EARSHOT_SDP_INVALID');
    expect(p.detail).toMatch(/declares a=ice-lite.*Offer as a full ICE agent/);
  });

  it('refuses an offer without RTP/RTCP multiplexing (a=rtcp-mux) with 400 EARSHOT_SDP_INVALID, not an answer that claims it', async () => {
    const offer = chromeLikeOffer().replace(/^a=rtcp-mux\r\n/m, '');
    expect(offer).not.toMatch(/^a=rtcp-mux/m);
    const res = await post('/whip/demo/unmuxed', offer);
    expect(res.status).toBe(400);
    const p = await problem(res);
    expect(p.code).toBe('EARSHOT_SDP_INVALID');
    expect(p.detail).toMatch(/does not offer RTP and RTCP on one port \(a=rtcp-mux/);
    // a=rtcp-mux-only (RFC 8858) alone is multiplexing too.
    const only = await post('/whip/demo/mux-only', chromeLikeOffer().replace(/^a=rtcp-mux\r\n/m, 'a=rtcp-mux-only\r\n'));
    expect(only.status).toBe(201);
    await fetch(new URL(only.headers.get('location')!, t.url), { method: 'DELETE' });
  });

  it('refuses unparsable SDP with 400 EARSHOT_SDP_INVALID', async () => {
    for (const body of ['hello world', '', 'v=0\r\nthis is not sdp\r\n']) {
      const res = await post('/whip/demo/alice', body);
      expect(res.status, body).toBe(400);
      expect((await problem(res)).code).toBe('EARSHOT_SDP_INVALID');
    }
  });

  it('refuses an offer without Opus audio with 422 EARSHOT_NO_OPUS_AUDIO', async () => {
    const pcmu = await weriftOffer({ mimeType: 'audio/PCMU', clockRate: 8000 });
    try {
      const res = await post('/whip/demo/alice', pcmu.sdp);
      expect(res.status).toBe(422);
      const p = await problem(res);
      expect(p.code).toBe('EARSHOT_NO_OPUS_AUDIO');
      expect(p.detail).toMatch(/PCMU/);
    } finally {
      await pcmu.pc.close();
    }
    const recvonly = chromeLikeOffer().replace('a=sendonly', 'a=recvonly');
    const res = await post('/whip/demo/alice', recvonly);
    expect(res.status).toBe(422);
    expect((await problem(res)).detail).toMatch(/recvonly/);
  });

  it('refuses an invalid room or peer name with 400 EARSHOT_NAME_INVALID', async () => {
    const res = await post('/whip/demo/bad%20name', chromeLikeOffer());
    expect(res.status).toBe(400);
    expect((await problem(res)).code).toBe('EARSHOT_NAME_INVALID');
  });

  it('counts every refused offer by its code, also those refused before the offer is read (not 401/403)', async () => {
    const before = t.server.core.refusedBy();
    const counted = (code: string) => (t.server.core.refusedBy()[code] ?? 0) - (before[code] ?? 0);
    expect((await post('/whip/demo/alice', 'v=0', { 'content-type': 'text/plain' })).status).toBe(415);
    expect((await post('/whip/demo/alice', 'v=0\r\n'.padEnd(200_000, 'a'))).status).toBe(413);
    expect((await post('/whip/demo/bad%20name', chromeLikeOffer())).status).toBe(400);
    expect((await post('/whip/demo/alice?pipeline=', chromeLikeOffer())).status).toBe(400);
    expect((await post('/whip/demo/alice', 'not sdp')).status).toBe(400);
    expect((await fetch(`${t.url}/whip/demo/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } })).status).toBe(401);
    expect([counted('EARSHOT_UNSUPPORTED_MEDIA_TYPE'), counted('EARSHOT_BODY_TOO_LARGE'), counted('EARSHOT_NAME_INVALID'), counted('EARSHOT_BODY_INVALID'), counted('EARSHOT_SDP_INVALID')]).toEqual([1, 1, 1, 1, 1]);
    expect(counted('EARSHOT_UNAUTHORIZED')).toBe(0);
    const metrics = await (await fetch(`${t.url}/metrics`, { headers: auth })).text();
    expect(metrics).toMatch(/^earshot_sessions_refused_total\{code="EARSHOT_UNSUPPORTED_MEDIA_TYPE"\} [1-9]/m);
  });

  it('echoes what JSEP says an answer echoes: the offer\'s <proto>, and a=extmap-allow-mixed only when offered (RFC 8829 §5.3.1)', async () => {
    const legacy = chromeLikeOffer().replace('m=audio 9 UDP/TLS/RTP/SAVPF ', 'm=audio 9 RTP/SAVPF ').replace(/^a=extmap-allow-mixed\r\n/m, '');
    expect(legacy).toMatch(/^m=audio 9 RTP\/SAVPF /m);
    expect(legacy).not.toMatch(/extmap-allow-mixed/);
    const res = await post('/whip/demo/legacy', legacy);
    expect(res.status).toBe(201);
    const answer = await res.text();
    expect(answer).toMatch(/^m=audio [1-9]\d* RTP\/SAVPF 111\r?$/m);
    expect(answer).not.toMatch(/extmap-allow-mixed/);
    await fetch(`${t.url}${res.headers.get('location')}`, { method: 'DELETE', headers: auth });
  });

  it('answers a Chromium-shaped offer (many codecs, extensions) with Opus on its payload type', async () => {
    const res = await post('/whip/demo/chrome', chromeLikeOffer());
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toMatch(/^application\/sdp/);
    const location = res.headers.get('location')!;
    expect(location).toMatch(/^\/whip\/sessions\/[A-Za-z0-9_-]{22}$/);
    expect(res.headers.get('access-control-expose-headers')).toMatch(/Location/);
    const answer = await res.text();
    expect(answer).toMatch(/^m=audio [1-9]\d* UDP\/TLS\/RTP\/SAVPF 111\r?$/m);
    expect(answer).toMatch(/a=rtpmap:111 opus\/48000\/2/);
    expect(answer).toMatch(/a=candidate:.* 127\.0\.0\.1 \d+ typ host/);
    expect(answer).toMatch(/a=ice-lite/);
    expect(answer).toMatch(/a=recvonly/);
    expect(answer).toMatch(/^a=extmap-allow-mixed\r?$/m);
    // PATCH (trickle ICE) is not supported: 501, as RFC 9725 §4.3.1 asks of a session that takes PATCH for no purpose.
    const patch = await fetch(`${t.url}${location}`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates' });
    expect(patch.status).toBe(501);
    expect((await problem(patch)).code).toBe('EARSHOT_TRICKLE_NOT_SUPPORTED');
    const del = await fetch(`${t.url}${location}`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(200);
    const again = await fetch(`${t.url}${location}`, { method: 'DELETE', headers: auth });
    expect(again.status).toBe(404);
    expect((await problem(again)).code).toBe('EARSHOT_SESSION_NOT_FOUND');
  });

  it('answers DELETE of an unknown session with 404 EARSHOT_SESSION_NOT_FOUND, and requires the token', async () => {
    const res = await fetch(`${t.url}/whip/sessions/doesnotexist`, { method: 'DELETE', headers: auth });
    expect(res.status).toBe(404);
    expect((await problem(res)).code).toBe('EARSHOT_SESSION_NOT_FOUND');
    const noAuth = await fetch(`${t.url}/whip/sessions/doesnotexist`, { method: 'DELETE' });
    expect(noAuth.status).toBe(401);
    // If-Match on an unknown session: the 404 still (a precondition is judged only where the request would succeed).
    expect((await fetch(`${t.url}/whip/sessions/doesnotexist`, { method: 'DELETE', headers: { ...auth, 'if-match': '"nope"' } })).status).toBe(404);
  });

  it('ends a session on DELETE only when If-Match names its ETag (or *): another tag, or a weak one, is 412 and the session goes on (RFC 9110 §13.1.1)', async () => {
    const res = await post('/whip/demo/matched', chromeLikeOffer());
    expect(res.status).toBe(201);
    const location = res.headers.get('location')!;
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[^"]+"$/);
    for (const ifMatch of ['"nope"', `W/${etag}`, '"a", "b"']) {
      const refused = await fetch(`${t.url}${location}`, { method: 'DELETE', headers: { ...auth, 'if-match': ifMatch } });
      expect(refused.status, ifMatch).toBe(412);
      expect(await problem(refused)).toMatchObject({ code: 'EARSHOT_PRECONDITION_FAILED', detail: expect.stringContaining(`does not match this resource's entity tag ${etag}`) });
    }
    // Still there: a tag list holding its ETag ends it.
    const ended = await fetch(`${t.url}${location}`, { method: 'DELETE', headers: { ...auth, 'if-match': `"other", ${etag}` } });
    expect(ended.status).toBe(200);
    const star = await post('/whip/demo/starred', chromeLikeOffer());
    expect((await fetch(`${t.url}${star.headers.get('location')!}`, { method: 'DELETE', headers: { ...auth, 'if-match': '*' } })).status).toBe(200);
  });
});

describe('control API errors', () => {
  it('answers stats of an unknown peer with 404 EARSHOT_PEER_NOT_FOUND', async () => {
    const res = await fetch(`${t.url}/stats/nobody`);
    expect(res.status).toBe(404);
    // Statistics outlive a peer for a while, and the message says what this route looks for.
    expect(await problem(res)).toMatchObject({ code: 'EARSHOT_PEER_NOT_FOUND', detail: 'No peer "nobody", live or recently ended. GET /stats lists the peers.' });
  });

  it('answers recording control of an unknown peer with 404', async () => {
    const start = await fetch(`${t.url}/peers/nobody/recording`, { method: 'POST' });
    expect(start.status).toBe(404);
    expect(await problem(start)).toMatchObject({ code: 'EARSHOT_PEER_NOT_FOUND', detail: expect.stringMatching(/^No live peer "nobody": it has ended or never connected\./) });
    const stop = await fetch(`${t.url}/peers/nobody/recording`, { method: 'DELETE' });
    expect(stop.status).toBe(404);
  });

  it('refuses recording names that try to leave the directory', async () => {
    const res = await post('/whip/demo/namer', chromeLikeOffer());
    expect(res.status).toBe(201);
    const location = res.headers.get('location')!;
    try {
      // Subdirectories are allowed (a/b); leaving the recordings directory is not.
      for (const name of ['../escape', '/etc/passwd', 'a/../b', 'a/.hidden', '.hidden', 'a//b', '']) {
        const r = await fetch(`${t.url}/peers/namer/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
        expect(r.status, name).toBe(400);
        expect((await problem(r)).code).toBe('EARSHOT_RECORDING_NAME_INVALID');
      }
      const bad = await fetch(`${t.url}/peers/namer/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name": 5}' });
      expect(bad.status).toBe(400);
      expect((await problem(bad)).code).toBe('EARSHOT_BODY_INVALID');
      // The default pipeline's recording waits for the first audio (this peer never sends any), so
      // an explicit start opens a file at once; a second start is a conflict.
      const once = await fetch(`${t.url}/peers/namer/recording`, { method: 'POST' });
      expect(once.status).toBe(201);
      await once.arrayBuffer();
      const twice = await fetch(`${t.url}/peers/namer/recording`, { method: 'POST' });
      expect(twice.status).toBe(409);
      expect((await problem(twice)).code).toBe('EARSHOT_RECORDING_ACTIVE');
      const stop = await fetch(`${t.url}/peers/namer/recording`, { method: 'DELETE' });
      expect(stop.status).toBe(200);
      const stopAgain = await fetch(`${t.url}/peers/namer/recording`, { method: 'DELETE' });
      expect(stopAgain.status).toBe(409);
      expect((await problem(stopAgain)).code).toBe('EARSHOT_RECORDING_NOT_ACTIVE');
    } finally {
      await fetch(`${t.url}${location}`, { method: 'DELETE', headers: auth });
    }
  });

  it('answers unknown or unsafe recording downloads with 404 or 400', async () => {
    const missing = await fetch(`${t.url}/recordings/none.wav`);
    expect(missing.status).toBe(404);
    expect(await problem(missing)).toMatchObject({ code: 'EARSHOT_RECORDING_NOT_FOUND', detail: 'No recording "none.wav". GET /recordings lists them.' });
    // A name without a recording's suffix is a WAV recording's: the answer names both.
    const other = await fetch(`${t.url}/recordings/none.mp3`);
    expect(await problem(other)).toMatchObject({ code: 'EARSHOT_RECORDING_NOT_FOUND', detail: 'No recording "none.mp3": looked for "none.mp3.wav" (a name without .wav or .opus is a WAV recording\'s). GET /recordings lists them.' });
    const traversal = await fetch(`${t.url}/recordings/..%2Fpackage.json`);
    expect(traversal.status).toBe(400);
    expect((await problem(traversal)).code).toBe('EARSHOT_RECORDING_NAME_INVALID');
  });

  it('answers a name longer than allowed with 400 EARSHOT_NAME_INVALID, and a path segment past 1024 characters with a 414 problem', async () => {
    const long = await post(`/whip/demo/${'a'.repeat(101)}`, chromeLikeOffer());
    expect(long.status).toBe(400);
    expect((await problem(long)).code).toBe('EARSHOT_NAME_INVALID');
    const huge = await post(`/whip/demo/${'a'.repeat(1025)}`, chromeLikeOffer());
    expect(huge.status).toBe(414);
    expect((await problem(huge)).code).toBe('EARSHOT_BAD_REQUEST');
  });

  it('answers a request that is not valid HTTP (an unknown method) with a 400 problem document', async () => {
    const answer = await rawExchange(t.url, 'FOO /whip/demo/alice HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'EARSHOT_BAD_REQUEST', status: 400 });
  });

  it('refuses a request with two Host headers, or an HTTP/1.1 one with none, with a 400 problem (RFC 9112 §3.2), rather than reading the first', async () => {
    const ask = (hosts: string) => rawExchange(t.url, `GET /health HTTP/1.1\r\n${hosts}Connection: close\r\n\r\n`);
    expect(await ask('Host: 127.0.0.1\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    const answer = await ask('Host: 127.0.0.1\r\nhost: attacker.example\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'EARSHOT_BAD_REQUEST', detail: 'The request has 2 Host headers; HTTP/1.1 allows one (RFC 9112 §3.2).' });
    // None at all: a problem document too (Node's own 400 had an empty body).
    const none = await ask('');
    expect(none).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(none).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(JSON.parse(none.slice(none.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'EARSHOT_BAD_REQUEST', detail: 'The request has no Host header; HTTP/1.1 requires one (RFC 9112 §3.2).' });
    // HTTP/1.0 may leave it out.
    expect(await rawExchange(t.url, 'GET /health HTTP/1.0\r\n\r\n')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('answers unknown routes with a problem document', async () => {
    const res = await fetch(`${t.url}/nope`);
    expect(res.status).toBe(404);
    expect((await problem(res)).code).toBe('EARSHOT_ROUTE_NOT_FOUND');
    // OPTIONS of a /whip/ path that is no resource, preflight or not (the CORS layer answered 200).
    const plainOrPreflight: Array<Record<string, string>> = [{}, { origin: 'https://example.test', 'access-control-request-method': 'POST' }];
    for (const headers of plainOrPreflight) {
      const options = await fetch(`${t.url}/whip/a/b/c`, { method: 'OPTIONS', headers });
      expect(options.status).toBe(404);
      expect((await problem(options)).code).toBe('EARSHOT_ROUTE_NOT_FOUND');
    }
    // A WHIP URL mistyped by a user (no peer, a trailing slash, one segment too many) is no resource:
    // 404, not 405 "it allows OPTIONS" (the OPTIONS catch-all that answers 404 is no method of it).
    for (const path of ['/whip/demo', '/whip/demo/alice/', '/whip/a/b/c']) {
      const res = await fetch(`${t.url}${path}`, { method: 'POST', body: chromeLikeOffer(), headers: { ...auth, 'content-type': 'application/sdp' } });
      expect([path, res.status, res.headers.get('allow')]).toEqual([path, 404, null]);
      expect((await problem(res)).code).toBe('EARSHOT_ROUTE_NOT_FOUND');
    }
  });

  it('reports health', async () => {
    const res = await fetch(`${t.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', poolThreads: 2 });
  });
});

describe('request time', () => {
  it('closes a request whose body never finishes with 408 once requestTimeoutMs has passed', async () => {
    const quick = await startServer({ requestTimeoutMs: 500 });
    try {
      const started = Date.now();
      // Headers promise 1000 bytes of body; 5 come, then nothing.
      const answer = await rawExchange(quick.url, 'POST /whip/demo/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n');
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      expect(answer).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
      expect(answer).toMatch(/"code":"EARSHOT_BAD_REQUEST".*requestTimeoutMs/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    } finally {
      await quick.close();
    }
  });
});
