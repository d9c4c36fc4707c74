/**
 * A node of a multi-machine cluster (`earshot serve --cluster redis://…`):
 * what a one-machine front (src/cluster/cluster-server.ts) adds to join other
 * machines through Redis (src/cluster/cluster-state.ts).
 *
 * - It registers itself (public URL, load) every second with a 5 s TTL.
 * - Any node takes a WHIP POST: the session is placed on the least-loaded
 *   node with room (src/cluster/redis-placement.ts). On another node, the
 *   offer is forwarded to it over HTTP with the client's own headers and the
 *   peer lock's token, and its answer returned: the client needs no redirect
 *   support, and the answer carries that node's ICE candidates, so the media
 *   goes straight there. The `Location` stays `/whip/sessions/<id>`: any
 *   node that receives a DELETE/PATCH for a session it does not run looks up
 *   its owner in Redis and forwards it.
 * - Pipelines and room bindings changed through any node are stored in Redis
 *   and published; every node applies them to its engines (and again after
 *   reconnecting, which is also how a node that starts later learns them).
 * - Operators' views: `GET /cluster/nodes`, `/cluster/stats`,
 *   `/cluster/recordings` (and downloads through any node).
 * - Draining (`POST /admin/drain`, or SIGTERM from the CLI): the node stops
 *   taking sessions, waits for its sessions to end (up to `drainTimeoutMs`),
 *   ends the rest, finalizes recordings, leaves the registry and closes.
 * - Without Redis a node keeps serving the sessions it runs; placing a new
 *   one answers 503 `EARSHOT_CLUSTER_UNAVAILABLE` (a peer could otherwise run
 *   twice), and so does a pipeline or room change (it would stay on this
 *   node: the nodes would diverge). When Redis is back the node registers again and writes back what
 *   it runs.
 *
 * Why ~500 lines: registration, placement across nodes, forwarding to the
 * owner node and the shared pipelines/rooms all depend on the one Redis
 * connection's state (up, lost, back); the Redis data model itself lives in
 * cluster-state.ts and the placement rules in redis-placement.ts.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, isEarshotError, type EarshotError } from '../errors.js';
import { checkInteger, checkOptionNames } from '../core/option-checks.js';
import { RecordingsStore } from '../sinks/recordings-store.js';
import type { RecordingEntry } from '../sinks/recordings-store.js';
import type { ServeRecording } from '../server/routes/recordings.js';
import { ClusterState, HEARTBEAT_MS, NODE_TTL_MS, type ConfigChange, type NodeRecord } from './cluster-state.js';
import { forwardedHeaders, bodyOf, clientOf, jsonOf, NODE_READ_TIMEOUT_MS, relay, requestUrl, streamFrom, vouchForClient, type EngineResponse } from './forward.js';
import { mergeClusterStats, type NodeStats, type NodeSummary } from './merge-cluster-stats.js';
import { RedisPlacement } from './redis-placement.js';
import type { UpgradeTarget } from './upgrade-proxy.js';

/** Options of a cluster node (`ClusterOptions.cluster`). */
export interface ClusterNodeOptions {
  /** Redis holding the cluster's state: `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  redis: string;
  /**
   * The URL the other nodes reach this node at (scheme, host, port; no path),
   * e.g. `http://10.0.0.12:8080`: they forward offers, session requests and
   * recording downloads to it. Clients never need it (every link earshot gives
   * out is relative to the node that answers), so a private address the
   * nodes share is right. Default: the address
   * it listens on, which only works where that address is reachable as such
   * (not with `0.0.0.0`, where it is required).
   */
  publicUrl?: string;
  /** The node's id in the cluster, unique among its nodes. Default `<hostname>-<port>`. */
  nodeId?: string;
  /** How long draining waits for live sessions to end before ending them. Default 30000 ms. */
  drainTimeoutMs?: number;
}

/** The names `ClusterNodeOptions` has, to refuse misspelt ones (`createCluster` checks them). */
export const CLUSTER_NODE_OPTIONS: Readonly<Record<keyof ClusterNodeOptions, true>> = { redis: true, publicUrl: true, nodeId: true, drainTimeoutMs: true };

/** A node's load as its engines last reported it (the load fields of its registry record). */
export type NodeLoad = Pick<NodeRecord, 'accepting' | 'ready' | 'sessions' | 'pending' | 'workerUtilization' | 'engines'>;

/** What the front gives the cluster node. */
export interface NodeHost {
  app: FastifyInstance;
  log: FastifyBaseLogger;
  load(): NodeLoad;
  /** The ICE addresses its engines announce (empty: every interface). */
  iceHosts: readonly string[];
  /** The node's own `GET /stats` document. */
  stats(): Promise<NodeStats>;
  /** Answers 401/403 unless the request carries the admin role (for routes that also take signed links). */
  requireAdmin(req: FastifyRequest, reply: FastifyReply): Promise<void>;
  /** The node's own recordings, with signed download paths. */
  recordings(): Promise<{ recordings: Array<RecordingEntry & { url: string }>; total: number }>;
  /** Serves one of the node's own recordings as its `GET /recordings/<name>` does. */
  serveRecording: ServeRecording;
  /** Places an offer on one of this node's engines (the one-machine path). */
  placeLocally(req: FastifyRequest, reply: FastifyReply, peer: string): Promise<EngineResponse>;
  /** Ends a session running on this node's engines, for `reason`. */
  endSession(session: string, reason: 'replaced'): Promise<void>;
  /** The room bindings this node's engines have now (room → pipeline). */
  rooms(): Record<string, string>;
  /** Counts the answer the client gets to an offer if it is a load refusal (503): the engines and other nodes leave those to the node the client asked. */
  countLoadRefusal(res: EngineResponse): void;
  /** Makes a pipeline or room change on every local engine, as an admin (a change another node made). */
  apply(method: 'PUT' | 'DELETE', path: string, body?: string): Promise<EngineResponse>;
  /** Ends the node: engines drain and finalize; the listener closes. */
  close(): Promise<void>;
}

/** Marks a request one node sent another: it is answered there, never forwarded again. */
export const HOP_HEADER = 'x-earshot-cluster-hop';
/** The peer lock's token on a forwarded WHIP POST. */
const LOCK_HEADER = 'x-earshot-cluster-lock';
/** A client ticket (`ClusterState.clientTicket`) on a forwarded recording download: whom the owner counts it against. */
const CLIENT_TICKET_HEADER = 'x-earshot-cluster-client';
/** Seconds a client refused because Redis is away should wait. */
const CLUSTER_RETRY_AFTER = 2;
/** How often a failure that repeats every second (the heartbeat) is logged again, ms. */
const FAILURE_LOG_MS = 60_000;
/** The first wait before trying a failed join again, ms; it doubles on each failure, up to `JOIN_RETRY_MAX_MS`. */
const JOIN_RETRY_FIRST_MS = 500;
const JOIN_RETRY_MAX_MS = 10_000;
/** Why a configuration change is refused without Redis (the error's detail). */
const CHANGE_REFUSED = 'share a pipeline or room change with the other nodes';

export class ClusterNode {
  readonly #options: ClusterNodeOptions;
  readonly #host: NodeHost;
  readonly state: ClusterState;
  #placement: RedisPlacement | undefined;
  #id: string | undefined;
  #url: string | undefined;
  readonly #instance = randomBytes(6).toString('hex');
  readonly #startedAt = new Date().toISOString();
  #timer: NodeJS.Timeout | undefined;
  #draining = false;
  #drain: Promise<void> | undefined;
  #left = false;
  /** Redis's `epoch` when this node last joined (undefined before its first join). */
  #epoch: string | undefined;
  /**
   * The pipelines this node knows to be the cluster's (name → document as
   * Redis holds it): stored through this node or applied from Redis since it
   * started. Its pipelines directory may hold others of its own, which Redis
   * never had; these it can tell apart on a rejoin (see `#syncConfig`).
   */
  readonly #sharedPipelines = new Map<string, string>();
  /** Changes from other nodes being applied here, in order (`#applyChange` never rejects). */
  #changes: Promise<void> = Promise.resolve();
  /** The join running now (one at a time: a heartbeat and a reconnection may both ask for one). */
  #joining: Promise<void> | undefined;
  /** Another join was asked for while one ran: it runs once that one is done (it may have started before what prompted this). */
  #joinAgain = false;
  /** Heartbeats failing in a row while connected (a Redis ACL refusing the script or the keys, say): the last error, how many, when last logged. */
  #beatFailure: { error: string; count: number; loggedAt: number } | undefined;
  /** When this node's heartbeat last succeeded (its registry entry lives `NODE_TTL_MS` from then). */
  #lastBeatAt: number | undefined;
  /** The last join's error, until a join succeeds. */
  #joinFailure: string | undefined;
  /** Joins failed in a row, when that was last logged, and the timer of the next try. */
  #joinRetry: { failures: number; loggedAt: number; timer: NodeJS.Timeout | undefined } = { failures: 0, loggedAt: 0, timer: undefined };

  constructor(options: ClusterNodeOptions, host: NodeHost) {
    checkClusterNodeOptions(options);
    this.#options = options;
    this.#host = host;
    const log = host.log;
    this.state = new ClusterState({
      url: options.redis,
      onReady: () => void this.#joined(),
      onDown: (why) => log.error({ redis: this.state.address, err: why }, 'cluster: Redis unreachable; running sessions go on, new ones are refused until it is back'),
      onCredentialsRefused: (error) =>
        log.error({ redis: this.state.address, err: error }, "cluster: Redis refuses this node's credentials: check the --cluster URL's user name and password; running sessions go on, new ones are refused until it takes them"),
      // One at a time, in the order published: an unbinding must be applied before the deletion of its pipeline.
      onChange: (change) => {
        this.#changes = this.#changes.then(() => this.#applyChange(change));
      },
    });
    this.#routes(host.app);
  }

  get id(): string {
    if (this.#id === undefined) throw new Error('cluster node not started');
    return this.#id;
  }

  get url(): string | undefined {
    return this.#url;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** The placement across nodes (set once the node started). */
  get placement(): RedisPlacement {
    if (!this.#placement) throw new Error('cluster node not started');
    return this.#placement;
  }

  /** Joins the cluster once the listener is up at `listenUrl`. */
  start(listenUrl: string): void {
    const listen = new URL(listenUrl);
    if (this.#options.publicUrl === undefined && (listen.hostname === '0.0.0.0' || listen.hostname === '[::]')) {
      throw errors.OPTION_INVALID('cluster.publicUrl', 'is required when listening on every address (--public-url): the other nodes must know where to reach this one');
    }
    this.#url = (this.#options.publicUrl ?? listenUrl).replace(/\/+$/, '');
    this.#id = this.#options.nodeId ?? `${hostname()}-${listen.port}`;
    const id = this.#id;
    this.#placement = new RedisPlacement(
      this.state,
      id,
      this.#instance,
      () => {
        const load = this.#host.load();
        return { engine: id, accepting: load.accepting && !this.#draining, ready: load.ready, sessions: load.sessions, pending: load.pending, workerUtilization: load.workerUtilization };
      },
      {
        whyUnregistered: () => (this.#beatFailure ? `its heartbeat fails: ${this.#beatFailure.error}` : undefined),
        epoch: () => this.#epoch,
      },
    );
    this.state.connect();
    this.#timer = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    this.#timer.unref();
  }

  /** What `GET /health` says about the node's place in the cluster (public: no addresses). */
  health(): { node: string | undefined; state: 'up' | 'draining'; redis: 'up' | 'down'; problem?: string } {
    const problem = this.state.problem ?? this.#redisRefuses();
    // `redis` is the connection; a node connected but out of the cluster (no such database, its id held) says why in `problem`.
    return { node: this.#id, state: this.#draining ? 'draining' : 'up', redis: this.state.reachable ? 'up' : 'down', ...(problem ? { problem } : {}) };
  }

  /**
   * Why Redis, though connected, does not let this node take part: its
   * heartbeat failed twice in a row (one failure may be a blip; its entry
   * lives 5 s), or its last join failed. The error is Redis's own (NOPERM
   * names the refused command or key), never an address.
   */
  #redisRefuses(): string | undefined {
    if (!this.state.connected) return undefined;
    if (this.#beatFailure && this.#beatFailure.count >= 2) return `this node's heartbeat fails (${this.#beatFailure.error})${aclHint(this.#beatFailure.error)}`;
    if (this.#joinFailure !== undefined) return `joining the cluster failed (${this.#joinFailure})`;
    return undefined;
  }

  describe(): Record<string, unknown> {
    return { node: this.#id, publicUrl: this.#url, redis: this.state.address };
  }

  // ---- WHIP

  /** A WHIP POST reaching this node: placed in the cluster, here or forwarded. */
  async publish(req: FastifyRequest, reply: FastifyReply, peer: string): Promise<FastifyReply> {
    const hopToken = header(req, LOCK_HEADER);
    if (hopToken !== undefined) {
      // Another node holds the peer's lock and chose this node: prove it, then place here.
      if (this.#draining) throw retry(reply, errors.SHUTTING_DOWN(), 5);
      let holds: boolean;
      try {
        holds = await this.state.holds(peer, hopToken);
      } catch (e) {
        throw retry(reply, e as EarshotError, CLUSTER_RETRY_AFTER);
      }
      if (!holds) throw retry(reply, errors.PEER_BUSY(peer), 1);
      // A node of the cluster sent it: the client is the one it names, not that node's address.
      vouchForClient(req);
      return relay(reply, await this.#placeHere(req, reply, peer));
    }
    let ticket;
    try {
      ticket = await this.placement.begin(peer);
    } catch (e) {
      throw retry(reply, e as EarshotError, isEarshotError(e) && e.code === errors.PEER_BUSY.code ? 1 : CLUSTER_RETRY_AFTER);
    }
    try {
      let last: EngineResponse | undefined;
      for (let node = ticket.next(); node !== undefined; node = ticket.next()) {
        let res: EngineResponse;
        if (node === this.id) {
          if (this.#draining) {
            // The live peer runs here and this node is leaving: it cannot be replaced now.
            if (ticket.owner !== undefined) throw retry(reply, errors.SHUTTING_DOWN(), 5);
            // A new peer goes to another node (the registry may not yet show this one draining).
            continue;
          }
          try {
            res = await this.#placeHere(req, reply, peer);
          } catch (e) {
            // This node's engines refused for load (or none is up): another node may take it.
            if (isEarshotError(e) && e.statusCode === 503 && ticket.owner === undefined) continue;
            throw e;
          }
        } else {
          const url = ticket.urlOf(node);
          if (!url) continue;
          try {
            res = await requestUrl(new URL(url), 'POST', req.url, { ...this.#hopHeaders(req), [LOCK_HEADER]: ticket.token }, bodyOf(req));
          } catch (e) {
            this.#host.log.warn({ node, peer, err: (e as Error).message }, 'cluster: node did not answer an offer');
            // A peer's owner that refuses or resets connections is gone (its registry entry outlives it by up
            // to 5 s; a killed front's socket resets): the peer is placed on another node. A slow owner (a
            // timeout) keeps it: it may still run the session.
            const code = (e as NodeJS.ErrnoException).code;
            if (node === ticket.owner && (code === 'ECONNREFUSED' || code === 'ECONNRESET')) ticket.ownerUnreachable();
            continue;
          }
        }
        if (res.status === 201) {
          const session = sessionOf(res);
          if (session) ticket.placed(node, session);
          return relay(reply, res);
        }
        // The client hears the refusal of the candidate ranked first (the likeliest to have room, ready
        // ones first): its reason (a per-client limit, say) is the one that matters, not that a full
        // candidate tried after it refused too.
        if (last === undefined || res.status !== 503) last = res;
        // Only a load refusal moves on, and never for a live peer: it is replaced where it runs.
        if (res.status !== 503 || ticket.owner !== undefined) break;
      }
      if (last) {
        this.#host.countLoadRefusal(last);
        return relay(reply, last);
      }
      // No node answered, not even with a refusal. A draining node is not overloaded: it is leaving, and
      // the others are gone or not yet up (a stopped node stays registered for a few seconds), as in a
      // rolling restart, where load alerts on EARSHOT_OVERLOADED would fire.
      if (this.#draining) throw retry(reply, errors.SHUTTING_DOWN('this node is draining, and no other node of the cluster is up to take a new stream; retry once one has joined'), 5);
      throw retry(reply, errors.OVERLOADED(['no node in the cluster has room'], 'load'), 5);
    } finally {
      ticket.release();
    }
  }

  /** Places on this node's engines; the session's ownership is in Redis before the answer leaves, so a DELETE through any node finds it. */
  async #placeHere(req: FastifyRequest, reply: FastifyReply, peer: string): Promise<EngineResponse> {
    const res = await this.#host.placeLocally(req, reply, peer);
    const session = res.status === 201 ? sessionOf(res) : undefined;
    if (session) {
      this.placement.sessionStarted(this.id, peer, session);
      await this.state.own(this.id, peer, session).catch(() => undefined);
    }
    return res;
  }

  /**
   * A request for a session or peer this node does not run: forwarded to the
   * node that does (looked up in Redis); where no other node does, what
   * `ownerless` answers (nothing: `notFound`).
   */
  async toOwner(
    req: FastifyRequest,
    reply: FastifyReply,
    owner: () => Promise<string | undefined>,
    notFound: () => EarshotError,
    ownerless?: () => Promise<FastifyReply | undefined>,
  ): Promise<FastifyReply> {
    if (header(req, HOP_HEADER) !== undefined) throw notFound();
    let node: string | undefined;
    try {
      node = await owner();
    } catch (e) {
      throw retry(reply, e as EarshotError, CLUSTER_RETRY_AFTER);
    }
    if (node === undefined || node === this.id) {
      const answered = await ownerless?.();
      if (answered) return answered;
      throw notFound();
    }
    const url = await this.#urlOf(node);
    if (!url) throw notFound();
    let res: EngineResponse;
    try {
      // A read is not waited for past a node frozen mid-request; a change (a DELETE that drains a session) may take longer.
      const read = req.method === 'GET' || req.method === 'HEAD';
      res = await requestUrl(new URL(url), req.method, req.url, this.#hopHeaders(req), bodyOf(req), read ? NODE_READ_TIMEOUT_MS : undefined);
    } catch (e) {
      // Registered but not answering (dying, or unreachable from here): its entry expires within the TTL.
      throw retry(reply, errors.ENGINE_UNAVAILABLE(`cluster node "${node}" did not answer (${(e as Error).message})`), 1);
    }
    return relay(reply, res);
  }

  /**
   * `req` (a GET) as the node `node` answers it, marked as a node's; undefined when that node
   * is not registered or does not answer. For an answer this node has one of its own to fall
   * back on (an ended peer's statistics where another node's live session was looked for).
   */
  async readFrom(node: string, req: FastifyRequest): Promise<EngineResponse | undefined> {
    if (header(req, HOP_HEADER) !== undefined) return undefined;
    const url = await this.#urlOf(node).catch(() => undefined);
    if (!url) return undefined;
    return requestUrl(new URL(url), 'GET', req.url, this.#hopHeaders(req), undefined, NODE_READ_TIMEOUT_MS).catch(() => undefined);
  }

  /**
   * The same GET to every other live node, marked as a node's (so none of them
   * asks further): the answers of those that answered. For what no node owns
   * any more, such as an ended peer's statistics, which the node or nodes that
   * ran it remember.
   */
  async askOtherNodes(req: FastifyRequest, reply: FastifyReply): Promise<EngineResponse[]> {
    const nodes = (await this.#nodesOr503(reply)).filter((n) => n.id !== this.#id);
    const answers = await Promise.all(nodes.map((n) => requestUrl(new URL(n.url), 'GET', req.url, this.#hopHeaders(req), undefined, NODE_READ_TIMEOUT_MS).catch(() => undefined)));
    return answers.filter((a): a is EngineResponse => a !== undefined);
  }

  ownerOfSession(session: string): Promise<string | undefined> {
    return this.placement.ownerOfSession(session);
  }

  ownerOfPeer(peer: string): Promise<string | undefined> {
    return this.placement.ownerOfPeer(peer);
  }

  /**
   * Where an upgrade for `peer` goes when another node runs it (see
   * upgrade-proxy.ts): that node's address, with the hop mark; `notFound`
   * when no other node does, or this request already came from a node.
   */
  async upgradeTargetOf(peer: string, hop: string | string[] | undefined, notFound: () => EarshotError): Promise<UpgradeTarget> {
    if (hop !== undefined) throw notFound();
    const node = await this.placement.ownerOfPeer(peer);
    if (node === undefined || node === this.id) throw notFound();
    const url = await this.#urlOf(node);
    if (!url) throw notFound();
    const u = new URL(url);
    const tls = u.protocol === 'https:';
    return { host: u.hostname, port: Number(u.port || (tls ? 443 : 80)), remote: { tls }, headers: { [HOP_HEADER]: this.#id ?? '' } };
  }

  // ---- configuration

  /**
   * Refuses a pipeline or room change while Redis is unreachable (503
   * `EARSHOT_CLUSTER_UNAVAILABLE`, `Retry-After`), before anything changes:
   * made on this node only, it would never reach the other nodes, and the
   * nodes would run different configurations without anyone knowing.
   */
  refuseChangeWithoutRedis(reply: FastifyReply): void {
    if (this.state.available) return;
    throw retry(reply, errors.CLUSTER_UNAVAILABLE(`Redis at ${this.state.address} is not connected`, CHANGE_REFUSED), CLUSTER_RETRY_AFTER);
  }

  /**
   * A pipeline or room change this node's engines just made: stored in Redis
   * and published, so every node makes it too. If Redis went away between
   * `refuseChangeWithoutRedis` and now, the change is on this node only: the
   * client gets 503 `EARSHOT_CLUSTER_UNAVAILABLE` (never a success) and
   * repeats it once Redis is back; the node logs it.
   */
  async changed(reply: FastifyReply, kind: ConfigChange['kind'], name: string, value: string | undefined): Promise<void> {
    try {
      await this.state.putConfig({ kind, name, from: this.id }, value);
      if (kind === 'pipeline') this.#remember(name, value);
    } catch (e) {
      this.#host.log.error({ kind, name, err: (e as Error).message }, 'cluster: change made on this node only (Redis unreachable); the client was told to repeat it');
      throw retry(reply, errors.CLUSTER_UNAVAILABLE((e as Error).message, `${CHANGE_REFUSED} (the change was made on this node only: repeat it)`), CLUSTER_RETRY_AFTER);
    }
  }

  /** Applies pipeline `name` from Redis on this node now, if stored there (a change whose notice has not arrived yet). */
  async fetchPipeline(name: string): Promise<boolean> {
    try {
      const doc = await this.state.getConfig('pipeline', name);
      if (doc === undefined) return false;
      await this.#applyOne('pipeline', name, doc);
      return true;
    } catch {
      return false;
    }
  }

  async #applyChange(change: ConfigChange): Promise<void> {
    if (change.from === this.#id) return;
    try {
      const value = await this.state.getConfig(change.kind, change.name);
      await this.#applyOne(change.kind, change.name, value);
    } catch (e) {
      this.#host.log.error({ ...change, err: (e as Error).message }, 'cluster: change from another node not applied');
    }
  }

  async #applyOne(kind: ConfigChange['kind'], name: string, value: string | undefined): Promise<void> {
    const path = `/${kind === 'pipeline' ? 'pipelines' : 'rooms'}/${encodeURIComponent(name)}`;
    const body = kind === 'room' && value !== undefined ? JSON.stringify({ pipeline: value }) : value;
    const res = await this.#host.apply(value === undefined ? 'DELETE' : 'PUT', path, body);
    if (res.status >= 400 && !(value === undefined && res.status === 404)) {
      this.#host.log.error({ kind, name, status: res.status, detail: jsonOf<{ detail?: string }>(res)?.detail }, 'cluster: change from another node refused here');
    } else if (kind === 'pipeline') {
      this.#remember(name, value);
    }
  }

  #remember(pipeline: string, doc: string | undefined): void {
    if (doc === undefined) this.#sharedPipelines.delete(pipeline);
    else this.#sharedPipelines.set(pipeline, doc);
  }

  /**
   * (Re)connected to Redis, or Redis lost its data while connected: register,
   * write back what runs here, apply the stored configuration. One join at a
   * time; one asked for meanwhile runs after it.
   */
  #joined(): Promise<void> {
    if (this.#joining) {
      this.#joinAgain = true;
      return this.#joining;
    }
    this.#joining = (async () => {
      do {
        this.#joinAgain = false;
        await this.#join();
      } while (this.#joinAgain && !this.#left);
    })().finally(() => {
      this.#joining = undefined;
    });
    return this.#joining;
  }

  async #join(): Promise<void> {
    if (this.#left || this.#id === undefined) return;
    clearTimeout(this.#joinRetry.timer);
    this.#joinRetry.timer = undefined;
    try {
      await this.#beat();
      const superseded = await this.state.resync(this.id, this.placement.liveSessions());
      for (const session of superseded) {
        const peer = this.placement.liveSessions().find((s) => s.session === session)?.peer;
        this.#host.log.warn({ node: this.id, peer, session }, 'cluster: the peer published again on another node while this one was cut off from Redis; its session here ends (replaced)');
        await this.#host.endSession(session, 'replaced').catch((e: unknown) => this.#host.log.error({ session, err: (e as Error).message }, 'cluster: a replaced session did not end'));
      }
      await this.#syncConfig();
      const { pipelines, rooms } = await this.state.config();
      for (const [name, doc] of Object.entries(pipelines)) await this.#applyOne('pipeline', name, doc);
      for (const [room, pipeline] of Object.entries(rooms)) await this.#applyOne('room', room, pipeline);
      this.#joinFailure = undefined;
      this.#joinRetry.failures = 0;
      this.#host.log.info({ node: this.id, url: this.#url, redis: this.state.address, sessions: this.placement.liveSessions().length }, 'cluster: joined');
    } catch (e) {
      this.#joinFailed(e);
    }
  }

  /**
   * A join that failed while the connection stays up (Redis paused or slow,
   * an ACL refusing a command) is tried again on a timer, 0.5 s doubling to
   * `JOIN_RETRY_MAX_MS`, until one succeeds: waiting for the next
   * reconnection would leave the stored configuration unapplied, and an
   * emptied Redis without this node's sessions and bindings, for as long as
   * the connection lasts. Logged at once, then at most once a minute.
   */
  #joinFailed(e: unknown): void {
    this.#joinFailure = firstLine(e);
    const r = this.#joinRetry;
    r.failures++;
    const delayMs = Math.min(JOIN_RETRY_FIRST_MS * 2 ** (r.failures - 1), JOIN_RETRY_MAX_MS);
    const now = Date.now();
    if (now - r.loggedAt >= FAILURE_LOG_MS) {
      r.loggedAt = now;
      this.#host.log.warn({ node: this.#id, err: this.#joinFailure, failures: r.failures, retryInMs: delayMs }, 'cluster: joining failed; retrying');
    }
    // Another live node holding this id: its heartbeat says when the id is free, and joins then.
    if (this.#left || this.state.idConflict !== undefined) return;
    clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      r.timer = undefined;
      // Disconnected meanwhile: the reconnection joins.
      if (this.state.connected) void this.#joined();
    }, delayMs);
    r.timer.unref();
  }

  /** The heartbeat works again after failing: a join that failed meanwhile is tried now, not after its backoff. */
  #rejoinNowIfFailed(): void {
    if (this.#joinFailure === undefined || this.#joinRetry.timer === undefined) return;
    clearTimeout(this.#joinRetry.timer);
    this.#joinRetry.timer = undefined;
    void this.#joined();
  }

  /**
   * Room bindings live in the nodes' memory and in Redis, pipelines in their
   * directories and in Redis. On a rejoin:
   * - Redis lost its data (another epoch than this node saw): this node's
   *   bindings and the cluster's pipelines it has are written back (the first
   *   node to write one wins), so a node that starts later still gets them;
   * - otherwise a binding this node has and Redis does not, or a pipeline of
   *   the cluster's it has and Redis does not, was deleted through another
   *   node while this one was cut off: it goes here too. Pipelines of its own
   *   directory that Redis never had stay.
   * Either way the nodes end up with what Redis holds.
   */
  async #syncConfig(): Promise<void> {
    const epoch = await this.state.epoch();
    const local = this.#host.rooms();
    if (this.#epoch !== undefined && this.#epoch !== epoch) {
      for (const [name, doc] of this.#sharedPipelines) await this.state.restoreConfig({ kind: 'pipeline', name, from: this.id }, doc);
      for (const [room, pipeline] of Object.entries(local)) await this.state.restoreConfig({ kind: 'room', name: room, from: this.id }, pipeline);
      this.#host.log.warn({ redis: this.state.address, pipelines: this.#sharedPipelines.size, rooms: Object.keys(local).length }, 'cluster: Redis lost its data; this node wrote its pipelines and room bindings back');
    } else if (this.#epoch === epoch) {
      const { pipelines, rooms } = await this.state.config();
      // Bindings first: a pipeline still bound to a room cannot be deleted.
      // Own properties only: `in` finds "constructor" on every object, and such a room would never be unbound.
      for (const room of Object.keys(local)) if (!Object.hasOwn(rooms, room)) await this.#applyOne('room', room, undefined);
      for (const name of [...this.#sharedPipelines.keys()]) if (!Object.hasOwn(pipelines, name)) await this.#applyOne('pipeline', name, undefined);
    }
    // Only once done: a join that failed half way is redone in full on the next reconnection.
    this.#epoch = epoch;
  }

  async #beat(): Promise<void> {
    // Beats go on while another node holds this id: they find out when it has left.
    if (this.#left || this.#id === undefined || !this.state.connected) return;
    const load = this.#host.load();
    const record: NodeRecord = {
      id: this.#id,
      url: this.#url!,
      iceHosts: [...this.#host.iceHosts],
      instance: this.#instance,
      state: this.#draining ? 'draining' : 'up',
      accepting: load.accepting && !this.#draining,
      // As its /health says: a draining node takes no new session.
      ready: load.ready && !this.#draining,
      sessions: load.sessions,
      pending: load.pending,
      workerUtilization: load.workerUtilization,
      engines: load.engines,
      startedAt: this.#startedAt,
      seenAt: Date.now(),
    };
    this.placement.report({ engine: this.#id, accepting: record.accepting, ready: record.ready, sessions: record.sessions, pending: record.pending, workerUtilization: record.workerUtilization });
    const wasHeld = this.state.idConflict !== undefined;
    let beaten = true;
    const holder = await this.state.heartbeat(record).catch((e: unknown) => {
      beaten = false;
      this.#beatFailed(e);
      return undefined;
    });
    if (beaten && this.#beatFailure) {
      this.#host.log.info({ node: this.#id, failures: this.#beatFailure.count }, 'cluster: the heartbeat works again');
      this.#beatFailure = undefined;
      this.#rejoinNowIfFailed();
    }
    if (holder && !wasHeld) {
      const self = holder.url === this.#url;
      // At this node's own URL: most likely its own previous process, restarted within the entry's TTL.
      this.#host.log[self ? 'warn' : 'error'](
        { node: this.#id, heldBy: holder.url, since: new Date(holder.startedAt).toISOString() },
        self
          ? 'cluster: this node id is still registered at this node\'s own URL, most likely by this node before it restarted; joining once that entry expires (within seconds), and refusing new sessions (EARSHOT_CLUSTER_UNAVAILABLE) until then'
          : 'cluster: another live node holds this node id; this node does not join, and refuses new sessions (EARSHOT_CLUSTER_UNAVAILABLE), until it leaves. Give each node its own --node-id',
      );
    } else if (wasHeld && this.state.idConflict === undefined) {
      this.#host.log.info({ node: this.#id }, 'cluster: the node that held this id has left; joining');
      void this.#joined();
    }
    if (!beaten || holder) return;
    const lastBeatAt = this.#lastBeatAt;
    this.#lastBeatAt = Date.now();
    // Outside a join (which does all of this itself), once joined.
    if (this.#epoch !== undefined && this.#joining === undefined && !wasHeld) {
      if (lastBeatAt !== undefined && this.#lastBeatAt - lastBeatAt >= NODE_TTL_MS - HEARTBEAT_MS) {
        // Heartbeats failed long enough for this node's entry to expire while connected: the other
        // nodes' sweeps may have removed what it owns. Rejoining writes its sessions back.
        this.#host.log.warn({ node: this.#id, sinceMs: this.#lastBeatAt - lastBeatAt }, "cluster: this node's registry entry may have expired; rejoining to write its sessions back");
        void this.#joined();
        return;
      }
      await this.#checkEpoch();
      // Bounded work a beat: a slice of the ownership hashes (best effort: the next beat goes on).
      await this.state.sweep().catch(() => undefined);
    }
  }

  /**
   * A heartbeat Redis refused or did not answer while connected. Logged at
   * once, then at most every `FAILURE_LOG_MS` while it goes on (not once a
   * second forever); `/health` says so from the second in a row.
   */
  #beatFailed(e: unknown): void {
    // Not connected: the connection's own outage is logged (onDown), and /health says Redis is down.
    if (!this.state.connected) return;
    const error = firstLine(e);
    const now = Date.now();
    const f = (this.#beatFailure ??= { error, count: 0, loggedAt: 0 });
    f.count++;
    f.error = error;
    if (now - f.loggedAt < FAILURE_LOG_MS) return;
    f.loggedAt = now;
    this.#host.log.error(
      { node: this.#id, redis: this.state.address, err: error, failures: f.count },
      `cluster: the heartbeat failed; while it does, this node drops out of the registry (its entry expires within 5 s) and refuses new sessions (EARSHOT_CLUSTER_UNAVAILABLE)${aclHint(error)}`,
    );
  }

  /**
   * Redis can lose its data without the connection dropping (FLUSHALL,
   * FLUSHDB, eviction of the cluster's keys), so without a reconnection to
   * say so: the heartbeat puts this node's entry back, but the sessions it
   * runs and the cluster's configuration would stay unknown to the other
   * nodes (a PATCH through them 404s, a POST places the peer a second time).
   * An epoch other than the one this node joined under (none: lost; another:
   * a node that noticed first set a new one) means the same as a reconnection
   * to an empty Redis: rejoin, writing everything back.
   */
  async #checkEpoch(): Promise<void> {
    let stored: string | undefined;
    try {
      stored = await this.state.storedEpoch();
    } catch {
      return; // the next heartbeat asks again
    }
    if (stored === this.#epoch || this.#joining !== undefined || this.#left) return;
    // The first node to notice holds placements off until the others have noticed too (their next
    // heartbeat): until then a peer of theirs looks unowned, and would be placed a second time.
    if (stored === undefined) await this.state.holdPlacements().catch(() => undefined);
    this.#host.log.warn({ node: this.#id, redis: this.state.address }, 'cluster: Redis lost its data while connected (flushed or evicted); rejoining: writing back this node\'s sessions, pipelines and room bindings');
    void this.#joined();
  }

  // ---- draining and leaving

  /**
   * Stops taking sessions, lets the live ones end (up to `drainTimeoutMs`),
   * then closes the node (the rest end, recordings finalize) and leaves the
   * cluster. Resolves when it has.
   */
  drain(): Promise<void> {
    this.#drain ??= (async () => {
      this.#draining = true;
      await this.#beat();
      const timeoutMs = this.#options.drainTimeoutMs ?? 30_000;
      const started = Date.now();
      this.#host.log.info({ node: this.#id, sessions: this.#host.load().sessions, timeoutMs }, 'cluster: draining');
      while (this.#host.load().sessions + this.#host.load().pending > 0 && Date.now() - started < timeoutMs) {
        await new Promise((r) => setTimeout(r, 250));
      }
      await this.#host.close();
    })();
    return this.#drain;
  }

  /** Marks the node draining in the registry now (the front is closing). */
  async stopAccepting(): Promise<void> {
    this.#draining = true;
    await this.#beat();
  }

  /** Leaves the registry and disconnects from Redis (after the engines stopped). */
  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    if (this.#timer) clearInterval(this.#timer);
    clearTimeout(this.#joinRetry.timer);
    if (this.#id !== undefined) await this.state.deregister(this.#id, this.#instance).catch(() => undefined);
    await this.state.close();
    this.#host.log.info({ node: this.#id }, 'cluster: left');
  }

  // ---- routes

  #routes(app: FastifyInstance): void {
    app.post('/admin/drain', { config: { body: 'none' } }, async (_req, reply) => {
      void this.drain().catch((e: unknown) => this.#host.log.error({ err: (e as Error).message }, 'cluster: draining failed'));
      return reply.code(202).send({ node: this.#id, state: 'draining', sessions: this.#host.load().sessions, timeoutMs: this.#options.drainTimeoutMs ?? 30_000 });
    });

    app.get('/cluster/nodes', async (_req, reply) => {
      let nodes: NodeRecord[];
      try {
        nodes = await this.state.nodes();
      } catch (e) {
        throw retry(reply, e as EarshotError, CLUSTER_RETRY_AFTER);
      }
      const now = Date.now();
      return { self: this.#id, redis: this.state.address, nodes: nodes.map(({ instance: _i, ...n }) => ({ ...n, ageMs: Math.max(0, now - n.seenAt) })) };
    });

    app.get('/cluster/stats', async (req, reply) => {
      const nodes = await this.#nodesOr503(reply);
      const answers = await Promise.all(nodes.map(async (n) => ({ n, stats: await this.#nodeDoc<NodeStats>(n, req, '/stats', () => this.#host.stats()) })));
      const parts = answers.flatMap((a) => (a.stats ? [{ node: a.n.id, stats: a.stats }] : []));
      const summaries: NodeSummary[] = answers.map(({ n, stats }) => ({
        node: n.id, url: n.url, state: n.state, reachable: stats !== undefined, peers: stats?.server.peers ?? n.sessions, ready: n.ready, engines: n.engines,
      }));
      return mergeClusterStats(parts, summaries);
    });

    app.get('/cluster/recordings', async (req, reply) => {
      const nodes = await this.#nodesOr503(reply);
      type Listing = { recordings: Array<RecordingEntry & { url: string }>; total: number };
      const answers = await Promise.all(nodes.map(async (n) => ({ n, list: await this.#nodeDoc<Listing>(n, req, '/recordings?limit=1000&order=newest', () => this.#host.recordings()) })));
      const recordings = answers
        .flatMap(({ n, list }) => (list?.recordings ?? []).map((r) => ({
          ...r,
          node: n.id,
          // The owner's signed link, relative to the node answering: whichever node the client
          // reached passes it on to the owner, which checks the signature. Never built from the
          // owner's public URL, which may be an address only the nodes can reach (compose: http://earshot-2:8080).
          url: `${clusterPath(n.id, r.name)}${new URL(r.url, 'http://link/').search}`,
          download: clusterPath(n.id, r.name),
        })))
        .sort((a, b) => b.modifiedAt.localeCompare(a.modifiedAt) || a.name.localeCompare(b.name));
      return {
        recordings,
        total: recordings.length,
        nodes: answers.map(({ n, list }) => (list ? { node: n.id, total: list.total } : { node: n.id, error: 'unreachable' })),
      };
    });

    // A signed link (`?expires=…&signature=…`, from GET /cluster/recordings) needs no token here: the owner node checks it.
    app.get<{ Params: { node: string; '*': string }; Querystring: { expires?: string; signature?: string } }>('/cluster/recordings/:node/*', { config: { access: 'admin-or-signed' } }, async (req, reply) => {
      const signed = typeof req.query.expires === 'string' && typeof req.query.signature === 'string';
      if (!signed) await this.#host.requireAdmin(req, reply);
      const name = RecordingsStore.checkName(req.params['*']);
      // This node's own file is served here, not redirected: clients that follow no redirects get it too.
      if (req.params.node === this.#id) return this.#host.serveRecording(req, reply, name);
      const query = signed ? `?${new URLSearchParams({ expires: req.query.expires!, signature: req.query.signature! }).toString()}` : '';
      const path = `/recordings/${name.split('/').map(encodeURIComponent).join('/')}${query}`;
      const url = await this.#urlOf(req.params.node).catch((e: unknown) => {
        throw retry(reply, e as EarshotError, CLUSTER_RETRY_AFTER);
      });
      if (!url) throw errors.NODE_NOT_FOUND(req.params.node);
      const headers = this.#hopHeaders(req);
      // The owner counts the download against the client this names (`downloadClient`). A link that has
      // expired gets no ticket (the owner refuses it), and if the ticket cannot be written the owner
      // counts the download against this node, as it would any client's.
      const live = !signed || Number(req.query.expires) * 1000 >= Date.now();
      const ticket = live ? await this.state.clientTicket(clientOf(req)).catch(() => undefined) : undefined;
      if (ticket !== undefined) headers[CLIENT_TICKET_HEADER] = ticket;
      return streamFrom(new URL(url), reply, path, headers);
    });
  }

  /**
   * Who a download of one of this node's recordings is from, for the limit
   * per client: for one another node forwarded (`/cluster/recordings/…`), the
   * client its ticket names; else the request's own client. Called once the
   * request is authorized (a ticket costs a Redis call).
   */
  async downloadClient(req: FastifyRequest): Promise<string> {
    const ticket = header(req, CLIENT_TICKET_HEADER);
    const named = ticket !== undefined && header(req, HOP_HEADER) !== undefined ? await this.state.redeemClient(ticket).catch(() => undefined) : undefined;
    return named ?? clientOf(req);
  }

  async #nodesOr503(reply: FastifyReply): Promise<NodeRecord[]> {
    try {
      return await this.state.nodes();
    } catch (e) {
      throw retry(reply, e as EarshotError, CLUSTER_RETRY_AFTER);
    }
  }

  /** A JSON document from node `n` (this node's from `local`); undefined when it cannot be read. */
  async #nodeDoc<T>(n: NodeRecord, req: FastifyRequest, path: string, local: () => Promise<T>): Promise<T | undefined> {
    try {
      if (n.id === this.#id) return await local();
      const res = await requestUrl(new URL(n.url), 'GET', path, this.#hopHeaders(req), undefined, NODE_READ_TIMEOUT_MS);
      return res.status === 200 ? jsonOf<T>(res) : undefined;
    } catch {
      return undefined;
    }
  }

  async #urlOf(node: string): Promise<string | undefined> {
    return (await this.state.nodes()).find((n) => n.id === node)?.url;
  }

  /**
   * The client's headers for another node: its own Host (from the URL), and
   * the hop mark. Not the browser's Origin and Sec-Fetch-Site: this node has
   * checked them (access.ts), and against the other node's Host a page of
   * this one would read as another site's.
   */
  #hopHeaders(req: FastifyRequest): OutgoingHttpHeaders {
    const { host: _host, origin: _origin, 'sec-fetch-site': _site, [CLIENT_TICKET_HEADER]: _ticket, [LOCK_HEADER]: _lock, ...rest } = forwardedHeaders(req);
    return { ...rest, [HOP_HEADER]: this.#id ?? '' };
  }
}

/** The path of a recording of `node` through any node: `/cluster/recordings/<node>/<name>`. */
function clusterPath(node: string, name: string): string {
  return `/cluster/recordings/${encodeURIComponent(node)}/${name.split('/').map(encodeURIComponent).join('/')}`;
}

/** Advice for an error that says Redis refused the command for the user's rights, else nothing. */
function aclHint(error: string): string {
  return /^(NOPERM|NOAUTH|WRONGPASS)\b/.test(error) ? ": check the --cluster URL's user and its ACL (commands, scripting, the cluster's keys and channel)" : '';
}

/** What Redis said (the cause of an `EARSHOT_CLUSTER_UNAVAILABLE`), its first line and at most 200 characters (for /health and logs). */
function firstLine(e: unknown): string {
  const cause = (e as Error)?.cause instanceof Error ? (e as Error).cause : e;
  return String((cause as Error)?.message ?? cause).split('\n')[0].slice(0, 200);
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function sessionOf(res: EngineResponse): string | undefined {
  const m = /\/whip\/sessions\/([^/?#]+)$/.exec(String(res.headers.location ?? ''));
  return m ? decodeURIComponent(m[1]) : undefined;
}

function retry(reply: FastifyReply, error: EarshotError, seconds: number): EarshotError {
  if (isEarshotError(error) && (error.statusCode === 503 || error.statusCode === 409)) void reply.header('Retry-After', String(seconds));
  return error;
}

/** Throws `EARSHOT_OPTION_INVALID` for the first unusable cluster option (misspelt names included). */
export function checkClusterNodeOptions(options: ClusterNodeOptions): void {
  checkOptionNames('createCluster', options, CLUSTER_NODE_OPTIONS, 'cluster.');
  checkRedisUrl(options.redis);
  if (options.publicUrl !== undefined) checkPublicUrl(String(options.publicUrl));
  if (options.nodeId !== undefined && (typeof options.nodeId !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(options.nodeId))) {
    throw errors.OPTION_INVALID('cluster.nodeId', `"${String(options.nodeId).slice(0, 80)}" is not allowed: use 1–64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit`);
  }
  checkInteger('cluster.drainTimeoutMs', options.drainTimeoutMs, 1, 2 ** 31 - 1);
}

/** redis[s]://[user:password@]host[:port][/db]: a URL that parses, a database that is a number (its existence is checked on connecting). */
function checkRedisUrl(url: unknown): void {
  // The refusal is printed (stderr, logs): never with the password it carries.
  const shown = maskRedisUrl(String(url)).slice(0, 80);
  let u: URL | undefined;
  try {
    u = typeof url === 'string' && /^rediss?:\/\//.test(url) ? new URL(url) : undefined;
  } catch {
    u = undefined;
  }
  if (!u || u.hostname === '') throw errors.OPTION_INVALID('cluster.redis', `must be a redis:// or rediss:// URL (redis://[user:password@]host[:port][/db]), got "${shown}"`);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,5}$/.test(db)) throw errors.OPTION_INVALID('cluster.redis', `names database "${db.slice(0, 40)}": after the host, "/" and a database number (0 when left out), got "${shown}"`);
}

/**
 * A Redis URL fit to show: its password (whatever follows the user name up to
 * the last "@", or the whole user part when it has no ":") replaced by `***`.
 * Works on text that does not parse as a URL, which is when it is shown.
 */
export function maskRedisUrl(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)@/s, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? '***' : `${userinfo.slice(0, colon)}:***`}@`;
  });
}

function checkPublicUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw errors.OPTION_INVALID('cluster.publicUrl', `must be an absolute http(s) URL, got "${url.slice(0, 80)}"`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw errors.OPTION_INVALID('cluster.publicUrl', `must be http(s)://host[:port] with no path, got "${url.slice(0, 80)}" (serve earshot at the root of its host name)`);
  }
}
