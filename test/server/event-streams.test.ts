/**
 * `GET /events` streams are bounded like downloads: each holds a socket and a
 * share of every tick's writes for as long as its client keeps it, so only so
 * many may be open per client address and in all (429 with Retry-After).
 * `HEAD /events` answers at once with the headers a GET gets, and holds nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openFrom, type OpenResponse } from '../helpers/from-address.js';
import { expectProblem } from '../helpers/problems.js';
import { rawExchange } from '../helpers/raw-http.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const ADMIN = 'ADMINTOKEN456';
const admin = { authorization: `Bearer ${ADMIN}` };

let t: TestServer | undefined;
let open: OpenResponse[] = [];
afterEach(async () => {
  for (const r of open) r.close();
  open = [];
  await t?.close();
  t = undefined;
});

/** A stream from `address`, kept open until the test ends (or `close()`). */
async function stream(address: string): Promise<OpenResponse> {
  const res = await openFrom(address, `${t!.url}/events`, { headers: admin });
  open.push(res);
  return res;
}

/** A stream from `address` that must be refused: its problem document (a stream that was let in fails here, rather than never ending). */
async function refused(address: string): Promise<Response> {
  const res = await stream(address);
  expect(res.status).toBe(429);
  return res.whole();
}

describe('HEAD /events', () => {
  it('answers at once with the headers of the stream, and takes no place of the limit', async () => {
    t = await startServer({ token: 'PUBTOKEN123', adminToken: ADMIN, maxEventStreams: 1 });
    for (let i = 0; i < 3; i++) {
      const head = await fetch(`${t.url}/events`, { method: 'HEAD', headers: admin });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(head.headers.get('cache-control')).toBe('no-store');
      expect(await head.text()).toBe('');
    }
    // A client that asks to close the connection has it closed after the answer (rawExchange resolves on close).
    const answer = await rawExchange(t.url, `HEAD /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    // Four HEADs later, the one place is still free.
    expect((await stream('127.0.0.1')).status).toBe(200);
    // Admin only, as GET.
    expect((await fetch(`${t.url}/events`, { method: 'HEAD' })).status).toBe(401);
  });
});

describe('GET /events ?interval=', () => {
  it('takes a whole number of milliseconds from 100 to 10000, written in digits, and refuses anything else with 400', async () => {
    t = await startServer({ token: 'PUBTOKEN123', adminToken: ADMIN });
    for (const interval of ['99', '10001', 'x', '1e3', '0x100', '500.0', '%20500', '']) {
      const res = await fetch(`${t.url}/events?interval=${interval}`, { headers: admin });
      await expectProblem(res, { status: 400, code: 'EARSHOT_BODY_INVALID', detail: /^\?interval= must be an integer number of milliseconds from 100 to 10000\.$/ });
    }
    expect((await fetch(`${t.url}/events?interval=100`, { method: 'HEAD', headers: admin })).status).toBe(200);
  });
});

describe('GET /events limits', () => {
  it('refuses a client past maxEventStreamsPerClient and anyone past maxEventStreams with 429 EARSHOT_TOO_MANY_EVENT_STREAMS, until a stream closes', async () => {
    t = await startServer({ token: 'PUBTOKEN123', adminToken: ADMIN, maxEventStreamsPerClient: 2, maxEventStreams: 3 });
    const first = await stream('127.0.0.2');
    expect(first.status).toBe(200);
    expect((await stream('127.0.0.2')).status).toBe(200);
    await expectProblem(await refused('127.0.0.2'), { status: 429, code: 'EARSHOT_TOO_MANY_EVENT_STREAMS', retryAfter: '5', detail: /--max-event-streams-per-client/ });
    // Another address has places of its own, up to the total.
    expect((await stream('127.0.0.3')).status).toBe(200);
    await expectProblem(await refused('127.0.0.4'), { status: 429, code: 'EARSHOT_TOO_MANY_EVENT_STREAMS', retryAfter: '5', detail: /--max-event-streams\b(?!-)/ });
    // HEAD answers what a GET would.
    expect((await fetch(`${t.url}/events`, { method: 'HEAD', headers: admin })).status).toBe(429);
    // A closed stream (a closed tab) gives its place back.
    first.close();
    const again = await until('a place to come free', async () => {
      const res = await stream('127.0.0.2');
      return res.status === 200 ? res : undefined;
    });
    expect(again.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  });
});
