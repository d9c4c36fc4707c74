/**
 * Checks a WHIP offer before werift sees it, so that a bad offer gets a precise,
 * typed error (400 for SDP that is not an offer at all, 422 for a well-formed
 * offer without audio we can receive) instead of a generic failure.
 */
import { errors } from '../errors.js';

export interface OfferSummary {
  /** Payload type the offer uses for Opus in the chosen audio section. */
  opusPayloadType: number;
  /** The offer asks for stereo (RFC 7587 `stereo=1`). */
  stereo: boolean;
  /** Index of the first receivable audio m-section. */
  audioIndex: number;
}

const MAX_SDP_BYTES = 64 * 1024;

export function inspectOffer(sdp: string): OfferSummary {
  if (sdp.length === 0) throw errors.SDP_INVALID('the body is empty');
  if (sdp.length > MAX_SDP_BYTES) throw errors.SDP_INVALID(`it is ${sdp.length} bytes; the limit is ${MAX_SDP_BYTES}`);
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  if (lines[0] !== 'v=0') throw errors.SDP_INVALID('it must start with "v=0" (RFC 8866)');
  const bad = lines.find((l) => !/^[a-z]=/.test(l));
  if (bad) throw errors.SDP_INVALID(`line "${bad.slice(0, 60)}" is not "<type>=<value>"`);
  if (!lines.some((l) => l.startsWith('o='))) throw errors.SDP_INVALID('the "o=" line is missing');

  const sections: string[][] = [];
  const session: string[] = [];
  for (const line of lines) {
    if (line.startsWith('m=')) sections.push([line]);
    else (sections.length ? sections[sections.length - 1] : session).push(line);
  }
  if (sections.length === 0) throw errors.NO_OPUS_AUDIO('it has no media sections (m= lines)');
  const has = (s: string[], prefix: string) => s.some((l) => l.startsWith(prefix)) || session.some((l) => l.startsWith(prefix));
  if (!sections.every((s) => has(s, 'a=ice-ufrag:') && has(s, 'a=ice-pwd:'))) {
    throw errors.SDP_INVALID('ICE credentials (a=ice-ufrag / a=ice-pwd) are missing');
  }
  if (!sections.every((s) => has(s, 'a=fingerprint:'))) throw errors.SDP_INVALID('the DTLS fingerprint (a=fingerprint) is missing');

  const reasons: string[] = [];
  for (let i = 0; i < sections.length; i++) {
    const s = sections[i];
    const m = /^m=(\S+) (\d+)(?:\/\d+)? (\S+)((?: \S+)*)$/.exec(s[0]);
    if (!m) throw errors.SDP_INVALID(`media line "${s[0].slice(0, 60)}" is malformed`);
    const [, kind, port, proto] = m;
    if (kind !== 'audio') continue;
    if (port === '0') {
      reasons.push(`audio section ${i} is rejected (port 0)`);
      continue;
    }
    if (!/UDP\/TLS\/RTP\/SAVPF|UDP\/TLS\/RTP\/SAVP|RTP\/SAVPF/i.test(proto)) {
      reasons.push(`audio section ${i} uses ${proto}, not DTLS-SRTP (UDP/TLS/RTP/SAVPF)`);
      continue;
    }
    if (s.some((l) => l === 'a=recvonly' || l === 'a=inactive')) {
      reasons.push(`audio section ${i} does not send (it is ${s.find((l) => l === 'a=recvonly' || l === 'a=inactive')!.slice(2)})`);
      continue;
    }
    const opus = s.map((l) => /^a=rtpmap:(\d+) opus\/48000(?:\/(\d))?$/i.exec(l)).find((x) => x);
    if (!opus) {
      const codecs = s.map((l) => /^a=rtpmap:\d+ ([^/]+)/.exec(l)?.[1]).filter(Boolean);
      reasons.push(`audio section ${i} offers ${codecs.length ? codecs.join(', ') : 'no codecs'} but not opus/48000/2`);
      continue;
    }
    const pt = Number(opus[1]);
    const fmtp = s.find((l) => l.startsWith(`a=fmtp:${pt} `)) ?? '';
    return { opusPayloadType: pt, stereo: /(?:^|[;\s])stereo=1/.test(fmtp.slice(fmtp.indexOf(' '))), audioIndex: i };
  }
  throw errors.NO_OPUS_AUDIO(reasons.length ? reasons.join('; ') : 'it has only non-audio sections');
}
