/**
 * Who listens to live peers: WHEP players (an operator hears a peer's
 * processed audio) and `GET /peers/:peer/audio` sockets (its PCM). The
 * peer's worker encodes a branch to Opus once (`PeerPipeline.encodedAudio$`),
 * however many listen, and only while someone does; each WHEP listener gets
 * the packets over its own peer connection. A listener ends with its peer's
 * stream, on DELETE, when its player goes away, or at shutdown; it never
 * affects the peer's stream. Both kinds count against the same limits
 * (`maxListenersPerPeer`, `maxListeners`): each costs the main thread a
 * copy of the stream.
 */
import type { Subscription } from 'rxjs';
import { errors, isEarshotError } from '../errors.js';
import type { IceOptions } from '../rtc/ice-config.js';
import { ListenerSession, type ListenerEndReason } from '../rtc/listener-session.js';
import type { PeerEntry } from './peer-registry.js';

/** `listenerTimeoutMs` by default, as a WHEP listener's RTCP timeout is. */
const LISTENER_TIMEOUT_MS = 25_000;

export interface ListenerLimits {
  /** Most listeners (WHEP players and audio sockets) of one peer. Default 8. */
  maxListenersPerPeer?: number;
  /** Most listeners on the server. Default 64. */
  maxListeners?: number;
}

export const DEFAULT_MAX_LISTENERS_PER_PEER = 8;
export const DEFAULT_MAX_LISTENERS = 64;

export interface ListenerInfo {
  id: string;
  peer: string;
  branch: string;
  state: ListenerSession['state'];
  packetsSent: number;
  /** Packets not sent because they came too late to play (the start of a sender's pause, coded only when it resumed). */
  packetsLate: number;
  createdAt: string;
}

interface Listener {
  session: ListenerSession;
  peer: string;
  branch: string;
  subscription?: Subscription;
}

export class Listeners {
  readonly #byId = new Map<string, Listener>();
  /** Audio sockets and WHEP offers being answered, by peer (they have no session URL yet: only their count matters here). */
  readonly #sockets = new Map<string, number>();
  readonly #options: ListenerLimits & { ice?: IceOptions; connectTimeoutMs?: number; rtcpTimeoutMs?: number; onEnd?(info: ListenerInfo, reason: ListenerEndReason): void };

  /** Set on an engine process (serve --processes): the machine's limit, of which `maxListeners` is this engine's share. */
  #machine?: { engines: number; limit: number };

  constructor(options: ListenerLimits & { ice?: IceOptions; connectTimeoutMs?: number; rtcpTimeoutMs?: number; onEnd?(info: ListenerInfo, reason: ListenerEndReason): void }) {
    this.#options = options;
  }

  /**
   * Answers a player's offer for `entry`'s audio (branch: the pipeline's
   * first by default). Throws `EARSHOT_BRANCH_NOT_FOUND`,
   * `EARSHOT_BRANCH_NOT_ENCODABLE`, `EARSHOT_LISTENERS_FULL` or an offer
   * error before anything is opened.
   */
  async listen(entry: PeerEntry, offer: string, branch?: string): Promise<ListenerSession> {
    // What can never be accepted first (400, 422, 404): it must not be told to retry at a limit (503).
    const prepared = ListenerSession.prepareOffer(offer);
    const branches = entry.pipeline.branches;
    const target = branch === undefined ? branches[0] : branches.find((b) => b.name === branch);
    if (!target) throw errors.BRANCH_NOT_FOUND(entry.peer, branch ?? '', branches.map((b) => b.name));
    // Checked before answering: a branch Opus cannot code throws here, with no socket opened.
    const packets$ = entry.pipeline.encodedAudio$(target.name);
    // The place is held while the answer is made, so concurrent offers cannot all pass the check.
    const release = this.#hold(entry.peer);
    const listener: Listener = { peer: entry.peer, branch: target.name, session: undefined as unknown as ListenerSession };
    let session: ListenerSession;
    try {
      session = await ListenerSession.answer(prepared, {
        ice: this.#options.ice,
        connectTimeoutMs: this.#options.connectTimeoutMs,
        rtcpTimeoutMs: this.#options.rtcpTimeoutMs,
        channels: target.channels === 2 ? 2 : 1,
        onEnd: (reason) => {
          listener.subscription?.unsubscribe();
          this.#byId.delete(session.id);
          this.#options.onEnd?.(this.#info(listener), reason);
        },
      });
    } finally {
      release();
    }
    listener.session = session;
    // The peer may have ended while the answer was made: then the stream has completed, and so does this.
    if (entry.session.state === 'ended') {
      await session.close('stream-ended');
      throw errors.PEER_NOT_FOUND(entry.peer);
    }
    this.#byId.set(session.id, listener);
    listener.subscription = packets$.subscribe({
      next: (frame) => session.send(frame),
      complete: () => void session.close('stream-ended'),
    });
    return session;
  }

  /**
   * How long (ms) a listener may stay silent before it is taken for gone
   * (`listenerTimeoutMs`): a WHEP player without an RTCP report, an audio
   * socket without an answer to its pings. 0: never.
   */
  get timeoutMs(): number {
    return this.#options.rtcpTimeoutMs ?? LISTENER_TIMEOUT_MS;
  }

  /**
   * @internal An engine process of `earshot serve --processes` holds `maxListeners` as its
   * share of the machine's `limit`, shared out among `engines`: its refusals say so.
   */
  shareOfMachine(engines: number, limit: number): void {
    this.#machine = { engines, limit };
  }

  /** Throws `EARSHOT_LISTENERS_FULL` when `peer` (or the server) has no room for another listener. */
  checkRoom(peer: string): void {
    const perPeer = this.#options.maxListenersPerPeer ?? DEFAULT_MAX_LISTENERS_PER_PEER;
    const total = this.#options.maxListeners ?? DEFAULT_MAX_LISTENERS;
    if (this.count() >= total) throw errors.LISTENERS_FULL('The server', total, this.#machine);
    if (this.count(peer) >= perPeer) throw errors.LISTENERS_FULL(`Peer "${peer}"`, perPeer);
  }

  /**
   * Takes a listener slot of `peer` for an audio socket (`EARSHOT_LISTENERS_FULL`
   * when there is none); the returned function gives it back (idempotent).
   */
  takeSocketSlot(peer: string): () => void {
    return this.#hold(peer);
  }

  /**
   * Takes a place of `peer` that only its count shows (an audio socket, or a
   * WHEP offer being answered), or throws `EARSHOT_LISTENERS_FULL`; the
   * returned function gives it back (idempotent).
   */
  #hold(peer: string): () => void {
    this.checkRoom(peer);
    this.#sockets.set(peer, (this.#sockets.get(peer) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const n = (this.#sockets.get(peer) ?? 1) - 1;
      if (n > 0) this.#sockets.set(peer, n);
      else this.#sockets.delete(peer);
    };
  }

  /** Ends a listener by id (WHEP DELETE). */
  async end(id: string, reason: ListenerEndReason = 'deleted'): Promise<ListenerInfo> {
    const listener = this.#byId.get(id);
    if (!listener) throw errors.SESSION_NOT_FOUND(id);
    const info = this.#info(listener);
    await listener.session.close(reason);
    return info;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /** Listeners of `peer` (all peers without one). */
  list(peer?: string): ListenerInfo[] {
    return [...this.#byId.values()].filter((l) => peer === undefined || l.peer === peer).map((l) => this.#info(l));
  }

  /** WHEP listeners and audio sockets of `peer` (of the server without one). */
  count(peer?: string): number {
    if (peer === undefined) return this.#byId.size + [...this.#sockets.values()].reduce((a, b) => a + b, 0);
    let n = this.#sockets.get(peer) ?? 0;
    for (const l of this.#byId.values()) if (l.peer === peer) n++;
    return n;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#byId.keys()].map((id) => this.end(id, 'shutdown').catch((e: unknown) => (isEarshotError(e) ? undefined : Promise.reject(e)))));
  }

  #info(l: Listener): ListenerInfo {
    return { id: l.session.id, peer: l.peer, branch: l.branch, state: l.session.state, packetsSent: l.session.packetsSent, packetsLate: l.session.packetsLate, createdAt: new Date(l.session.createdAt).toISOString() };
  }
}
