/**
 * The answer's Opus lines say what earshot does as the receiver, and nothing
 * else. werift copies the offer's `a=fmtp` and `a=rtcp-fb` lines for the
 * codec into its answer, but those describe the offerer: in an answer they are
 * the answerer's own preferences and abilities (RFC 7587 §7.1, RFC 4585 §4.2).
 * So the Opus section of the answer gets:
 *
 * - `a=rtpmap:PT opus/48000/2`: RFC 7587 §7 requires two channels there
 *   whatever is sent or decoded (werift echoed an offer's `opus/48000`);
 * - `a=fmtp:PT` with `stereo=1` when the pipeline decodes two channels and
 *   `usedtx=1` (no packets while silent; the ingest turns the gaps into
 *   silence at their media time) unless the pipeline opts out, and no other
 *   parameter: not `useinbandfec=1`, since the decoder conceals a lost packet
 *   (Opus PLC) and cannot use in-band FEC, which the sender would spend bits
 *   on; not the offerer's `sprop-stereo`, `maxplaybackrate`, `minptime` …;
 *   no fmtp line at all when there is nothing to ask for;
 * - no `a=rtcp-fb:PT` line: earshot sends no transport-wide congestion
 *   control or NACK feedback for audio, and negotiates no header extension.
 *
 * As a sender (WHEP), the answer's fmtp says `sprop-stereo=1` when the branch
 * it sends has two channels (RFC 7587 §7.1: the sender's hint), and nothing
 * of the offerer's.
 */
export interface OpusPreferences {
  /** Ask for two channels (as a receiver). */
  stereo: boolean;
  /** Ask the sender for DTX (as a receiver). */
  dtx: boolean;
  /** Say that what is sent has two channels (as a sender). */
  spropStereo?: boolean;
}

export function withOpusPreferences(answer: string, payloadType: number, prefs: OpusPreferences): string {
  const eol = answer.includes('\r\n') ? '\r\n' : '\n';
  const lines = answer.split(eol);
  const rtpmap = lines.findIndex((l) => l.toLowerCase().startsWith(`a=rtpmap:${payloadType} opus/`));
  if (rtpmap < 0) return answer;
  // The Opus section: from its m= line to the next one.
  let start = rtpmap;
  while (start > 0 && !lines[start].startsWith('m=')) start--;
  let end = rtpmap + 1;
  while (end < lines.length && !lines[end].startsWith('m=')) end++;
  const ours = [prefs.stereo ? 'stereo=1' : undefined, prefs.spropStereo ? 'sprop-stereo=1' : undefined, prefs.dtx ? 'usedtx=1' : undefined].filter((p) => p !== undefined);
  const section: string[] = [];
  for (const line of lines.slice(start, end)) {
    if (line.startsWith(`a=fmtp:${payloadType} `) || line.startsWith(`a=rtcp-fb:${payloadType} `)) continue;
    if (line === lines[rtpmap]) {
      section.push(`a=rtpmap:${payloadType} opus/48000/2`);
      if (ours.length > 0) section.push(`a=fmtp:${payloadType} ${ours.join(';')}`);
      continue;
    }
    section.push(line);
  }
  return [...lines.slice(0, start), ...section, ...lines.slice(end)].join(eol);
}
