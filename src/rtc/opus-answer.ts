/**
 * What the answer tells the sender about how we want to receive Opus
 * (RFC 7587 §7.1: the answer's fmtp parameters are the receiver's preferences).
 * werift copies the offer's fmtp line into its answer, so our preferences are
 * set here, on the answer text: `usedtx=1` asks for no packets during silence
 * (the ingest turns the gaps into silence at their media time), `stereo=1` for
 * two channels when the pipeline decodes stereo. Other parameters stay as
 * werift wrote them.
 */
export interface OpusPreferences {
  stereo: boolean;
  dtx: boolean;
}

export function withOpusPreferences(answer: string, payloadType: number, prefs: OpusPreferences): string {
  const eol = answer.includes('\r\n') ? '\r\n' : '\n';
  const lines = answer.split(eol);
  const want: Record<string, string | undefined> = { usedtx: prefs.dtx ? '1' : undefined, stereo: prefs.stereo ? '1' : undefined };
  const prefix = `a=fmtp:${payloadType} `;
  const at = lines.findIndex((l) => l.startsWith(prefix));
  if (at >= 0) {
    const params = lines[at].slice(prefix.length).split(';').map((p) => p.trim()).filter(Boolean);
    const kept = params.filter((p) => !(p.split('=')[0].toLowerCase() in want));
    const ours = Object.entries(want).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    lines[at] = `${prefix}${[...kept, ...ours].join(';')}`;
    return lines.join(eol);
  }
  // No fmtp line for Opus: add one after its rtpmap, if there is anything to ask for.
  const ours = Object.entries(want).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const rtpmap = lines.findIndex((l) => l.startsWith(`a=rtpmap:${payloadType} `));
  if (ours.length === 0 || rtpmap < 0) return answer;
  lines.splice(rtpmap + 1, 0, `${prefix}${ours.join(';')}`);
  return lines.join(eol);
}
