/**
 * What earshot's guards on werift turned away (werift-stun-auth.ts,
 * werift-dtls-fragments.ts, dtls-record-guard.ts, werift-srtp-context.ts, werift-unsignalled-ssrc.ts,
 * werift-sctp-window.ts), and the SRTP and SRTCP
 * packets that failed authentication (werift-srtcp-count.ts), counted for the metrics
 * (`earshot_rtc_guarded_total`): a peer or a stranger sending what no real
 * client sends shows there, where it otherwise leaves no trace. The guards
 * patch werift's classes, which every server in the process shares, so the
 * counts are the process's.
 */
export const guardCounts = {
  /** STUN binding requests dropped unanswered: their USERNAME or MESSAGE-INTEGRITY did not authenticate. */
  stunUnauthenticated: 0,
  /** DTLS handshake fragments dropped from a socket's reassembly buffer, beyond its bound. */
  dtlsFragmentsDropped: 0,
  /** Datagrams dropped because an alert in them did not authenticate: any alert before the DTLS handshake is done (dtls-record-guard.ts). */
  dtlsAlertsUnauthenticated: 0,
  /** Datagrams dropped because a record in them had a content type werift does not handle, not 20–23 (dtls-record-guard.ts). */
  dtlsRecordsUnknown: 0,
  /** SRTP packets that failed authentication (or were too malformed to check): dropped. */
  srtpUnauthenticated: 0,
  /** SRTCP packets that failed authentication (or were too malformed to check): dropped. */
  srtcpUnauthenticated: 0,
  /** SRTP packets of streams (SSRCs) beyond the ones whose state a session keeps: decrypted as their stream's first, not remembered. */
  srtpPacketsNotKept: 0,
  /** RTP packets of SSRCs neither the offer announced nor the session took (beyond its bound): dropped. */
  rtpSsrcsNotAdopted: 0,
  /** Data-channel (SCTP DATA) chunks dropped because the peer sent beyond the receive window (werift-sctp-window.ts). */
  sctpChunksDropped: 0,
};
