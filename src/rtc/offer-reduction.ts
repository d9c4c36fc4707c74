/**
 * What werift negotiates, decided in one place. werift creates a transport (ICE
 * agent, UDP socket, DTLS state) for every section of an offer it is given, even
 * one it then rejects, so it gets only the sections earshot uses: the session
 * part plus those sections. Every other section is answered here as rejected
 * (port 0, same mid; RFC 3264 §6, RFC 8843 §7.3.3), so the answer still has
 * exactly the offer's m-lines, in its order.
 */
import { errors } from '../errors.js';
import { type MediaSection, type OfferSummary, type ParsedOffer } from './sdp-offer.js';

export interface NegotiationPlan {
  /** Indices (in the offer) of the sections werift negotiates, in offer order. */
  sections: number[];
  /** The offer werift sees: the session part and those sections only, as SDP. */
  offer: string;
}

/**
 * The single decision on which offered sections werift negotiates; every
 * other one is rejected without reaching werift. Today that is the chosen Opus
 * audio section only. (A data channel, `m=application`, would join here.)
 */
export function negotiatedSections(_offer: ParsedOffer, summary: OfferSummary): number[] {
  return [summary.audioIndex];
}

/** Decides what werift gets and builds the offer it sees. Throws `EARSHOT_SDP_INVALID` if a negotiated section lacks ICE or DTLS parameters. */
export function planNegotiation(offer: ParsedOffer, summary: OfferSummary): NegotiationPlan {
  const sections = [...new Set(negotiatedSections(offer, summary))].sort((a, b) => a - b);
  for (const index of sections) requireTransport(offer, offer.sections[index]);
  return { sections, offer: reducedOffer(offer, sections) };
}

/**
 * The session part and the `keep` sections of `offer`, as SDP. Groups
 * (`a=group:BUNDLE …`) keep only the mids of kept sections, and a group left
 * empty is dropped: werift must not expect sections it never sees.
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
  for (const s of offer.sections) if (kept.has(s.index)) lines.push(...s.lines);
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * werift's answer to the reduced offer, with a rejected m-line re-inserted
 * for every section werift did not see, so the answer has as many m-lines as
 * the offer, in the same order (RFC 3264 §6). werift's BUNDLE group already
 * lists only the sections it accepted, so rejected mids are never in it.
 */
export function completeAnswer(offer: ParsedOffer, keep: readonly number[], answer: string): string {
  const session: string[] = [];
  const answered: string[][] = [];
  for (const line of answer.split(/\r?\n/)) {
    if (line.length === 0) continue;
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
    const mid = section.find((l) => l.startsWith('a=mid:'))?.slice('a=mid:'.length);
    if (s.mid !== undefined && mid !== s.mid) {
      throw new Error(`werift answered media section ${s.index} with mid ${JSON.stringify(mid)} instead of ${JSON.stringify(s.mid)}`);
    }
    lines.push(...section);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * `sdp` without the `trickle` ICE option (RFC 8838 §3, RFC 8840 §4.1.3):
 * earshot answers with every candidate and refuses PATCH (405), so an answer
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

function requireTransport(offer: ParsedOffer, s: MediaSection): void {
  const has = (prefix: string) => s.lines.some((l) => l.startsWith(prefix)) || offer.session.some((l) => l.startsWith(prefix));
  if (!has('a=ice-ufrag:') || !has('a=ice-pwd:')) throw errors.SDP_INVALID(`ICE credentials (a=ice-ufrag / a=ice-pwd) are missing in media section ${s.index}`);
  if (!has('a=fingerprint:')) throw errors.SDP_INVALID(`the DTLS fingerprint (a=fingerprint) is missing in media section ${s.index}`);
}
