/**
 * Placement across the nodes of a cluster, state in Redis: the same
 * `Placement` contract as one machine's engines (src/cluster/placement.ts),
 * with nodes in the place of engines. Each node then places the session on
 * one of its own engines with its `LocalPlacement`: two levels, so that the
 * cluster state holds one entry per node (not per engine) and a node's
 * engines can restart without the cluster noticing.
 *
 * - `begin(peer)` takes the cluster-wide per-peer lock (`SET NX PX`); its
 *   token goes with the offer when it is placed on another node, which checks
 *   it, so only the lock's holder can place a session there;
 * - a live peer is placed on the node that owns it (replaced there), never on a second one;
 *   so nothing is placed while Redis has lost that knowledge (another epoch
 *   than this node joined under, or the hold a node sets when it notices a
 *   FLUSHALL) and the nodes write it back;
 * - a new peer goes to the least-loaded accepting node, by the very order
 *   engines are chosen in (`compareCandidates` in placement.ts: ready first,
 *   fewest sessions, idler workers), this node winning ties (no hop). A node's load is its last heartbeat (at most a second old)
 *   plus the offers this node sent it since, so a burst spreads at once;
 * - ownership (peer → node, session → node) is written by the node that runs
 *   the session, when its engine reports it started, and removed when it ends.
 */
import { compareCandidates, type EngineEntry, type EngineLoad, type Placement, type PlacementTicket } from './placement.js';
import type { ClusterState, NodeRecord } from './cluster-state.js';
import { errors } from '../errors.js';

/** A cluster placement: the lock's token proves it to the node the session goes to. */
export interface ClusterTicket extends PlacementTicket {
  readonly token: string;
  /** The public URL of a node the ticket may return. */
  urlOf(node: string): string | undefined;
  /**
   * The owner refused or reset the connection (no process serves its URL): its
   * session is ending with it (an engine without its front drains and exits),
   * so the peer goes to another node, as a new one would, instead of waiting
   * for the owner's registry entry to expire.
   */
  ownerUnreachable(): void;
}

/** What a node tells its placement about itself. */
export interface PlacingNode {
  /** Why its registry entry may be missing (its heartbeat's error), for the refusal. */
  whyUnregistered?(): string | undefined;
  /** The epoch it last joined under (undefined before its first join). */
  epoch?(): string | undefined;
}

/** How long a placement this node made counts against its target if no newer heartbeat arrives, ms. */
const RECENT_MS = 5000;

export class RedisPlacement implements Placement {
  readonly #state: ClusterState;
  readonly #self: string;
  readonly #instance: string;
  readonly #selfLoad: () => EngineLoad | undefined;
  readonly #node: PlacingNode;
  #reported: EngineLoad | undefined;
  /** Offers this node is sending to each node right now. */
  readonly #answering = new Map<string, number>();
  /** When this node placed sessions on each node (they count until that node's heartbeat shows them). */
  readonly #recent = new Map<string, number[]>();
  /** Live sessions on this node: session → peer (what a reconnection writes back). */
  readonly #mine = new Map<string, string>();

  /**
   * @param self this node's id
   * @param instance the `instance` its registry entry names (its locks name it: a restarted node's are taken over)
   * @param selfLoad this node's load now (its engines report every 250 ms: fresher than its registry entry)
   * @param node what the node knows of its place in the cluster (default: nothing)
   */
  constructor(state: ClusterState, self: string, instance: string, selfLoad: () => EngineLoad | undefined, node: PlacingNode = {}) {
    this.#state = state;
    this.#self = self;
    this.#instance = instance;
    this.#selfLoad = selfLoad;
    this.#node = node;
  }

  async begin(peer: string): Promise<ClusterTicket> {
    const token = await this.#state.lock(peer, { node: this.#self, instance: this.#instance });
    let nodes: NodeRecord[];
    let owner: string | undefined;
    try {
      let hold: { held: boolean; epoch: string | undefined };
      [nodes, hold] = await Promise.all([this.#state.nodes(), this.#state.placementHold()]);
      // Not registered itself, the node is out of the cluster as the others see it (Redis refuses its heartbeat,
      // or lost its data a moment ago): it cannot place safely, and "no node has room" would be the wrong answer.
      if (!nodes.some((n) => n.id === this.#self)) {
        const why = this.#node.whyUnregistered?.();
        throw errors.CLUSTER_UNAVAILABLE(`this node ("${this.#self}") is not registered in Redis${why ? `: ${why}` : ''}`);
      }
      // Redis lost its data and not every node has written back what it runs (a node noticed and holds placements, or
      // this one has not rejoined under the new epoch yet): a peer of theirs would look unowned and run twice.
      const joinedUnder = this.#node.epoch?.();
      if (hold.held || (joinedUnder !== undefined && hold.epoch !== joinedUnder)) throw errors.CLUSTER_UNAVAILABLE("Redis lost the cluster's data a moment ago (flushed, evicted or restarted empty): the nodes are writing back the sessions they run");
      owner = await this.#liveOwner(peer, nodes);
    } catch (e) {
      await this.#state.unlock(peer, token);
      throw e;
    }
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const tried = new Set<string>();
    let current: string | undefined;
    let done = false;
    const leave = () => {
      if (current !== undefined) this.#answering.set(current, (this.#answering.get(current) ?? 1) - 1);
      current = undefined;
    };
    return {
      get owner() {
        return owner;
      },
      ownerUnreachable: () => {
        owner = undefined;
      },
      token,
      urlOf: (node) => byId.get(node)?.url,
      next: () => {
        leave();
        if (done) return undefined;
        const node = owner !== undefined ? (tried.has(owner) ? undefined : owner) : this.#best(nodes, tried);
        if (node === undefined) return undefined;
        tried.add(node);
        current = node;
        this.#answering.set(node, (this.#answering.get(node) ?? 0) + 1);
        return node;
      },
      placed: (node) => {
        const times = (this.#recent.get(node) ?? []).filter((t) => Date.now() - t < RECENT_MS);
        times.push(Date.now());
        this.#recent.set(node, times);
      },
      release: () => {
        if (done) return;
        done = true;
        leave();
        void this.#state.unlock(peer, token);
      },
    };
  }

  async ownerOfPeer(peer: string): Promise<string | undefined> {
    return this.#liveOwner(peer, await this.#state.nodes());
  }

  async ownerOfSession(session: string): Promise<string | undefined> {
    const node = await this.#state.ownerOfSession(session);
    if (node === undefined || node === this.#self) return node;
    return (await this.#state.nodes()).some((n) => n.id === node) ? node : undefined;
  }

  /** This node's load as its last heartbeat said (used when `selfLoad` has nothing). */
  report(load: EngineLoad): void {
    this.#reported = { ...load };
  }

  sessionStarted(_node: string, peer: string, session: string): void {
    this.#mine.set(session, peer);
    // Best effort: while Redis is away, the reconnection writes everything back (`liveSessions`).
    void this.#state.own(this.#self, peer, session).catch(() => undefined);
  }

  sessionEnded(_node: string, peer: string, session: string): void {
    this.#mine.delete(session);
    void this.#state.disown(this.#self, peer, session).catch(() => undefined);
  }

  engineDown(node: string): Array<{ peer: string; session: string }> {
    if (node !== this.#self) return [];
    const lost = this.liveSessions();
    this.#mine.clear();
    return lost;
  }

  /** This node's live sessions, as its engines reported them. */
  liveSessions(): Array<{ peer: string; session: string }> {
    return [...this.#mine].map(([session, peer]) => ({ peer, session }));
  }

  async #liveOwner(peer: string, nodes: NodeRecord[]): Promise<string | undefined> {
    const o = await this.#state.ownerOfPeer(peer);
    if (!o) return undefined;
    // A node that is gone (killed: its entry expired) owns nothing any more.
    return o.node === this.#self || nodes.some((n) => n.id === o.node) ? o.node : undefined;
  }

  #best(nodes: NodeRecord[], exclude: ReadonlySet<string>): string | undefined {
    let best: EngineEntry | undefined;
    for (const n of nodes) {
      if (exclude.has(n.id)) continue;
      const e = this.#entry(n);
      if (!e.load.accepting) continue;
      const order = best ? compareCandidates(e, best) : -1;
      // Ties go to this node: no hop.
      if (order < 0 || (order === 0 && n.id === this.#self)) best = e;
    }
    return best?.load.engine;
  }

  #entry(n: NodeRecord): EngineEntry {
    const own = n.id === this.#self ? (this.#selfLoad() ?? this.#reported) : undefined;
    const load: EngineLoad = own
      ? { ...own, engine: n.id }
      : { engine: n.id, accepting: n.accepting, ready: n.ready, sessions: n.sessions, pending: n.pending, workerUtilization: n.workerUtilization };
    const seenAt = own ? Date.now() : n.seenAt;
    const recent = (this.#recent.get(n.id) ?? []).filter((t) => t > seenAt).length;
    return { load, answering: (this.#answering.get(n.id) ?? 0) + recent, owned: load.sessions + load.pending };
  }
}
