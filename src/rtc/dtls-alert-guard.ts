/**
 * Alerts after the DTLS handshake must be authentic.
 *
 * werift 0.25's `parsePlainText` reads an alert record as plaintext whenever
 * its first two bytes name a known alert, whatever its epoch, without
 * decrypting it, and `DtlsSocket.udpOnMessage` then closes the transport on
 * any alert that is not fatal. So one datagram of 15 bytes, a plaintext
 * close_notify (`15 fe fd 00 00 …` + `01 00`) sent to a session's port from
 * its client's address (UDP: a spoofable source), ended the session as
 * `closed-by-peer`; random datagrams did too, now and then. RFC 6347
 * §4.1.2.7: records that do not authenticate are discarded.
 *
 * Once the handshake is done, every alert record a datagram carries must
 * decrypt with the association's keys, or the datagram is dropped before
 * werift reads it (counted: `dtls_alert_unauthenticated`). A real peer's
 * closure alerts are encrypted, and go through. The upstream change: decrypt
 * alerts of epochs above 0, and drop epoch-0 records once the handshake is
 * done.
 */
import type { RTCPeerConnection } from 'werift';
import { guardCounts } from './guard-counts.js';

const ALERT = 21;
const RECORD_HEADER = 13;

/** What of werift's DtlsSocket this reads: its state, its keys, and where its datagrams come in. */
interface DtlsSocketInternals {
  connected?: boolean;
  cipher?: { decryptPacket?(record: unknown): unknown };
  transport?: { socket?: { onData?: (data: Buffer) => void } };
}

/** Whether every alert record in `data` decrypts with `socket`'s keys (other records are werift's to judge). */
export function alertsAuthentic(socket: DtlsSocketInternals, data: Buffer): boolean {
  for (let start = 0; start + RECORD_HEADER <= data.length; ) {
    const length = data.readUInt16BE(start + 11);
    const end = start + RECORD_HEADER + length;
    if (end > data.length) break; // werift stops reading there too
    if (data[start] === ALERT) {
      const record = {
        recordLayerHeader: {
          contentType: ALERT,
          protocolVersion: { major: data[start + 1], minor: data[start + 2] },
          epoch: data.readUInt16BE(start + 3),
          sequenceNumber: data.readUIntBE(start + 5, 6),
          contentLen: length,
        },
        fragment: data.subarray(start + RECORD_HEADER, end),
      };
      try {
        socket.cipher!.decryptPacket!(record);
      } catch {
        return false;
      }
    }
    start = end;
  }
  return true;
}

/** Drops the datagrams with an alert that does not authenticate, once each DTLS transport's handshake is done. */
export function guardDtlsAlerts(pc: RTCPeerConnection): void {
  for (const transport of pc.dtlsTransports) {
    const socket = (transport as unknown as { dtls?: DtlsSocketInternals }).dtls;
    const ice = socket?.transport?.socket;
    const deliver = ice?.onData;
    // A werift whose internals differ is left as it is.
    if (!socket || !ice || typeof deliver !== 'function' || typeof socket.cipher?.decryptPacket !== 'function') continue;
    ice.onData = (data: Buffer) => {
      if (socket.connected && !alertsAuthentic(socket, data)) {
        guardCounts.dtlsAlertsUnauthenticated++;
        return;
      }
      deliver(data);
    };
  }
}
