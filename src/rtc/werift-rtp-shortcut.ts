/**
 * A WHIP session's Opus packets, from werift's DTLS transport straight to the
 * session.
 *
 * After decrypting a packet, werift hands it to its router (`onRtp`), which
 * parses the header extensions into a new object and finds the receiver; the
 * receiver (`handleRTP`) updates its statistics for RTCP receiver reports,
 * checks transport-wide congestion control, RTX and RED, and hands a clone of
 * the packet (two new objects and a spread) to the track's `onReceiveRtp`
 * event, whose one subscriber is the session. For the packets of an
 * established Opus track all of that reduces to two things: the statistics
 * update (`countArrival`: werift's, without a number-to-string round trip per
 * packet) and the call to the session.
 *
 * `shortcutRtp` replaces the transport's `onRtp.execute` on that one
 * connection with a function that does exactly those two things for packets
 * of the track's SSRC and Opus payload type while everything they depend on
 * is as it was when the shortcut was made: the receiver running and sending
 * reports, the same codec, statistics and track for that SSRC, the router
 * sending that SSRC to this receiver, no congestion control, the router as
 * the transport's only subscriber, and werift's own and the session's as the
 * track's only ones. Any other packet, or any packet
 * once one of those changed, takes werift's path. It is made only after
 * werift's own path delivered the track's first packet (so the router, the
 * statistics and the RTCP loop are set up), only where the stream id header
 * extension that would route packets by RID is not negotiated, and only for
 * WHIP sessions, which negotiate once (a connection on the caller's own
 * signaling may renegotiate and keeps werift's path).
 *
 * The packet is the one werift parsed from the decrypted buffer, which
 * nothing else holds once the router is done with it, so no clone is made.
 * test/rtc/werift-rtp-shortcut.test.ts checks on a live connection that every
 * packet arrives and werift's statistics count it, and that the shortcut gives
 * way to werift's path; test/rtc/receiver-reports.test.ts checks the receiver
 * reports a publisher hears.
 *
 * The upstream change: in `RTCRtpReceiver.handleRTP`, hand the track the
 * packet itself when it has one subscriber; parse the header extensions in
 * the router only when an extension is negotiated; and `int = Math.trunc`.
 */
import { getStatsTimestamp, RTP_EXTENSION_URI, uint16Gt, type MediaStreamTrack, type RTCPeerConnection, type RtpPacket } from 'werift';
import { isEvent, leanEvent, leansWeriftEvents, type EventInternals } from './werift-events.js';

/** The receiver internals the shortcut reads (werift declares them public, except `remoteStreams`). */
interface ReceiverInternals {
  stopped: boolean;
  rtcpRunning: boolean;
  receiverTWCC: unknown;
  twccEnabled: unknown;
  codecs: Record<number, { name?: string } | undefined>;
  remoteStreams: Record<number, ReceiveStatistics | undefined>;
  trackBySSRC: Record<number, MediaStreamTrack | undefined>;
  dtlsTransport?: { onRtp?: unknown };
}

/** werift's `StreamStatistics` (not exported): what its RTCP receiver reports are made of. */
export interface ReceiveStatistics {
  add(packet: RtpPacket, now?: number): void;
  base_seq: number | undefined;
  max_seq: number | undefined;
  cycles: number;
  packets_received: number;
  bytesReceived: number;
  headerBytesReceived: number;
  lastPacketReceivedTimestamp: number | undefined;
  clockRate: number;
  jitter_q4: number;
  last_arrival: number | undefined;
  last_timestamp: number | undefined;
}

/** Whether werift's `StreamStatistics.add` is the one `countArrival` was written from. */
function addIsWerifts(stats: ReceiveStatistics): boolean {
  return /int\(now \* this\.clockRate\)/.test(String(stats.add)) && /jitter_q4 \+= diff - \(this\.jitter_q4 \+ 8 >> 4\)/.test(String(stats.add));
}

/**
 * werift's `StreamStatistics.add`, step for step, with the arrival time in
 * clock units truncated by `Math.trunc` where werift's `int` formats the
 * number as a string and parses it back (`Number.parseInt`): the same value
 * for any positive number below 1e21 (a clock of 48 kHz reaches that in
 * 660,000 years), without a string per packet.
 */
export function countArrival(stats: ReceiveStatistics, packet: RtpPacket, now: number = Date.now() / 1e3): void {
  const header = packet.header;
  const seq = header.sequenceNumber;
  const inOrder = stats.max_seq === undefined || uint16Gt(seq, stats.max_seq);
  stats.packets_received++;
  stats.bytesReceived += packet.payload.length;
  stats.headerBytesReceived += header.serializeSize;
  stats.lastPacketReceivedTimestamp = getStatsTimestamp();
  if (stats.base_seq === undefined) stats.base_seq = seq;
  if (inOrder) {
    const arrival = Math.trunc(now * stats.clockRate);
    if (stats.max_seq !== undefined && seq < stats.max_seq) stats.cycles += 1 << 16;
    stats.max_seq = seq;
    if (header.timestamp !== stats.last_timestamp && stats.packets_received > 1) {
      const diff = Math.abs(arrival - (stats.last_arrival ?? 0) - (header.timestamp - (stats.last_timestamp ?? 0)));
      stats.jitter_q4 += diff - ((stats.jitter_q4 + 8) >> 4);
    }
    stats.last_arrival = arrival;
    stats.last_timestamp = header.timestamp;
  }
}

interface RouterInternals {
  ssrcTable: Record<number, unknown>;
  extIdUriMap: Record<number, string>;
}

const ROUTED_BY_RID: readonly string[] = [RTP_EXTENSION_URI.sdesRTPStreamID, RTP_EXTENSION_URI.repairedRtpStreamId];

/** The transports' `onRtp` events that carry a shortcut (one per connection at most). */
const shortcuts = new WeakSet<object>();

/** Whether `shortcutRtp` changed this event. */
export function hasShortcut(event: unknown): boolean {
  return typeof event === 'object' && event !== null && shortcuts.has(event);
}

/** werift's own subscriber on every track it creates: marks the track unmuted and keeps the last header. */
const WERIFT_TRACK_SUBSCRIBER = /muted\s*=\s*false[\s\S]*header\s*=\s*\w+\.header/;

/**
 * An event's subscribers as they are now, and a test of whether they are
 * still exactly those (werift's `subscribe` numbers every subscription, and
 * an unsubscription shortens or replaces the list).
 */
function subscribersNow(ev: EventInternals): () => boolean {
  const list = ev.event;
  const id = (list as { eventId?: unknown }).eventId;
  const length = list.stack.length;
  return () => !ev.ended && ev.event === list && (list as { eventId?: unknown }).eventId === id && list.stack.length === length && list.promiseStack.length === 0;
}

/**
 * Makes the shortcut described above for `track`, whose packet `first` werift
 * just delivered to the session (call it after werift's `handleRTP` returned,
 * e.g. from a microtask). The track's subscribers must be werift's own and
 * the session's; the shortcut runs them in order with the packet. Returns
 * whether it did; when not, werift's path stays.
 */
export function shortcutRtp(pc: RTCPeerConnection, track: MediaStreamTrack, first: RtpPacket): boolean {
  if (!leansWeriftEvents) return false;
  const ssrc = first.header.ssrc;
  const payloadType = first.header.payloadType;
  const receiver = pc.getTransceivers().find((t) => t.receiver.tracks.includes(track))?.receiver as unknown as ReceiverInternals | undefined;
  const router = (pc as unknown as { router?: RouterInternals }).router;
  const onRtp = receiver?.dtlsTransport?.onRtp;
  const onTrack = track.onReceiveRtp as unknown;
  if (!receiver || !router || !isEvent(onRtp) || !isEvent(onTrack) || shortcuts.has(onRtp)) return false;
  const codec = receiver.codecs[payloadType];
  const stats = receiver.remoteStreams?.[ssrc];
  const extensions = router.extIdUriMap;
  const subscribers = onTrack.event.stack;
  const ready =
    codec?.name?.toLowerCase() === 'opus' &&
    stats !== undefined &&
    typeof stats.add === 'function' &&
    Number.isFinite(stats.clockRate) &&
    stats.clockRate > 0 &&
    receiver.rtcpRunning &&
    !receiver.stopped &&
    receiver.trackBySSRC[ssrc] === track &&
    router.ssrcTable[ssrc] === receiver &&
    receiver.receiverTWCC === undefined &&
    !receiver.twccEnabled &&
    !Object.values(extensions).some((uri) => ROUTED_BY_RID.includes(uri)) &&
    onRtp.event.stack.length === 1 &&
    subscribers.length === 2 &&
    WERIFT_TRACK_SUBSCRIBER.test(String(subscribers[0].execute));
  if (!ready) return false;
  const routerOnly = subscribersNow(onRtp);
  const sameSubscribers = subscribersNow(onTrack);
  if (!routerOnly() || !sameSubscribers()) return false;
  leanEvent(onRtp);
  const count = addIsWerifts(stats) ? (rtp: RtpPacket) => countArrival(stats, rtp) : (rtp: RtpPacket) => stats.add(rtp);
  const throughWerift = onRtp.execute;
  // `arguments`, not a rest array: no array per packet (see werift-events.ts).
  onRtp.execute = function execute(): void {
    const rtp = arguments[0] as RtpPacket | undefined;
    const header = rtp?.header;
    if (
      header !== undefined &&
      header.ssrc === ssrc &&
      header.payloadType === payloadType &&
      receiver.rtcpRunning &&
      !receiver.stopped &&
      receiver.codecs[payloadType] === codec &&
      receiver.remoteStreams[ssrc] === stats &&
      receiver.trackBySSRC[ssrc] === track &&
      router.ssrcTable[ssrc] === receiver &&
      router.extIdUriMap === extensions &&
      receiver.receiverTWCC === undefined &&
      !receiver.twccEnabled &&
      routerOnly() &&
      sameSubscribers()
    ) {
      count(rtp!);
      for (const item of subscribers) item.execute(rtp);
      return;
    }
    if (arguments.length === 1) throughWerift(rtp);
    else throughWerift(...(Array.prototype.slice.call(arguments) as unknown[]));
  };
  shortcuts.add(onRtp);
  return true;
}
