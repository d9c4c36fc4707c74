/**
 * Offers whose direction or DTLS role is implied or written loosely, over
 * real loopback WebRTC. A section without a direction attribute is sendrecv
 * (RFC 8866 §6.7, RFC 3264 §5.1), a session-level attribute applies to every
 * section without its own, and blanks after an attribute do not change it:
 * each such publisher is answered `recvonly` and its audio arrives, packet
 * for packet (werift alone answered the first `inactive`, and the publisher
 * was connected with nothing received). An offer of `a=setup:active`, or
 * without `a=setup` (active by default, RFC 4145 §4.1), is answered `passive`
 * (RFC 8842 §5.3; werift alone answered `active`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endedStats, publishFiftyTonePackets } from '../helpers/raw-rtp-publisher.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ pipeline: { name: 'plain', stages: [], sinks: [{ type: 'stats' }] } });
});
afterAll(() => t.close());

const withoutDirection = (sdp: string) => sdp.replace(/a=sendonly\r\n/g, '');

describe('the direction an offer means', () => {
  const cases = [
    { peer: 'unstated', what: 'no direction attribute (sendrecv)', edit: withoutDirection },
    { peer: 'session-level', what: 'a=sendonly in the session part only', edit: (sdp: string) => withoutDirection(sdp).replace(/\r\nm=/, '\r\na=sendonly\r\nm=') },
    { peer: 'blank-after', what: '"a=sendonly " with a blank after it', edit: (sdp: string) => sdp.replace(/a=sendonly\r\n/g, 'a=sendonly \r\n') },
  ];
  const roles = [
    { peer: 'active', what: 'a=setup:active (the sender is the DTLS client)', edit: (sdp: string) => sdp.replace(/a=setup:actpass/g, 'a=setup:active') },
    // RFC 4145 §4.1: an offer without a=setup means active.
    { peer: 'no-setup', what: 'no a=setup (active by default)', edit: (sdp: string) => sdp.replace(/a=setup:actpass\r\n/g, '') },
  ];
  for (const { peer, what, edit } of roles) {
    it(`${what}: answered passive, and every packet arrives`, async () => {
      // werift takes the role the answer leaves it: with "passive" it is the client its offer said.
      const answer = await publishFiftyTonePackets(t.url, peer, edit);
      // RFC 8842 §5.3: an active offer is answered passive (werift alone answered active: two clients).
      expect(answer).toMatch(/\r\na=setup:passive\r\n/);
      const stats = await endedStats(t.url, peer);
      expect(stats.rtp).toMatchObject({ packetsReceived: 50, packetsLost: 0 });
    });
  }

  for (const { peer, what, edit } of cases) {
    it(`${what}: answered recvonly, and every packet arrives`, async () => {
      let offered = '';
      const answer = await publishFiftyTonePackets(t.url, peer, (sdp) => (offered = edit(sdp)));
      // The edit took: the audio section states no sendonly of its own (or one with a blank after it).
      expect(offered.split(/(?=m=audio)/)[1]).not.toMatch(/a=sendonly\r\n/);
      expect(answer).toMatch(/\r\na=recvonly\r\n/);
      expect(answer).not.toMatch(/a=inactive/);
      const stats = await endedStats(t.url, peer);
      expect(stats.rtp).toMatchObject({ packetsReceived: 50, packetsLost: 0 });
    });
  }
});
