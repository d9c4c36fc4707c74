/**
 * werift's SRTP receive context, without a copy of the stream's state per packet.
 *
 * For every packet, werift's `SrtpContext.decryptRtp` parses the header
 * through a closure that turns a parse error into `SrtpAuthenticationError`,
 * copies the SSRC's rollover state into a new object (`{ ...existingState }`),
 * updates the copy with the packet's sequence number, decrypts under the
 * copy's rollover counter and, once the packet authenticated, copies the
 * state back: a packet that fails leaves the state as it was. Here the same
 * steps work on one reused object (`trial`) instead of a new copy, and the
 * header is parsed without the closure; the state is written back only after
 * the cipher returned, so a packet that fails still leaves it as it was.
 * Same checks, same errors, same header, same cipher call, for both of
 * werift's profiles.
 *
 * test/rtc/werift-srtp-context.test.ts runs this and werift's own function
 * side by side on the same packet sequences (in order, reordered, across a
 * sequence-number wrap, tampered, truncated) and compares what each returns
 * or throws and the state each leaves. A werift whose context no longer looks
 * as expected is left as it is. The upstream change: update the rollover
 * state on locals and assign them to the existing state after decryption.
 *
 * The header is parsed from the bytes before the auth tag without a view of
 * them (`rtpHeaderUpTo`, werift-rtp-header.ts).
 *
 * Bounded: werift keeps a rollover state for every SSRC that ever
 * authenticated, and never forgets one, so a publisher that sends each
 * packet under a new SSRC grew the server's memory without limit (a state
 * and its entry per packet). A context remembers the first
 * `MAX_SSRC_STATES`; a packet of an SSRC beyond them is decrypted as the
 * first of its stream (rollover counter 0) and not remembered. A real
 * publisher has one SSRC per track, a few more over a session if its encoder
 * restarts, all among the first.
 */
import { SrtpAuthenticationError, type RtpHeader } from 'werift';
import { guardCounts } from './guard-counts.js';
import { rtpHeaderUpTo } from './werift-rtp-header.js';
import { countingAuthFailures, MIN_RTP_HEADER, SRTP_AUTH_FAILED as FAILED, throwawaySrtpSession } from './werift-srtp-internals.js';

/** werift's per-SSRC rollover state (its `ssrc` field is not read here). */
interface SsrcState {
  rolloverCounter: number;
  lastSequenceNumber: number;
  rolloverHasProcessed?: boolean;
}

/** The parts of werift's SRTP context this module reads. */
interface ContextInternals {
  srtpSSRCStates: Record<number, SsrcState | undefined>;
  readonly rtpAuthTagLength: number;
  cipher: { decryptRtp(cipherText: Buffer, rolloverCounter: number, header: RtpHeader): [Buffer, RtpHeader] };
  updateRolloverCount(sequenceNumber: number, state: SsrcState): void;
  decryptRtp(cipherText: Buffer): [Buffer, RtpHeader];
}

/** werift's SRTP context class (not exported by werift). */
const proto = Object.getPrototypeOf(throwawaySrtpSession().remoteContext) as ContextInternals;

/** werift's own function, as loaded (the test compares against it). */
export const weriftContextDecryptRtp = proto.decryptRtp;

/** Whether werift's context decryption is the one this module was written against. */
export const replacesWeriftContextDecrypt = (() => {
  const source = String(weriftContextDecryptRtp);
  return /\{\s*\.\.\.existingState\s*\}/.test(source) && /parseSrtpRtpHeader/.test(source) && /updateRolloverCount/.test(source) && /Object\.assign\(existingState, nextState\)/.test(source);
})();

/** SSRCs whose rollover state one SRTP receive context keeps. */
export const MAX_SSRC_STATES = 32;

/** States each context has created, counted (werift's states are a plain object: not counted cheaply). */
const created = new WeakMap<ContextInternals, number>();

/** The rollover state a packet is tried under (werift's `nextState`); written back only once the packet authenticated. */
const trial: SsrcState = { rolloverCounter: 0, lastSequenceNumber: 0, rolloverHasProcessed: false };

/** werift's `parseSrtpRtpHeader`: the header before the auth tag, checked; any parse error is an authentication failure. */
function parseHeader(cipherText: Buffer, authTagLength: number): RtpHeader {
  const authTagOffset = cipherText.length - authTagLength;
  if (!(cipherText.length >= MIN_RTP_HEADER + authTagLength)) throw new SrtpAuthenticationError(FAILED);
  let header: RtpHeader;
  try {
    header = rtpHeaderUpTo(cipherText, authTagOffset);
  } catch {
    throw new SrtpAuthenticationError(FAILED);
  }
  header.paddingSize = 0;
  if (!(header.payloadOffset >= MIN_RTP_HEADER && header.payloadOffset <= authTagOffset)) throw new SrtpAuthenticationError(FAILED);
  return header;
}

function decryptRtp(this: ContextInternals, cipherText: Buffer): [Buffer, RtpHeader] {
  const header = parseHeader(cipherText, this.rtpAuthTagLength);
  const existing = this.srtpSSRCStates[header.ssrc];
  if (existing === undefined) {
    // A new SSRC (once per stream): werift's own function, which creates its state once the packet authenticated.
    const dec = weriftContextDecryptRtp.call(this, cipherText);
    const n = (created.get(this) ?? 0) + 1;
    if (n > MAX_SSRC_STATES) {
      delete this.srtpSSRCStates[header.ssrc];
      guardCounts.srtpPacketsNotKept++;
    } else created.set(this, n);
    return dec;
  }
  trial.rolloverCounter = existing.rolloverCounter;
  trial.lastSequenceNumber = existing.lastSequenceNumber;
  trial.rolloverHasProcessed = existing.rolloverHasProcessed;
  this.updateRolloverCount(header.sequenceNumber, trial);
  const dec = this.cipher.decryptRtp(cipherText, trial.rolloverCounter, header);
  existing.rolloverCounter = trial.rolloverCounter;
  existing.lastSequenceNumber = trial.lastSequenceNumber;
  existing.rolloverHasProcessed = trial.rolloverHasProcessed;
  return dec;
}

// Counting the packets that fail SRTP's checks (`guardCounts.srtpUnauthenticated`).
if (replacesWeriftContextDecrypt) proto.decryptRtp = countingAuthFailures(decryptRtp, 'srtpUnauthenticated');
