/**
 * What earshot's replacements of werift's SRTP functions share
 * (werift-srtp-gcm.ts, werift-srtp-context.ts): werift's failure message, the
 * smallest RTP header, and a session to reach werift's unexported SRTP classes
 * through.
 */
import { ProtectionProfileAeadAes128Gcm, SrtpSession } from 'werift';

/** The message of werift's `SrtpAuthenticationError` for an RTP packet. */
export const SRTP_AUTH_FAILED = 'Failed to authenticate SRTP packet';

/** The fixed part of an RTP header, bytes. */
export const MIN_RTP_HEADER = 12;

/** An AES-GCM SRTP session with throwaway keys: its contexts and cipher are instances of werift's classes, which werift does not export. */
export function throwawaySrtpSession(): SrtpSession {
  const key = Buffer.alloc(16);
  const salt = Buffer.alloc(12);
  return new SrtpSession({ keys: { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt }, profile: ProtectionProfileAeadAes128Gcm });
}
