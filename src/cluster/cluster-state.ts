/**
 * The state a cluster of earshot nodes shares, kept in Redis (ioredis):
 *
 * - the node registry: one key per node (`earshot:node:<id>`, JSON of its
 *   public URL and load) written every `HEARTBEAT_MS` with a `NODE_TTL_MS`
 *   expiry, so a node that dies drops out by itself; a set of ids to list them;
 * - the per-peer placement lock: `SET earshot:lock:<peer> <token> NX PX`, freed
 *   only by its holder (compare-and-delete). The token names its holder
 *   (`<node>/<instance>/<random>`): a lock whose node has left the registry
 *   (killed mid-placement) or restarted is taken over instead of keeping the
 *   peer busy until it expires; one whose command failed (timed out: Redis
 *   may run it later) is freed by its token once Redis answers again;
 * - ownership: hashes `earshot:peers` (peer → `node\tsession`) and
 *   `earshot:sessions` (session → node). An entry whose node is no longer
 *   registered is ignored by readers (a killed node cannot clean up), and
 *   removed by the live nodes' heartbeats, a slice at a time (`sweep`);
 * - cluster-wide configuration: hashes `earshot:pipelines` (name → document)
 *   and `earshot:rooms` (room → pipeline), with a pub/sub channel that tells
 *   every node to apply a change;
 * - client tickets: `earshot:client:<ticket>`, the client a node forwards a
 *   request for, redeemed once by the node it is forwarded to;
 * - `earshot:epoch`: a random id set by the first node to find none, so that
 *   a rejoining node tells a Redis that lost its data from one that did not;
 *   `earshot:rebuilding`, set for `HOLD_MS` by the node that notices the loss
 *   while connected (a FLUSHALL): no placement until every node wrote back.
 *
 * Commands fail at once while Redis is unreachable (no offline queue): a
 * caller turns that into `EARSHOT_CLUSTER_UNAVAILABLE` rather than waiting.
 * The connection retries by itself; `onReady` runs on every (re)connection so
 * that the node re-registers and writes back what Redis may have lost.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { errors, type EarshotError } from '../errors.js';

/** A node drops out of the registry this long after its last heartbeat, ms. */
export const NODE_TTL_MS = 5000;
/** How often a node writes its registry entry, ms. */
export const HEARTBEAT_MS = 1000;
/**
 * Longest a peer's placement lock lives if its holder never frees it (the
 * holder died mid-placement), ms: longer than an offer may take to answer
 * (the forward's 30 s timeout), so a slow answer never loses its lock.
 */
export const LOCK_TTL_MS = 35_000;
/** How long a client ticket (`clientTicket`) can be redeemed, ms: the forwarded request arrives at once. */
export const CLIENT_TICKET_TTL_MS = 10_000;

/** What a node says about itself in the registry. */
export interface NodeRecord {
  /** The node id (`--node-id`). */
  id: string;
  /** Where the other nodes reach it (`--public-url`); clients never need it. */
  url: string;
  /** The addresses its answers announce for media (`--ice-host`); empty: every interface of its machine. */
  iceHosts: string[];
  /** Random per start: tells a restarted node from its predecessor under the same id. */
  instance: string;
  /** `up`, or `draining` (no new sessions; it leaves once its sessions end). */
  state: 'up' | 'draining';
  /** Takes new sessions: up, not draining, with an engine running. */
  accepting: boolean;
  /** Its admission control has room (measured load). */
  ready: boolean;
  /** Live sessions on the node. */
  sessions: number;
  /** Sessions being answered or not yet connected. */
  pending: number;
  /** Its least busy engine's DSP worker utilization, 0..1. */
  workerUtilization: number;
  /** Engine processes on the node. */
  engines: number;
  /** When the node started (ISO 8601). */
  startedAt: string;
  /** When this record was written (ms since the epoch). */
  seenAt: number;
}

/** Who takes a peer's placement lock. */
export interface LockHolder {
  /** The node's id. */
  node: string;
  /** The `instance` of the node's registry entry (random per start). */
  instance: string;
}

/** Longest a Redis command may take before the caller gets `EARSHOT_CLUSTER_UNAVAILABLE`, ms. */
const COMMAND_TIMEOUT_MS = 2000;
/**
 * How long placements are held after a node finds that Redis lost the
 * cluster's data while connected, ms: every other node notices at its next
 * heartbeat (within `HEARTBEAT_MS`) and writes back what it runs, with room
 * for a slow one.
 */
export const HOLD_MS = 3000;
/** First wait before freeing again a lock whose release failed, ms (doubles up to 2 s). */
const RELEASE_RETRY_MS = 250;

/** A configuration change every node applies. */
export interface ConfigChange {
  kind: 'pipeline' | 'room';
  name: string;
  /** The node that made it (it has applied it already). */
  from: string;
}

export interface ClusterStateOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  url: string;
  /** Prefix of every key and channel, so that several clusters can share one Redis. Default `earshot:`. */
  prefix?: string;
  /** Runs on every (re)connection to Redis. */
  onReady(): void;
  /** Runs when Redis becomes unreachable (once per outage). */
  onDown(why: string): void;
  /**
   * Runs when Redis answers but refuses the URL's credentials (its error: WRONGPASS, NOAUTH): at
   * once, then at most once a minute while it goes on. Not an outage: `onDown` does not run for it.
   */
  onCredentialsRefused?(error: string): void;
  /** A configuration change published by another node. */
  onChange(change: ConfigChange): void;
}

// Compare-and-delete: only the holder frees a lock, only the owner's entry goes.
const UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
// GETDEL, for Redis before 6.2.
const GET_AND_DELETE = "local v = redis.call('get', KEYS[1]) if v then redis.call('del', KEYS[1]) end return v";
const HDEL_IF = "if redis.call('hget', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('hdel', KEYS[1], ARGV[1]) else return 0 end";
/**
 * Why this node does not join: another entry holds its id. At this node's own URL it is most likely
 * this node's previous process (restarted before the entry's TTL ran out), and it goes by itself.
 */
export function idHeldMessage(record: Pick<NodeRecord, 'id' | 'url'>, holder: Pick<NodeRecord, 'url' | 'startedAt'>): string {
  const since = new Date(holder.startedAt).toISOString();
  return holder.url === record.url
    ? `node id "${record.id}" is still registered by a process at this node's own URL (${holder.url}, started ${since}), most likely this node before it restarted: its entry expires within ${NODE_TTL_MS / 1000} s unless that process is still running; if another node does use this URL and id, give each node its own --node-id`
    : `node id "${record.id}" is held by another live node (${holder.url}, started ${since}): give each node its own --node-id`;
}

/**
 * A node's registry entry written, unless another instance holds the id (a second node started with the
 * same --node-id, or this one restarted while its last entry lives): then that entry is returned, and
 * nothing is written. KEYS: node entry, node set; ARGV: the record, its instance, TTL ms, the id.
 */
const REGISTER = `
local current = redis.call('get', KEYS[1])
if current and cjson.decode(current).instance ~= ARGV[2] then return current end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('sadd', KEYS[2], ARGV[4])
return false`;
/** A node's entry removed only if it is this instance's (or gone): KEYS: node entry, node set; ARGV: instance, id. 1: removed. */
const DEREGISTER = `
local current = redis.call('get', KEYS[1])
if current and cjson.decode(current).instance ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
redis.call('srem', KEYS[2], ARGV[2])
return 1`;
// Compare-and-set: a dead holder's lock goes to the new placement only if nobody else took it meanwhile.
const TAKE_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";
/**
 * A rejoining node's live sessions written back, each unless another live
 * node owns its peer now (the peer published again there while this node was
 * cut off from Redis): those sessions are returned, for the node to end.
 * KEYS: peers, sessions; ARGV: node key prefix, node, then peer/session pairs.
 */
const RESYNC = `
local lost = {}
for i = 3, #ARGV, 2 do
  local peer, session = ARGV[i], ARGV[i + 1]
  local v = redis.call('hget', KEYS[1], peer)
  local owner = v and string.match(v, '^([^\t]*)\t')
  if owner and owner ~= ARGV[2] and redis.call('exists', ARGV[1] .. owner) == 1 then
    table.insert(lost, session)
  else
    redis.call('hset', KEYS[1], peer, ARGV[2] .. '\t' .. session)
    redis.call('hset', KEYS[2], session, ARGV[2])
  end
end
return lost`;

/**
 * Ownership entries of nodes no longer registered removed, each only if it
 * still holds the value read (its node may have rejoined and written it
 * again meanwhile). KEYS: the hash; ARGV: node key prefix, 1 for `peers`
 * (value `node\tsession`) or 0 for `sessions` (value `node`), then
 * field/value pairs. Returns how many went.
 */
const SWEEP = `
local removed = 0
for i = 3, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local owner = value
  if ARGV[2] == '1' then owner = string.match(value, '^([^\t]*)\t') end
  if owner and redis.call('exists', ARGV[1] .. owner) == 0 and redis.call('hget', KEYS[1], field) == value then
    redis.call('hdel', KEYS[1], field)
    removed = removed + 1
  end
end
return removed`;
/** Fields of each ownership hash a sweep looks at (an HSCAN COUNT: Redis may return a few more). */
const SWEEP_COUNT = 100;

export class ClusterState {
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #prefix: string;
  readonly #options: ClusterStateOptions;
  /** Redis is known to be unreachable (so each outage, the first failed connection included, is logged once). */
  #down = false;
  #closed = false;
  /** Set while the last heartbeat found this node's id held by another live instance: why. */
  #idHeldBy: string | undefined;
  /** The entry that holds this node's id is at this node's own URL (most likely its previous process). */
  #idHeldAtOwnUrl = false;
  /**
   * Set while Redis refuses the URL's credentials on connecting (WRONGPASS, NOAUTH): its error. Redis
   * answers, so this is no outage: `/health` and refusals say what to change, not "unreachable".
   */
  #credentialsRefused: string | undefined;
  /** Set when Redis refused the URL's database on connecting (it has fewer): why. Nothing joins database 0 instead. */
  #noDatabase: string | undefined;
  /** Where the sweep of each ownership hash goes on from (HSCAN cursors; '0': from the start). */
  readonly #sweepCursor = { peers: '0', sessions: '0' };
  /** The timers of locks being freed again after a failed command (`#release`). */
  readonly #releases = new Set<NodeJS.Timeout>();

  constructor(options: ClusterStateOptions) {
    this.#options = options;
    this.#prefix = options.prefix ?? 'earshot:';
    const common: RedisOptions = {
      lazyConnect: true,
      connectTimeout: 2000,
      // Keep trying for as long as the node runs: it rejoins when Redis returns.
      retryStrategy: (times) => (this.#closed ? null : Math.min(100 * times, 1000)),
    };
    // Commands fail at once while disconnected: a WHIP POST gets its 503 now, not after a queue drains.
    // A command timeout too: a Redis cut off without the connection closing (a network partition) must not hold a POST.
    this.#redis = new Redis(options.url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: COMMAND_TIMEOUT_MS });
    // The subscriber queues its SUBSCRIBE until connected and re-subscribes after a reconnection.
    this.#sub = new Redis(options.url, { ...common, maxRetriesPerRequest: null });
    this.#redis.on('ready', () => void this.#ready());
    const lost = (why: string) => {
      if (this.#down || this.#closed) return;
      this.#down = true;
      options.onDown(why);
    };
    let refusalLoggedAt = -Infinity;
    this.#redis.on('error', (e: Error) => {
      this.#credentialsRefused = CREDENTIALS_REFUSED.test(e.message) ? e.message.split('\n')[0].slice(0, 200) : undefined;
      if (this.#credentialsRefused === undefined) {
        lost(e.message + tlsHint(options.url, e.message));
        return;
      }
      // Every reconnection tries again and is refused again: said once a minute, not once a try.
      const now = performance.now();
      if (this.#closed || now - refusalLoggedAt < CREDENTIALS_LOG_MS) return;
      refusalLoggedAt = now;
      options.onCredentialsRefused?.(this.#credentialsRefused);
    });
    // Redis closes a connection whose credentials it refused: that is the refusal, said above, not an outage.
    this.#redis.on('close', () => {
      if (this.#credentialsRefused === undefined) lost('connection closed');
    });
    this.#sub.on('error', () => undefined); // reported through the command connection
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#key('changes')) return;
      try {
        const change = JSON.parse(message) as ConfigChange;
        if ((change.kind === 'pipeline' || change.kind === 'room') && typeof change.name === 'string') options.onChange(change);
      } catch {
        // not ours
      }
    });
  }

  /**
   * Connected. ioredis goes on in database 0 when the URL's database cannot be selected (Redis has
   * 16 by default), where another cluster may live: it is selected again here, and a refusal keeps
   * the node out of the cluster, saying why.
   */
  async #ready(): Promise<void> {
    // Ready is past AUTH: whatever else may still keep the node out, it is not the credentials.
    this.#credentialsRefused = undefined;
    const db = this.#redis.options.db ?? 0;
    if (db !== 0) {
      try {
        await this.#redis.select(db);
      } catch (e) {
        this.#noDatabase = `Redis at ${this.address} has no database ${db} (${(e as Error).message}): set the --cluster URL's database to one it has`;
        this.#options.onDown(this.#noDatabase);
        return;
      }
    }
    this.#noDatabase = undefined;
    this.#down = false;
    this.#options.onReady();
  }

  /** Starts connecting (resolves at once; `onReady` says when it is connected). */
  connect(): void {
    this.#redis.connect().catch(() => undefined);
    this.#sub.connect().then(() => this.#sub.subscribe(this.#key('changes')), () => undefined);
  }

  /** Connected and ready for commands, and this node's id is its own. */
  get available(): boolean {
    return this.connected && this.#idHeldBy === undefined;
  }

  /**
   * Why the node is out of the cluster though Redis answers, for `/health` (no addresses): it refuses
   * the URL's credentials, its database does not exist, or another live node holds its id.
   */
  get problem(): string | undefined {
    if (this.#credentialsRefused !== undefined && !this.connected) return `Redis refuses this node's credentials (${this.#credentialsRefused}): check the --cluster URL's user name and password`;
    if (this.#noDatabase !== undefined) return `Redis has no database ${this.#redis.options.db}: set the --cluster URL's database to one it has`;
    if (this.#idHeldBy !== undefined) {
      return this.#idHeldAtOwnUrl
        ? "this node id is still registered at this node's own URL, most likely by this node before it restarted: joining once that entry expires (within seconds); if it does not, another process uses this URL and id: give each node its own --node-id"
        : 'another live node holds this node id: give each node its own --node-id';
    }
    return undefined;
  }

  /** Redis answers (whether or not it takes the URL's credentials, its database exists, or this node's id is its own). */
  get reachable(): boolean {
    return this.#redis.status === 'ready' || this.#credentialsRefused !== undefined;
  }

  /** Connected to Redis, in the URL's database (whether or not this node's id is its own). */
  get connected(): boolean {
    return this.#redis.status === 'ready' && this.#noDatabase === undefined;
  }

  /** Why commands are refused while Redis is connected: another live node holds this node's id. */
  get idConflict(): string | undefined {
    return this.#idHeldBy;
  }

  /** Where Redis is, without credentials (for logs and views). */
  get address(): string {
    const u = new URL(this.#options.url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  }

  // ---- node registry

  /**
   * Writes this node's registry entry; resolves to the entry of another live instance that holds the
   * same id instead (nothing is written then), else undefined. While one does, commands other than
   * this one fail with `EARSHOT_CLUSTER_UNAVAILABLE` saying so: two nodes under one id would each
   * take the other's peers for their own.
   */
  async heartbeat(record: NodeRecord): Promise<NodeRecord | undefined> {
    if (!this.connected) throw errors.CLUSTER_UNAVAILABLE(this.#notConnected());
    let held: unknown;
    try {
      held = await this.#redis.eval(REGISTER, 2, this.#key(`node:${record.id}`), this.#key('nodes'), JSON.stringify(record), record.instance, NODE_TTL_MS, record.id);
    } catch (e) {
      throw unavailable(e);
    }
    const holder = typeof held === 'string' ? (JSON.parse(held) as NodeRecord) : undefined;
    this.#idHeldBy = holder && idHeldMessage(record, holder);
    this.#idHeldAtOwnUrl = holder !== undefined && holder.url === record.url;
    return holder;
  }

  /** Every registered node (ids whose entry expired are dropped from the set on the way). */
  async nodes(): Promise<NodeRecord[]> {
    return this.#call(async (r) => {
      const ids = await r.smembers(this.#key('nodes'));
      if (ids.length === 0) return [];
      const values = await r.mget(ids.map((id) => this.#key(`node:${id}`)));
      const gone = ids.filter((_, i) => values[i] === null);
      if (gone.length > 0) await r.srem(this.#key('nodes'), ...gone);
      return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as NodeRecord])).sort((a, b) => a.id.localeCompare(b.id));
    });
  }

  /** Leaves the registry, and forgets what `node` owned; unless another instance holds the id (nothing of its is touched). */
  async deregister(node: string, instance: string): Promise<void> {
    await this.#call(async (r) => {
      if ((await r.eval(DEREGISTER, 2, this.#key(`node:${node}`), this.#key('nodes'), instance, node)) !== 1) return;
      await this.#forgetOwned(r, node, new Set());
    });
  }

  // ---- per-peer lock

  /**
   * Takes the placement lock of `peer` for `holder` (a node, by its id and
   * the instance its registry entry names); resolves to its token, or throws
   * `EARSHOT_PEER_BUSY` while another placement holds it. A lock whose holder
   * is no longer registered, or registered as another instance (it restarted),
   * is taken over: that placement died with its node.
   */
  async lock(peer: string, holder: LockHolder): Promise<string> {
    const key = this.#key(`lock:${peer}`);
    const token = `${holder.node}/${holder.instance}/${randomBytes(12).toString('base64url')}`;
    let taken: boolean;
    try {
      taken = await this.#call(async (r) => {
        if ((await r.set(key, token, 'PX', LOCK_TTL_MS, 'NX')) === 'OK') return true;
        const held = await r.get(key);
        if (held === null) return (await r.set(key, token, 'PX', LOCK_TTL_MS, 'NX')) === 'OK';
        return (await this.#holderGone(r, key, held)) && (await r.eval(TAKE_OVER, 1, key, held, token, LOCK_TTL_MS)) === 1;
      });
    } catch (e) {
      // A command that timed out (Redis stalled) or was sent before the connection dropped may still run:
      // the lock would then be held by a token nobody knows, and every retry of the peer, through any
      // node, would get EARSHOT_PEER_BUSY until it expires (35 s). Ours is freed once Redis answers.
      this.#release(key, token);
      throw e;
    }
    if (!taken) throw errors.PEER_BUSY(peer);
    return token;
  }

  /**
   * Whether the node named in a lock's token is gone: registered as another
   * instance (it restarted), or unregistered with the lock older than a
   * registry entry lives (a node that just connected may hold a lock before
   * its first heartbeat lands). A token in another form: never.
   */
  async #holderGone(r: Redis, key: string, token: string): Promise<boolean> {
    const m = /^([^/]+)\/([^/]+)\//.exec(token);
    if (!m) return false;
    const entry = await r.get(this.#key(`node:${m[1]}`));
    if (entry === null) return (await r.pttl(key)) <= LOCK_TTL_MS - NODE_TTL_MS;
    try {
      return (JSON.parse(entry) as NodeRecord).instance !== m[2];
    } catch {
      return false;
    }
  }

  /**
   * Frees the lock if `token` still holds it. If Redis does not answer, it is
   * tried again in the background (`#release`): the peer must not stay busy
   * until the lock expires because one command was lost.
   */
  async unlock(peer: string, token: string): Promise<void> {
    const key = this.#key(`lock:${peer}`);
    await this.#call((r) => r.eval(UNLOCK, 1, key, token)).catch(() => this.#release(key, token));
  }

  /**
   * Compare-and-delete of a lock `token` may hold, tried until Redis answers
   * (every `RELEASE_RETRY_MS`, doubling up to 2 s), for as long as the lock
   * could live: after that it has expired by itself.
   */
  #release(key: string, token: string): void {
    const until = Date.now() + LOCK_TTL_MS;
    let delay = RELEASE_RETRY_MS;
    const attempt = (): void => {
      if (this.#closed || Date.now() > until) return;
      this.#call((r) => r.eval(UNLOCK, 1, key, token)).catch(() => {
        const timer = setTimeout(() => {
          this.#releases.delete(timer);
          attempt();
        }, delay);
        timer.unref();
        this.#releases.add(timer);
        delay = Math.min(delay * 2, 2000);
      });
    };
    attempt();
  }

  /** Whether `token` holds the lock of `peer` (a node placing a session on another proves it this way). */
  async holds(peer: string, token: string): Promise<boolean> {
    return (await this.#call((r) => r.get(this.#key(`lock:${peer}`)))) === token;
  }

  // ---- clients vouched for

  /**
   * A one-time ticket naming `client` (its key, `clientKey`) for `CLIENT_TICKET_TTL_MS`:
   * a node that forwards a client's request to another passes it along, and
   * the other redeems it (`redeemClient`) to count the request against that
   * client rather than the forwarding node. Only nodes reach Redis, so a
   * ticket that redeems is a node's word.
   */
  async clientTicket(client: string): Promise<string> {
    const ticket = randomBytes(18).toString('base64url');
    await this.#call((r) => r.set(this.#key(`client:${ticket}`), client.slice(0, 64), 'PX', CLIENT_TICKET_TTL_MS));
    return ticket;
  }

  /** The client a ticket names, once (the ticket is deleted); undefined for an unknown or expired ticket. */
  async redeemClient(ticket: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9_-]{24}$/.test(ticket)) return undefined;
    const client = await this.#call((r) => r.eval(GET_AND_DELETE, 1, this.#key(`client:${ticket}`)));
    return typeof client === 'string' ? client : undefined;
  }

  // ---- ownership

  async own(node: string, peer: string, session: string): Promise<void> {
    await this.#call((r) => r.multi().hset(this.#key('peers'), peer, `${node}\t${session}`).hset(this.#key('sessions'), session, node).exec());
  }

  async disown(node: string, peer: string, session: string): Promise<void> {
    await this.#call((r) => r.multi().eval(HDEL_IF, 1, this.#key('peers'), peer, `${node}\t${session}`).eval(HDEL_IF, 1, this.#key('sessions'), session, node).exec());
  }

  /** The node a peer's live session runs on, as Redis knows it (the caller checks that node is alive). */
  async ownerOfPeer(peer: string): Promise<{ node: string; session: string } | undefined> {
    const v = await this.#call((r) => r.hget(this.#key('peers'), peer));
    if (!v) return undefined;
    const [node, session] = v.split('\t');
    return { node, session };
  }

  async ownerOfSession(session: string): Promise<string | undefined> {
    return (await this.#call((r) => r.hget(this.#key('sessions'), session))) ?? undefined;
  }

  /**
   * Makes Redis say exactly what `node` runs: its live sessions written, its
   * entries for sessions that ended meanwhile removed. After a reconnection
   * (Redis restarted empty, or session ends were missed while it was away).
   *
   * Resolves to the sessions `node` must end: those whose peer another live
   * node owns now. Cut off from Redis while clients could still reach the
   * cluster, the node's entry expired and the peer was placed again on
   * another node; that newer session is the peer's, and writing this one back
   * would leave the peer running twice.
   */
  async resync(node: string, live: ReadonlyArray<{ peer: string; session: string }>): Promise<string[]> {
    return this.#call(async (r) => {
      const args = live.flatMap((s) => [s.peer, s.session]);
      const lost = (await r.eval(RESYNC, 2, this.#key('peers'), this.#key('sessions'), this.#key('node:'), node, ...args)) as string[];
      const superseded = new Set(lost);
      await this.#forgetOwned(r, node, new Set(live.map((s) => s.session).filter((s) => !superseded.has(s))));
      return lost;
    });
  }

  /**
   * Removes the ownership entries of nodes that are no longer registered, a
   * slice of each hash per call (`SWEEP_COUNT` fields, through HSCAN, going
   * on where the last call stopped). A node that is killed never removes its
   * own; readers ignore them, but with a node id per start (a pod name) they
   * would pile up forever. Resolves to how many went.
   */
  async sweep(): Promise<number> {
    return this.#call(async (r) => {
      let removed = 0;
      for (const hash of ['peers', 'sessions'] as const) {
        const [next, flat] = await r.hscan(this.#key(hash), this.#sweepCursor[hash], 'COUNT', SWEEP_COUNT);
        this.#sweepCursor[hash] = next;
        // HSCAN's COUNT is a hint (a hash being rehashed returns more): each script gets at most SWEEP_COUNT fields.
        for (let i = 0; i < flat.length; i += 2 * SWEEP_COUNT) {
          removed += Number(await r.eval(SWEEP, 1, this.#key(hash), this.#key('node:'), hash === 'peers' ? 1 : 0, ...flat.slice(i, i + 2 * SWEEP_COUNT)));
        }
      }
      return removed;
    });
  }

  async #forgetOwned(r: Redis, node: string, keep: ReadonlySet<string>): Promise<void> {
    const sessions = await r.hgetall(this.#key('sessions'));
    const peers = await r.hgetall(this.#key('peers'));
    const m = r.multi();
    for (const [session, owner] of Object.entries(sessions)) if (owner === node && !keep.has(session)) m.eval(HDEL_IF, 1, this.#key('sessions'), session, node);
    for (const [peer, v] of Object.entries(peers)) {
      const [owner, session] = v.split('\t');
      if (owner === node && !keep.has(session)) m.eval(HDEL_IF, 1, this.#key('peers'), peer, v);
    }
    await m.exec();
  }

  // ---- configuration

  /** Stores a pipeline document or room binding (`value` undefined: deleted) and tells every node. */
  async putConfig(change: ConfigChange, value: string | undefined): Promise<void> {
    const hash = this.#key(change.kind === 'pipeline' ? 'pipelines' : 'rooms');
    await this.#call((r) => {
      const m = r.multi();
      if (value === undefined) m.hdel(hash, change.name);
      else m.hset(hash, change.name, value);
      return m.publish(this.#key('changes'), JSON.stringify(change)).exec();
    });
  }

  /**
   * Stores a room binding or pipeline document unless Redis has one under
   * that name, and tells every node if it did: a node writing back what
   * Redis lost. Resolves to whether it was stored.
   */
  async restoreConfig(change: ConfigChange, value: string): Promise<boolean> {
    const hash = this.#key(change.kind === 'pipeline' ? 'pipelines' : 'rooms');
    return this.#call(async (r) => {
      if ((await r.hsetnx(hash, change.name, value)) === 0) return false;
      await r.publish(this.#key('changes'), JSON.stringify(change));
      return true;
    });
  }

  /**
   * The id of the data Redis holds, set by the first node to find none. A
   * node that saw another before knows Redis lost everything meanwhile
   * (restarted without persistence, or flushed), not that the cluster
   * deleted it.
   */
  async epoch(): Promise<string> {
    return this.#call(async (r) => {
      await r.set(this.#key('epoch'), randomBytes(9).toString('base64url'), 'NX');
      return (await r.get(this.#key('epoch'))) ?? '';
    });
  }

  /**
   * Marks the cluster's data as being written back after Redis lost it while
   * the nodes stayed connected (`HOLD_MS`): `placementHold` says so, and no
   * node places a new session meanwhile. Set by the first node to notice.
   */
  async holdPlacements(): Promise<void> {
    await this.#call((r) => r.set(this.#key('rebuilding'), '1', 'PX', HOLD_MS, 'NX'));
  }

  /** Whether `holdPlacements` holds them now, and the epoch Redis has (undefined: none). */
  async placementHold(): Promise<{ held: boolean; epoch: string | undefined }> {
    const [held, epoch] = await this.#call((r) => r.mget(this.#key('rebuilding'), this.#key('epoch')));
    return { held: held !== null, epoch: epoch ?? undefined };
  }

  /** The id of the data Redis holds now, without setting one (undefined: none, Redis lost its data). */
  async storedEpoch(): Promise<string | undefined> {
    return (await this.#call((r) => r.get(this.#key('epoch')))) ?? undefined;
  }

  async getConfig(kind: ConfigChange['kind'], name: string): Promise<string | undefined> {
    return (await this.#call((r) => r.hget(this.#key(kind === 'pipeline' ? 'pipelines' : 'rooms'), name))) ?? undefined;
  }

  /** Every stored pipeline document and room binding. */
  async config(): Promise<{ pipelines: Record<string, string>; rooms: Record<string, string> }> {
    return this.#call(async (r) => ({ pipelines: await r.hgetall(this.#key('pipelines')), rooms: await r.hgetall(this.#key('rooms')) }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#releases.values()) clearTimeout(timer);
    this.#releases.clear();
    // QUIT only on a live connection: on one that is reconnecting it would wait for Redis to return.
    await Promise.allSettled([this.#redis, this.#sub].map((r) => (r.status === 'ready' ? r.quit() : undefined)));
    this.#redis.disconnect();
    this.#sub.disconnect();
  }

  /** Why commands cannot run while not connected: the credentials Redis refuses, else the connection's state. */
  #notConnected(): string {
    const status = `Redis at ${this.address} is ${this.#redis.status}`;
    return this.#credentialsRefused !== undefined ? `${status}: it refuses the --cluster URL's credentials (${this.#credentialsRefused})` : status;
  }

  #key(name: string): string {
    return `${this.#prefix}${name}`;
  }

  /** Runs Redis commands; any failure of Redis itself becomes `EARSHOT_CLUSTER_UNAVAILABLE`. */
  async #call<T>(f: (r: Redis) => Promise<T>): Promise<T> {
    if (this.#noDatabase !== undefined) throw errors.CLUSTER_UNAVAILABLE(this.#noDatabase);
    if (this.#idHeldBy !== undefined && this.#redis.status === 'ready') throw errors.CLUSTER_UNAVAILABLE(this.#idHeldBy);
    if (!this.available) throw errors.CLUSTER_UNAVAILABLE(this.#notConnected());
    try {
      return await f(this.#redis);
    } catch (e) {
      throw unavailable(e);
    }
  }
}

/** How often a refusal of the credentials is said again while it goes on. */
const CREDENTIALS_LOG_MS = 60_000;

/** Redis's errors for a user name or password it does not take (AUTH on connecting, or none sent where one is needed). */
const CREDENTIALS_REFUSED = /^(WRONGPASS|NOAUTH)\b|^ERR (invalid password|AUTH )/;

/**
 * What a connection error may mean about the URL's scheme: a TLS client on a
 * plain port waits for a handshake that never comes (Redis reads the hello as
 * an unfinished command), and a plain client on a TLS port is cut off.
 */
function tlsHint(url: string, error: string): string {
  const tls = url.startsWith('rediss:');
  if (tls && /ETIMEDOUT/.test(error)) return ' (with rediss://, a Redis port that does not serve TLS ends this way too: then use redis://)';
  if (!tls && /ECONNRESET|EPIPE|socket hang up/.test(error)) return ' (if this Redis port serves TLS, use rediss://)';
  return '';
}

function unavailable(e: unknown): EarshotError {
  const error = errors.CLUSTER_UNAVAILABLE((e as Error)?.message ?? String(e));
  // Redis's own error (NOPERM …), for /health and logs, which say what this one wraps in its own words.
  error.cause = e;
  return error;
}
