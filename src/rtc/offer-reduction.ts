/**
 * What werift negotiates, decided in one place. werift creates a transport (ICE
 * agent, UDP socket, DTLS state) for every section of an offer it is given, even
 * one it then rejects, so it gets only the sections earshot uses: the session
 * part plus those sections. Every other section is answered here as rejected
 * (port 0, same mid; RFC 3264 §6, RFC 8843 §7.3.3), so the answer still has
 * exactly the offer's m-lines, in its order.
 */
import { isIP } from 'node:net';
import { errors } from '../errors.js';
import { bundleGroups, directionOf, isRtp, ownDirection, type MediaSection, type OfferSummary, type ParsedOffer } from './sdp-offer.js';
import { setupOf } from './dtls-role.js';
import { clip, quote } from './bounded-text.js';

export interface NegotiationPlan {
  /** Indices (in the offer) of the sections werift negotiates, in offer order. */
  sections: number[];
  /** The offer werift sees: the session part and those sections only, as SDP. */
  offer: string;
  /** Index (in the offer) of the data channel section werift negotiates, if any. */
  dataChannel: number | undefined;
}

/**
 * The single decision on which offered sections werift negotiates; every
 * other one is rejected without reaching werift: the chosen Opus audio
 * section, and the offer's data channel (see `dataChannelSection`) if it has
 * a usable one.
 */
export function negotiatedSections(offer: ParsedOffer, summary: OfferSummary): number[] {
  const data = dataChannelSection(offer, summary);
  return data === undefined ? [summary.audioIndex] : [summary.audioIndex, data];
}

/**
 * The index of the data channel section earshot accepts, if any: the first
 * `m=application <port> UDP/DTLS/SCTP webrtc-datachannel` section (RFC 8841,
 * as browsers offer after `createDataChannel()`) that is not rejected, names
 * its SCTP port (`a=sctp-port`), and shares the audio section's transport:
 * in the audio's BUNDLE group, or in an offer without BUNDLE; and it has
 * ICE and DTLS parameters (its own or the session's). One at most: a second is rejected (port 0) like
 * any section earshot does not use, and so is one that does not qualify,
 * without failing the offer. A `bundle-only` section (port 0, RFC 8843
 * §6), as offered with `bundlePolicy: 'max-bundle'`, qualifies when it is in
 * the audio's group.
 */
export function dataChannelSection(offer: ParsedOffer, summary: OfferSummary): number | undefined {
  const audio = offer.sections[summary.audioIndex];
  const groups = bundleGroups(offer);
  const audioGroup = audio.mid === undefined ? undefined : groups.find((g) => g.includes(audio.mid!));
  for (const s of offer.sections) {
    if (s.kind !== 'application') continue;
    if (!/^UDP\/DTLS\/SCTP$/i.test(s.proto) || !s.formats.includes('webrtc-datachannel')) continue;
    if (!s.lines.some((l) => /^a=sctp-port:\d{1,5}$/.test(l))) continue;
    const bundleOnly = s.lines.includes('a=bundle-only');
    if (audioGroup !== undefined) {
      if (s.mid === undefined || !audioGroup.includes(s.mid)) continue;
    } else if (groups.length > 0 || bundleOnly) continue;
    if (s.port === 0 && !(bundleOnly && audioGroup !== undefined)) continue;
    // Checked here rather than by planNegotiation: a data channel that cannot be negotiated is rejected, not the offer.
    if (!hasTransport(offer, s)) continue;
    return s.index;
  }
  return undefined;
}

/** Decides what werift gets and builds the offer it sees. Throws `EARSHOT_SDP_INVALID` if a negotiated section lacks ICE or DTLS parameters. */
export function planNegotiation(offer: ParsedOffer, summary: OfferSummary): NegotiationPlan {
  const sections = [...new Set(negotiatedSections(offer, summary))].sort((a, b) => a - b);
  for (const index of sections) requireTransport(offer, offer.sections[index]);
  const data = dataChannelSection(offer, summary);
  return { sections, offer: reducedOffer(offer, sections), dataChannel: data !== undefined && sections.includes(data) ? data : undefined };
}

/**
 * The session part and the `keep` sections of `offer`, as SDP. Groups
 * (`a=group:BUNDLE …`) keep only the mids of kept sections, and a group left
 * empty is dropped: werift must not expect sections it never sees.
 *
 * Candidates whose address is a name, not an IP address (a browser's mDNS
 * `….local`, RFC 8839 allows an FQDN), are left out: werift would resolve each
 * with a multicast query on the server's network (binding 0.0.0.0:5353), so an
 * offer could make the server send one per candidate. earshot answers as an
 * ICE-lite agent and learns the client's address from its connectivity
 * checks: it needs none of the offer's candidates.
 */
export function reducedOffer(offer: ParsedOffer, keep: readonly number[]): string {
  const kept = new Set(keep);
  const mids = new Set(offer.sections.filter((s) => kept.has(s.index) && s.mid !== undefined).map((s) => s.mid!));
  const lines: string[] = [];
  for (const line of offer.session) {
    const group = /^a=group:(\S+)(.*)$/.exec(line);
    if (!group) {
      lines.push(line);
      continue;
    }
    const items = group[2].trim().split(/\s+/).filter((mid) => mids.has(mid));
    if (items.length > 0) lines.push(`a=group:${group[1]} ${items.join(' ')}`);
  }
  for (const s of offer.sections) {
    if (!kept.has(s.index)) continue;
    // A bundle-only section has port 0 (RFC 8843 §6); werift would take it as rejected.
    const sectionLines = s.lines.filter((l) => !l.startsWith('a=candidate:') || isIP(l.split(/\s+/)[4] ?? '') !== 0).filter(knownPayloadType(s));
    if (s.port === 0 && s.lines.includes('a=bundle-only')) lines.push(sectionLines[0].replace(/^(m=\S+) 0 /, '$1 9 '), ...sectionLines.slice(1));
    else lines.push(...sectionLines);
    // werift reads a section without a direction attribute as inactive, and would answer
    // inactive to a publisher that sends: it gets the direction the offer means, stated.
    if (isRtp(s.proto) && ownDirection(s) === undefined) lines.push(`a=${directionOf(offer, s)}`);
    // Without a=setup werift drops the section's fingerprints and no handshake can complete;
    // the offer means active (RFC 4145 §4.1), so it is stated (and answered passive).
    if (setupOf(offer, s) === undefined) lines.push('a=setup:active');
  }
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * Whether a line of an RTP section may go to werift: an `a=fmtp` or `a=rtcp-fb`
 * line only for a payload type the section maps (`a=rtpmap`) and lists on its
 * m-line. werift threw on one for a payload type without a mapping ("Cannot set
 * properties of undefined"), and the offer failed as a whole; RFC 8866 §6.15
 * leaves such a line without meaning, so it is dropped, and the rest of the
 * offer answered.
 */
function knownPayloadType(s: MediaSection): (line: string) => boolean {
  if (!isRtp(s.proto)) return () => true;
  const mapped = new Set(s.lines.flatMap((l) => /^a=rtpmap:(\d+) /.exec(l)?.[1] ?? []).filter((pt) => s.formats.includes(pt)));
  return (line) => {
    const m = /^a=(?:fmtp|rtcp-fb):(\S+)/.exec(line);
    return !m || m[1] === '*' || mapped.has(m[1]);
  };
}

/**
 * werift's answer to the reduced offer, with a rejected m-line re-inserted
 * for every section werift did not see, so the answer has as many m-lines as
 * the offer, in the same order (RFC 3264 §6). werift's BUNDLE group already
 * lists only the sections it accepted, so rejected mids are never in it.
 *
 * Two things werift writes whatever was offered follow the offer, as JSEP
 * says an answer's do (RFC 8829 §5.3.1): an RTP section's `<proto>` is the
 * offer's exactly (werift wrote UDP/TLS/RTP/SAVPF for an offered RTP/SAVPF),
 * and `a=extmap-allow-mixed` is answered only when offered (RFC 8285 §6).
 */
export function completeAnswer(offer: ParsedOffer, keep: readonly number[], answer: string): string {
  const session: string[] = [];
  const answered: string[][] = [];
  const mixedOffered = [...offer.session, ...offer.sections.flatMap((s) => s.lines)].some((l) => /^a=extmap-allow-mixed\s*$/.test(l));
  for (const line of answer.split(/\r?\n/)) {
    if (line.length === 0) continue;
    if (line === 'a=extmap-allow-mixed' && !mixedOffered) continue;
    if (line.startsWith('m=')) answered.push([line]);
    else (answered.length ? answered[answered.length - 1] : session).push(line);
  }
  if (answered.length !== keep.length) {
    throw new Error(`werift answered ${answered.length} media sections for the ${keep.length} it was offered`);
  }
  const kept = new Set(keep);
  const lines = [...session];
  let next = 0;
  for (const s of offer.sections) {
    if (!kept.has(s.index)) {
      lines.push(...rejectedSection(s));
      continue;
    }
    const section = answered[next++];
    // Only the DTLS-SRTP protos over UDP (the legacy name too): earshot's candidates are UDP, so a TCP one stays werift's.
    if (/^(UDP\/TLS\/)?RTP\/SAVPF?$/i.test(s.proto)) section[0] = section[0].replace(/^(m=\S+ \d+) \S+/, `$1 ${s.proto}`);
    const mid = section.find((l) => l.startsWith('a=mid:'))?.slice('a=mid:'.length);
    if (s.mid !== undefined && mid !== s.mid) {
      throw new Error(`werift answered media section ${s.index} with mid ${JSON.stringify(mid)} instead of ${JSON.stringify(s.mid)}`);
    }
    // werift writes ICE-lite into each media section; it is a session-level attribute only (RFC 8839 §5.3).
    if (section.includes('a=ice-lite')) {
      if (!lines.includes('a=ice-lite')) lines.splice(sessionEnd(lines), 0, 'a=ice-lite');
      lines.push(...section.filter((l) => l !== 'a=ice-lite'));
    } else lines.push(...section);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** Where the session part of `lines` ends: before its first m= line. */
function sessionEnd(lines: readonly string[]): number {
  const first = lines.findIndex((l) => l.startsWith('m='));
  return first < 0 ? lines.length : first;
}

/**
 * `sdp` without the `trickle` ICE option (RFC 8838 §3, RFC 8840 §4.1.3):
 * earshot answers with every candidate and refuses PATCH (501), so an answer
 * that advertised trickle would invite a client to send candidates that are
 * then refused. Other tokens (`ice2`, …) stay; a line left empty is dropped.
 */
export function withoutTrickle(sdp: string): string {
  return sdp
    .split('\r\n')
    .flatMap((line) => {
      if (!line.startsWith('a=ice-options:')) return [line];
      const tokens = line.slice('a=ice-options:'.length).split(/[ \t]+/).filter((t) => t !== '' && t !== 'trickle');
      return tokens.length > 0 ? [`a=ice-options:${tokens.join(' ')}`] : [];
    })
    .join('\r\n');
}

/**
 * A rejected m-line for an offered section: port 0, the offer's kind, proto
 * and first format, and its mid. Everything echoed here passed the token and
 * payload-type checks of `parseOffer`. A rejected data channel also repeats
 * the offer's `a=sctp-port`: it means nothing on a rejected section (RFC 3264
 * §6), but werift as the offerer throws "sctpRemotePort not exist" on an
 * application section without it and could not apply the answer at all.
 */
export function rejectedSection(s: MediaSection): string[] {
  const sctpPort = s.lines.find((l) => /^a=sctp-port:\d{1,5}$/.test(l));
  return [`m=${s.kind} 0 ${s.proto} ${s.formats[0]}`, 'c=IN IP4 0.0.0.0', ...(s.mid !== undefined ? [`a=mid:${s.mid}`] : []), ...(sctpPort ? [sctpPort] : [])];
}

/** RFC 8839 §5.4: `ice-char = ALPHA / DIGIT / "+" / "/"`; a ufrag has 4–256 of them, a password 22–256. */
const ICE_CHARS = /^[A-Za-z0-9+/]*$/;
/** RFC 8122 §5 hash functions a DTLS fingerprint may name, with their length in bytes (MD2 and MD5 are not allowed). */
const FINGERPRINT_BYTES: Readonly<Record<string, number>> = { 'sha-1': 20, 'sha-224': 28, 'sha-256': 32, 'sha-384': 48, 'sha-512': 64 };
const SETUP_ROLES = ['active', 'passive', 'actpass'];

/** Why an ICE credential's value is unusable (RFC 8839 §5.4), or undefined when it is fine. */
function iceCredentialProblem(name: string, value: string, min: number): string | undefined {
  if (value.length < min || value.length > 256) return `a=${name} has ${value.length} characters; RFC 8839 §5.4 asks for ${min} to 256`;
  if (!ICE_CHARS.test(value)) return `a=${name} has characters other than letters, digits, "+" and "/" (RFC 8839 §5.4)`;
  return undefined;
}

/** Why a DTLS fingerprint line's value is unusable (RFC 8122 §5), or undefined when it is fine. */
function fingerprintProblem(value: string): string | undefined {
  const [hash, hex, ...rest] = value.trim().split(/\s+/);
  const bytes = FINGERPRINT_BYTES[(hash ?? '').toLowerCase()];
  if (bytes === undefined) return `a=fingerprint names the hash ${quote(hash ?? '', 40)}; a DTLS fingerprint uses sha-256 (or sha-1, sha-224, sha-384, sha-512; RFC 8122 §5)`;
  if (rest.length > 0 || hex === undefined || !new RegExp(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){${bytes - 1}}$`).test(hex)) {
    return `a=fingerprint's ${hash.toLowerCase()} value is not ${bytes} hexadecimal bytes separated by colons (RFC 8122 §5)`;
  }
  return undefined;
}

/**
 * Throws `EARSHOT_SDP_INVALID` unless the section has usable ICE credentials, a
 * usable DTLS fingerprint (its own or the session's), a known DTLS role if it
 * names one, and a mid. An offer werift cannot connect with is refused here,
 * before a socket is opened, with what is wrong: with an empty ICE password
 * werift gave up on the connection while answering, and a malformed
 * fingerprint or role left a session that could only time out. So did an
 * offer from an ICE-lite agent: earshot answers as one, and two ICE-lite
 * agents never send each other a connectivity check (RFC 8445 §2.5). An RTP
 * section must offer RTCP multiplexing, the only way werift carries RTCP.
 */
export function requireTransport(offer: ParsedOffer, s: MediaSection): void {
  if (offer.session.some((l) => /^a=ice-lite\s*$/.test(l))) {
    throw errors.SDP_INVALID('it declares a=ice-lite, and so does earshot\'s answer: two ICE-lite agents never check connectivity, so the session could never connect. Offer as a full ICE agent, as RFC 9725 asks of WHIP clients (browsers and WebRTC libraries do)');
  }
  // One of each per level (RFC 8839 §5.4, RFC 4145 §4): werift takes the last, the checks here the first,
  // so a second value would pass as the first and be used as the second.
  for (const name of ['ice-ufrag', 'ice-pwd', 'setup']) {
    for (const [lines, where] of [[s.lines, `media section ${s.index}`], [offer.session, 'the session part']] as const) {
      const n = lines.filter((l) => l.startsWith(`a=${name}:`)).length;
      if (n > 1) throw errors.SDP_INVALID(`${where} has ${n} a=${name} lines; it may have one (${name === 'setup' ? 'RFC 4145 §4' : 'RFC 8839 §5.4'})`);
    }
  }
  const value = (prefix: string) => (s.lines.find((l) => l.startsWith(prefix)) ?? offer.session.find((l) => l.startsWith(prefix)))?.slice(prefix.length);
  const ufrag = value('a=ice-ufrag:');
  const pwd = value('a=ice-pwd:');
  if (ufrag === undefined || pwd === undefined) throw errors.SDP_INVALID(`ICE credentials (a=ice-ufrag / a=ice-pwd) are missing in media section ${s.index}`);
  const credentials = iceCredentialProblem('ice-ufrag', ufrag.trim(), 4) ?? iceCredentialProblem('ice-pwd', pwd.trim(), 22);
  if (credentials) throw errors.SDP_INVALID(`${credentials}, in media section ${s.index}`);
  const fingerprints = s.lines.some((l) => l.startsWith('a=fingerprint:')) ? s.lines.filter((l) => l.startsWith('a=fingerprint:')) : offer.session.filter((l) => l.startsWith('a=fingerprint:'));
  if (fingerprints.length === 0) throw errors.SDP_INVALID(`the DTLS fingerprint (a=fingerprint) is missing in media section ${s.index}`);
  for (const line of fingerprints) {
    const problem = fingerprintProblem(line.slice('a=fingerprint:'.length));
    if (problem) throw errors.SDP_INVALID(`${problem}, in media section ${s.index}`);
  }
  const setup = setupOf(offer, s);
  // holdconn (RFC 4145 §4) asks for no connection for now: it names no DTLS role, and was answered as `active`.
  if (setup === 'holdconn') throw errors.SDP_INVALID(`a=setup:holdconn asks for no connection (RFC 4145 §4), and a session needs one, in media section ${s.index}; offer a=setup:actpass (as browsers do), active or passive`);
  if (setup !== undefined && !SETUP_ROLES.includes(setup)) throw errors.SDP_INVALID(`a=setup:${clip(setup, 40)} is not a DTLS role (actpass, active or passive; RFC 8842 §5.1), in media section ${s.index}`);
  // werift cannot answer a section without a mid ("mid not assigned"); WebRTC offers name each one.
  if (s.mid === undefined) throw errors.SDP_INVALID(`media section ${s.index} has no a=mid; a WebRTC offer names every section (RFC 8843 §7.1, RFC 8829 §5.2.1)`);
  // werift sends and reads RTCP on the RTP port only. Answering a=rtcp-mux to an offer without it
  // (JSEP answers it only if offered) left a client that sends RTCP to the next port unheard.
  if (isRtp(s.proto) && !s.lines.some((l) => /^a=rtcp-mux(-only)?\s*$/.test(l))) {
    throw errors.SDP_INVALID(`media section ${s.index} does not offer RTP and RTCP on one port (a=rtcp-mux, RFC 5761), which earshot needs, as RFC 9725 asks of WHIP clients (browsers and WebRTC libraries offer it)`);
  }
}

/** The section has ICE credentials and a DTLS fingerprint, its own or the session's. */
function hasTransport(offer: ParsedOffer, s: MediaSection): boolean {
  try {
    requireTransport(offer, s);
    return true;
  } catch {
    return false;
  }
}
