/**
 * A media port range (`--ice-ports`, `icePortRange`) that every session
 * holds a port of: the next offer is refused with 503
 * `EARSHOT_NO_MEDIA_PORT` and `Retry-After`, rather than answered with no
 * ICE candidate (a 201 the client could never connect with); once a session
 * ends, its port serves the next offer.
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { startServer, type TestServer } from '../helpers/server.js';

/** Two consecutive free UDP ports on loopback (bound and released, so most likely still free). */
async function freePortPair(): Promise<[number, number]> {
  for (let tries = 0; tries < 50; tries++) {
    const a = createSocket('udp4');
    await new Promise<void>((resolve) => a.bind(0, '127.0.0.1', resolve));
    const port = a.address().port;
    const b = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      b.once('error', () => resolve(false));
      b.bind(port + 1, '127.0.0.1', () => resolve(true));
    });
    a.close();
    b.close();
    if (ok && port + 1 <= 65535) return [port, port + 1];
  }
  throw new Error('no two consecutive free UDP ports');
}

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ icePortRange: await freePortPair(), connectTimeoutMs: 60_000 });
});
afterAll(() => t?.close());

const offer = (peer: string) => fetch(`${t.url}/whip/ports/${peer}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });

describe('a media port range that is used up', () => {
  it('refuses the next offer with 503 EARSHOT_NO_MEDIA_PORT and Retry-After, and serves it again once a port is free', async () => {
    const first = await offer('a');
    expect(first.status, await first.clone().text()).toBe(201);
    expect(await first.text()).toMatch(/^a=candidate:/m);
    const second = await offer('b');
    expect(second.status).toBe(201);
    await second.text();
    const refused = await offer('c');
    await expectProblem(refused, { status: 503, code: 'EARSHOT_NO_MEDIA_PORT', retryAfter: '5', detail: /--ice-ports/ });
    // The refused offer left no session behind.
    const health = (await (await fetch(`${t.url}/health`)).json()) as { peers: number };
    expect(health.peers).toBe(2);
    // A session ends: its port serves the next offer.
    expect((await fetch(`${t.url}${first.headers.get('location')}`, { method: 'DELETE' })).status).toBe(200);
    const again = await offer('c');
    expect(again.status, await again.clone().text()).toBe(201);
    expect(await again.text()).toMatch(/^a=candidate:/m);
  });
});
