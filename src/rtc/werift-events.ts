/**
 * werift's per-packet events, without a promise per call.
 *
 * Every received RTP packet passes through four werift `Event`s on its way to
 * earshot: the ICE socket protocol's `onDataReceived`, the ICE connection's
 * `onData`, the DTLS transport's `onRtp` and the track's `onReceiveRtp`. Each
 * `execute` call runs the synchronous subscribers and then, always, an async
 * closure for the queuing subscribers (`queuingSubscribe`), with a `.catch`:
 * a closure and two promises per event, four times per packet, even though
 * none of these events has a queuing subscriber. By the capacity bench's heap
 * profile (K = 20, no denoise) that was ~20 % of the main thread's allocation.
 *
 * `execute` is an arrow function werift creates per instance, so it cannot be
 * replaced on the prototype; `leanEvent` replaces it on one instance with a
 * function that does exactly what werift's does, in the same order, and only
 * enters the async part when there is a queuing subscriber to run. A werift
 * whose `Event` no longer looks as expected is left as it is.
 * test/rtc/werift-events.test.ts compares both on the same subscribers.
 *
 * The upstream change: in `Event.execute`, run the async loop only
 * `if (this.event.promiseStack.length > 0)`.
 */
import { Event, type RTCPeerConnection } from 'werift';

type Handler = (...args: unknown[]) => unknown;

/** The parts of a werift `Event` this module reads (werift declares them public). */
export interface EventInternals {
  ended: boolean;
  event: { stack: { execute: Handler }[]; promiseStack: { execute: Handler }[] };
  execute: (...args: unknown[]) => void;
  onerror: (e: unknown) => void;
}

/** Whether werift's `Event.execute` is the one this module was written against. */
export const leansWeriftEvents = /promiseStack/.test(String((new Event() as unknown as EventInternals).execute));

const leaned = new WeakSet<object>();

/** Whether `value` is a werift `Event` whose internals look as this module expects. */
export function isEvent(value: unknown): value is EventInternals {
  return value instanceof Event && typeof (value as unknown as EventInternals).event?.stack === 'object';
}

/**
 * Gives one werift `Event` the execute described above. Returns whether it
 * did (false: not a werift Event, done already, or a werift this does not know).
 */
export function leanEvent(value: unknown): boolean {
  if (!leansWeriftEvents || !isEvent(value) || leaned.has(value)) return false;
  const ev = value;
  // A function with `arguments`, not rest parameters: every call on the receive path has one
  // argument (a datagram or a packet), and a rest array captured by the queuing closure below
  // was allocated on every call (~130 bytes a packet over three events), queuing or not.
  ev.execute = function execute(): void {
    if (ev.ended) return;
    const stack = ev.event.stack;
    if (arguments.length === 1) {
      const only: unknown = arguments[0];
      for (const item of stack) item.execute(only);
    } else {
      const args: unknown[] = Array.prototype.slice.call(arguments);
      for (const item of stack) item.execute(...args);
    }
    const queued = ev.event.promiseStack;
    if (queued.length === 0) return;
    const args: unknown[] = Array.prototype.slice.call(arguments);
    (async () => {
      for (const item of queued) await item.execute(...args);
    })().catch((e: unknown) => {
      ev.onerror(e);
    });
  };
  leaned.add(ev);
  return true;
}

/** The werift internals between a peer connection's UDP socket and its tracks. */
interface TransportInternals {
  onRtp?: unknown;
  iceTransport?: { connection?: { onData?: unknown; protocols?: { onDataReceived?: unknown }[] } };
}

/**
 * The events an RTP packet passes through in this peer connection, as far as
 * they exist now: the ICE protocols' `onDataReceived`, the ICE connection's
 * `onData`, the DTLS transports' `onRtp` and the receivers' tracks'
 * `onReceiveRtp` (values werift does not have are left out).
 */
export function receivePathEvents(pc: RTCPeerConnection): unknown[] {
  const events: unknown[] = [];
  for (const transport of pc.dtlsTransports as unknown as TransportInternals[]) {
    const connection = transport.iceTransport?.connection;
    for (const protocol of connection?.protocols ?? []) events.push(protocol.onDataReceived);
    events.push(connection?.onData, transport.onRtp);
  }
  for (const t of pc.getTransceivers()) for (const track of t.receiver.tracks) events.push(track.onReceiveRtp);
  return events.filter(isEvent);
}

/** Whether `leanEvent` changed this event. */
export function isLean(event: unknown): boolean {
  return typeof event === 'object' && event !== null && leaned.has(event);
}

/**
 * Leans every event on this peer connection's receive path that exists now.
 * Call it again once connected: ICE may add a protocol, a track comes later.
 * Returns how many events it changed.
 */
export function leanReceivePath(pc: RTCPeerConnection): number {
  let n = 0;
  for (const event of receivePathEvents(pc)) if (leanEvent(event)) n++;
  return n;
}
