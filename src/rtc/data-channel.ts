/**
 * The WHIP client's data channel, as earshot uses it: the channel the client
 * opened in its offer (`pc.createDataChannel()`), with limits on both
 * directions, since what a client sends is hostile input and what the server
 * sends must not flood a browser tab.
 *
 * Out (server → client): JSON text only, each message at most
 * `MAX_MESSAGE_BYTES` and at most the client's `a=max-message-size` (a larger
 * one is refused and counted, never sent for werift to throw away), at most
 * one channel message every `OUTBOUND_INTERVAL_MS` (so at most 10 in any second). Messages wait in a
 * bounded queue between sends; a message put with a key replaces the waiting
 * one with the same key (levels coalesce), and when several wait they leave
 * together as one `batch` message. Nothing is sent while the SCTP send
 * buffer holds more than `MAX_BUFFERED_BYTES` (a client that does not read).
 *
 * In (client → server): text of at most `MAX_MESSAGE_BYTES` UTF-8 bytes, at
 * most `INBOUND_PER_SECOND` per second (token bucket with as many in reserve);
 * binary messages, larger ones and the excess are dropped and counted.
 *
 * This file knows nothing of what the messages mean (core/client-feed.ts).
 */
import { performance } from 'node:perf_hooks';
import type { RTCDataChannel } from 'werift';

/**
 * Largest message accepted from the client, and largest single message sent
 * to it (UTF-8 bytes); smaller towards a client whose SDP declares a smaller
 * `a=max-message-size` (RFC 8841 §6): it cannot take more.
 */
export const MAX_MESSAGE_BYTES = 16 * 1024;
/** Client messages accepted per second (and in reserve for a burst). */
export const INBOUND_PER_SECOND = 50;
/** Least time between two messages sent to the client: 100 ms, at most 10 per second. */
export const OUTBOUND_INTERVAL_MS = 100;
/**
 * Bytes of messages waiting to be sent, at most; beyond it the oldest are
 * dropped (`droppedOut.queueFull`). The queue is bounded by bytes, not by
 * count: a burst of many small messages (a processor answering in a loop)
 * is what batches exist for, and a reading client takes up to
 * `MAX_BATCH_BYTES` every `OUTBOUND_INTERVAL_MS`, so a full queue leaves
 * within about 0.4 s.
 */
export const MAX_PENDING_BYTES = 256 * 1024;
/**
 * Messages waiting, at most (same policy): a backstop on the memory each
 * waiting message costs beyond its text, reached only by messages under 64
 * bytes (the shortest processor message is about 60).
 */
export const MAX_PENDING_MESSAGES = MAX_PENDING_BYTES / 64;
/** Largest batch sent as one channel message (browsers accept 256 KiB; werift and others 64 KiB). */
export const MAX_BATCH_BYTES = 64 * 1024;
/** While the SCTP send buffer holds more than this, nothing more is sent (the client is not reading). */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Version of the message format (`v` in every message). */
export const MESSAGE_VERSION = 1;

/** The channel's state: `none` when the offer had no (usable) data channel. */
export type ClientChannelState = 'none' | 'connecting' | 'open' | 'closed';

export interface ClientChannelStats {
  state: ClientChannelState;
  /** Label the client gave the channel (`createDataChannel(label)`), null before it opened. */
  label: string | null;
  /** Messages sent to the client (each message of a batch counts). */
  sent: number;
  /** Channel messages sent (a batch is one): at most 10 per second. */
  sends: number;
  /** Client messages accepted (delivered to `events$` and processors). */
  received: number;
  /** Client messages dropped, by reason. */
  droppedIn: { tooLarge: number; rateLimited: number; binary: number };
  /**
   * Messages for the client dropped, by reason: larger than 16 KiB or than
   * the client's `a=max-message-size`, not serializable as JSON, the queue
   * full (the channel not open yet or the client not reading), or the
   * channel closed before they could leave.
   */
  droppedOut: { tooLarge: number; unserializable: number; queueFull: number; closed: number };
}

/** Why `put` refused a message (it is counted in `droppedOut`), or `queued`. */
export type PutResult = 'queued' | 'too-large' | 'unserializable' | 'closed' | 'none';

interface Pending {
  json: string;
  /** UTF-8 bytes of `json`. */
  bytes: number;
  key: string | undefined;
  /** Dropped first when the queue is full (processor messages and events, not state changes). */
  droppable: boolean;
}

export interface ClientChannelOptions {
  /** A message the client sent, accepted: parsed JSON, or the text as it is when it does not parse. */
  onMessage(data: unknown): void;
  /** The channel opened (called once). */
  onOpen?(): void;
  /** The channel closed (called once; not called if it never opened). */
  onClose?(): void;
}

export class ClientChannel {
  #state: ClientChannelState;
  #channel: RTCDataChannel | undefined;
  readonly #options: ClientChannelOptions;
  readonly #queue: Pending[] = [];
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastSendAt = -Infinity;
  #tokens = INBOUND_PER_SECOND;
  #tokensAt = performance.now();
  readonly #stats = {
    sent: 0,
    sends: 0,
    received: 0,
    droppedIn: { tooLarge: 0, rateLimited: 0, binary: 0 },
    droppedOut: { tooLarge: 0, unserializable: 0, queueFull: 0, closed: 0 },
  };

  /**
   * `expected`: the offer's data channel was accepted, so the client will
   * open one; messages put before it opens wait for it (bounded). Without it
   * the channel stays `none` and `put` discards everything.
   */
  constructor(expected: boolean, options: ClientChannelOptions) {
    this.#state = expected ? 'connecting' : 'none';
    this.#options = options;
  }

  get state(): ClientChannelState {
    return this.#state;
  }

  /**
   * The werift channel the client opened. The first one is used; any other
   * the client opens is closed (one channel per session).
   */
  attach(channel: RTCDataChannel): void {
    if (this.#channel || this.#state === 'closed' || this.#state === 'none') {
      // Not from inside werift's announcement: it queues the channel's DCEP ACK after this returns, and
      // an ACK sent after the stream's reset reached a client that had dropped the channel (werift as the
      // client then threw "channel not found"). Closed once the ACK is on its way.
      setImmediate(() => channel.close());
      return;
    }
    this.#channel = channel;
    // What waited for the channel was measured against 16 KiB only: the client's own limit is known now.
    this.#dropTooLarge();
    channel.onMessage.subscribe((data) => this.#receive(data));
    channel.stateChanged.subscribe((state) => {
      if (state === 'open') this.#opened();
      else if (state === 'closed' || state === 'closing') this.close();
    });
    // werift announces a channel the client opened before marking it open.
    if (channel.readyState === 'open') this.#opened();
  }

  /**
   * Queues a message for the client (an object; `v` is added). A `key`
   * replaces the waiting message with the same key (coalescing). `droppable`
   * messages are dropped first when the queue is full. A message with a
   * field JSON cannot hold (undefined, a function, a symbol), or that JSON
   * cannot serialize at all, is `unserializable`. Never throws.
   */
  put(message: Record<string, unknown>, options: { key?: string; droppable?: boolean } = {}): PutResult {
    if (this.#state === 'none') return 'none';
    if (this.#state === 'closed') {
      this.#stats.droppedOut.closed++;
      return 'closed';
    }
    // JSON.stringify leaves out a field that is undefined, a function or a symbol: the
    // message would arrive without it (`send(undefined)` as a message with no `data`).
    if (Object.values(message).some(unrepresentable)) {
      this.#stats.droppedOut.unserializable++;
      return 'unserializable';
    }
    let json: string;
    try {
      json = JSON.stringify({ v: MESSAGE_VERSION, ...message });
    } catch {
      this.#stats.droppedOut.unserializable++;
      return 'unserializable';
    }
    if (typeof json !== 'string') {
      this.#stats.droppedOut.unserializable++;
      return 'unserializable';
    }
    const bytes = Buffer.byteLength(json);
    if (bytes > this.#messageLimit()) {
      this.#stats.droppedOut.tooLarge++;
      return 'too-large';
    }
    const same = options.key === undefined ? -1 : this.#queue.findIndex((p) => p.key === options.key);
    if (same >= 0) {
      this.#queuedBytes += bytes - this.#queue[same].bytes;
      this.#queue[same].json = json;
      this.#queue[same].bytes = bytes;
    } else {
      this.#queue.push({ json, bytes, key: options.key, droppable: options.droppable === true });
      this.#queuedBytes += bytes;
    }
    while (this.#queue.length > MAX_PENDING_MESSAGES || this.#queuedBytes > MAX_PENDING_BYTES) this.#dropOldest();
    this.#schedule();
    return 'queued';
  }

  stats(): ClientChannelStats {
    const s = this.#stats;
    return {
      state: this.#state,
      label: this.#channel?.label ?? null,
      sent: s.sent,
      sends: s.sends,
      received: s.received,
      droppedIn: { ...s.droppedIn },
      droppedOut: { ...s.droppedOut },
    };
  }

  /** Stops sending and receiving; what still waits is dropped (`droppedOut.closed`). */
  close(): void {
    if (this.#state === 'closed' || this.#state === 'none') return;
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stats.droppedOut.closed += this.#queue.length;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    try {
      if (this.#channel && this.#channel.readyState !== 'closed') this.#channel.close();
    } catch {
      // closing a channel whose transport is gone: nothing left to do
    }
    if (wasOpen) this.#options.onClose?.();
  }

  #opened(): void {
    if (this.#state !== 'connecting') return;
    this.#state = 'open';
    this.#options.onOpen?.();
    this.#schedule();
  }

  #receive(data: string | Buffer): void {
    if (this.#state !== 'open') return;
    const s = this.#stats.droppedIn;
    if (typeof data !== 'string') {
      s.binary++;
      return;
    }
    // UTF-8 bytes are at least the UTF-16 length / 2 … cheap test first, exact one only near the limit.
    if (data.length > MAX_MESSAGE_BYTES || Buffer.byteLength(data) > MAX_MESSAGE_BYTES) {
      s.tooLarge++;
      return;
    }
    const now = performance.now();
    this.#tokens = Math.min(INBOUND_PER_SECOND, this.#tokens + ((now - this.#tokensAt) * INBOUND_PER_SECOND) / 1000);
    this.#tokensAt = now;
    if (this.#tokens < 1) {
      s.rateLimited++;
      return;
    }
    this.#tokens--;
    this.#stats.received++;
    let value: unknown = data;
    try {
      value = JSON.parse(data);
    } catch {
      // not JSON: delivered as the text it is
    }
    try {
      this.#options.onMessage(value);
    } catch {
      // a listener's failure is not the channel's
    }
  }

  /**
   * The largest message the client takes: 16 KiB, or less when its offer's
   * `a=max-message-size` says so (0 there means no limit; werift reads a
   * missing one as 64 KiB, RFC 8841 §6.1). Before the channel is attached,
   * 16 KiB: what is put then is measured again when it is.
   */
  #messageLimit(): number {
    const remote = this.#channel?.sctp.remoteMaxMessageSize ?? 0;
    return remote > 0 ? Math.min(MAX_MESSAGE_BYTES, remote) : MAX_MESSAGE_BYTES;
  }

  /** Drops (as `tooLarge`) every waiting message the client would refuse. */
  #dropTooLarge(): void {
    const limit = this.#messageLimit();
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      if (this.#queue[i].bytes <= limit) continue;
      this.#queuedBytes -= this.#queue[i].bytes;
      this.#queue.splice(i, 1);
      this.#stats.droppedOut.tooLarge++;
    }
  }

  #dropOldest(): void {
    const at = this.#queue.findIndex((p) => p.droppable);
    const [dropped] = this.#queue.splice(at >= 0 ? at : 0, 1);
    this.#queuedBytes -= dropped.bytes;
    this.#stats.droppedOut.queueFull++;
  }

  /** Arms the send timer for the earliest moment the pacing allows, if anything waits. */
  #schedule(): void {
    if (this.#state !== 'open' || this.#timer || this.#queue.length === 0) return;
    const wait = Math.max(0, this.#lastSendAt + OUTBOUND_INTERVAL_MS - performance.now());
    // Even when a send is allowed now, wait a turn: what is put in the same tick leaves together.
    this.#timer = setTimeout(() => this.#flush(), Math.ceil(wait));
    this.#timer.unref();
  }

  #flush(): void {
    this.#timer = undefined;
    const channel = this.#channel;
    if (this.#state !== 'open' || !channel || this.#queue.length === 0) return;
    const now = performance.now();
    // Timers may fire a little early: never closer than the interval.
    if (now - this.#lastSendAt < OUTBOUND_INTERVAL_MS) return this.#schedule();
    if (channel.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.#lastSendAt = now; // try again one interval later
      return this.#schedule();
    }
    const limit = Math.min(MAX_BATCH_BYTES, channel.sctp.remoteMaxMessageSize || MAX_BATCH_BYTES);
    let json: string;
    let count: number;
    if (this.#queue.length === 1) {
      json = this.#queue[0].json;
      count = 1;
    } else {
      // {"v":1,"type":"batch","messages":[m1,m2,…]}: as many as fit, in order.
      const head = `{"v":${MESSAGE_VERSION},"type":"batch","messages":[`;
      let size = head.length + 2;
      count = 0;
      while (count < this.#queue.length) {
        const next = this.#queue[count].bytes + (count > 0 ? 1 : 0);
        if (count > 0 && size + next > limit) break;
        size += next;
        count++;
      }
      json = count === 1 ? this.#queue[0].json : `${head}${this.#queue.slice(0, count).map((p) => p.json).join(',')}]}`;
    }
    const sent = this.#queue.splice(0, count);
    for (const p of sent) this.#queuedBytes -= p.bytes;
    this.#lastSendAt = now;
    try {
      channel.send(json);
      this.#stats.sends++;
      this.#stats.sent += count;
    } catch {
      // A channel that just closed (every message fits the client's max-message-size: see #messageLimit)
      this.#stats.droppedOut.closed += count;
    }
    this.#schedule();
  }
}

/** A value JSON.stringify would leave out of an object (so the field would be missing on arrival). */
function unrepresentable(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}
