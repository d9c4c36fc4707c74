/**
 * What the Redis-cluster tests share: starting three nodes and stopping them,
 * reading the cluster's views through a node with the admin token, and
 * finding which node's directory holds a recording.
 */
import { readdir } from 'node:fs/promises';
import { until } from '../helpers/until.js';
import { startCli, type CliServer } from './cli-server.js';

/** A node as `GET /cluster/nodes` lists it. */
export type NodeView = { id: string; url: string; state: string; accepting: boolean; ready: boolean; sessions: number; ageMs: number };
/** A peer as `GET /cluster/stats` lists it. */
export type ClusterPeer = { peer: string; session: string; node: string; state: string; pipeline: string; rtp: { packetsReceived: number }; recording: { name: string } | null };

/**
 * Starts one node per argument list, all at once. The ones that started are
 * pushed onto `into` before a failure of another is thrown, so the caller's
 * afterAll stops them either way.
 */
export async function startNodes(args: string[][], into: CliServer[]): Promise<void> {
  const started = await Promise.allSettled(args.map((a) => startCli(a, { startTimeoutMs: 60_000 })));
  for (const r of started) if (r.status === 'fulfilled') into.push(r.value);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export async function stopNodes(nodes: readonly CliServer[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.stop(15_000).catch(() => null)));
  await Promise.all(nodes.map((n) => n.cleanup()));
}

/** The cluster's admin views, read through any node with these headers (the admin token). */
export function clusterViews(headers: Record<string, string>) {
  async function get<T>(node: CliServer, path: string): Promise<T> {
    const res = await fetch(`${node.url}${path}`, { headers });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }
  return {
    get,
    nodesSeenBy: async (node: CliServer) => (await get<{ nodes: NodeView[] }>(node, '/cluster/nodes')).nodes,
    /** A live peer with at least `minPackets` received, as `/cluster/stats` through `via` shows it. */
    livePeer: (via: CliServer, peer: string, minPackets = 1) =>
      until(`${peer} live in /cluster/stats`, async () => {
        const { peers } = await get<{ peers: ClusterPeer[] }>(via, '/cluster/stats');
        const p = peers.find((x) => x.peer === peer && x.state !== 'ended');
        return p && p.rtp.packetsReceived >= minPackets ? p : undefined;
      }),
  };
}

/** The nodes whose recordings directory holds files starting with `prefix`, and those files. */
export async function recordingsOf(nodes: readonly CliServer[], prefix: string): Promise<Array<{ node: CliServer; files: string[] }>> {
  const found = await Promise.all(nodes.map(async (node) => ({ node, files: (await readdir(node.recordingsDir).catch(() => [] as string[])).filter((f) => f.startsWith(prefix)) })));
  return found.filter((f) => f.files.length > 0);
}
