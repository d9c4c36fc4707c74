/**
 * A bound on the DTLS handshake fragments werift keeps.
 *
 * werift's `DtlsSocket.handleFragmentHandshake` keeps every handshake
 * fragment that is not a whole message (`fragment_length !== length`) in
 * `bufferFragmentedHandshakes` until one arrives that ends its message, and
 * never drops any. Handshake records of epoch 0 are read at any time, before
 * and after the handshake, from any address that reaches the session's UDP
 * port: 3000 datagrams of one fragment of a ClientHello claiming 16 MiB
 * (0xffffff) kept 3000 fragments, each holding its ~1.1 KB datagram, and
 * nothing ever frees them while the session lives. A sender could grow the
 * server's memory without bound, one datagram at a time.
 *
 * A real handshake message is a few fragments (a certificate chain of 16 KB
 * over a 1200-byte MTU is 14): werift's buffer keeps the newest
 * `MAX_FRAGMENTS` and drops the older ones. A handshake with more fragments in flight than that
 * would fail and be retransmitted, as over a lossy network. Only werift's
 * function is wrapped; a werift without it, or without that buffer, is left
 * as it is. The upstream change: bound `bufferFragmentedHandshakes` (and drop
 * fragments of messages other than the one being assembled).
 */
import { DtlsSocket } from 'werift';
import { guardCounts } from './guard-counts.js';

/** Fragments of handshake messages kept per DTLS socket. */
export const MAX_FRAGMENTS = 64;

interface FragmentInternals {
  bufferFragmentedHandshakes?: unknown[];
  handleFragmentHandshake(messages: unknown[]): unknown[];
}

const proto = DtlsSocket.prototype as unknown as FragmentInternals;

/** werift's own function, as loaded. */
export const weriftHandleFragments = proto.handleFragmentHandshake;

/** Whether werift's function is the one that keeps fragments in `bufferFragmentedHandshakes`. */
export const boundsWeriftFragments = typeof weriftHandleFragments === 'function' && /bufferFragmentedHandshakes\.push/.test(String(weriftHandleFragments));

if (boundsWeriftFragments) {
  proto.handleFragmentHandshake = function handleFragmentHandshake(this: FragmentInternals, messages: unknown[]): unknown[] {
    const handshakes = weriftHandleFragments.call(this, messages);
    const kept = this.bufferFragmentedHandshakes;
    if (Array.isArray(kept) && kept.length > MAX_FRAGMENTS) guardCounts.dtlsFragmentsDropped += kept.splice(0, kept.length - MAX_FRAGMENTS).length;
    return handshakes;
  };
}
