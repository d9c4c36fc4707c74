/**
 * A client that closes its connection — a browser's `pc.close()`, a reloaded
 * tab, OBS or GStreamer stopping, earshot's own sender — sends a DTLS
 * close_notify alert (TLS closure alerts, which DTLS keeps: RFC 6347 §4.2.7).
 * werift acts on it only by setting its DTLS transport's state to `closed`;
 * the peer connection's state stays `connected`. Watching that state alone, a
 * session whose publisher left this way ran on until the media timeout (10 s
 * by default), its peer name taken (a republish got 409), and a WHEP player's
 * listener slot stayed taken until its receiver reports stopped (~24 s).
 *
 * Subscribe once the connection is connected (the transports exist, and a
 * close_notify needs an established association). A transport also reads
 * `closed` when this side closes the connection: the handler must ignore a
 * session that has ended already.
 */
import type { RTCPeerConnection } from 'werift';
import { guardDtlsRecords } from './dtls-record-guard.js';

export function onDtlsClosed(pc: RTCPeerConnection, closed: () => void): void {
  // Only an authentic alert may close it: werift takes a forged plaintext one, or a record of a type it does not handle, as the peer's (dtls-record-guard.ts).
  guardDtlsRecords(pc);
  for (const transport of pc.dtlsTransports) {
    transport.onStateChange.subscribe((state) => {
      if (state === 'closed') closed();
    });
  }
}
