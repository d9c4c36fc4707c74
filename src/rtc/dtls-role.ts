/**
 * The DTLS role of earshot's answer (RFC 8842 §5.3). werift, answering,
 * takes the client role (`a=setup:active`) whatever the offer said; an offer
 * of `a=setup:active` (its sender will be the DTLS client) then got an
 * answer of `active` too, and two clients never complete a handshake. Such an
 * offer makes earshot the server (`passive`), as does an offer without
 * `a=setup`, which means `active` (RFC 4145 §4.1). `actpass` (what browsers
 * offer) and `passive` leave werift's client role, as the RFC has it.
 */
import type { RTCPeerConnection } from 'werift';
import type { MediaSection, ParsedOffer } from './sdp-offer.js';

/** The section's `a=setup` value, else the session part's, if any. */
export function setupOf(offer: ParsedOffer, section: MediaSection): string | undefined {
  for (const lines of [section.lines, offer.session]) {
    const line = lines.find((l) => l.startsWith('a=setup:'));
    if (line) return line.slice('a=setup:'.length).trim();
  }
  return undefined;
}

/** After `setRemoteDescription(offer)`, before `createAnswer()`: the server role for an offer whose sender is the client. */
export function answerDtlsRole(pc: RTCPeerConnection, offer: ParsedOffer, section: MediaSection): void {
  if ((setupOf(offer, section) ?? 'active') !== 'active') return;
  for (const transceiver of pc.getTransceivers()) if (transceiver.dtlsTransport) transceiver.dtlsTransport.role = 'server';
  if (pc.sctpTransport) pc.sctpTransport.dtlsTransport.role = 'server';
}
