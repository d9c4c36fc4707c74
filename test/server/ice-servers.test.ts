/**
 * ICE over WHIP against the real server: STUN/TURN servers advertised as
 * `Link: <…>; rel="ice-server"` fields (RFC 9725 §4.6) on the 201 and on
 * OPTIONS, parsed as RFC 8288 links; nothing advertised by default; TURN
 * credentials only with publish rights; an answer that never offers trickle
 * (PATCH is 501); a NAT address announced without being bound. Loopback only:
 * the advertised hosts are never contacted (the server has host candidates only).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withoutTrickle } from '../../src/rtc/offer-reduction.js';
import { weriftOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';

const TOKEN = 'publish-secret';
const auth = { authorization: `Bearer ${TOKEN}` };
const ICE_SERVERS = [
  { urls: 'stun:stun.example.net' },
  { urls: ['turn:turn.example.net?transport=udp', 'turns:turn.example.net:5349?transport=tcp'], username: 'user', credential: 'my"pa\\ss, word;x' },
  { urls: 'stun:[2001:db8::1]:3478' },
];

interface Link {
  target: string;
  params: Record<string, string>;
}

/** RFC 8288 §3 links of a (possibly comma-joined) Link field value: quoted-strings unescaped. */
function parseLinks(value: string): Link[] {
  const links: Link[] = [];
  let i = 0;
  const ws = () => {
    while (value[i] === ' ' || value[i] === '\t') i++;
  };
  while (i < value.length) {
    ws();
    if (value[i] !== '<') throw new Error(`expected "<" at ${i} in ${value}`);
    const end = value.indexOf('>', i);
    const link: Link = { target: value.slice(i + 1, end), params: {} };
    i = end + 1;
    for (ws(); value[i] === ';'; ws()) {
      i++;
      ws();
      const name = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/.exec(value.slice(i))![0];
      i += name.length;
      ws();
      if (value[i++] !== '=') throw new Error(`expected "=" after ${name}`);
      ws();
      let v = '';
      if (value[i] === '"') {
        for (i++; value[i] !== '"'; i++) {
          if (i >= value.length) throw new Error('unterminated quoted-string');
          if (value[i] === '\\') i++;
          v += value[i];
        }
        i++;
      } else {
        v = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]*/.exec(value.slice(i))![0];
        i += v.length;
      }
      link.params[name.toLowerCase()] = v;
    }
    links.push(link);
    ws();
    if (i < value.length && value[i++] !== ',') throw new Error(`expected "," at ${i - 1} in ${value}`);
  }
  return links;
}

/** The raw Link field lines of a response (fetch would join them). */
function rawLinkFields(url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; links: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      res.resume();
      res.on('end', () => {
        const links = res.rawHeaders.filter((_, k) => k % 2 === 0).flatMap((name, k) => (name.toLowerCase() === 'link' ? [res.rawHeaders[2 * k + 1]] : []));
        resolve({ status: res.statusCode ?? 0, links });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const STUN_ONLY = [
  { target: 'stun:stun.example.net', params: { rel: 'ice-server' } },
  { target: 'stun:[2001:db8::1]:3478', params: { rel: 'ice-server' } },
];
const TURN_PARAMS = { rel: 'ice-server', username: 'user', credential: 'my"pa\\ss, word;x', 'credential-type': 'password' };
const ALL = [
  STUN_ONLY[0],
  { target: 'turn:turn.example.net?transport=udp', params: TURN_PARAMS },
  { target: 'turns:turn.example.net:5349?transport=tcp', params: TURN_PARAMS },
  STUN_ONLY[1],
];

let t: TestServer;
let plain: TestServer;

beforeAll(async () => {
  t = await startServer({ token: TOKEN, iceServers: ICE_SERVERS });
  plain = await startServer();
});
afterAll(async () => {
  await t?.close();
  await plain?.close();
});

describe('ICE servers advertised to WHIP clients (RFC 9725 §4.6)', () => {
  it('the 201 carries one Link field per URL, TURN ones with username, credential and credential-type', async () => {
    const { pc, sdp } = await weriftOffer();
    try {
      const raw = await rawLinkFields(`${t.url}/whip/ice/ana`, 'POST', { ...auth, 'content-type': 'application/sdp' }, sdp);
      expect(raw.status).toBe(201);
      expect(raw.links).toHaveLength(4);
      expect(raw.links[0]).toBe('<stun:stun.example.net>; rel="ice-server"');
      expect(raw.links[1]).toBe('<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="my\\"pa\\\\ss, word;x"; credential-type="password"');
      expect(raw.links.flatMap(parseLinks)).toEqual(ALL);
    } finally {
      await pc.close();
    }
  });

  it('a browser reading the joined field (fetch) gets the same links, and CORS exposes Link', async () => {
    const { pc, sdp } = await weriftOffer();
    try {
      const res = await fetch(`${t.url}/whip/ice/bea`, { method: 'POST', headers: { ...auth, 'content-type': 'application/sdp', origin: 'https://studio.example' }, body: sdp });
      expect(res.status).toBe(201);
      expect(parseLinks(res.headers.get('link')!)).toEqual(ALL);
      expect(res.headers.get('access-control-expose-headers')).toMatch(/\bLink\b/);
      await fetch(new URL(res.headers.get('location')!, t.url), { method: 'DELETE', headers: auth });
    } finally {
      await pc.close();
    }
  });

  it('OPTIONS: everything with the publish token, STUN only without it, nothing on a CORS preflight', async () => {
    const url = `${t.url}/whip/ice/cleo`;
    const withToken = await fetch(url, { method: 'OPTIONS', headers: auth });
    expect(withToken.status).toBe(204);
    expect(parseLinks(withToken.headers.get('link')!)).toEqual(ALL);
    const anonymous = await fetch(url, { method: 'OPTIONS' });
    expect(parseLinks(anonymous.headers.get('link')!)).toEqual(STUN_ONLY);
    const preflight = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://studio.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('link')).toBeNull();
    // The session resource advertises nothing either.
    expect((await fetch(`${t.url}/whip/sessions/x`, { method: 'OPTIONS', headers: auth })).headers.get('link')).toBeNull();
  });

  it('nothing is advertised by default', async () => {
    const { pc, sdp } = await weriftOffer();
    try {
      const res = await fetch(`${plain.url}/whip/ice/dan`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
      expect(res.status).toBe(201);
      expect(res.headers.get('link')).toBeNull();
      await fetch(new URL(res.headers.get('location')!, plain.url), { method: 'DELETE' });
    } finally {
      await pc.close();
    }
    expect((await fetch(`${plain.url}/whip/ice/dan`, { method: 'OPTIONS' })).headers.get('link')).toBeNull();
  });

  it('the server itself gathers host candidates only, whatever is advertised (ICE-lite)', async () => {
    const { pc, sdp } = await weriftOffer();
    try {
      const res = await fetch(`${t.url}/whip/ice/eve`, { method: 'POST', headers: { ...auth, 'content-type': 'application/sdp' }, body: sdp });
      const answer = await res.text();
      const candidates = answer.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
      expect(candidates.length).toBeGreaterThan(0);
      for (const c of candidates) expect(c).toMatch(/ 127\.0\.0\.1 \d+ typ host/);
      expect(answer).toContain('a=ice-lite');
      await fetch(new URL(res.headers.get('location')!, t.url), { method: 'DELETE', headers: auth });
    } finally {
      await pc.close();
    }
  });
});

describe('no trickle in the answer (PATCH is 501)', () => {
  it('a real answer has no a=ice-options:trickle, though werift writes it', async () => {
    const { pc, sdp } = await weriftOffer();
    try {
      expect(sdp).toContain('a=ice-options:trickle'); // the client offers it
      const res = await fetch(`${plain.url}/whip/ice/fay`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
      expect(res.status).toBe(201);
      const answer = await res.text();
      expect(answer).not.toMatch(/^a=ice-options:.*\btrickle\b/m);
      expect(answer).toMatch(/^a=end-of-candidates$/m);
      const patch = await fetch(new URL(res.headers.get('location')!, plain.url), { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates' });
      expect(patch.status).toBe(501);
      await fetch(new URL(res.headers.get('location')!, plain.url), { method: 'DELETE' });
    } finally {
      await pc.close();
    }
  });

  it('other ice-options tokens stay', () => {
    const sdp = ['v=0', 'a=ice-options:trickle ice2', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=ice-options:trickle', 'a=ice-options:ice2 trickle rtp+ecn', ''].join('\r\n');
    expect(withoutTrickle(sdp)).toBe(['v=0', 'a=ice-options:ice2', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=ice-options:ice2 rtp+ecn', ''].join('\r\n'));
  });
});

describe('NAT: announcing an address that is not on this machine', () => {
  it('candidates carry the public address while the socket binds locally (no EADDRNOTAVAIL crash)', async () => {
    const nat = await startServer({ iceHostAddresses: ['203.0.113.7'] }); // TEST-NET-3: never contacted, the answer is not applied
    const { pc, sdp } = await weriftOffer();
    try {
      const res = await fetch(`${nat.url}/whip/ice/gus`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
      expect(res.status).toBe(201);
      const candidates = (await res.text()).split('\r\n').filter((l) => l.startsWith('a=candidate:'));
      expect(candidates).toHaveLength(1);
      expect(candidates[0]).toMatch(/ 203\.0\.113\.7 \d+ typ host/);
      expect((await fetch(`${nat.url}/health`)).status).toBe(200);
    } finally {
      await pc.close();
      await nat.close();
    }
  });
});
