/**
 * Behind a reverse proxy (docs/security.md#behind-a-reverse-proxy): with
 * `trustProxy` listing the proxy, each client behind it has its own
 * pending-session, event-stream and download quota and is logged as itself;
 * `X-Forwarded-For` from an address not listed is ignored; the option takes
 * the proxies' addresses only (never every address, never a hop count) and
 * needs the tokens. The requests here come from 127.0.0.5 (the "proxy") and
 * 127.0.0.6 (a client that connects directly), both on loopback.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, createServer, EarshotError, type CreateServerOptions } from '../../src/index.js';
import { fetchFrom, openFrom, stalledGet, type OpenResponse } from '../helpers/from-address.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { expectProblem } from '../helpers/problems.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { sparseWav } from '../helpers/wav-files.js';

const PUBLISH = 'publish-token-behind-a-proxy';
const ADMIN = 'admin-token-behind-a-proxy';
const admin = { authorization: `Bearer ${ADMIN}` };
const PROXY = '127.0.0.5';
const DIRECT = '127.0.0.6';
const forwardedFor = (chain: string) => ({ 'x-forwarded-for': chain });

describe('trustProxy is checked at start', () => {
  /** [what is wrong, the value, the message]. */
  const cases: Array<[string, unknown, RegExp]> = [
    ['every address', true, /^options\.trustProxy must list the proxies to believe: .*, not true \(every address\): a client could then write any address in X-Forwarded-For/],
    ['a hop count', 1, /^options\.trustProxy must list .*, not a hop count \(1\): a count cannot tell your proxy from a client that connects directly/],
    ['a hop count as text', '127.0.0.1, 2', /not a hop count \(2\)/],
    ['"*"', '*', /not "\*" \(every address\)/],
    ['a name', 'proxy.internal', /; "proxy\.internal" is none of these$/],
    ['a netmask', '10.0.0.0/255.0.0.0', /has "10\.0\.0\.0\/255\.0\.0\.0", whose prefix length is not a number from 1 to 32 \(an IPv4 range\)$/],
    ['a prefix too long', 'fd00::/129', /has "fd00::\/129", whose prefix length is not a number from 1 to 128 \(an IPv6 range\)$/],
    ['a /0', '::/0', /has "::\/0", which is every address: /],
    ['a zone', 'fe80::1%eth0', /"fe80::1%eth0" is none of these$/],
    ['nothing', ' , ', /must name at least one proxy .*; leave it out to believe none$/],
    ['an empty list', [], /must name at least one proxy/],
    ['a list with a number', ['127.0.0.1', 8], /; entry 2 is 8$/],
    ['an object', { proxies: ['127.0.0.1'] }, /\(an array, or a string separated by commas\), got an object$/],
  ];
  it.each(cases)('refuses %s with EARSHOT_OPTION_INVALID', async (_what, trustProxy, message) => {
    const options = { logLevel: 'silent', token: PUBLISH, adminToken: ADMIN, trustProxy } as unknown as CreateServerOptions;
    const error = await createServer(options).then(() => expect.fail('createServer accepted it'), (e: unknown) => e);
    expect(error).toBeInstanceOf(EarshotError);
    expect(error).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'trustProxy' } });
    expect((error as Error).message).toMatch(message);
    // The front of --processes N faces the proxies: it checks the same, before it starts any engine.
    await expect(createCluster({ logLevel: 'silent', token: PUBLISH, adminToken: ADMIN, trustProxy } as never)).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', message: expect.stringMatching(message) });
  });

  it('needs the admin and the publish token (or insecure): an open role serves only clients on this machine', async () => {
    await expect(createServer({ logLevel: 'silent', trustProxy: '127.0.0.1' })).rejects.toMatchObject({
      code: 'EARSHOT_OPTION_INVALID',
      message: expect.stringMatching(/^options\.trustProxy needs an admin token \(adminToken, --admin-token\)/),
    });
    await expect(createServer({ logLevel: 'silent', trustProxy: '127.0.0.1', adminToken: ADMIN })).rejects.toMatchObject({
      code: 'EARSHOT_OPTION_INVALID',
      message: expect.stringMatching(/^options\.trustProxy needs a publish token \(token, --token\)/),
    });
    await expect(createCluster({ logLevel: 'silent', trustProxy: 'loopback', token: PUBLISH })).rejects.toMatchObject({ message: expect.stringMatching(/needs an admin token/) });
    // Addresses, ranges and names, as a list or one string; with insecure the operator answers for the proxy.
    for (const options of [
      { token: PUBLISH, adminToken: ADMIN, trustProxy: ['127.0.0.1', '10.0.0.0/8, fd00::/8', 'uniquelocal', '::ffff:192.0.2.1'] },
      { insecure: true, trustProxy: 'loopback' },
    ]) {
      const server = await createServer({ logLevel: 'silent', threads: 1, ...options });
      await server.close(); // never listened
    }
  });
});

describe('behind a trusted proxy', () => {
  let t: TestServer;
  const lines: string[] = [];
  const held: Array<OpenResponse | Socket> = [];
  beforeAll(async () => {
    t = await startServer({
      token: PUBLISH,
      adminToken: ADMIN,
      trustProxy: [PROXY],
      maxPendingSessionsPerClient: 1,
      maxEventStreamsPerClient: 1,
      maxDownloadsPerClient: 1,
      connectTimeoutMs: 60_000,
      threads: 1,
      logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    });
    // 96 MiB of silence: more than a loopback connection buffers, so a reader that stops really stalls the download.
    await sparseWav(join(t.recordingsDir, 'long.wav'), 96 * 1024 * 1024);
  });
  afterAll(async () => {
    for (const h of held) 'destroy' in h ? h.destroy() : h.close();
    await t.close();
  });

  /** An event stream from `from`, forwarded for `chain` (none: a request with no header). */
  const stream = async (from: string, chain?: string) => {
    const res = await openFrom(from, `${t.url}/events`, { headers: { ...admin, ...(chain ? forwardedFor(chain) : {}) } });
    held.push(res);
    return res;
  };

  it('gives each client behind it its own event streams, and counts a client that connects directly by its own address whatever it forwards', async () => {
    expect((await stream(PROXY, '198.51.100.1')).status).toBe(200);
    const again = await stream(PROXY, '198.51.100.1');
    await expectProblem(await again.whole(), { status: 429, code: 'EARSHOT_TOO_MANY_EVENT_STREAMS', retryAfter: '5' });
    expect((await stream(PROXY, '198.51.100.2')).status).toBe(200);
    // The proxy appends the address it sees: what a client wrote before it is not believed.
    expect((await stream(PROXY, '198.51.100.2, 198.51.100.3')).status).toBe(200);
    const spoofed = await stream(PROXY, '198.51.100.9, 198.51.100.3');
    expect(spoofed.status).toBe(429);
    await spoofed.whole();
    // Not from the proxy: the header is ignored, every request is 127.0.0.6.
    expect((await stream(DIRECT, '198.51.100.4')).status).toBe(200);
    const direct = await stream(DIRECT, '198.51.100.5');
    expect(direct.status).toBe(429);
    await direct.whole();
  });

  it('gives each client behind it its own pending sessions', async () => {
    const offer = (from: string, peer: string, chain: string) =>
      fetchFrom(from, `${t.url}/whip/proxied/${peer}`, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${PUBLISH}`, ...forwardedFor(chain) }, body: chromeLikeOffer() });
    const first = await offer(PROXY, 'a-1', '203.0.113.1');
    expect(first.status, await first.text()).toBe(201);
    await expectProblem(await offer(PROXY, 'a-2', '203.0.113.1'), { status: 503, code: 'EARSHOT_TOO_MANY_PENDING', retryAfter: '5' });
    const other = await offer(PROXY, 'b-1', '203.0.113.2');
    expect(other.status, await other.text()).toBe(201);
    // A client at 203.0.113.1's address that connects directly is not taken for it.
    const direct = await offer(DIRECT, 'c-1', '203.0.113.1');
    expect(direct.status, await direct.text()).toBe(201);
  });

  /** A download of long.wav from `from` for `chain` whose reader stops at once: it holds its place until closed. */
  const stalledDownload = async (from: string, chain: string) => {
    const { status, socket } = await stalledGet(from, t.url, '/recordings/long.wav', { ...admin, ...forwardedFor(chain) });
    held.push(socket);
    return status;
  };

  it('gives each client behind it its own downloads, an IPv6 client per /64 and an IPv4-mapped one as its IPv4 address', async () => {
    expect(await stalledDownload(PROXY, '2001:db8:1:2::1')).toBe(200);
    // Another address of the same /64: the same host.
    expect(await stalledDownload(PROXY, '2001:db8:1:2::2')).toBe(429);
    expect(await stalledDownload(PROXY, '2001:db8:1:3::1')).toBe(200);
    expect(await stalledDownload(PROXY, '::ffff:198.51.100.20')).toBe(200);
    expect(await stalledDownload(PROXY, '198.51.100.20')).toBe(429);
  });

  it("reads RFC 7239's Forwarded when the proxy sends it instead of X-Forwarded-For, by the same rule", async () => {
    const forwarded = async (from: string, value: string, extra: Record<string, string> = {}) => {
      const res = await openFrom(from, `${t.url}/events`, { headers: { ...admin, forwarded: value, ...extra } });
      held.push(res);
      return res.status;
    };
    expect(await forwarded(PROXY, 'for=198.51.100.71;proto=https;by=127.0.0.5')).toBe(200);
    expect(await forwarded(PROXY, 'for="198.51.100.71:50000"')).toBe(429); // the same client, its port aside
    expect(await forwarded(PROXY, 'for="[2001:db8:7:1::1]:4711"')).toBe(200);
    expect(await forwarded(PROXY, 'For="[2001:db8:7:1::2]"')).toBe(429); // the same /64
    // What a client wrote before the proxy's element is not believed.
    expect(await forwarded(PROXY, 'for=198.51.100.72, for=198.51.100.73')).toBe(200);
    expect(await forwarded(PROXY, 'for=198.51.100.99, for=198.51.100.73')).toBe(429);
    // Not from the proxy: ignored, as X-Forwarded-For is: 127.0.0.6 holds its one stream already (the test before).
    expect(await forwarded(DIRECT, 'for=198.51.100.74')).toBe(429);
    // Both headers: X-Forwarded-For is the one read.
    expect(await forwarded(PROXY, 'for=198.51.100.76', forwardedFor('198.51.100.73'))).toBe(429);
  });

  it('logs each request with the client the proxy names', async () => {
    const res = await fetchFrom(PROXY, `${t.url}/stats`, { headers: { ...admin, ...forwardedFor('192.0.2.44') } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    /** The client each "incoming request" line for `url` names. */
    const loggedClients = (url: string) =>
      lines
        .map((l) => JSON.parse(l) as { msg?: string; req?: { url?: string; remoteAddress?: string } })
        .filter((l) => l.msg === 'incoming request' && l.req?.url === url)
        .map((l) => l.req?.remoteAddress);
    expect(loggedClients('/stats')).toEqual(['192.0.2.44']);
    // And as RFC 7239 spells it.
    const standard = await fetchFrom(PROXY, `${t.url}/stats?via=forwarded`, { headers: { ...admin, forwarded: 'for="[2001:db8::45]:443";proto=https' } });
    expect(standard.status).toBe(200);
    await standard.arrayBuffer();
    expect(loggedClients('/stats?via=forwarded')).toEqual(['2001:db8::45']);
  });
});
