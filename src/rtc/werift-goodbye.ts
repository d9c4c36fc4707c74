/**
 * Ending a session so that the client hears of it: an RTCP BYE, then a DTLS
 * close_notify alert, before the connection is closed (a WHEP listener's
 * player gets both, the BYE for the stream it heard; `earshot send` says the
 * same to the server as it leaves).
 *
 * werift's `close()` just stops its sockets (its DTLS transport's `stop` has
 * "todo impl send alert"), so a browser or OBS whose session the server ended
 * (replaced, drained, timed out, deleted) went on sending into the void until
 * its own consent checks gave up, about 30 s in Chrome. RFC 9725 §4.2 expects
 * the session's DTLS to be torn down, which a close_notify does (RFC 6347
 * §4.2.7 via TLS's closure alerts; browsers close the transport at once), and
 * RFC 3550 §6.3.7 asks a participant that leaves to send a BYE, in a compound
 * packet after a report (here one without blocks) and its SDES CNAME.
 *
 * Both are sent only on an established DTLS association whose internals look
 * as this module expects; anything else is left to werift's close as before.
 * The upstream change: send close_notify in `RTCDtlsTransport.stop()`.
 */
import { RtcpRrPacket, type RTCPeerConnection } from 'werift';
import { cnamePacket } from './rtcp-cname.js';
import { receiverReport, type ReportingReceiver } from './receiver-reports.js';

/** What this module reads of werift's DTLS socket (`RTCDtlsTransport.dtls`). */
interface DtlsSocketInternals {
  dtls: { version: { major: number; minor: number }; epoch: number; recordSequenceNumber: number };
  cipher: { encryptPacket(pkt: PlaintextRecord): PlaintextRecord };
  transport: { send(buf: Buffer): unknown };
}

interface PlaintextRecord {
  recordLayerHeader: { contentType: number; protocolVersion: { major: number; minor: number }; epoch: number; sequenceNumber: number; contentLen: number };
  fragment: Buffer;
}

interface DtlsTransportInternals {
  state: string;
  dtls?: Partial<DtlsSocketInternals>;
  sendRtcp(packets: Array<{ serialize(): Buffer }>): Promise<unknown>;
}

const ALERT = 21; // TLS ContentType alert
const WARNING = 1;
const CLOSE_NOTIFY = 0;
const RTCP_BYE = 203;

/** An RTCP BYE for `ssrc` (RFC 3550 §6.6): one source, no reason. */
function byePacket(ssrc: number): { serialize(): Buffer } {
  return {
    serialize: () => {
      const b = Buffer.alloc(8);
      b[0] = 0x81; // version 2, no padding, one source
      b[1] = RTCP_BYE;
      b.writeUInt16BE(1, 2); // length in 32-bit words, minus one
      b.writeUInt32BE(ssrc >>> 0, 4);
      return b;
    },
  };
}

/** Sends a compound; a transport going away is no reason to fail a close. */
async function sendQuietly(transport: DtlsTransportInternals, packets: Array<{ serialize(): Buffer }>): Promise<void> {
  try {
    await transport.sendRtcp(packets);
  } catch {
    // the transport is going away anyway
  }
}

/** The close_notify alert, encrypted as the association's next record; undefined where the socket is not as expected. */
function closeNotify(socket: Partial<DtlsSocketInternals>): Buffer | undefined {
  const { dtls, cipher, transport } = socket;
  if (!dtls || !cipher || !transport || typeof cipher.encryptPacket !== 'function' || typeof transport.send !== 'function') return undefined;
  if (typeof dtls.recordSequenceNumber !== 'number' || typeof dtls.epoch !== 'number' || typeof dtls.version?.major !== 'number') return undefined;
  const record: PlaintextRecord = {
    recordLayerHeader: { contentType: ALERT, protocolVersion: dtls.version, epoch: dtls.epoch, sequenceNumber: ++dtls.recordSequenceNumber, contentLen: 2 },
    fragment: Buffer.from([WARNING, CLOSE_NOTIFY]),
  };
  const sealed = cipher.encryptPacket(record);
  const header = sealed.recordLayerHeader;
  const out = Buffer.alloc(13 + sealed.fragment.length);
  out[0] = header.contentType;
  out[1] = header.protocolVersion.major;
  out[2] = header.protocolVersion.minor;
  out.writeUInt16BE(header.epoch, 3);
  out.writeUIntBE(header.sequenceNumber, 5, 6);
  out.writeUInt16BE(sealed.fragment.length, 11);
  sealed.fragment.copy(out, 13);
  return out;
}

/**
 * Sends the BYEs (for each audio transceiver, one about the source it receives and one about
 * the source it sends, each after an empty report and the CNAME) and the
 * close_notify on each connected DTLS transport of `pc`, and returns once
 * they have left: werift's UDP send resolves before the datagram is handed
 * to the system (an address lookup comes first, a tick later), and a socket
 * closed in between drops it. Never throws: a failure to say goodbye must not
 * keep a session from closing.
 */
export async function sayGoodbye(pc: RTCPeerConnection): Promise<void> {
  const transports = new Set<DtlsTransportInternals>();
  for (const t of pc.getTransceivers()) {
    const transport = t.receiver.dtlsTransport as unknown as DtlsTransportInternals | undefined;
    if (!transport || transport.state !== 'connected') continue;
    transports.add(transport);
    if (t.kind !== 'audio') continue;
    const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
    const sending = t.currentDirection === 'sendonly' || t.currentDirection === 'sendrecv';
    // A BYE about what this side receives (a WHIP session's server).
    const receiver = t.receiver as unknown as ReportingReceiver;
    if (receiving && typeof receiver.rtcpSsrc === 'number' && typeof receiver.remoteStreams === 'object') {
      // Reports keep RFC 3550's interval (a client times them): the BYE's compound has an empty one at its head.
      await sendQuietly(transport, [...receiverReport(receiver, { blocks: false }), byePacket(receiver.rtcpSsrc)]);
    }
    // And one about what it sends (a WHEP listener's server, `earshot send`), as a browser sends for its own source as it leaves.
    const sender = t.sender as unknown as { ssrc?: unknown; cname?: unknown };
    if (sending && typeof sender.ssrc === 'number') {
      const cname = typeof sender.cname === 'string' && sender.cname !== '' ? [cnamePacket(sender.ssrc, sender.cname)] : [];
      await sendQuietly(transport, [new RtcpRrPacket({ ssrc: sender.ssrc, reports: [] }), ...cname, byePacket(sender.ssrc)]);
    }
  }
  for (const transport of transports) {
    try {
      const alert = transport.dtls ? closeNotify(transport.dtls) : undefined;
      if (alert) await transport.dtls!.transport!.send(alert);
    } catch {
      // as above
    }
  }
  if (transports.size > 0) await new Promise((resolve) => setImmediate(resolve));
}
