/**
 * Lines of an offer earshot leaves out before werift sees them, over real
 * loopback WebRTC: each offer connects and every packet arrives.
 *
 * Candidates an offer names by a host name rather than an IP address: a
 * browser's mDNS names (`<uuid>.local`, as Chromium and Safari hide host
 * addresses behind) and plain FQDNs (RFC 8839 §5.1). werift would resolve each
 * `.local` one with a multicast DNS query, from a socket bound to 0.0.0.0:5353,
 * so that any publisher could make the server send one query on its network per
 * candidate. earshot answers as ICE-lite and needs none of them: the session
 * connects from the client's checks, every packet arrives, and no mDNS socket
 * is opened.
 */
import { Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endedStats, publishFiftyTonePackets } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ pipeline: { name: 'plain', stages: [], sinks: [{ type: 'stats' }] } });
});
afterAll(() => t.close());

/** UDP sockets of this process (the server runs in it) bound to port 5353, the mDNS port. */
function mdnsSockets(): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => {
    if (!(h instanceof Socket)) return false;
    try {
      return h.address().port === 5353;
    } catch {
      return false;
    }
  }).length;
}

describe('candidates named by a host name', () => {
  it('are not resolved: the session connects from the client\'s checks, every packet arrives, no mDNS socket is opened', async () => {
    let offered = '';
    /** mDNS sockets seen while the session is live (werift closes its resolver with the session). */
    let mdnsWhileLive = 0;
    // Every candidate's address becomes an mDNS name, and one FQDN candidate more: the offer names no IP address.
    const hideAddresses = (sdp: string) =>
      (offered = sdp
        .replace(/^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host)/gm, (_m, head: string, _address: string, tail: string) => `${head}6f1c9a2e-5b7d-4e0f-9a3c-2d8e1f4b6a70.local${tail}`)
        .replace(/(a=candidate:[^\r\n]*\r\n)/, '$1a=candidate:2 1 udp 2113937151 media.example.com 50000 typ host\r\n'));
    await publishFiftyTonePackets(t.url, 'hidden', hideAddresses, () => (mdnsWhileLive = Math.max(mdnsWhileLive, mdnsSockets())));
    // The edit took: candidates, none of them an IP address.
    const candidates = offered.match(/^a=candidate:.*$/gm) ?? [];
    expect(candidates.length).toBeGreaterThanOrEqual(2);
    expect(candidates.every((c) => /\.local |example\.com /.test(c))).toBe(true);
    const stats = await endedStats(t.url, 'hidden');
    expect(stats?.state).toBe('ended');
    expect(stats?.rtp).toMatchObject({ packetsReceived: 50, packetsLost: 0 });
    expect(mdnsWhileLive).toBe(0);
  });
});

describe('attributes for a payload type the section does not map', () => {
  it('are dropped, and the offer answered: a=fmtp and a=rtcp-fb for a listed type without a=rtpmap, and for a type not listed', async () => {
    let offered = '';
    // RED (63) listed on the m-line with its fmtp and feedback but no a=rtpmap, as an offer edited by a
    // middlebox may read; and an fmtp for payload type 11, which the m-line does not list.
    const unmapped = (sdp: string) =>
      (offered = sdp
        .replace(/^(m=audio \d+ \S+ \d+)/m, '$1 63')
        .replace(/(a=rtpmap:\d+ opus\/48000\/2\r\n)/i, '$1a=fmtp:63 111/111\r\na=rtcp-fb:63 nack\r\na=fmtp:11 foo=1\r\n'));
    await publishFiftyTonePackets(t.url, 'unmapped', unmapped);
    expect(offered).toMatch(/^m=audio \d+ \S+ \d+ 63\r$/m);
    expect(offered).not.toMatch(/a=rtpmap:63 /);
    const stats = await endedStats(t.url, 'unmapped');
    expect(stats?.state).toBe('ended');
    expect(stats?.rtp).toMatchObject({ packetsReceived: 50, packetsLost: 0 });
  });
});
