// The dashboard on a node of a cluster (`earshot serve --cluster …`): a session
// may run on any node (a Talk session too: the node the page reached forwards
// it to the least-loaded one), and each node's own /stats, /events and
// /recordings know only its own. So on a cluster node the page reads the
// cluster-wide views instead: peers and server figures from GET /cluster/stats
// (every node's /stats merged, each peer with its `node`), polled every second,
// and recordings from GET /cluster/recordings (every node's, with signed links
// that open through whichever node the page reached). The event log still
// follows this node's GET /events, plus the starts and ends of other nodes'
// peers as the polls see them.

import { api, problemText } from './access.js';

const POLL_MS = 1000;

/** This node's id, once /health has said the server is a cluster node; null on a single server. */
export let clusterNode = null;

/** Called once, before anything is fetched, with /health's `cluster` (absent on a single server). */
export function useCluster(health) {
  clusterNode = typeof health?.node === 'string' ? health.node : null;
}

/**
 * Polls GET /cluster/stats for ever. `render(doc)` gets each answer
 * (`{ server, peers }`); `down(message)` each failure (Redis unreachable: 503
 * EARSHOT_CLUSTER_UNAVAILABLE), after which polling goes on.
 */
export async function followCluster(render, down) {
  for (;;) {
    try {
      const res = await api('/cluster/stats', { cache: 'no-store' });
      if (!res.ok) throw new Error(await problemText(res));
      const doc = await res.json();
      if (doc && typeof doc === 'object') render(doc);
    } catch (e) {
      down(e instanceof Error ? e.message : String(e));
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** How many of the cluster's nodes answered, from /cluster/stats' `server.nodes`: "2 nodes", or "1 of 2 nodes". */
export function nodesText(server) {
  const nodes = Array.isArray(server?.nodes) ? server.nodes : [];
  const reachable = nodes.filter((n) => n?.reachable !== false).length;
  return reachable === nodes.length ? `${nodes.length} node${nodes.length === 1 ? '' : 's'}` : `${reachable} of ${nodes.length} nodes`;
}

/** Whether every node answered this poll (a peer missing from an answer that lacks a node may still run there). */
export function allNodesAnswered(server) {
  const nodes = Array.isArray(server?.nodes) ? server.nodes : [];
  return nodes.every((n) => n?.reachable !== false);
}
