/**
 * Checks a WHIP offer before werift sees it, so that a bad offer gets a precise,
 * typed error (400 for SDP that is not an offer at all or is larger than we
 * answer, 422 for a well-formed offer without audio we can receive) instead of
 * a generic failure, and so that the work an offer can cause is bounded before
 * any socket is opened. Which sections werift then negotiates is decided in
 * offer-reduction.ts.
 */
import { errors } from '../errors.js';
import { clip, listWithMore, quote } from './bounded-text.js';

/** Largest offer accepted, in bytes (the WHIP route's body limit is the same 64 KiB). */
export const MAX_SDP_BYTES = 64 * 1024;

/**
 * Most media sections (m= lines) one offer may have; more is refused with 400
 * `EARSHOT_SDP_TOO_COMPLEX`. Real publishers offer one to three (audio, maybe
 * video and a data channel). werift opens a transport (ICE agent, UDP socket,
 * DTLS) per section it is given, at a cost that grows faster than the section
 * count (600 sections blocked the event loop 9–14 s); werift now gets only the
 * sections earshot uses, and this bound keeps what remains (parsing, and one
 * rejected m-line per section in the answer) small and predictable.
 */
export const MAX_MEDIA_SECTIONS = 16;

/** Longest `a=mid` value accepted: mids are echoed into the answer. */
const MAX_MID_CHARS = 64;

export interface OfferSummary {
  /** Payload type the offer uses for Opus in the chosen audio section. */
  opusPayloadType: number;
  /** The offer asks for stereo (RFC 7587 `stereo=1`). */
  stereo: boolean;
  /** Index of the first receivable audio m-section. */
  audioIndex: number;
}

/** One m= section of an offer, checked for syntax. */
export interface MediaSection {
  /** Position among the offer's m= lines, from 0. */
  index: number;
  /** `audio`, `video`, `application`, … */
  kind: string;
  port: number;
  /** Transport protocol, e.g. `UDP/TLS/RTP/SAVPF` or `UDP/DTLS/SCTP`. */
  proto: string;
  /** The m= line's formats: RTP payload types (0–127) for RTP protocols. */
  formats: string[];
  /** `a=mid` value (RFC 5888), if any. */
  mid: string | undefined;
  /** The section's lines, starting with its m= line, as offered. */
  lines: string[];
}

/** An offer split into its session part and media sections. */
export interface ParsedOffer {
  /** Session-level lines (before the first m= line), as offered. */
  session: string[];
  sections: MediaSection[];
}

const MEDIA_LINE = /^m=([a-z][a-z0-9-]{0,31}) (\d{1,5})(?:\/\d{1,5})? ([A-Za-z0-9][A-Za-z0-9/._+-]{0,63})((?: [^ ]+)+) *$/;
/** RFC 8866 `token`, bounded: formats of non-RTP sections and mids are echoed into the answer. */
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`{|}~-]+$/;
const RTPMAP = /^a=rtpmap:(\S+) ([^\s/]+)\/(\d+)(?:\/(\S+))?$/;

/**
 * Splits an offer into sections and checks what earshot relies on: size,
 * `v=0` / `o=`, line syntax, the media-section limit, m= lines, payload types
 * (0–127 in m= lines, `a=rtpmap`, `a=fmtp`, `a=rtcp-fb`) and unique mids.
 * Throws `EARSHOT_SDP_INVALID` or `EARSHOT_SDP_TOO_COMPLEX` (both 400), and
 * `EARSHOT_NO_OPUS_AUDIO` (422) for an offer without media sections, whose
 * advice fits `direction` (as in `summarizeOffer`).
 */
export function parseOffer(sdp: string, direction: 'send' | 'receive' = 'send'): ParsedOffer {
  if (sdp.length === 0) throw errors.SDP_INVALID('the body is empty');
  const bytes = Buffer.byteLength(sdp);
  if (bytes > MAX_SDP_BYTES) throw errors.SDP_INVALID(`it is ${bytes} bytes; the limit is ${MAX_SDP_BYTES}`);
  if (sdp.startsWith('\uFEFF')) throw errors.SDP_INVALID('it starts with a byte order mark (U+FEFF); send the SDP text without one');
  // Trailing blanks (`a=sendonly `, `c=IN IP4 0.0.0.0 `) are not part of a line's value: some stacks
  // write them, and werift would not know the attribute, or failed on the address.
  const lines = sdp.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.length > 0);
  if (lines[0] !== 'v=0') {
    if (lines[0]?.startsWith('v=0\r')) throw errors.SDP_INVALID('its lines end with a bare CR; SDP lines end with CRLF, or LF (RFC 8866 §5)');
    throw errors.SDP_INVALID(`it must start with "v=0" (RFC 8866); its first line is ${quote(lines[0] ?? '', 60)}`);
  }
  // Counted before anything else per section, so an offer over the limit costs one pass over its lines.
  let mediaLines = 0;
  for (const line of lines) if (line.startsWith('m=')) mediaLines++;
  if (mediaLines > MAX_MEDIA_SECTIONS) throw errors.SDP_TOO_COMPLEX(mediaLines, MAX_MEDIA_SECTIONS);
  const bad = lines.find((l) => !/^[a-z]=/.test(l));
  if (bad) throw errors.SDP_INVALID(`line ${quote(bad, 60)} is not "<type>=<value>"`);
  // werift answered a malformed one with a bare "exception" (RFC 8866 §5.7: IN, IP4 or IP6, an address with an optional /TTL/count).
  const connection = lines.find((l) => l.startsWith('c=') && !/^c=IN IP[46] [^ /]+(?:\/\d+){0,2}$/.test(l));
  if (connection) throw errors.SDP_INVALID(`line ${quote(connection, 60)} is not "c=IN IP4 <address>" or "c=IN IP6 <address>" (RFC 8866 §5.7)`);
  if (!lines.some((l) => l.startsWith('o='))) throw errors.SDP_INVALID('the "o=" line is missing');

  const session: string[] = [];
  const sections: MediaSection[] = [];
  let current: string[] = session;
  for (const line of lines) {
    if (line.startsWith('m=')) {
      current = [line];
      sections.push(mediaSection(sections.length, current));
    } else current.push(line);
  }
  if (sections.length === 0) throw errors.NO_OPUS_AUDIO('it has no media sections (m= lines)', direction === 'receive');

  checkRtpmaps(session, 'the session part');
  const mids = new Set<string>();
  for (const s of sections) {
    checkRtpmaps(s.lines, `media section ${s.index}`);
    if (isRtp(s.proto)) checkRtpAttributes(s);
    const midLines = s.lines.filter((l) => l.startsWith('a=mid:'));
    if (midLines.length > 1) throw errors.SDP_INVALID(`media section ${s.index} has ${midLines.length} a=mid lines; it may have one (RFC 5888)`);
    if (midLines.length === 1) {
      const mid = midLines[0].slice('a=mid:'.length);
      if (!TOKEN.test(mid) || mid.length > MAX_MID_CHARS) {
        throw errors.SDP_INVALID(`media section ${s.index} has the mid ${quote(mid, 60)}; a mid is 1–${MAX_MID_CHARS} token characters (RFC 5888)`);
      }
      if (mids.has(mid)) throw errors.SDP_INVALID(`the mid ${quote(mid)} is used by more than one media section; mids must be unique (RFC 5888)`);
      mids.add(mid);
      s.mid = mid;
    }
  }
  return { session, sections };
}

/**
 * Picks the audio section earshot receives: the first that is not rejected,
 * uses DTLS-SRTP, sends, and offers opus/48000. Throws `EARSHOT_NO_OPUS_AUDIO`
 * (422) with the reasons each audio section was passed over. With
 * `direction: 'receive'` (a WHEP listener's offer) it picks the first that
 * receives instead (recvonly or sendrecv).
 */
export function summarizeOffer(offer: ParsedOffer, direction: 'send' | 'receive' = 'send'): OfferSummary {
  const reasons: string[] = [];
  for (const s of offer.sections) {
    const i = s.index;
    if (s.kind !== 'audio') continue;
    if (s.port === 0) {
      // bundle-only (RFC 8843 §6): acceptable only inside its BUNDLE group, whose tagged section (the
      // group's first) carries the transport; earshot takes an audio section only as that section.
      reasons.push(s.lines.includes('a=bundle-only') ? bundleOnlyReason(offer, s) : `audio section ${i} is rejected (port 0)`);
      continue;
    }
    // The whole name: TCP/DTLS/RTP/SAVPF (RFC 7850) contains RTP/SAVPF, and earshot has UDP candidates only.
    if (!/^(UDP\/TLS\/RTP\/SAVPF?|RTP\/SAVPF)$/i.test(s.proto)) {
      reasons.push(`audio section ${i} uses ${clip(s.proto, 40)}, not DTLS-SRTP (UDP/TLS/RTP/SAVPF)`);
      continue;
    }
    const way = directionOf(offer, s);
    if (way === 'inactive' || way === (direction === 'send' ? 'recvonly' : 'sendonly')) {
      reasons.push(`audio section ${i} does not ${direction} (it is ${way})`);
      continue;
    }
    // Only a payload type the m= line lists (RFC 3264 §6.1: an answer's formats come from the offer's).
    const opus = s.lines.map((l) => /^a=rtpmap:(\d+) opus\/48000(?:\/(\d))?$/i.exec(l)).find((x) => x !== null && s.formats.includes(x[1]));
    if (!opus) {
      const codecs = s.lines.map((l) => RTPMAP.exec(l)?.[2]).filter((c): c is string => c !== undefined).map((c) => clip(c, 32));
      reasons.push(`audio section ${i} offers ${codecs.length ? listWithMore(codecs, 8) : 'no codecs'} but not opus/48000/2`);
      continue;
    }
    const pt = Number(opus[1]);
    const fmtp = s.lines.find((l) => l.startsWith(`a=fmtp:${pt} `)) ?? '';
    return { opusPayloadType: pt, stereo: /(?:^|[;\s])stereo=1/.test(fmtp.slice(fmtp.indexOf(' '))), audioIndex: i };
  }
  throw errors.NO_OPUS_AUDIO(reasons.length ? listWithMore(reasons, 4, '; ') : 'it has only non-audio sections', direction === 'receive');
}

/** The mids of each `a=group:BUNDLE` line of the session part. */
export function bundleGroups(offer: ParsedOffer): string[][] {
  return offer.session.flatMap((l) => (l.startsWith('a=group:BUNDLE') ? [l.slice('a=group:BUNDLE'.length).trim().split(/\s+/).filter(Boolean)] : []));
}

/** Why a bundle-only audio section (port 0) cannot be taken, by where it stands in its BUNDLE group. */
function bundleOnlyReason(offer: ParsedOffer, s: MediaSection): string {
  const group = bundleGroups(offer).find((mids) => s.mid !== undefined && mids.includes(s.mid));
  const at = `audio section ${s.index} is bundle-only (port 0)`;
  if (!group) return `${at} but in no BUNDLE group, so nothing carries its transport (RFC 8843 §6); offer it with a port`;
  if (group[0] === s.mid) return `${at} and first in its BUNDLE group, where it would have to carry the group's transport, which a bundle-only section cannot (RFC 8843 §7.2.1); offer it with a port`;
  return `${at}: it can be accepted only inside its BUNDLE group, whose first section, which earshot does not take, would carry its transport (RFC 8843 §7.3.1); offer the audio section first, as its group's first section`;
}

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
const DIRECTION = /^a=(sendrecv|sendonly|recvonly|inactive)$/;

/** The section's own direction attribute, if it has one. */
export function ownDirection(section: MediaSection): Direction | undefined {
  for (const l of section.lines) {
    const m = DIRECTION.exec(l);
    if (m) return m[1] as Direction;
  }
  return undefined;
}

/**
 * A section's direction as the offer means it: its own attribute, else the
 * session part's, else `sendrecv` (RFC 8866 §6.7, RFC 3264 §5.1).
 */
export function directionOf(offer: ParsedOffer, section: MediaSection): Direction {
  const own = ownDirection(section);
  if (own) return own;
  for (const l of offer.session) {
    const m = DIRECTION.exec(l);
    if (m) return m[1] as Direction;
  }
  return 'sendrecv';
}

/** Parses and summarizes an offer: see `parseOffer` and `summarizeOffer`. */
export function inspectOffer(sdp: string): OfferSummary {
  return summarizeOffer(parseOffer(sdp));
}

/** RTP-based transport protocols, whose formats are payload types (RFC 8866 §5.14). */
export function isRtp(proto: string): boolean {
  return /(?:^|\/)RTP\//i.test(proto);
}

function mediaSection(index: number, lines: string[]): MediaSection {
  const m = MEDIA_LINE.exec(lines[0]);
  if (!m) throw errors.SDP_INVALID(`media line ${quote(lines[0], 60)} is malformed; expected "m=<media> <port> <proto> <fmt> …" (RFC 8866 §5.14)`);
  const [, kind, portText, proto, rest] = m;
  const port = Number(portText);
  if (port > 65535) throw errors.SDP_INVALID(`media section ${index} has port ${port}; ports are 0–65535`);
  const formats = rest.trim().split(/ +/);
  if (isRtp(proto)) {
    for (const f of formats) payloadType(f, `media section ${index} (m=${kind})`);
  } else {
    const odd = formats.find((f) => !TOKEN.test(f) || f.length > 64);
    if (odd !== undefined) throw errors.SDP_INVALID(`media section ${index} has the format ${quote(odd, 60)}; formats are tokens of at most 64 characters`);
  }
  return { index, kind, port, proto, formats, mid: undefined, lines };
}

function checkRtpmaps(lines: string[], where: string): void {
  for (const line of lines) {
    if (!line.startsWith('a=rtpmap:')) continue;
    const m = RTPMAP.exec(line);
    if (!m) throw errors.SDP_INVALID(`${where} has the malformed line ${quote(line, 80)}; expected "a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]" (RFC 8866 §6.6)`);
    payloadType(m[1], `an a=rtpmap line in ${where}`);
  }
}

/** `a=fmtp` and `a=rtcp-fb` name payload types in RTP sections (`*` for all, in rtcp-fb). */
function checkRtpAttributes(s: MediaSection): void {
  for (const line of s.lines) {
    const m = /^a=(fmtp|rtcp-fb):(\S*)/.exec(line);
    if (!m || (m[1] === 'rtcp-fb' && m[2] === '*')) continue;
    payloadType(m[2], `an a=${m[1]} line in media section ${s.index}`);
  }
}

/** The payload type `text` names, 0–127 in canonical decimal (RFC 3550 §5.1: PT is 7 bits). */
function payloadType(text: string, where: string): number {
  const value = /^(?:0|[1-9]\d{0,2})$/.test(text) ? Number(text) : NaN;
  if (!(value <= 127)) throw errors.SDP_INVALID(`${where} names payload type ${quote(text, 40)}; RTP payload types are whole numbers 0–127 (RFC 3550 §5.1)`);
  return value;
}
