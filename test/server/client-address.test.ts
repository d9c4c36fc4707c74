/**
 * The key the per-client limits count a request under: one per IPv4 address,
 * one per IPv6 /64 (a host can send from any address of its /64), and an IPv4
 * client seen through a dual-stack listener counted as that IPv4 address.
 */
import { describe, expect, it } from 'vitest';
import { clientKey, requestClient } from '../../src/server/client-address.js';

describe('clientKey', () => {
  it('is the address itself for IPv4', () => {
    expect(clientKey('192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('127.0.0.1')).toBe('127.0.0.1');
  });

  it('is the IPv4 address for an IPv4-mapped IPv6 address (a dual-stack listener)', () => {
    expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('::FFFF:127.0.0.1')).toBe('127.0.0.1');
    expect(clientKey('::ffff:c000:207')).toBe('192.0.2.7');
  });

  it('is the /64 prefix for IPv6: every address a host can pick in its /64 is one client', () => {
    const a = clientKey('2001:db8:1:2::1');
    expect(a).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:0db8:0001:0002:abcd:ef01:2345:6789')).toBe(a);
    expect(clientKey('2001:db8:1:2:ffff:ffff:ffff:fffe')).toBe(a);
    expect(clientKey('2001:db8:1:3::1')).not.toBe(a);
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('fe80::1%eth0')).toBe(clientKey('fe80::2'));
    expect(clientKey('2001:db8::192.0.2.1')).toBe('2001:db8:0:0::/64');
  });

  it('passes anything that is not an IP address through (a test double, a Unix socket)', () => {
    expect(clientKey('')).toBe('');
    expect(clientKey('not-an-address')).toBe('not-an-address');
  });
});

describe('requestClient', () => {
  const socket = { remoteAddress: '::ffff:127.0.0.1' };

  it('is the key of the request\'s address', () => {
    expect(requestClient({ ip: '2001:db8:1:2::7', socket })).toBe('2001:db8:1:2::/64');
    expect(requestClient({ ip: '::ffff:198.51.100.7', socket })).toBe('198.51.100.7');
  });

  it('reads an address that a proxy wrote with its port', () => {
    expect(requestClient({ ip: '198.51.100.7:51234', socket })).toBe('198.51.100.7');
    expect(requestClient({ ip: '[2001:db8:1:2::7]:443', socket })).toBe('2001:db8:1:2::/64');
  });

  it('counts a request whose forwarded address is no address as its connection\'s peer: no key of the client\'s choosing', () => {
    expect(requestClient({ ip: 'x'.repeat(5000), socket })).toBe('127.0.0.1');
    expect(requestClient({ ip: 'unknown', socket })).toBe('127.0.0.1');
    expect(requestClient({ ip: '999.1.1.1:80', socket })).toBe('127.0.0.1');
    expect(requestClient({ ip: 'unknown', socket: {} })).toBe('');
  });
});
