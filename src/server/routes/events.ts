/**
 * `GET /events`: a live Server-Sent Events stream for dashboards and tools.
 *
 * - `stats` every `?interval=` ms (default 500, 100–10000): `{ server, peers }`,
 *   the same document as `GET /stats`, computed once per tick for all clients;
 * - `session` when a session starts or ends: `{ type, peer, room, session, pipeline, reason?, recordings?, at }`;
 * - `processor` for every processor event: `{ peerId, roomId, sessionId, processor, event, data, at }`
 *   (not clients' data channel messages, `client-message`: those stay in-process).
 *
 * A client that reads too slowly never holds up the server or other clients:
 * while its socket has more than 1 MiB unsent, its `stats` ticks are skipped
 * (events still queue up to that bound) and counted in `skippedTicks`.
 *
 * The same route serves one process (the core's figures) and the front of
 * `--processes N` (the engines' figures merged, gathered asynchronously): a
 * tick never overlaps itself, so a slow engine delays `stats` events instead
 * of piling up requests.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Observable, Subscription } from 'rxjs';
import { isClientMessage } from '../../core/client-feed.js';
import { errors } from '../../errors.js';
import type { ProcessorEvent } from '../../sinks/processors.js';

const MAX_UNSENT_BYTES = 1024 * 1024;
const DEFAULT_INTERVAL_MS = 500;

/** What the stream reports: one process's core, or a whole machine's engines. */
export interface EventSource {
  /** `{ server, peers }`, as `GET /stats` answers; a machine of several engines gathers it asynchronously. */
  stats(): unknown;
  sessions$: Observable<unknown>;
  events$: Observable<unknown>;
}

interface Client {
  reply: FastifyReply;
  intervalMs: number;
  nextDue: number;
  skippedTicks: number;
}

export function registerEventRoutes(app: FastifyInstance, source: EventSource): void {
  const clients = new Set<Client>();
  let timer: NodeJS.Timeout | undefined;
  let subscriptions: Subscription[] = [];
  let ticking = false;

  const broadcast = (event: string, data: unknown) => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) {
      const raw = c.reply.raw;
      if (!raw.destroyed && raw.writableLength <= MAX_UNSENT_BYTES) raw.write(text);
    }
  };
  const tick = async () => {
    if (ticking) return;
    const now = Date.now();
    const due = [...clients].filter((c) => now >= c.nextDue);
    if (due.length === 0) return;
    ticking = true;
    try {
      // One snapshot per tick, shared by every client that is due.
      const snapshot = JSON.stringify(await source.stats());
      for (const c of due) {
        c.nextDue = now + c.intervalMs;
        const raw = c.reply.raw;
        if (raw.destroyed) continue;
        if (raw.writableLength > MAX_UNSENT_BYTES) c.skippedTicks++;
        else raw.write(`event: stats\ndata: ${snapshot}\n\n`);
      }
    } catch (e) {
      app.log.warn({ err: (e as Error).message }, 'machine statistics unavailable for /events');
    } finally {
      ticking = false;
    }
  };
  const start = () => {
    timer = setInterval(() => void tick(), 100);
    timer.unref();
    subscriptions = [
      source.sessions$.subscribe((e) => broadcast('session', e)),
      // Clients' data channel messages are for in-process code only (see isClientMessage).
      source.events$.subscribe((e) => {
        if (!isClientMessage(e as ProcessorEvent)) broadcast('processor', e);
      }),
    ];
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
      'x-accel-buffering': 'no',
    });
    raw.write('retry: 2000\n\n');
    const client: Client = { reply, intervalMs: interval, nextDue: 0, skippedTicks: 0 };
    if (clients.size === 0) start();
    clients.add(client);
    void tick();
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
