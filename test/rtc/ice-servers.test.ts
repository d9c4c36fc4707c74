/**
 * STUN/TURN server checks (RFC 7064/7065 URLs, credentials that fit a Link
 * header) and the command-line form `URL[,username,credential]`.
 */
import { describe, expect, it } from 'vitest';
import { checkIceServers, parseIceServerSpec } from '../../src/rtc/ice-servers.js';

const failure = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as Error & { code?: string; extensions?: Record<string, unknown> };
  }
  throw new Error('expected an error');
};

describe('checkIceServers', () => {
  it('accepts STUN and TURN URLs and flattens them, credentials on TURN URLs only', () => {
    expect(checkIceServers([
      { urls: 'stun:stun.example.net' },
      { urls: ['stun:turn.example.net:3478', 'turn:turn.example.net?transport=udp', 'TURNS:[2001:db8::1]:5349?transport=tcp'], username: 'u', credential: 'p' },
      { urls: 'stuns:192.0.2.1:5349' },
    ])).toEqual([
      { url: 'stun:stun.example.net', scheme: 'stun' },
      { url: 'stun:turn.example.net:3478', scheme: 'stun' },
      { url: 'turn:turn.example.net?transport=udp', scheme: 'turn', username: 'u', credential: 'p' },
      { url: 'TURNS:[2001:db8::1]:5349?transport=tcp', scheme: 'turns', username: 'u', credential: 'p' },
      { url: 'stuns:192.0.2.1:5349', scheme: 'stuns' },
    ]);
  });

  it.each([
    [{ urls: 'http://stun.example.net' }, /options\.iceServers\[0\] "http:\/\/stun\.example\.net": is not a STUN or TURN URL/],
    [{ urls: 'stun:user@host' }, /is not a STUN or TURN URL/],
    [{ urls: 'stun:stun.example.net?transport=udp' }, /\?transport= belongs to turn: and turns: URLs only/],
    [{ urls: 'stun:stun.example.net:70000' }, /port 70000 is not 1–65535/],
    [{ urls: 'stun:[::g]' }, /is not a STUN or TURN URL|is not an IPv6 address/],
    [{ urls: 'stun:[1.2.3.4]' }, /\[1\.2\.3\.4\] is not an IPv6 address/],
    [{ urls: 'turn:turn.example.net' }, /a TURN server needs a username and a credential/],
    [{ urls: 'stun:stun.example.net', username: 'u', credential: 'p' }, /STUN servers take no credentials/],
    [{ urls: 'turn:t.example.net', username: 'u', credential: 'p\r\nX-Injected: 1' }, /"credential" must be a non-empty string of printable ASCII/],
    [{ urls: 'turn:t.example.net', username: 'üser', credential: 'p' }, /"username" must be/],
    [{ urls: [] }, /"urls" must be a URL or a non-empty array/],
  ])('refuses %j', (server, message) => {
    const e = failure(() => checkIceServers([server]));
    expect(e.code).toBe('EARSHOT_ICE_SERVER_INVALID');
    expect(e.extensions).toEqual({ option: 'iceServers' });
    expect(e.message).toMatch(message);
    // A credential is never quoted back (messages end up in logs).
    expect(e.message).not.toContain('X-Injected');
  });
});

describe('parseIceServerSpec (--ice-server, EARSHOT_ICE_SERVERS)', () => {
  it('reads URL, URL,username,credential; the credential keeps its commas', () => {
    expect(parseIceServerSpec('stun:stun.example.net:3478')).toEqual({ urls: 'stun:stun.example.net:3478' });
    expect(parseIceServerSpec('turns:turn.example.net:443?transport=tcp,alice,s3,cr=t')).toEqual({ urls: 'turns:turn.example.net:443?transport=tcp', username: 'alice', credential: 's3,cr=t' });
  });

  it('names the flag in its errors', () => {
    expect(failure(() => parseIceServerSpec('turn:turn.example.net,alice')).message).toMatch(/^--ice-server "turn:turn\.example\.net,…": give both a username and a credential/);
    expect(failure(() => parseIceServerSpec('turn:turn.example.net')).message).toMatch(/^--ice-server "turn:turn\.example\.net": a TURN server needs/);
  });
});
