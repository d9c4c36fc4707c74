/**
 * Who may call what (docs/security.md): every protected route without a token,
 * with the other role's token and with the right one; loopback-only serving of
 * open roles; CORS per route family; who may replace a live peer.
 */
import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../src/index.js';
import WebSocket from 'ws';
import { sendAudio } from '../../src/client/audio-sender.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { expectProblem } from '../helpers/problems.js';
import { rawExchange } from '../helpers/raw-http.js';

const PUBLISH = 'publish-token-123';
const ADMIN = 'admin-token-456';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function code(res: Response): Promise<string | undefined> {
  const type = res.headers.get('content-type') ?? '';
  if (!type.includes('json')) {
    await res.arrayBuffer();
    return undefined;
  }
  return ((await res.json()) as { code?: string }).code;
}

/** Every route that reveals or changes data, with a request that would succeed or fail for another reason than access. */
const ADMIN_ROUTES: Array<{ method: string; path: string; body?: string; type?: string }> = [
  { method: 'GET', path: '/stats' },
  { method: 'GET', path: '/stats/nobody' },
  { method: 'POST', path: '/peers/nobody/recording', body: '{}', type: 'application/json' },
  { method: 'DELETE', path: '/peers/nobody/recording' },
  { method: 'GET', path: '/recordings' },
  { method: 'GET', path: '/recordings/none.wav' },
  { method: 'GET', path: '/pipelines' },
  { method: 'GET', path: '/pipelines/default' },
  // Names that exist nowhere: with the admin token these get 422/404, never touching the bundled pipelines.
  { method: 'PUT', path: '/pipelines/bad-name!', body: '{}', type: 'application/json' },
  { method: 'DELETE', path: '/pipelines/no-such-pipeline' },
  { method: 'GET', path: '/rooms' },
  { method: 'GET', path: '/rooms/demo' },
  { method: 'PUT', path: '/rooms/demo', body: JSON.stringify({ pipeline: 'default' }), type: 'application/json' },
  { method: 'DELETE', path: '/rooms/demo' },
  { method: 'GET', path: '/events' },
  { method: 'GET', path: '/metrics' },
];

function call(base: string, r: { method: string; path: string; body?: string; type?: string }, headers: Record<string, string> = {}) {
  return fetch(`${base}${r.path}`, {
    method: r.method,
    body: r.body,
    headers: { ...(r.type ? { 'content-type': r.type } : {}), ...headers },
    signal: AbortSignal.timeout(5000),
  });
}

describe('with a publish token and an admin token', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ token: PUBLISH, adminToken: ADMIN, connectTimeoutMs: 2000 });
  });
  afterAll(() => t.close());

  it('refuses every admin route without a token (401 EARSHOT_UNAUTHORIZED) and with the publish token (403 EARSHOT_FORBIDDEN)', async () => {
    for (const r of ADMIN_ROUTES) {
      const none = await call(t.url, r);
      expect(none.status, `${r.method} ${r.path} without a token`).toBe(401);
      expect(await code(none)).toBe('EARSHOT_UNAUTHORIZED');
      const publisher = await call(t.url, r, bearer(PUBLISH));
      expect(publisher.status, `${r.method} ${r.path} with the publish token`).toBe(403);
      expect(await code(publisher)).toBe('EARSHOT_FORBIDDEN');
      const wrong = await call(t.url, r, bearer('not-a-token'));
      expect(wrong.status, `${r.method} ${r.path} with a wrong token`).toBe(401);
      await wrong.arrayBuffer();
    }
  });

  it('serves every admin route with the admin token (Bearer scheme in any case)', async () => {
    for (const r of ADMIN_ROUTES) {
      const controller = new AbortController();
      const res = await fetch(`${t.url}${r.path}`, {
        method: r.method,
        body: r.body,
        headers: { ...(r.type ? { 'content-type': r.type } : {}), authorization: `bEaReR ${ADMIN}` },
        signal: controller.signal,
      });
      expect([401, 403], `${r.method} ${r.path} with the admin token`).not.toContain(res.status);
      controller.abort(); // /events streams forever
    }
  });

  it('leaves /health and the dashboard page open, and they reveal no session ids', async () => {
    const health = await fetch(`${t.url}/health`);
    expect(health.status).toBe(200);
    const body = JSON.stringify(await health.json());
    expect(body).not.toMatch(/session/i);
    for (const path of ['/', '/dashboard.js', '/dashboard.css']) expect((await fetch(`${t.url}${path}`)).status).toBe(200);
  });

  it('needs the publish or the admin token to publish and to end a session; the session URL goes only to its publisher', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${t.url}/whip/demo/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', ...headers } });
    const anonymous = await post({});
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('location')).toBeNull();
    expect(await code(anonymous)).toBe('EARSHOT_UNAUTHORIZED');

    const created = await post(bearer(PUBLISH));
    expect(created.status).toBe(201);
    const location = new URL(created.headers.get('location')!, t.url).href;
    await created.text();

    // Only admins see the session id in the statistics.
    expect((await fetch(`${t.url}/stats/alice`)).status).toBe(401);
    const stats = (await (await fetch(`${t.url}/stats/alice`, { headers: bearer(ADMIN) })).json()) as { session: string };
    expect(location.endsWith(stats.session)).toBe(true);

    expect((await fetch(location, { method: 'DELETE' })).status).toBe(401);
    const byAdmin = await fetch(location, { method: 'DELETE', headers: bearer(ADMIN) });
    expect(byAdmin.status).toBe(200);
    await byAdmin.arrayBuffer();
  });

  it('lets a publish-token holder replace a live peer', async () => {
    const post = () => fetch(`${t.url}/whip/demo/carol`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', ...bearer(PUBLISH) } });
    const first = await post();
    expect(first.status).toBe(201);
    await first.text();
    const second = await post();
    expect(second.status).toBe(201);
    const location = new URL(second.headers.get('location')!, t.url).href;
    await second.text();
    expect(first.headers.get('location')).not.toBe(second.headers.get('location'));
    await fetch(location, { method: 'DELETE', headers: bearer(PUBLISH) });
  });
});

describe('metrics for a scraper', () => {
  it('are open with metricsPublic, and need the admin token without it', async () => {
    const open = await startServer({ adminToken: ADMIN, metricsPublic: true });
    try {
      const res = await fetch(`${open.url}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('earshot_');
      // Only /metrics: the rest stays protected.
      expect((await fetch(`${open.url}/stats`)).status).toBe(401);
    } finally {
      await open.close();
    }
  });
});

/** A GET with a chosen Host header (fetch does not let a caller set Host). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return requestWith(url, { host });
}

/** A request with exactly these headers (fetch sets Host itself, and adds others). */
function requestWith(url: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('without tokens', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
  });
  afterAll(() => t.close());

  it('serves the open API on loopback to loopback host names only (a rebound DNS name gets 403 EARSHOT_HOST_NOT_ALLOWED)', async () => {
    const port = new URL(t.url).port;
    expect((await getWithHost(`${t.url}/stats`, `127.0.0.1:${port}`)).status).toBe(200);
    expect((await getWithHost(`${t.url}/stats`, `localhost:${port}`)).status).toBe(200);
    const rebound = await getWithHost(`${t.url}/stats`, `attacker.example:${port}`);
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).code).toBe('EARSHOT_HOST_NOT_ALLOWED');
    const recordings = await getWithHost(`${t.url}/recordings`, 'attacker.example');
    expect(recordings.status).toBe(403);
    // A DNS name that starts like a loopback address is a name, which a page can point at this machine.
    for (const host of [`127.rebind.attacker.example:${port}`, '127.0.0.1.attacker.example', '127.evil']) {
      const res = await getWithHost(`${t.url}/stats`, host);
      expect([host, res.status, JSON.parse(res.body).code]).toEqual([host, 403, 'EARSHOT_HOST_NOT_ALLOWED']);
    }
    // Any 127.0.0.0/8 address, and names in any case, are loopback.
    expect((await getWithHost(`${t.url}/stats`, `127.0.0.2:${port}`)).status).toBe(200);
    expect((await getWithHost(`${t.url}/stats`, `LocalHost:${port}`)).status).toBe(200);
    // /health stays answerable whatever the name (load balancers, probes).
    expect((await getWithHost(`${t.url}/health`, 'attacker.example')).status).toBe(200);
    // A request target in absolute form names the host itself, and Host is then ignored (RFC 9112 §3.2.2).
    const absolute = async (target: string) => rawExchange(t.url, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    const elsewhere = await absolute('http://attacker.example/stats');
    expect(elsewhere).toMatch(/^HTTP\/1\.1 403 /);
    expect(elsewhere).toContain('EARSHOT_HOST_NOT_ALLOWED');
    expect(await absolute(`http://127.0.0.1:${port}/stats`)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('refuses the open API to a request that came through a proxy (403 EARSHOT_PROXY_NOT_ALLOWED), even with a loopback Host', async () => {
    const port = new URL(t.url).port;
    // nginx's default `proxy_set_header Host $proxy_host` sends the upstream's own loopback address.
    const local = { host: `127.0.0.1:${port}` };
    expect((await requestWith(`${t.url}/stats`, local)).status).toBe(200);
    const proxied: Array<[string, string, string]> = [
      ['x-forwarded-for', '203.0.113.7', 'X-Forwarded-For'],
      ['forwarded', 'for=203.0.113.7;proto=https', 'Forwarded'],
      ['x-real-ip', '203.0.113.7', 'X-Real-IP'],
      ['via', '1.1 nginx', 'Via'],
      ['x-forwarded-proto', 'https', 'X-Forwarded-Proto'],
    ];
    for (const [name, value, spelt] of proxied) {
      for (const path of ['/stats', '/recordings', '/pipelines']) {
        const res = await requestWith(`${t.url}${path}`, { ...local, [name]: value });
        const problem = JSON.parse(res.body) as { code: string; detail: string; header: string };
        expect([name, path, res.status, problem.code, problem.header]).toEqual([name, path, 403, 'EARSHOT_PROXY_NOT_ALLOWED', spelt]);
        expect(problem.detail).toMatch(/came through a proxy .* Set --admin-token/);
      }
    }
    // Publishing is open too: the same.
    const publish = await requestWith(`${t.url}/whip/proxied/p`, { ...local, 'content-type': 'application/sdp', 'x-forwarded-for': '203.0.113.7' }, 'POST', chromeLikeOffer());
    expect([publish.status, (JSON.parse(publish.body) as { code: string; detail: string }).detail]).toEqual([403, expect.stringMatching(/no publish token\b.* Set --token/)]);
    // /health answers any client (load balancers probe it through themselves).
    expect((await requestWith(`${t.url}/health`, { ...local, 'x-forwarded-for': '203.0.113.7' })).status).toBe(200);
  });

  it('never answers the control API with Access-Control-Allow-Origin, so other pages cannot read it', async () => {
    const res = await fetch(`${t.url}/stats`, { headers: { origin: 'https://evil.example' } });
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${t.url}/recordings`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const events = await fetch(`${t.url}/events`, { headers: { origin: 'https://evil.example' }, signal: AbortSignal.timeout(2000) });
    expect(events.headers.get('access-control-allow-origin')).toBeNull();
    await events.body?.cancel();
  });

  it("refuses the open admin API to other sites' pages (403 EARSHOT_CROSS_SITE_NOT_ALLOWED), WebSockets included; serves its own pages and programs", async () => {
    const publisher = new AbortController();
    const sending = sendAudio({ url: `${t.url}/whip/csrf/victim`, source: fixturePath('tone-1k-48k.wav'), loop: true, signal: publisher.signal });
    try {
      for (let i = 0; i < 50 && !(await fetch(`${t.url}/stats/victim`)).ok; i++) await new Promise((r) => setTimeout(r, 100));
      const self = new URL(t.url).origin;
      // What a page elsewhere can send without a preflight: a POST with no body, or a form's.
      const elsewhere: Array<Record<string, string>> = [{ origin: 'https://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site', origin: 'http://localhost:1' }];
      for (const headers of elsewhere) {
        const res = await fetch(`${t.url}/peers/victim/recording`, { method: 'POST', headers });
        const problem = (await res.json()) as { code: string; detail: string };
        expect([JSON.stringify(headers), res.status, problem.code]).toEqual([JSON.stringify(headers), 403, 'EARSHOT_CROSS_SITE_NOT_ALLOWED']);
        expect(problem.detail).toMatch(/another site's page .* Set --admin-token/);
      }
      expect((await fetch(`${t.url}/stats/victim`).then((r) => r.json()) as { recording: unknown }).recording).toBeNull();
      // A WebSocket is not subject to CORS: a page elsewhere could otherwise listen to the peer.
      const refused = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/peers/victim/audio`, { headers: { origin: 'https://evil.example' } });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => reject(new Error('the cross-site WebSocket was opened')));
        ws.on('error', () => undefined);
      });
      expect(refused).toBe(403);
      // The server's own pages (the dashboard), and programs that send no Origin, are served.
      expect((await fetch(`${t.url}/stats`, { headers: { origin: self, 'sec-fetch-site': 'same-origin' } })).status).toBe(200);
      const own = await fetch(`${t.url}/peers/victim/recording`, { method: 'POST', headers: { origin: self } });
      expect(own.status).toBe(201);
      expect((await fetch(`${t.url}/peers/victim/recording`, { method: 'DELETE' })).status).toBe(200);
    } finally {
      publisher.abort();
      await sending.catch(() => undefined);
    }
  });

  it('lets the --cors-origin pages call the open admin API, and only them', async () => {
    const ops = await startServer({ corsOrigins: ['https://ops.example'] });
    try {
      const allowed = await fetch(`${ops.url}/stats`, { headers: { origin: 'https://ops.example', 'sec-fetch-site': 'cross-site' } });
      expect([allowed.status, allowed.headers.get('access-control-allow-origin')]).toEqual([200, 'https://ops.example']);
      expect((await fetch(`${ops.url}/stats`, { headers: { origin: 'https://evil.example' } })).status).toBe(403);
    } finally {
      await ops.close();
    }
  });

  it('answers WHIP to any origin (the default allow-list is *), exposing Location', async () => {
    const res = await fetch(`${t.url}/whip/cors/dave`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', origin: 'https://app.example' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toMatch(/Location/);
    await fetch(new URL(res.headers.get('location')!, t.url), { method: 'DELETE' });
  });
});

describe('CORS allow-lists', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ adminToken: ADMIN, corsOrigins: ['https://ops.example'], whipCorsOrigins: ['https://app.example'] });
  });
  afterAll(() => t.close());

  it('lets only the listed origins read the control API, preflight included, and the SSE stream', async () => {
    const ok = await fetch(`${t.url}/stats`, { headers: { origin: 'https://ops.example', ...bearer(ADMIN) } });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    expect(ok.headers.get('vary')).toMatch(/Origin/i);
    const other = await fetch(`${t.url}/stats`, { headers: { origin: 'https://evil.example', ...bearer(ADMIN) } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${t.url}/stats`, {
      method: 'OPTIONS',
      headers: { origin: 'https://ops.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
    // A plain OPTIONS (no Origin: curl, a monitoring probe) is not a failed preflight.
    const plain = await fetch(`${t.url}/stats`, { method: 'OPTIONS' });
    expect(plain.status).toBe(204);
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
    expect(plain.headers.get('access-control-allow-methods')).toMatch(/GET/);
    // A path that does not exist is a 404 for OPTIONS too, preflight or not, as for any method (it was a 204).
    for (const headers of [{}, { origin: 'https://ops.example', 'access-control-request-method': 'GET' }] as Array<Record<string, string>>) {
      await expectProblem(await fetch(`${t.url}/nope`, { method: 'OPTIONS', headers }), { status: 404, code: 'EARSHOT_ROUTE_NOT_FOUND' });
      await expectProblem(await fetch(`${t.url}/stats/alice/nope`, { method: 'OPTIONS', headers }), { status: 404, code: 'EARSHOT_ROUTE_NOT_FOUND' });
    }
    // A path the router takes, with a parameter longer than find-my-way's default 100 characters, is a route:
    // its preflight is answered, so that the page can read the route's own refusal (400 EARSHOT_NAME_INVALID).
    const long = await fetch(`${t.url}/stats/${'a'.repeat(200)}`, { method: 'OPTIONS', headers: { origin: 'https://ops.example', 'access-control-request-method': 'GET' } });
    expect(long.status).toBe(204);
    expect(long.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    // A refused request still carries CORS headers, so the page can read the 401.
    const refused = await fetch(`${t.url}/stats`, { headers: { origin: 'https://ops.example' } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    const events = await fetch(`${t.url}/events`, { headers: { origin: 'https://ops.example', ...bearer(ADMIN) }, signal: AbortSignal.timeout(2000) });
    expect(events.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    await events.body?.cancel();
  });

  it('answers WHIP with its own allow-list', async () => {
    const allowed = await fetch(`${t.url}/whip/r/p`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('accept-post')).toBe('application/sdp');
    const other = await fetch(`${t.url}/whip/r/p`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers WHEP with the control API\'s origins and WHIP\'s methods and headers, PATCH included', async () => {
    const allowed = await fetch(`${t.url}/whep/p/some-id`, {
      method: 'OPTIONS',
      headers: { origin: 'https://ops.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization, content-type, if-match' },
    });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    expect(allowed.headers.get('access-control-allow-methods')).toMatch(/PATCH/);
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/If-Match/i);
    const endpoint = await fetch(`${t.url}/whep/p`, { method: 'OPTIONS', headers: { origin: 'https://ops.example', 'access-control-request-method': 'POST' } });
    expect(endpoint.headers.get('accept-post')).toBe('application/sdp');
    // A page can read the Location, Link and Retry-After of a WHEP answer.
    const post = await fetch(`${t.url}/whep/nobody`, { method: 'POST', headers: { origin: 'https://ops.example', 'content-type': 'application/sdp', ...bearer(ADMIN) }, body: 'v=0' });
    expect(post.headers.get('access-control-expose-headers')).toMatch(/Location.*Link.*Retry-After/);
    await post.arrayBuffer();
    // The WHIP allow-list does not open WHEP.
    const app = await fetch(`${t.url}/whep/p`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(app.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses "*" for the control API at start', async () => {
    await expect(createServer({ port: 0, corsOrigins: ['*'], logLevel: 'silent' })).rejects.toThrow(/must not contain "\*"/);
    await expect(createServer({ port: 0, corsOrigins: ['https://ops.example/path'], logLevel: 'silent' })).rejects.toThrow(/not an origin/);
  });
});

describe('with insecure', () => {
  it('serves the open API through a proxy too: the operator answers for what fronts it', async () => {
    const t = await startServer({ insecure: true, threads: 1 });
    try {
      const res = await requestWith(`${t.url}/stats`, { host: 'ingest.example', 'x-forwarded-for': '203.0.113.7', via: '1.1 nginx' });
      expect(res.status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('binding', () => {
  it('refuses a non-loopback address without an admin token, with EARSHOT_INSECURE_BIND', async () => {
    await expect(createServer({ host: '0.0.0.0', port: 0, logLevel: 'silent' })).rejects.toMatchObject({ code: 'EARSHOT_INSECURE_BIND' });
    // A name that starts like a loopback address may resolve anywhere.
    await expect(createServer({ host: '127.bind.example', port: 0, logLevel: 'silent' })).rejects.toMatchObject({ code: 'EARSHOT_INSECURE_BIND' });
    await expect(createServer({ host: '0.0.0.0', port: 0, token: PUBLISH, logLevel: 'silent' })).rejects.toMatchObject({ code: 'EARSHOT_INSECURE_BIND' });
  });

  it('accepts it with an admin token, or with insecure', async () => {
    for (const options of [{ adminToken: ADMIN }, { insecure: true }]) {
      const server = await createServer({ host: '0.0.0.0', port: 0, logLevel: 'silent', ...options });
      await server.close(); // never listened: nothing was exposed
    }
  });
});

describe('replacing a live peer', () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('is refused with 409 EARSHOT_PEER_ACTIVE for an anonymous publisher when publishing is open, and allowed for an admin', async () => {
    t = await startServer({ adminToken: ADMIN });
    const post = (headers: Record<string, string> = {}) =>
      fetch(`${t!.url}/whip/open/erin`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', ...headers } });
    const first = await post();
    expect(first.status).toBe(201);
    const firstLocation = first.headers.get('location')!;
    await first.text();
    const hijack = await post();
    expect(hijack.status).toBe(409);
    expect(await code(hijack)).toBe('EARSHOT_PEER_ACTIVE');
    // The first session is untouched.
    const stats = (await (await fetch(`${t.url}/stats/erin`, { headers: bearer(ADMIN) })).json()) as { session: string; state: string };
    expect(firstLocation.endsWith(stats.session)).toBe(true);
    expect(stats.state).toBe('connecting');
    const admin = await post(bearer(ADMIN));
    expect(admin.status).toBe(201);
    await admin.text();
    const after = (await (await fetch(`${t.url}/stats/erin`, { headers: bearer(ADMIN) })).json()) as { session: string };
    expect(firstLocation.endsWith(after.session)).toBe(false);
  });

  it('with no tokens, is allowed on this machine but not to another site\'s page (the open admin role refuses those)', async () => {
    t = await startServer({});
    const post = (headers: Record<string, string> = {}) =>
      fetch(`${t!.url}/whip/open/fay`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', ...headers } });
    const session = async () => ((await (await fetch(`${t!.url}/stats/fay`)).json()) as { session: string }).session;
    const first = await post();
    expect(first.status).toBe(201);
    await first.text();
    const live = await session();
    // A page on another site may publish a new peer (browser WHIP clients are cross-origin), not take a live one.
    const pages: Array<Record<string, string>> = [{ origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, { origin: 'https://evil.example' }];
    for (const from of pages) {
      const hijack = await post(from);
      expect(hijack.status).toBe(409);
      expect(await code(hijack)).toBe('EARSHOT_PEER_ACTIVE');
      expect(await session()).toBe(live);
    }
    const fresh = await fetch(`${t.url}/whip/open/gus`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
    expect(fresh.status).toBe(201);
    await fresh.text();
    // A program on this machine (no Origin) still may: the reconnecting client of loopback development.
    const again = await post();
    expect(again.status).toBe(201);
    await again.text();
    expect(await session()).not.toBe(live);
  });
});
