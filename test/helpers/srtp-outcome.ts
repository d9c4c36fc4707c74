/** What an SRTP decryption gave, comparable between earshot's and werift's functions. */
import { SrtpAuthenticationError, type RtpHeader } from 'werift';

/** Runs `fn`: the bytes and header it returned, or the error it threw (class, message, whether werift's authentication error). */
export function srtpOutcome(fn: () => [Buffer, RtpHeader]): unknown {
  try {
    const [dst, h] = fn();
    return { bytes: dst.toString('hex'), header: { ...h } };
  } catch (e) {
    return { error: (e as Error).constructor.name, message: (e as Error).message, srtp: e instanceof SrtpAuthenticationError };
  }
}
