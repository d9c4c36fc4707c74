/**
 * Counts the SRTCP packets that fail authentication
 * (`guardCounts.srtcpUnauthenticated`). werift's transport drops them with a
 * debug log and nothing else, so a peer with the wrong keys, or a stranger
 * sending RTCP-shaped datagrams at a session's port, left no trace an
 * operator could see. The count wraps werift's `SrtcpContext.decryptRTCP`
 * (not exported: reached through a throwaway session), whose failures all
 * throw `SrtpAuthenticationError` (too short, a header that does not parse,
 * a tag that does not verify); a good packet costs one `try`.
 */
import { countingAuthFailures, throwawaySrtcpSession } from './werift-srtp-internals.js';

interface SrtcpContextInternals {
  decryptRTCP(encrypted: Buffer): [Buffer, unknown];
}

const proto = Object.getPrototypeOf(throwawaySrtcpSession().remoteContext) as SrtcpContextInternals;

// A werift without the method is left as it is.
if (typeof proto.decryptRTCP === 'function') proto.decryptRTCP = countingAuthFailures(proto.decryptRTCP, 'srtcpUnauthenticated');
