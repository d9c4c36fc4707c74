/**
 * Who may start a session now: none while shutting down, one placement per
 * peer at a time, at most `maxSessions` live and `maxPendingSessions` not yet
 * connected — of those at most `maxPendingSessionsPerClient` from one client,
 * so that one client's offers that never connect cannot take every pending
 * place and lock the other publishers out until the connect timeout — and
 * (unless off) only while the measured load leaves room (`AdmissionControl`).
 * A live peer publishing again may replace itself.
 */
import { errors } from '../errors.js';
import type { PeerSession } from '../rtc/peer-session.js';
import type { AdmissionControl } from './admission.js';
import type { PeerEntry, PeerRegistry } from './peer-registry.js';

export interface SessionLimits {
  /** Most concurrent sessions. */
  maxSessions: number;
  /** Most sessions being answered or not yet connected. */
  maxPendingSessions: number;
  /** Most sessions being answered or not yet connected from one client (the `client` of an offer). */
  maxPendingSessionsPerClient: number;
}

export class SessionGate {
  readonly #peers: PeerRegistry;
  readonly #limits: SessionLimits;
  readonly #load: AdmissionControl | undefined;
  /**
   * Peers whose offer is being answered now (placement of a peer is one step
   * at a time), with the client each offer is from (undefined: not counted per client).
   */
  readonly #placing = new Map<string, string | undefined>();
  /** The client each answered session is from, while it may still be pending (weak: ended sessions go with their entries). */
  readonly #clientOf = new WeakMap<PeerSession, string>();
  #closed = false;

  constructor(peers: PeerRegistry, limits: SessionLimits, load: AdmissionControl | undefined) {
    this.#peers = peers;
    this.#limits = limits;
    this.#load = load;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Refuses every session from now on (`EARSHOT_SHUTTING_DOWN`). */
  close(): void {
    this.#closed = true;
  }

  /**
   * Marks `peer` as being placed until `endPlacement`: concurrent offers for
   * one peer would otherwise each build a session and all but one would be
   * orphaned (sockets held, never counted). `EARSHOT_PEER_BUSY` if it already is.
   */
  beginPlacement(peer: string, client?: string): void {
    this.checkNotPlacing(peer);
    this.#placing.set(peer, client);
  }

  /**
   * `session` answers the offer being placed for `peer`: from now on it is
   * the session, not the placement, that counts against the offer's client,
   * until it connects or ends. Called just before the session is registered.
   */
  answered(peer: string, session: PeerSession): void {
    const client = this.#placing.get(peer);
    if (client === undefined) return;
    this.#clientOf.set(session, client);
    this.#placing.set(peer, undefined);
  }

  endPlacement(peer: string): void {
    this.#placing.delete(peer);
  }

  /** `EARSHOT_PEER_BUSY` while an offer for `peer` is being answered. */
  checkNotPlacing(peer: string): void {
    if (this.#placing.has(peer)) throw errors.PEER_BUSY(peer);
  }

  /**
   * Refuses a new session while shutting down, full, with too many that have
   * not connected (those being answered right now included) in all or from
   * `client`, or past the measured load; returns the live session a new one
   * replaces, if the caller may replace it.
   */
  admit(peer: string, mayReplace: boolean, client?: string): PeerEntry | undefined {
    if (this.#closed) throw errors.SHUTTING_DOWN();
    const existing = this.#peers.get(peer);
    if (existing && !mayReplace) throw errors.PEER_ACTIVE(peer);
    const { maxSessions, maxPendingSessions, maxPendingSessionsPerClient } = this.#limits;
    // #placing holds this peer already; the others are offers in negotiation.
    const self = this.#placing.has(peer) ? 1 : 0;
    if (!existing && this.#peers.size + this.#newPlacements(peer) >= maxSessions) throw errors.OVERLOADED(maxSessions);
    // A peer published again (a quick reconnect) ends its pending session: the new one takes that place, not another.
    const pendingReplaced = existing?.session.state === 'connecting' ? 1 : 0;
    if (client !== undefined) {
      const replaced = pendingReplaced === 1 && this.#clientOf.get(existing!.session) === client ? 1 : 0;
      const mine = this.#placing.get(peer) === client ? self : 0;
      if (this.pendingFrom(client) - mine - replaced >= maxPendingSessionsPerClient) throw errors.TOO_MANY_PENDING(maxPendingSessionsPerClient);
    }
    if (this.pendingSessions() - self - pendingReplaced >= maxPendingSessions) throw errors.OVERLOADED(maxPendingSessions, 'pending');
    // A replacement takes the place of a stream already counted in the load.
    const overloaded = existing ? [] : (this.#load?.check() ?? []);
    if (overloaded.length > 0) throw errors.OVERLOADED(overloaded, 'load');
    return existing;
  }

  /**
   * Offers being answered (for peers other than `except`) that will take a place
   * of their own: a live peer publishing again replaces its session, and is
   * counted in the registry already (counting it twice refused another peer
   * the last place for as long as the replacement took).
   */
  #newPlacements(except?: string): number {
    let n = 0;
    for (const p of this.#placing.keys()) if (p !== except && !this.#peers.get(p)) n++;
    return n;
  }

  /**
   * Why a new peer's offer would be refused now by the counts (not by the
   * measured load): shutting down, or at `maxSessions` or `maxPendingSessions`.
   * Empty when there is room. A peer publishing again is not held back by them.
   */
  fullReasons(): string[] {
    const reasons: string[] = [];
    const { maxSessions, maxPendingSessions } = this.#limits;
    if (this.#closed) reasons.push('shutting down');
    const sessions = this.#peers.size + this.#newPlacements();
    if (sessions >= maxSessions) reasons.push(`${sessions} sessions, the most allowed (--max-sessions ${maxSessions})`);
    const pending = this.pendingSessions();
    if (pending >= maxPendingSessions) reasons.push(`${pending} sessions not yet connected, the most allowed (--max-pending-sessions ${maxPendingSessions})`);
    return reasons;
  }

  /** Counts a new (not replacing) session in the load until its own cost shows in the measurements, while `running()`. */
  admitted(running: () => boolean): void {
    this.#load?.admitted(running);
  }

  /** Sessions being answered or not yet connected. */
  pendingSessions(): number {
    let connecting = 0;
    for (const e of this.#peers.live()) if (e.session.state === 'connecting') connecting++;
    return connecting + this.#placing.size;
  }

  /** Sessions being answered or not yet connected from `client` (counted like `pendingSessions`). */
  pendingFrom(client: string): number {
    let n = 0;
    for (const e of this.#peers.live()) if (e.session.state === 'connecting' && this.#clientOf.get(e.session) === client) n++;
    for (const c of this.#placing.values()) if (c === client) n++;
    return n;
  }
}
