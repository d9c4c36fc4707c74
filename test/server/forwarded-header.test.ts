/**
 * RFC 7239's Forwarded field read as an X-Forwarded-For list
 * (src/server/forwarded-header.ts); end to end behind a trusted proxy:
 * test/server/trust-proxy.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { forwardedFor } from '../../src/server/forwarded-header.js';

describe('forwardedFor', () => {
  it("takes each element's for address, in order, without ports or brackets (RFC 7239 §4, §6)", () => {
    expect(forwardedFor('for=192.0.2.43')).toBe('192.0.2.43');
    expect(forwardedFor('for="_gazonk"')).toBe('unknown');
    expect(forwardedFor('For="[2001:db8:cafe::17]:4711"')).toBe('2001:db8:cafe::17');
    expect(forwardedFor('for=192.0.2.60;proto=http;by=203.0.113.43')).toBe('192.0.2.60');
    expect(forwardedFor('for=192.0.2.43, for=198.51.100.17')).toBe('192.0.2.43, 198.51.100.17');
    expect(forwardedFor('for="192.0.2.43:47011", for="[2001:db8::1]"')).toBe('192.0.2.43, 2001:db8::1');
    expect(forwardedFor('for="[::ffff:192.0.2.1]:80"')).toBe('::ffff:192.0.2.1');
  });

  it('stops the chain where an element names no address: unknown, obfuscated, a name, or no for', () => {
    expect(forwardedFor('for=unknown, for=192.0.2.1')).toBe('unknown, 192.0.2.1');
    expect(forwardedFor('proto=https, for=192.0.2.1')).toBe('unknown, 192.0.2.1');
    expect(forwardedFor('for=proxy.example.net')).toBe('unknown');
    expect(forwardedFor('for="[not-an-address]"')).toBe('unknown');
  });

  it('keeps separators inside quoted strings, and ignores empty elements', () => {
    expect(forwardedFor('for="x,y;z", for=192.0.2.2')).toBe('unknown, 192.0.2.2');
    expect(forwardedFor('for="a\\"b", for=192.0.2.3')).toBe('unknown, 192.0.2.3');
    expect(forwardedFor(' , for=192.0.2.4 ,')).toBe('192.0.2.4');
  });

  it('gives nothing for a value that does not parse (the header is then ignored)', () => {
    expect(forwardedFor('for="192.0.2.1')).toBeUndefined();
    expect(forwardedFor('192.0.2.1')).toBeUndefined();
    expect(forwardedFor('for=192.0.2.1;secret')).toBeUndefined();
    expect(forwardedFor('')).toBeUndefined();
  });
});
