/**
 * `GET /events`: a live Server-Sent Events stream for dashboards and tools.
 *
 * - `stats` every `?interval=` ms (default 500, 100–10000): `{ server, peers }`,
 *   the same document as `GET /stats`, computed once per tick for all clients;
 * - `session` when a session starts or ends: `{ type, peer, room, session, pipeline, reason?, recordings?, at }`;
 * - `processor` for every processor event: `{ peerId, roomId, sessionId, processor, event, data, at }`.
 *
 * A client that reads too slowly never holds up the server or other clients:
 * while its socket has more than 1 MiB unsent, its `stats` ticks are skipped
 * (events still queue up to that bound) and counted in `skippedTicks`.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Subscription } from 'rxjs';
import { errors } from '../../errors.js';
import type { EarshotCore } from '../earshot-core.js';

const MAX_UNSENT_BYTES = 1024 * 1024;
const DEFAULT_INTERVAL_MS = 500;

interface Client {
  reply: FastifyReply;
  intervalMs: number;
  nextDue: number;
  skippedTicks: number;
}

export function registerEventRoutes(app: FastifyInstance, core: EarshotCore): void {
  const clients = new Set<Client>();
  let timer: NodeJS.Timeout | undefined;
  let subscriptions: Subscription[] = [];

  const write = (c: Client, event: string, data: unknown): boolean => {
    const raw = c.reply.raw;
    if (raw.destroyed || raw.writableLength > MAX_UNSENT_BYTES) return false;
    raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    return true;
  };
  const broadcast = (event: string, data: unknown) => {
    for (const c of clients) write(c, event, data);
  };
  const tick = () => {
    const now = Date.now();
    const due = [...clients].filter((c) => now >= c.nextDue);
    if (due.length === 0) return;
    // One snapshot per tick, shared by every client that is due.
    const snapshot = JSON.stringify({ server: core.stats(), peers: core.peers.snapshots() });
    for (const c of due) {
      c.nextDue = now + c.intervalMs;
      const raw = c.reply.raw;
      if (raw.destroyed) continue;
      if (raw.writableLength > MAX_UNSENT_BYTES) c.skippedTicks++;
      else raw.write(`event: stats\ndata: ${snapshot}\n\n`);
    }
  };
  const start = () => {
    timer = setInterval(tick, 100);
    timer.unref();
    subscriptions = [core.sessions$.subscribe((e) => broadcast('session', e)), core.events$.subscribe((e) => broadcast('processor', e))];
  };
  const stop = () => {
    clearInterval(timer);
    timer = undefined;
    for (const s of subscriptions) s.unsubscribe();
    subscriptions = [];
  };

  app.get<{ Querystring: { interval?: string } }>('/events', async (req, reply) => {
    const interval = req.query.interval === undefined ? DEFAULT_INTERVAL_MS : Number(req.query.interval);
    if (!Number.isInteger(interval) || interval < 100 || interval > 10_000) throw errors.BODY_INVALID('?interval= must be an integer number of milliseconds from 100 to 10000.');
    // Headers set so far (CORS for an allowed origin) would be lost by hijacking: carry them over.
    const earlier: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) earlier[k] = v;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      ...earlier,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // proxies must not buffer a live stream
    });
    raw.write('retry: 2000\n\n');
    const client: Client = { reply, intervalMs: interval, nextDue: 0, skippedTicks: 0 };
    if (clients.size === 0) start();
    clients.add(client);
    tick();
    const done = () => {
      if (!clients.delete(client)) return;
      if (clients.size === 0) stop();
    };
    raw.on('close', done);
    raw.on('error', done);
  });

  app.addHook('onClose', async () => {
    for (const c of clients) c.reply.raw.end();
    clients.clear();
    stop();
  });
}
