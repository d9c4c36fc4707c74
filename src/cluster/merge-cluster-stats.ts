/**
 * The cluster's statistics out of its nodes' (`GET /cluster/stats`): the same
 * merge as one machine's engines (src/cluster/merge-stats.ts: counts summed,
 * rooms united, latencies and delays from the worst), each node standing
 * where an engine stands there, plus `server.nodes` (one entry per node) and
 * `node` on every peer and listener (whose `engine` is its node's own engine
 * slot), and `pool.streamsPerThread` keyed `<node>:<engine>:<thread>`.
 */
import type { ClusterPeerStats, ClusterServerStats } from './merge-stats.js';
import { mergeStats, RetiredCounters } from './merge-stats.js';

/** One node's `GET /stats` document (a cluster node always runs the front, so it has `engines`). */
export interface NodeStats {
  server: ClusterServerStats;
  peers: ClusterPeerStats[];
}

/** A node as the cluster's statistics list it. */
export interface NodeSummary {
  node: string;
  url: string;
  state: 'up' | 'draining';
  /** Whether its statistics could be read just now (they are left out otherwise). */
  reachable: boolean;
  peers: number;
  ready: boolean;
  engines: number;
}

export type ClusterWideServerStats = Omit<ClusterServerStats, 'processes' | 'engines'> & { nodes: NodeSummary[] };
export type ClusterWidePeerStats = ClusterPeerStats & { node: string };

export function mergeClusterStats(parts: Array<{ node: string; stats: NodeStats }>, nodes: NodeSummary[]): { server: ClusterWideServerStats; peers: ClusterWidePeerStats[] } {
  const merged = mergeStats(
    parts.map((p, i) => ({ engine: i, stats: p.stats })),
    {
      uptimeSeconds: Math.max(0, ...parts.map((p) => p.stats.server.uptimeSeconds)),
      // Each node's own document already counts its retired engines and its own refusals.
      retired: new RetiredCounters(),
      frontRefusedBy: {},
      engines: [],
      memory: { rssBytes: 0, heapUsedBytes: 0 },
    },
  );
  const { processes: _p, engines: _e, ...server } = merged.server;
  const peers = parts.flatMap((p) => p.stats.peers.map((peer) => ({ ...peer, node: p.node })));
  // Where each listener and thread is, by node id: the merge above put a node's place in the list
  // where an engine's slot goes, over the node's own engine slot (each node's document has it right).
  const listeners = parts.flatMap((p) => (p.stats.server.listeners ?? []).map((l) => ({ ...l, node: p.node })));
  const streamsPerThread: Record<string, number> = {};
  for (const p of parts) for (const [thread, n] of Object.entries(p.stats.server.pool.streamsPerThread)) streamsPerThread[`${p.node}:${thread}`] = n;
  return { server: { ...server, listeners, pool: { ...server.pool, streamsPerThread }, nodes }, peers };
}
