/**
 * Placement: which engine a WHIP session runs on, and who owns a live peer or
 * session. The front asks it for every POST (`begin`) and for every request
 * that must reach one session's engine (`ownerOfPeer`, `ownerOfSession`).
 *
 * The interface is what a multi-machine cluster (nodes sharing state in Redis) needs too:
 * engines become `node/slot` ids, the ownership maps and the per-peer lock move
 * to Redis (SET NX with a TTL for the lock, hashes for the maps, load reports
 * as keys with a TTL heartbeat). That is why the queries are asynchronous
 * although the local implementation answers at once.
 *
 * The rules, wherever the state lives:
 * - a live peer is replaced on the engine that owns it, never started on a
 *   second one (peer ids are unique across the machine or cluster);
 * - one placement per peer at a time: a concurrent POST for the same peer gets
 *   `EARSHOT_PEER_BUSY`, as it does inside one engine (`SessionGate` in src/core/session-gate.ts);
 * - a new peer goes to the least-loaded engine that accepts sessions, engines
 *   whose measured load (admission) leaves room first. Load counts the
 *   sessions the placement knows each engine owns plus the offers being
 *   answered there right now, so a burst of POSTs spreads before the engines'
 *   next reports arrive.
 */
import { errors } from '../errors.js';

/** What an engine last said about itself (pushed every `REPORT_INTERVAL_MS`). */
export interface EngineLoad {
  /** Engine id: the slot on this machine (`"0"`, `"1"`, …); `node/slot` in a cluster. */
  engine: string;
  /** Up and taking sessions (false while starting, draining or after it exited). */
  accepting: boolean;
  /** Its admission control has room for another stream (measured load; true with admission off). */
  ready: boolean;
  /** Live sessions it reported. */
  sessions: number;
  /** Sessions being answered or not yet connected. */
  pending: number;
  /** Share of its DSP workers' time spent processing, 0..1 (tie-breaker between equally loaded engines). */
  workerUtilization: number;
}

/** One POST's placement of one peer; holds the peer's lock until `release()`. */
export interface PlacementTicket {
  /** The engine that owns the peer now (a live peer being replaced), if any. */
  readonly owner: string | undefined;
  /**
   * The next engine to offer the session to, or undefined when none is left:
   * the owner alone for a live peer; otherwise the best engine not tried yet,
   * chosen with the loads as they are at this call. The engine counts as
   * answering an offer (its load + 1) until the next call or `release()`.
   */
  next(): string | undefined;
  /** `engine` answered with `session`: it owns the peer from now on. */
  placed(engine: string, session: string): void;
  /** Ends the placement and frees the peer's lock. Idempotent. */
  release(): void;
}

export interface Placement {
  /** Starts placing `peer`; throws `EARSHOT_PEER_BUSY` while another placement of it runs. */
  begin(peer: string): Promise<PlacementTicket>;
  /** The engine a live peer's session runs on. */
  ownerOfPeer(peer: string): Promise<string | undefined>;
  /** The engine a live session runs on. */
  ownerOfSession(session: string): Promise<string | undefined>;
  /** An engine's load report (also how engines join). */
  report(load: EngineLoad): void;
  /** An engine says a session started (it may be one `placed` recorded already). */
  sessionStarted(engine: string, peer: string, session: string): void;
  /** An engine says a session ended. */
  sessionEnded(engine: string, peer: string, session: string): void;
  /** An engine is gone: forget what it owned; returns its sessions (they ended with it). */
  engineDown(engine: string): Array<{ peer: string; session: string }>;
}

/** An engine (or, in a cluster, a node) as placement weighs it. */
export interface EngineEntry {
  load: EngineLoad;
  /** Offers being answered on it now (tickets whose `next()` chose it). */
  answering: number;
  /** Live sessions it owns, as far as this placement knows. */
  owned: number;
}

/** Placement among the engine processes of one machine, state in memory (the front is its only user). */
export class LocalPlacement implements Placement {
  readonly #engines = new Map<string, EngineEntry>();
  readonly #peers = new Map<string, { engine: string; session: string }>();
  readonly #sessions = new Map<string, { engine: string; peer: string }>();
  readonly #placing = new Set<string>();

  async begin(peer: string): Promise<PlacementTicket> {
    if (this.#placing.has(peer)) throw errors.PEER_BUSY(peer);
    this.#placing.add(peer);
    const owner = this.#peers.get(peer)?.engine;
    const tried = new Set<string>();
    let current: EngineEntry | undefined;
    let done = false;
    const leave = () => {
      if (current) current.answering--;
      current = undefined;
    };
    return {
      owner,
      next: () => {
        leave();
        if (done) return undefined;
        const engine = owner !== undefined ? (tried.has(owner) ? undefined : owner) : this.#best(tried);
        if (engine === undefined) return undefined;
        tried.add(engine);
        current = this.#engines.get(engine);
        if (current) current.answering++;
        return engine;
      },
      placed: (engine, session) => this.#own(engine, peer, session),
      release: () => {
        if (done) return;
        done = true;
        leave();
        this.#placing.delete(peer);
      },
    };
  }

  /**
   * Live sessions this placement knows of: placed (a 201 came back) or
   * announced by their engine. Both arrive before the engines' next load
   * report counts them.
   */
  get sessions(): number {
    return this.#sessions.size;
  }

  /**
   * The sessions ahead of `peer`'s offer (a new peer's, being placed): the
   * live peers, and the new peers (not reconnects, not announced by their
   * engine yet) whose offers came before it. Counted in arrival order, so of
   * several offers at once for the last place, the first gets it.
   */
  sessionsAhead(peer: string): number {
    let n = this.#peers.size;
    for (const p of this.#placing) {
      if (p === peer) break;
      if (!this.#peers.has(p)) n++;
    }
    return n;
  }

  /** Peers being placed right now (their offers are on their way to, or being answered by, an engine). */
  get placing(): number {
    return this.#placing.size;
  }

  async ownerOfPeer(peer: string): Promise<string | undefined> {
    return this.#peers.get(peer)?.engine;
  }

  async ownerOfSession(session: string): Promise<string | undefined> {
    return this.#sessions.get(session)?.engine;
  }

  report(load: EngineLoad): void {
    const entry = this.#engines.get(load.engine);
    if (entry) entry.load = { ...load };
    else this.#engines.set(load.engine, { load: { ...load }, answering: 0, owned: 0 });
  }

  sessionStarted(engine: string, peer: string, session: string): void {
    this.#own(engine, peer, session);
  }

  sessionEnded(engine: string, peer: string, session: string): void {
    const known = this.#sessions.get(session);
    if (!known || known.engine !== engine) return;
    this.#sessions.delete(session);
    this.#count(engine, -1);
    // A replacement may own the peer already: only the session that ended lets go of it.
    if (this.#peers.get(peer)?.session === session) this.#peers.delete(peer);
  }

  engineDown(engine: string): Array<{ peer: string; session: string }> {
    const lost: Array<{ peer: string; session: string }> = [];
    for (const [session, s] of this.#sessions) {
      if (s.engine !== engine) continue;
      this.#sessions.delete(session);
      if (this.#peers.get(s.peer)?.session === session) this.#peers.delete(s.peer);
      lost.push({ peer: s.peer, session });
    }
    const entry = this.#engines.get(engine);
    if (entry) {
      entry.owned = 0;
      entry.load = { ...entry.load, accepting: false, ready: false, sessions: 0, pending: 0 };
    }
    return lost;
  }

  #own(engine: string, peer: string, session: string): void {
    if (this.#sessions.get(session)?.engine === engine) return;
    this.#sessions.set(session, { engine, peer });
    this.#peers.set(peer, { engine, session });
    this.#count(engine, +1);
  }

  #count(engine: string, delta: number): void {
    const entry = this.#engines.get(engine);
    if (entry) entry.owned = Math.max(0, entry.owned + delta);
  }

  /** The accepting engine not yet tried that comes first in `compareCandidates` (the first one reported wins a tie). */
  #best(exclude: ReadonlySet<string>): string | undefined {
    let best: EngineEntry | undefined;
    for (const e of this.#engines.values()) {
      if (!e.load.accepting || exclude.has(e.load.engine)) continue;
      if (!best || compareCandidates(e, best) < 0) best = e;
    }
    return best?.load.engine;
  }
}

/**
 * The one order in which candidates (engines of a machine, nodes of a cluster)
 * are offered a session; negative: `a` first. One whose admission has room
 * (ready) first, then the fewest sessions (owned + offers being answered),
 * then clearly idler DSP workers: utilization is compared in steps of 0.1,
 * because idle candidates differ by noise and a tie should stay a tie (the
 * cluster gives it to the node that received the POST; one machine to the
 * first engine). 0: equal.
 */
export function compareCandidates(a: EngineEntry, b: EngineEntry): number {
  if (a.load.ready !== b.load.ready) return a.load.ready ? -1 : 1;
  const load = a.owned + a.answering - (b.owned + b.answering);
  if (load !== 0) return load;
  return Math.round(a.load.workerUtilization * 10) - Math.round(b.load.workerUtilization * 10);
}
