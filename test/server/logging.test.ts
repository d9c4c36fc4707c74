/**
 * Logs: the server logs through the user's pino logger when given one, and
 * the routes machines poll (/health, /metrics, /events, the dashboard's files)
 * log their requests at debug, so an info log holds what people did.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

interface Line {
  level: number;
  msg: string;
  req?: { url: string };
  res?: { statusCode: number };
  module?: string;
}

/** A pino logger at `level` writing into an array of parsed lines. */
function capturingLogger(level: string) {
  const lines: Line[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  return { logger: pino({ level }, destination), lines };
}

const INFO = 30;
const DEBUG = 20;
let info: ReturnType<typeof capturingLogger>;
let debug: ReturnType<typeof capturingLogger>;
let t: TestServer;
let d: TestServer;

beforeAll(async () => {
  info = capturingLogger('info');
  debug = capturingLogger('debug');
  t = await startServer({ logger: info.logger });
  d = await startServer({ logger: debug.logger });
});
afterAll(async () => {
  await t?.close();
  await d?.close();
});

/** Requests the polling routes: health, metrics, a short /events read, the dashboard page. */
async function poll(url: string) {
  for (const path of ['/health', '/metrics', '/', '/dashboard.js']) await (await fetch(`${url}${path}`)).arrayBuffer();
  const events = new AbortController();
  const res = await fetch(`${url}/events?interval=100`, { signal: events.signal });
  const reader = res.body!.getReader();
  await reader.read();
  events.abort();
  await reader.read().catch(() => undefined);
  await new Promise((r) => setTimeout(r, 100)); // the server sees the SSE client go
}

const requestLines = (lines: Line[]) => lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed');
const quietPath = /^\/(health|metrics|events|dashboard\.js)?(\?|$)/;

describe('logging', () => {
  it("the user's pino logger receives the server's log lines", async () => {
    await (await fetch(`${t.url}/stats`)).arrayBuffer();
    const stats = requestLines(info.lines).filter((l) => l.req?.url === '/stats');
    expect(stats.map((l) => [l.level, l.msg])).toEqual([[INFO, 'incoming request']]);
    expect(info.lines.some((l) => l.msg === 'request completed' && l.res?.statusCode === 200)).toBe(true);
  });

  it('polling routes log nothing at info', async () => {
    const before = info.lines.length;
    await poll(t.url);
    const logged = info.lines.slice(before);
    expect(logged.filter((l) => l.req?.url !== undefined && quietPath.test(l.req.url))).toEqual([]);
    expect(logged.filter((l) => l.level >= INFO && /request/.test(l.msg))).toEqual([]);
  });

  it('…and log at debug, where a debug logger sees them', async () => {
    await poll(d.url);
    const urls = requestLines(debug.lines).filter((l) => l.msg === 'incoming request').map((l) => [l.level, l.req?.url]);
    for (const path of ['/health', '/metrics', '/', '/dashboard.js', '/events?interval=100']) expect(urls).toContainEqual([DEBUG, path]);
  });

  it("logs no signed link's signature, and at most 200 characters of a URL", async () => {
    const before = info.lines.length;
    await (await fetch(`${t.url}/recordings/a.wav?expires=4102444800&signature=c2VjcmV0LXNpZ25hdHVyZQ`)).arrayBuffer();
    // The server decodes parameter names: so must the log (the link opens its file spelt this way too).
    await (await fetch(`${t.url}/recordings/a.wav?expires=4102444800&%73ignature=c2VjcmV0LXNpZ25hdHVyZQ`)).arrayBuffer();
    await (await fetch(`${t.url}/stats?q=${'x'.repeat(15_000)}`)).arrayBuffer();
    const urls = requestLines(info.lines.slice(before)).flatMap((l) => (l.req ? [l.req.url] : []));
    expect(urls).toEqual([
      '/recordings/a.wav?expires=4102444800&signature=…',
      '/recordings/a.wav?expires=4102444800&%73ignature=…',
      `/stats?q=${'x'.repeat(191)}… (15009 characters)`,
    ]);
    expect(JSON.stringify(info.lines.slice(before))).not.toContain('c2VjcmV0LXNpZ25hdHVyZQ');
  });

  it('a refused request on a quiet route is still logged at info', async () => {
    const secured = capturingLogger('info');
    const s = await startServer({ logger: secured.logger, adminToken: 'admin-secret' });
    try {
      expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${s.url}/events`, { headers: { authorization: 'Bearer stale' } })).status).toBe(401);
      expect(secured.lines.filter((l) => l.level >= INFO).map((l) => l.msg)).toContainEqual(expect.stringMatching(/admin token/));
      // Which route, and for whom: the error line alone said neither.
      const completed = secured.lines.filter((l) => l.level >= INFO && l.msg === 'request completed') as Array<Line & { req?: { method?: string; url: string; remoteAddress?: string } }>;
      expect(completed.map((l) => [l.req?.method, l.req?.url, l.res?.statusCode])).toEqual([
        ['GET', '/metrics', 401],
        ['GET', '/events', 401],
      ]);
      for (const l of completed) expect(l.req?.remoteAddress).toBe('127.0.0.1');
    } finally {
      await s.close();
    }
  });
});
