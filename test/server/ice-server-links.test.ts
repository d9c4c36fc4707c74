/**
 * The `Link: <…>; rel="ice-server"` field a WHIP answer carries per STUN/TURN
 * server (RFC 9725 §4.6), quoted-string values escaped.
 */
import { describe, expect, it } from 'vitest';
import { iceServerLink } from '../../src/server/ice-server-links.js';

describe('iceServerLink', () => {
  it('writes the RFC 9725 §4.6 form, escaping quoted-string values', () => {
    expect(iceServerLink({ url: 'stun:stun.example.net', scheme: 'stun' })).toBe('<stun:stun.example.net>; rel="ice-server"');
    expect(iceServerLink({ url: 'turn:turn.example.net?transport=udp', scheme: 'turn', username: 'user', credential: 'myPassword' }))
      .toBe('<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password"');
    expect(iceServerLink({ url: 'turn:t.example.net', scheme: 'turn', username: 'a"b', credential: 'c\\d' }))
      .toBe('<turn:t.example.net>; rel="ice-server"; username="a\\"b"; credential="c\\\\d"; credential-type="password"');
  });
});
