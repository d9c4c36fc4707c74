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
import { ProtectionProfileAeadAes128Gcm, SrtcpSession, SrtpAuthenticationError } from 'werift';
import { guardCounts } from './guard-counts.js';

interface SrtcpContextInternals {
  decryptRTCP(encrypted: Buffer): [Buffer, unknown];
}

const key = Buffer.alloc(16);
const salt = Buffer.alloc(12);
const session = new SrtcpSession({ keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt }, profile: ProtectionProfileAeadAes128Gcm });
const proto = Object.getPrototypeOf(session.remoteContext) as SrtcpContextInternals;

/** werift's own function, as loaded. */
const weriftDecryptRtcp = proto.decryptRTCP;

function decryptRtcpCounted(this: SrtcpContextInternals, encrypted: Buffer): [Buffer, unknown] {
  try {
    return weriftDecryptRtcp.call(this, encrypted);
  } catch (e) {
    if (e instanceof SrtpAuthenticationError) guardCounts.srtcpUnauthenticated++;
    throw e;
  }
}

// Patched once per process (every server shares werift's classes); a werift without the method is left as it is.
if (typeof weriftDecryptRtcp === 'function' && !Object.hasOwn(weriftDecryptRtcp, 'earshotCounted')) {
  Object.defineProperty(decryptRtcpCounted, 'earshotCounted', { value: true });
  proto.decryptRTCP = decryptRtcpCounted;
}
