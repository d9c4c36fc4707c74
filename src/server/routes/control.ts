/**
 * Control API: health, statistics, and per-peer recording start/stop.
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';
import { queryFlag } from '../query-flag.js';
import { RecordingsStore } from '../../sinks/recordings-store.js';
import type { Access } from '../access.js';
import type { EarshotCore } from '../../core/earshot-core.js';

export function registerControlRoutes(app: FastifyInstance, core: EarshotCore, access: Access): void {
  // `degraded` (a DSP worker hung or crashed recently; see docs/deployment.md) still answers 200:
  // the server keeps serving — a fault ends only the stream at fault — so a load balancer must
  // keep routing to it, while monitoring alerts on `status` and reads `reasons`. Public, so the
  // reasons name stage types and pool stream ids only, never peers or file paths.
  app.get('/health', async () => {
    const pool = core.pool.health();
    const stats = core.stats();
    // false while a new session would get 503: the measured load, the session limits, a shutdown.
    const { ready, reasons: full } = core.readiness();
    return {
      status: pool.status,
      reasons: pool.reasons,
      ready,
      ...(!ready ? { load: full } : {}),
      ...pick(stats),
      workerRestarts: pool.workerRestarts,
      lastRestartAt: pool.lastRestartAt,
      quarantined: pool.quarantined,
      // Which roles need a token, so a client (the dashboard) can ask for one before calling.
      access: { publish: access.publishOpen ? 'open' : 'token', admin: access.adminOpen ? 'open' : 'token' },
    };
  });

  app.get('/stats', async () => ({ server: core.stats(), peers: core.peers.snapshots() }));

  app.get<{ Params: { peer: string }; Querystring: { histogram?: string } }>('/stats/:peer', async (req) => {
    // `?histogram=false` asked for none, and got one while the parameter's presence was the flag.
    const histogram = queryFlag(req.query.histogram, 'histogram');
    const stats = core.peerStats(req.params.peer);
    if (!histogram) return stats;
    // The latency histogram on request: windows can be measured by subtracting two of them.
    return { ...stats, latencyHistogram: core.peers.latency(req.params.peer) ?? null };
  });

  app.post<{ Params: { peer: string }; Body: unknown }>('/peers/:peer/recording', { bodyLimit: 16 * 1024 }, async (req, reply) => {
    const entry = core.peer(req.params.peer);
    const body = req.body ?? {};
    if (typeof body !== 'object' || Array.isArray(body)) throw errors.BODY_INVALID('The body must be a JSON object like {"name": "interview-1"} (or empty).');
    const { name, branch, ...rest } = body as { name?: unknown; branch?: unknown };
    if (Object.keys(rest).length > 0) throw errors.BODY_INVALID(`Unknown field(s) ${Object.keys(rest).map((k) => `"${k}"`).join(', ')}; only "name" and "branch" are accepted.`);
    if (name !== undefined && typeof name !== 'string') throw errors.BODY_INVALID('"name" must be a string.');
    if (branch !== undefined && (typeof branch !== 'string' || branch.length === 0)) throw errors.BODY_INVALID('"branch" must be the name of one of the pipeline\'s branches.');
    if (name !== undefined) RecordingsStore.checkName(name);
    const recordings = await entry.pipeline.startRecording(name, undefined, branch);
    return reply.code(201).send({ peer: entry.peer, recordings });
  });

  app.delete<{ Params: { peer: string }; Querystring: { branch?: unknown } }>('/peers/:peer/recording', async (req) => {
    const entry = core.peer(req.params.peer);
    const branch = req.query.branch;
    if (branch !== undefined && (typeof branch !== 'string' || branch.length === 0)) throw errors.BODY_INVALID('?branch= must name one of the pipeline\'s branches, once.');
    const recordings = await entry.pipeline.stopRecording(branch);
    return {
      peer: entry.peer,
      recordings: recordings.map((r) => ({ name: r.name, seconds: r.seconds, bytes: r.bytes, sampleRate: r.sampleRate, channels: r.channels })),
    };
  });
}

function pick(s: ReturnType<EarshotCore['stats']>) {
  return { uptimeSeconds: s.uptimeSeconds, peers: s.peers, rooms: s.rooms, poolThreads: s.pool.threads };
}
