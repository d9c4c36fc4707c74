/**
 * Who may start a session now: none while shutting down, one placement per
 * peer at a time, at most `maxSessions` live and `maxPendingSessions` not yet
 * connected, and (unless off) only while the measured load leaves room
 * (`AdmissionControl`). A live peer publishing again may replace itself.
 */
import { errors } from '../errors.js';
import type { AdmissionControl } from './admission.js';
import type { PeerEntry, PeerRegistry } from './peer-registry.js';

export interface SessionLimits {
  /** Most concurrent sessions. */
  maxSessions: number;
  /** Most sessions being answered or not yet connected. */
  maxPendingSessions: number;
}

export class SessionGate {
  readonly #peers: PeerRegistry;
  readonly #limits: SessionLimits;
  readonly #load: AdmissionControl | undefined;
  /** Peers whose offer is being answered now: placement of a peer is one step at a time. */
  readonly #placing = new Set<string>();
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
  beginPlacement(peer: string): void {
    this.checkNotPlacing(peer);
    this.#placing.add(peer);
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
   * not connected (those being answered right now included) or past the
   * measured load; returns the live session a new one replaces, if the caller
   * may replace it.
   */
  admit(peer: string, mayReplace: boolean): PeerEntry | undefined {
    if (this.#closed) throw errors.SHUTTING_DOWN();
    const existing = this.#peers.get(peer);
    if (existing && !mayReplace) throw errors.PEER_ACTIVE(peer);
    const { maxSessions, maxPendingSessions } = this.#limits;
    // #placing holds this peer already; the others are offers in negotiation.
    const self = this.#placing.has(peer) ? 1 : 0;
    const negotiating = this.#placing.size - self;
    if (!existing && this.#peers.size + negotiating >= maxSessions) throw errors.OVERLOADED(maxSessions);
    if (this.pendingSessions() - self >= maxPendingSessions) throw errors.OVERLOADED(maxPendingSessions, 'pending');
    // A replacement takes the place of a stream already counted in the load.
    const overloaded = existing ? [] : (this.#load?.check() ?? []);
    if (overloaded.length > 0) throw errors.OVERLOADED(overloaded, 'load');
    return existing;
  }

  /** Counts a new (not replacing) session in the load until its own cost shows in the measurements. */
  admitted(): void {
    this.#load?.admitted();
  }

  /** Sessions being answered or not yet connected. */
  pendingSessions(): number {
    let connecting = 0;
    for (const e of this.#peers.live()) if (e.session.state === 'connecting') connecting++;
    return connecting + this.#placing.size;
  }
}
