/**
 * DTLS records that would close a session must be real.
 *
 * werift 0.25 closes a session's DTLS transport on two kinds of record, from
 * any address (werift hands the DTLS layer every datagram a session's port
 * receives, whoever sent it):
 *
 * - **An alert it did not authenticate.** `parsePlainText` reads an alert
 *   record as plaintext whenever its first two bytes name a known alert,
 *   whatever its epoch, and `DtlsSocket.udpOnMessage` closes on any alert that
 *   is not fatal. So a 15-byte plaintext close_notify (`15 fe fd 00 00 …` +
 *   `01 00`) ended a session (`closed-by-peer`); during the handshake it closed
 *   the transport, which then connected all the same, its data channel (SCTP
 *   follows the transport's state) closed for good.
 * - **A record of a content type werift does not handle** (not 20–23: 24–26
 *   are extensions werift does not negotiate, the rest undefined): its parser
 *   has no case for it and returns it as an alert. A random datagram whose
 *   first byte is 24–63 and whose length field fits does that: the junk of a
 *   port scan ended a session now and then.
 *
 * RFC 6347 §4.1.2.7: invalid records are silently discarded. From the moment
 * the DTLS socket exists, a datagram is dropped before werift reads it if it
 * holds a record of such a type (counted: `dtls_record_unknown`), or an alert
 * record that does not decrypt with the association's keys (counted:
 * `dtls_alert_unauthenticated`): before the handshake is done there are no
 * keys, and every alert is dropped. A real peer's closure alerts come after
 * the handshake, encrypted, and go through; an alert a real peer sends during
 * the handshake is fatal, and werift ignores those anyway. The upstream
 * change: discard records of unknown type, decrypt alerts of epochs above 0,
 * and drop epoch-0 records once the handshake is done.
 */
import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';
import { guardCounts } from './guard-counts.js';

const CHANGE_CIPHER_SPEC = 20;
const ALERT = 21;
const APPLICATION_DATA = 23;
const RECORD_HEADER = 13;

/** What of werift's DtlsSocket this reads: its state, its keys, and where its datagrams come in. */
interface DtlsSocketInternals {
  connected?: boolean;
  cipher?: { decryptPacket?(record: unknown): unknown };
  transport?: { socket?: { onData?: (data: Buffer) => void } };
}

/** Why `data` must not reach werift's DTLS socket, if it must not. */
export type RecordVerdict = 'unknown-type' | 'alert-unauthenticated' | undefined;

/**
 * Reads the records of `data` as werift splits them. A record of a content type werift does not
 * handle makes it `unknown-type`; an alert record makes it `alert-unauthenticated` unless
 * `socket`'s handshake is done and it decrypts with its keys. Other records are werift's to judge.
 */
export function judgeRecords(socket: DtlsSocketInternals, data: Buffer): RecordVerdict {
  for (let start = 0; start + RECORD_HEADER <= data.length; ) {
    const length = data.readUInt16BE(start + 11);
    const end = start + RECORD_HEADER + length;
    if (end > data.length) break; // werift reads no further (or drops the datagram)
    const type = data[start];
    if (type < CHANGE_CIPHER_SPEC || type > APPLICATION_DATA) return 'unknown-type';
    if (type === ALERT && !(socket.connected && decrypts(socket, data, start, end))) return 'alert-unauthenticated';
    start = end;
  }
  return undefined;
}

function decrypts(socket: DtlsSocketInternals, data: Buffer, start: number, end: number): boolean {
  const record = {
    recordLayerHeader: {
      contentType: ALERT,
      protocolVersion: { major: data[start + 1], minor: data[start + 2] },
      epoch: data.readUInt16BE(start + 3),
      sequenceNumber: data.readUIntBE(start + 5, 6),
      contentLen: end - start - RECORD_HEADER,
    },
    fragment: data.subarray(start + RECORD_HEADER, end),
  };
  try {
    socket.cipher!.decryptPacket!(record);
    return true;
  } catch {
    return false;
  }
}

const guardedSockets = new WeakSet<object>();

/** Puts the guard in front of `transport`'s DTLS socket, if it has one: whether it is guarded now. */
function guardSocket(transport: RTCDtlsTransport): boolean {
  const socket = (transport as unknown as { dtls?: DtlsSocketInternals }).dtls;
  if (!socket) return false;
  if (guardedSockets.has(socket)) return true;
  guardedSockets.add(socket);
  const ice = socket.transport?.socket;
  const deliver = ice?.onData;
  // A werift whose internals differ is left as it is.
  if (!ice || typeof deliver !== 'function' || typeof socket.cipher?.decryptPacket !== 'function') return true;
  ice.onData = (data: Buffer) => {
    const verdict = judgeRecords(socket, data);
    if (verdict === 'unknown-type') guardCounts.dtlsRecordsUnknown++;
    else if (verdict === 'alert-unauthenticated') guardCounts.dtlsAlertsUnauthenticated++;
    else deliver(data);
  };
  return true;
}

/**
 * Guards each of `pc`'s DTLS transports: now if its socket exists, else as it starts. werift makes
 * the socket in `start()` (after ICE connects), right after announcing the state `connecting`:
 * guarded in the microtask after, before any datagram (each comes in a task of its own) reaches it.
 * Call it once the connection is connecting or connected; calling it again does no harm.
 */
export function guardDtlsRecords(pc: RTCPeerConnection): void {
  for (const transport of pc.dtlsTransports) {
    if (guardSocket(transport)) continue;
    const watch = transport.onStateChange.subscribe((state) => {
      if (state !== 'connecting') return;
      watch.unSubscribe();
      queueMicrotask(() => guardSocket(transport));
    });
  }
}
