/**
 * What earshot's replacements of werift's SRTP functions share
 * (werift-srtp-gcm.ts, werift-srtp-context.ts, werift-srtcp-count.ts):
 * werift's failure message, the smallest RTP header, sessions to reach
 * werift's unexported SRTP and SRTCP classes through, and the count of
 * packets that fail authentication.
 */
import { ProtectionProfileAeadAes128Gcm, SrtcpSession, SrtpAuthenticationError, SrtpSession } from 'werift';
import { guardCounts } from './guard-counts.js';

/** The message of werift's `SrtpAuthenticationError` for an RTP packet. */
export const SRTP_AUTH_FAILED = 'Failed to authenticate SRTP packet';

/** The fixed part of an RTP header, bytes. */
export const MIN_RTP_HEADER = 12;

/** An AES-GCM SRTP session with throwaway keys: its contexts and cipher are instances of werift's classes, which werift does not export. */
export function throwawaySrtpSession(): SrtpSession {
  return new SrtpSession(throwawayConfig());
}

/** The same for SRTCP: its contexts are instances of werift's `SrtcpContext`. */
export function throwawaySrtcpSession(): SrtcpSession {
  return new SrtcpSession(throwawayConfig());
}

function throwawayConfig() {
  const key = Buffer.alloc(16);
  const salt = Buffer.alloc(12);
  return { keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt }, profile: ProtectionProfileAeadAes128Gcm };
}

/**
 * `decrypt`, counting in `guardCounts[counter]` the packets that fail its
 * checks (`SrtpAuthenticationError`) on their way to werift's transport,
 * which drops them without a trace.
 */
export function countingAuthFailures<T, R>(decrypt: (this: T, packet: Buffer) => R, counter: 'srtpUnauthenticated' | 'srtcpUnauthenticated'): (this: T, packet: Buffer) => R {
  return function counted(this: T, packet: Buffer): R {
    try {
      return decrypt.call(this, packet);
    } catch (e) {
      if (e instanceof SrtpAuthenticationError) guardCounts[counter]++;
      throw e;
    }
  };
}
