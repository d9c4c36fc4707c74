/**
 * Offer checks and offer reduction, without a network: what an offer may ask
 * for, what werift gets to see of it, and how the answer is put back together.
 */
import { describe, expect, it } from 'vitest';
import { isEarshotError, type EarshotError } from '../../src/errors.js';
import { completeAnswer, planNegotiation, reducedOffer } from '../../src/rtc/offer-reduction.js';
import { MAX_MEDIA_SECTIONS, inspectOffer, parseOffer, summarizeOffer } from '../../src/rtc/sdp-offer.js';
import { chromeLikeOffer } from '../helpers/offers.js';

const CRLF = '\r\n';

/** The error `fn` throws (fails the test if it returns). */
function thrown(fn: () => unknown): EarshotError {
  try {
    fn();
  } catch (e) {
    if (isEarshotError(e)) return e;
    throw e;
  }
  throw new Error('expected an EarshotError');
}

const mLines = (sdp: string) => sdp.split(CRLF).filter((l) => l.startsWith('m='));

/** Chromium's audio offer with more sections after it, its BUNDLE group listing every mid. */
function withSections(sections: string[][], base = chromeLikeOffer()): string {
  const mids = ['0', ...sections.map((s) => s.find((l) => l.startsWith('a=mid:'))!.slice(6))];
  return base.replace('a=group:BUNDLE 0', `a=group:BUNDLE ${mids.join(' ')}`) + sections.map((s) => s.join(CRLF) + CRLF).join('');
}

const transport = [
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:Gx2b',
  'a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE',
  'a=fingerprint:sha-256 1E:4B:2A:77:0C:9D:3F:61:AB:54:C8:E2:90:17:6D:F3:25:88:B1:4E:0A:C6:7F:39:D2:5B:E8:13:A4:71:9C:06',
  'a=setup:actpass',
];
const video = (mid: string) => ['m=video 9 UDP/TLS/RTP/SAVPF 96 97', ...transport, `a=mid:${mid}`, 'a=sendonly', 'a=rtcp-mux', 'a=rtpmap:96 VP8/90000', 'a=rtcp-fb:96 nack', 'a=rtcp-fb:96 nack pli', 'a=rtpmap:97 rtx/90000', 'a=fmtp:97 apt=96'];
const dataChannel = (mid: string) => ['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', ...transport, `a=mid:${mid}`, 'a=sctp-port:5000', 'a=max-message-size:262144'];
const opusAudio = (mid: string) => ['m=audio 9 UDP/TLS/RTP/SAVPF 111', ...transport, `a=mid:${mid}`, 'a=sendonly', 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1'];

/** An offer with `n` Opus audio sections sharing session-level transport attributes, the shape of the 600-section attack. */
function manyAudioSections(n: number): string {
  const head = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', `a=group:BUNDLE ${Array.from({ length: n }, (_, i) => i).join(' ')}`, ...transport.slice(1)];
  const body = Array.from({ length: n }, (_, i) => [`m=audio 9 UDP/TLS/RTP/SAVPF 111`, `a=mid:${i}`, 'a=sendonly', 'a=rtpmap:111 opus/48000/2']).flat();
  return [...head, ...body, ''].join(CRLF);
}

describe('offer checks', () => {
  it("accepts Chromium's offer (Opus 111, RED, CN, DTMF, extmap) as mono Opus on payload type 111", () => {
    expect(inspectOffer(chromeLikeOffer())).toEqual({ opusPayloadType: 111, stereo: false, audioIndex: 0 });
  });

  it('reads a stereo request from the Opus fmtp (RFC 7587 stereo=1)', () => {
    const stereo = chromeLikeOffer().replace('a=fmtp:111 minptime=10;useinbandfec=1', 'a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1');
    expect(inspectOffer(stereo).stereo).toBe(true);
  });

  it(`accepts ${MAX_MEDIA_SECTIONS} media sections and refuses more with 400 EARSHOT_SDP_TOO_COMPLEX naming the limit`, () => {
    expect(MAX_MEDIA_SECTIONS).toBe(16);
    expect(parseOffer(manyAudioSections(MAX_MEDIA_SECTIONS)).sections).toHaveLength(16);
    for (const n of [MAX_MEDIA_SECTIONS + 1, 600]) {
      const e = thrown(() => inspectOffer(manyAudioSections(n)));
      expect(e.code).toBe('EARSHOT_SDP_TOO_COMPLEX');
      expect(e.statusCode).toBe(400);
      expect(e.message).toContain(`has ${n} media sections`);
      expect(e.message).toContain('at most 16');
    }
  });

  it('refuses payload types outside 0–127 in the m= line, a=rtpmap, a=fmtp and a=rtcp-fb with 400 EARSHOT_SDP_INVALID', () => {
    const offer = chromeLikeOffer();
    const cases: Array<[string, string]> = [
      ['m= line, 99999999999', offer.replaceAll('111', '99999999999')],
      ['m= line, 128', offer.replace('SAVPF 111 63', 'SAVPF 128 63')],
      ['rtpmap, 99999999999', offer.replace('a=rtpmap:111 opus', 'a=rtpmap:99999999999 opus')],
      ['rtpmap, negative', offer.replace('a=rtpmap:0 PCMU', 'a=rtpmap:-1 PCMU')],
      ['rtpmap, not a number', offer.replace('a=rtpmap:0 PCMU', 'a=rtpmap:1x PCMU')],
      ['rtpmap, leading zeros', offer.replace('a=rtpmap:0 PCMU', 'a=rtpmap:0000 PCMU')],
      ['rtpmap without encoding', offer.replace('a=rtpmap:0 PCMU/8000', 'a=rtpmap:0')],
      ['fmtp, 200', offer.replace('a=fmtp:63 111/111', 'a=fmtp:200 111/111')],
      ['rtcp-fb, 300', offer.replace('a=rtcp-fb:111 transport-cc', 'a=rtcp-fb:300 transport-cc')],
    ];
    for (const [what, sdp] of cases) {
      const e = thrown(() => inspectOffer(sdp));
      expect(e.code, what).toBe('EARSHOT_SDP_INVALID');
      expect(e.statusCode, what).toBe(400);
    }
    expect(thrown(() => inspectOffer(cases[0][1])).message).toMatch(/payload type "99999999999"; RTP payload types are whole numbers 0–127/);
    // "*" applies feedback to every payload type (RFC 4585).
    expect(inspectOffer(offer.replace('a=rtcp-fb:111 transport-cc', 'a=rtcp-fb:* transport-cc')).opusPayloadType).toBe(111);
  });

  it('refuses duplicate, repeated or malformed mids', () => {
    expect(thrown(() => inspectOffer(withSections([opusAudio('0')]))).message).toMatch(/mid "0" is used by more than one/);
    expect(thrown(() => inspectOffer(chromeLikeOffer().replace('a=mid:0', 'a=mid:0\r\na=mid:1'))).message).toMatch(/2 a=mid lines/);
    expect(thrown(() => inspectOffer(chromeLikeOffer().replace('a=mid:0', 'a=mid:a b'))).code).toBe('EARSHOT_SDP_INVALID');
    expect(thrown(() => inspectOffer(chromeLikeOffer().replace('a=mid:0', `a=mid:${'m'.repeat(65)}`))).code).toBe('EARSHOT_SDP_INVALID');
  });

  it('keeps error messages short however much of the offer they quote', () => {
    const huge = 'x'.repeat(43_000);
    const offers = [
      // A 43 KB codec name once came back whole in the 422 detail.
      chromeLikeOffer().replace('a=rtpmap:111 opus/48000/2', `a=rtpmap:111 ${huge}/48000/2`),
      chromeLikeOffer().replace('a=rtpmap:111 opus/48000/2', `a=rtpmap:111 ${huge}`),
      `v=0${CRLF}${huge}${CRLF}`,
      chromeLikeOffer().replace('m=audio 9 UDP/TLS/RTP/SAVPF 111', `m=audio 9 UDP/TLS/RTP/SAVPF 111 ${huge}`),
      chromeLikeOffer().replace('a=mid:0', `a=mid:${huge}`),
      chromeLikeOffer().replace('a=fmtp:63 111/111', `a=fmtp:${huge} 111/111`),
    ];
    for (const sdp of offers) {
      const e = thrown(() => inspectOffer(sdp));
      expect(e.message.length, e.message.slice(0, 80)).toBeLessThan(1024);
    }
  });

  it('lists why each audio section was passed over, the list cut with "… and N more"', () => {
    const g722 = (mid: string) => ['m=audio 9 UDP/TLS/RTP/SAVPF 9', ...transport, `a=mid:${mid}`, 'a=sendonly', 'a=rtpmap:9 G722/8000'];
    const offer = withSections(Array.from({ length: 9 }, (_, i) => g722(String(i + 1))), chromeLikeOffer().replace('a=sendonly', 'a=recvonly'));
    const e = thrown(() => inspectOffer(offer));
    expect(e.code).toBe('EARSHOT_NO_OPUS_AUDIO');
    expect(e.message).toContain('audio section 0 does not send (it is recvonly)');
    expect(e.message).toContain('audio section 1 offers G722 but not opus/48000/2');
    expect(e.message).toContain('… and 6 more');
  });

  it('drops trailing blanks from every line, and says what is wrong with a first line, line ends or c= it cannot read', () => {
    const blanks = chromeLikeOffer().replace('v=0\r\n', 'v=0 \r\n').replace('c=IN IP4 0.0.0.0\r\n', 'c=IN IP4 0.0.0.0 \r\n').replace('a=sendonly', 'a=sendonly\t');
    const parsed = parseOffer(blanks);
    const seen = planNegotiation(parsed, summarizeOffer(parsed)).offer;
    expect(seen).toMatch(/^v=0\r\n/);
    expect(seen).toContain('\r\nc=IN IP4 0.0.0.0\r\n');
    expect(seen).toContain('\r\na=sendonly\r\n');
    expect(thrown(() => parseOffer(`\uFEFF${chromeLikeOffer()}`)).message).toContain('it starts with a byte order mark (U+FEFF)');
    expect(thrown(() => parseOffer(chromeLikeOffer().replaceAll('\r\n', '\r'))).message).toContain('its lines end with a bare CR');
    expect(thrown(() => parseOffer(`o=- 1 1 IN IP4 127.0.0.1\r\n${chromeLikeOffer()}`)).message).toContain('it must start with "v=0" (RFC 8866); its first line is "o=- 1 1 IN IP4 127.0.0.1"');
    for (const c of ['c=IN IP4', 'c=IN IP4 ', 'c=IN IPX 1.2.3.4', 'c=IN IP4 1.2.3.4 extra']) {
      const e = thrown(() => parseOffer(chromeLikeOffer().replace('c=IN IP4 0.0.0.0', c)));
      expect([c, e.code, e.message]).toEqual([c, 'EARSHOT_SDP_INVALID', expect.stringMatching(/is not "c=IN IP4 <address>" or "c=IN IP6 <address>" \(RFC 8866 §5\.7\)/)]);
    }
    for (const c of ['c=IN IP6 ::1', 'c=IN IP4 224.2.36.42/127', 'c=IN IP4 host.example']) expect(() => parseOffer(chromeLikeOffer().replace('c=IN IP4 0.0.0.0', c))).not.toThrow();
  });

  it('takes DTLS-SRTP over UDP only: TCP/DTLS/RTP/SAVPF (which contains RTP/SAVPF) is passed over', () => {
    const e = thrown(() => inspectOffer(chromeLikeOffer().replace('m=audio 9 UDP/TLS/RTP/SAVPF ', 'm=audio 9 TCP/DTLS/RTP/SAVPF ')));
    expect(e.code).toBe('EARSHOT_NO_OPUS_AUDIO');
    expect(e.message).toContain('audio section 0 uses TCP/DTLS/RTP/SAVPF, not DTLS-SRTP (UDP/TLS/RTP/SAVPF)');
    for (const proto of ['UDP/TLS/RTP/SAVPF', 'UDP/TLS/RTP/SAVP', 'RTP/SAVPF']) {
      expect(inspectOffer(chromeLikeOffer().replace('m=audio 9 UDP/TLS/RTP/SAVPF ', `m=audio 9 ${proto} `)).opusPayloadType).toBe(111);
    }
  });

  it('takes Opus only on a payload type the m= line lists (RFC 3264 §6.1): an rtpmap for another is not an offer of it', () => {
    const stray = chromeLikeOffer().replace('a=rtpmap:111 opus/48000/2', 'a=rtpmap:111 G7221/16000\r\na=rtpmap:100 opus/48000/2');
    const e = thrown(() => inspectOffer(stray));
    expect(e.code).toBe('EARSHOT_NO_OPUS_AUDIO');
    // The same rtpmap on a listed payload type is taken, also after an unlisted one.
    const listed = chromeLikeOffer().replace('a=rtpmap:111 opus/48000/2', 'a=rtpmap:100 opus/48000/2\r\na=rtpmap:111 opus/48000/2');
    expect(inspectOffer(listed).opusPayloadType).toBe(111);
  });

  it('says why a bundle-only audio section behind a section earshot does not take cannot be accepted (RFC 8843 §7.3.1)', () => {
    // Video first, audio bundle-only in its group (max-bundle with the camera added first).
    const [head, audio] = chromeLikeOffer().split(/(?=m=audio)/);
    const bundleOnly = audio.replace('m=audio 9 ', 'm=audio 0 ').replace('a=mid:0', 'a=mid:1\r\na=bundle-only');
    const offer = head.replace('a=group:BUNDLE 0', 'a=group:BUNDLE 0 1') + video('0').join(CRLF) + CRLF + bundleOnly;
    const e = thrown(() => inspectOffer(offer));
    expect(e.code).toBe('EARSHOT_NO_OPUS_AUDIO');
    expect(e.message).toContain('audio section 1 is bundle-only (port 0): it can be accepted only inside its BUNDLE group, whose first section, which earshot does not take');
    // Bundle-only and first in its group, or in none: said as such.
    const first = chromeLikeOffer().replace('m=audio 9 ', 'm=audio 0 ').replace('a=mid:0', 'a=mid:0\r\na=bundle-only');
    expect(thrown(() => inspectOffer(first)).message).toContain('audio section 0 is bundle-only (port 0) and first in its BUNDLE group');
    expect(thrown(() => inspectOffer(first.replace('a=group:BUNDLE 0\r\n', ''))).message).toContain('audio section 0 is bundle-only (port 0) but in no BUNDLE group');
    // Port 0 without bundle-only is a rejected section, as before.
    expect(thrown(() => inspectOffer(chromeLikeOffer().replace('m=audio 9 ', 'm=audio 0 '))).message).toContain('audio section 0 is rejected (port 0)');
  });
});

describe('the direction an offer means', () => {
  const base = chromeLikeOffer().replace('a=sendonly\r\n', '');

  it('reads a section without a direction attribute as sendrecv, and states it for werift', () => {
    const parsed = parseOffer(base);
    expect(summarizeOffer(parsed).audioIndex).toBe(0);
    expect(planNegotiation(parsed, summarizeOffer(parsed)).offer).toMatch(/\r\na=sendrecv\r\n/);
  });

  it('applies a session-level attribute to a section without its own: recvonly there does not send', () => {
    const recvonly = base.replace('\r\nm=audio', '\r\na=recvonly\r\nm=audio');
    const e = thrown(() => inspectOffer(recvonly));
    expect(e.code).toBe('EARSHOT_NO_OPUS_AUDIO');
    expect(e.message).toContain('audio section 0 does not send (it is recvonly)');
    // A section's own attribute overrides the session's.
    const own = recvonly.replace('a=rtcp-mux', 'a=sendonly\r\na=rtcp-mux');
    const parsed = parseOffer(own);
    expect(summarizeOffer(parsed).audioIndex).toBe(0);
    expect(planNegotiation(parsed, summarizeOffer(parsed)).offer.split(/(?=m=audio)/)[1]).not.toMatch(/a=(sendrecv|recvonly)/);
  });
});

describe('offer reduction', () => {
  it('gives werift only the first receivable Opus section and the data channel, with a BUNDLE group of their mids', () => {
    const offer = parseOffer(withSections([video('1'), dataChannel('2'), opusAudio('3')]));
    const plan = planNegotiation(offer, summarizeOffer(offer));
    expect(plan.sections).toEqual([0, 2]);
    expect(plan.dataChannel).toBe(2);
    expect(mLines(plan.offer)).toEqual(['m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126', 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel']);
    expect(plan.offer).toContain(`${CRLF}a=group:BUNDLE 0 2${CRLF}`);
    expect(plan.offer).toContain(`${CRLF}a=mid:0${CRLF}`);
    // The session part and the audio section reach werift unchanged.
    expect(plan.offer).toContain('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid');
    expect(plan.offer).toContain('a=msid-semantic: WMS 5c7b0d1e');
  });

  it('passes an audio section that is not first with its own mid, and drops groups left empty', () => {
    const base = chromeLikeOffer().replace('a=group:BUNDLE 0', 'a=group:BUNDLE v a\r\na=group:LS v').replace('a=mid:0', 'a=mid:a');
    const [head, audio] = base.split(/(?=m=audio)/);
    const offer = parseOffer(`${head}${video('v').join(CRLF)}${CRLF}${audio}`);
    const summary = summarizeOffer(offer);
    expect(summary.audioIndex).toBe(1);
    const reduced = reducedOffer(offer, [1]);
    expect(mLines(reduced)).toHaveLength(1);
    expect(reduced).toContain(`a=group:BUNDLE a${CRLF}`);
    expect(reduced).not.toContain('a=group:LS');
    expect(reduced).not.toContain('m=video');
  });

  it("completes werift's answer with every other section rejected: same count, order and mids, port 0, not in BUNDLE", () => {
    const offer = parseOffer(withSections([video('1'), dataChannel('2')]));
    const weriftAnswer = ['v=0', 'o=- 5 0 IN IP4 0.0.0.0', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=recvonly', 'a=mid:0', 'a=rtpmap:111 opus/48000/2', ''].join(CRLF);
    const answer = completeAnswer(offer, [0], weriftAnswer);
    expect(mLines(answer)).toEqual(['m=audio 9 UDP/TLS/RTP/SAVPF 111', 'm=video 0 UDP/TLS/RTP/SAVPF 96', 'm=application 0 UDP/DTLS/SCTP webrtc-datachannel']);
    expect(answer.split(CRLF).filter((l) => l.startsWith('a=mid:'))).toEqual(['a=mid:0', 'a=mid:1', 'a=mid:2']);
    expect(answer.split(CRLF).filter((l) => l.startsWith('a=group:'))).toEqual(['a=group:BUNDLE 0']);
    expect(answer.endsWith(CRLF)).toBe(true);
    // werift's answer must match what it was given.
    expect(() => completeAnswer(offer, [0, 1], weriftAnswer)).toThrow(/answered 1 media sections for the 2/);
    expect(() => completeAnswer(offer, [0], weriftAnswer.replace('a=mid:0', 'a=mid:9'))).toThrow(/mid "9" instead of "0"/);
  });

  it('moves ICE-lite, which werift writes into the media section, to the session part (RFC 8839 §5.3)', () => {
    const offer = parseOffer(withSections([video('1')]));
    const weriftAnswer = ['v=0', 'o=- 5 0 IN IP4 0.0.0.0', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=ice-lite', 'a=recvonly', 'a=mid:0', 'a=rtpmap:111 opus/48000/2', ''].join(CRLF);
    const lines = completeAnswer(offer, [0], weriftAnswer).split(CRLF);
    const firstMedia = lines.findIndex((l) => l.startsWith('m='));
    expect(lines.indexOf('a=ice-lite')).toBeGreaterThan(lines.indexOf('t=0 0'));
    expect(lines.indexOf('a=ice-lite')).toBeLessThan(firstMedia);
    expect(lines.filter((l) => l === 'a=ice-lite')).toHaveLength(1);
  });

  it('refuses a negotiated section without a mid with 400 EARSHOT_SDP_INVALID saying so (werift said "mid not assigned")', () => {
    const offer = parseOffer(chromeLikeOffer().replace(/a=mid:0\r\n/, '').replace(/a=group:BUNDLE 0\r\n/, ''));
    const e = thrown(() => planNegotiation(offer, summarizeOffer(offer)));
    expect(e.code).toBe('EARSHOT_SDP_INVALID');
    expect(e.message).toMatch(/media section 0 has no a=mid/);
  });

  it('refuses unusable ICE credentials, DTLS fingerprints and roles with 400 EARSHOT_SDP_INVALID saying which and why', () => {
    const problem = (edit: (sdp: string) => string) => {
      const offer = parseOffer(edit(chromeLikeOffer()));
      return thrown(() => planNegotiation(offer, summarizeOffer(offer)));
    };
    const cases: Array<[string, (sdp: string) => string, RegExp]> = [
      ['an empty ufrag', (o) => o.replace('a=ice-ufrag:Gx2b', 'a=ice-ufrag:'), /a=ice-ufrag has 0 characters; RFC 8839 §5.4 asks for 4 to 256, in media section 0/],
      ['a blank ufrag', (o) => o.replace('a=ice-ufrag:Gx2b', 'a=ice-ufrag: '), /a=ice-ufrag has 0 characters/],
      ['a 1-character ufrag', (o) => o.replace('a=ice-ufrag:Gx2b', 'a=ice-ufrag:G'), /a=ice-ufrag has 1 characters/],
      ['an empty password', (o) => o.replace('a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE', 'a=ice-pwd:'), /a=ice-pwd has 0 characters; RFC 8839 §5.4 asks for 22 to 256/],
      ['a ufrag with a colon', (o) => o.replace('a=ice-ufrag:Gx2b', 'a=ice-ufrag:Gx:2b'), /a=ice-ufrag has characters other than letters, digits, "\+" and "\/"/],
      ['a fingerprint that is not hex', (o) => o.replace(/a=fingerprint:sha-256 \S+/, 'a=fingerprint:sha-256 ZZ'), /a=fingerprint's sha-256 value is not 32 hexadecimal bytes/],
      ['an MD5 fingerprint', (o) => o.replace(/a=fingerprint:sha-256 \S+/, 'a=fingerprint:md5 1E:4B:2A:77:0C:9D:3F:61:AB:54:C8:E2:90:17:6D:F3'), /a=fingerprint names the hash "md5"; a DTLS fingerprint uses sha-256/],
      ['a role that is none', (o) => o.replace('a=setup:actpass', 'a=setup:bogus'), /a=setup:bogus is not a DTLS role \(actpass, active or passive/],
      // RFC 4145's "no connection for now": was answered a=setup:active, as if it were a role.
      ['holdconn', (o) => o.replace('a=setup:actpass', 'a=setup:holdconn'), /a=setup:holdconn asks for no connection .*offer a=setup:actpass/],
      // A second line after a good one: the checks read the first, werift used the last (an empty ufrag: ice-failed after a 201).
      ['a second, empty ufrag', (o) => o.replace('a=ice-ufrag:Gx2b', 'a=ice-ufrag:Gx2b\r\na=ice-ufrag:'), /media section 0 has 2 a=ice-ufrag lines; it may have one \(RFC 8839 §5.4\)/],
      ['a second, short password', (o) => o.replace('a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE', 'a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE\r\na=ice-pwd:short'), /media section 0 has 2 a=ice-pwd lines/],
      ['a second role, holdconn', (o) => o.replace('a=setup:actpass', 'a=setup:actpass\r\na=setup:holdconn'), /media section 0 has 2 a=setup lines; it may have one \(RFC 4145 §4\)/],
      ['two ufrags in the session part', (o) => o.replace('t=0 0', 't=0 0\r\na=ice-ufrag:abcd\r\na=ice-ufrag:efgh'), /the session part has 2 a=ice-ufrag lines/],
    ];
    for (const [what, edit, message] of cases) {
      const e = problem(edit);
      expect(e.code, what).toBe('EARSHOT_SDP_INVALID');
      expect(e.message, what).toMatch(message);
    }
    // What real stacks send passes: Chrome's 4/24, a 22-character password (libnice, aiortc), sha-1, lower-case hex.
    const fine = parseOffer(chromeLikeOffer().replace('a=ice-pwd:9uB6tUq5Vd7fGx0mKzLp2QwE', 'a=ice-pwd:abcdefghijklmnopqrstu+').replace(/a=fingerprint:sha-256 \S+/, 'a=fingerprint:sha-1 1e:4b:2a:77:0c:9d:3f:61:ab:54:c8:e2:90:17:6d:f3:25:88:b1:4e'));
    expect(planNegotiation(fine, summarizeOffer(fine)).sections).toEqual([0]);
  });

  it('needs ICE and DTLS parameters only in the section werift negotiates', () => {
    const bundleOnlyVideo = ['m=video 0 UDP/TLS/RTP/SAVPF 96', 'a=bundle-only', 'a=mid:1', 'a=sendonly', 'a=rtpmap:96 VP8/90000'];
    const offer = parseOffer(withSections([bundleOnlyVideo]));
    expect(planNegotiation(offer, summarizeOffer(offer)).sections).toEqual([0]);
    const noFingerprint = parseOffer(chromeLikeOffer().replace(/a=fingerprint:[^\r]*\r\n/, ''));
    expect(thrown(() => planNegotiation(noFingerprint, summarizeOffer(noFingerprint))).message).toMatch(/fingerprint/);
  });
});
