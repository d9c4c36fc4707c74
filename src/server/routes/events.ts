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
 *
 * A stream holds a socket and a share of every tick's writes for as long as
 * its client keeps it open, so they are bounded like downloads: only so many
 * at once per client address and in all (429 `EARSHOT_TOO_MANY_EVENT_STREAMS`,
 * `Retry-After`). `HEAD /events` answers at once with the headers a `GET`
 * would get (RFC 9110 §9.3.2) and holds nothing.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Observable, Subscription } from 'rxjs';
import { isClientMessage } from '../../core/client-feed.js';
import { errors } from '../../errors.js';
import type { ProcessorEvent } from '../../sinks/processors.js';
import { requestClient } from '../client-address.js';
import { queryInteger } from '../query-integer.js';

const MAX_UNSENT_BYTES = 1024 * 1024;
const DEFAULT_INTERVAL_MS = 500;

/** What the stream reports: one process's core, or a whole machine's engines. */
export interface EventSource {
  /** `{ server, peers }`, as `GET /stats` answers; a machine of several engines gathers it asynchronously. */
  stats(): unknown;
  sessions$: Observable<unknown>;
  events$: Observable<unknown>;
}

/** How many event streams may be open at once. */
export interface EventStreamLimits {
  /** From one client address (an IPv6 client: its /64). */
  perClient: number;
  /** In all. */
  total: number;
}

/** Seconds a client refused for the stream limits should wait before it tries again (as downloads). */
const RETRY_AFTER_SECONDS = 5;

interface Client {
  reply: FastifyReply;
  /** Its address, as the per-client limit counts it. */
  address: string;
  intervalMs: number;
  nextDue: number;
  skippedTicks: number;
}

export function registerEventRoutes(app: FastifyInstance, source: EventSource, limits: EventStreamLimits): void {
  const clients = new Set<Client>();
  /** Open streams per client address. */
  const perAddress = new Map<string, number>();
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

  // fastify's HEAD route for it runs this handler too (exposeHeadRoutes): it answers what a GET would.
  app.get<{ Querystring: { interval?: string } }>('/events', async (req, reply) => {
    const interval = queryInteger(req.query.interval, DEFAULT_INTERVAL_MS, 100, 10_000, '?interval= must be an integer number of milliseconds from 100 to 10000.');
    const address = requestClient(req);
    const mine = perAddress.get(address) ?? 0;
    if (mine >= limits.perClient) throw withRetry(reply, errors.TOO_MANY_EVENT_STREAMS(limits.perClient, 'from one address'));
    if (clients.size >= limits.total) throw withRetry(reply, errors.TOO_MANY_EVENT_STREAMS(limits.total, 'on this server'));
    // Headers set so far (CORS for an allowed origin) would be lost by hijacking: carry them over.
    const earlier: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) earlier[k] = v;
    reply.hijack();
    const raw = reply.raw;
    const headers = { ...earlier, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' };
    if (req.method === 'HEAD') {
      // Node sends a HEAD response's headers only when it ends (it drops body writes): left open, as a
      // stream is, it never answered and held its connection. Node's own Connection header is kept,
      // so a client that asked for `Connection: close` has its socket closed.
      raw.writeHead(200, headers);
      raw.end();
      return;
    }
    raw.writeHead(200, { ...headers, connection: 'keep-alive' });
    raw.write('retry: 2000\n\n');
    const client: Client = { reply, address, intervalMs: interval, nextDue: 0, skippedTicks: 0 };
    if (clients.size === 0) start();
    clients.add(client);
    perAddress.set(address, mine + 1);
    void tick();
    const done = () => {
      if (!clients.delete(client)) return;
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
      if (clients.size === 0) stop();
    };
    raw.on('close', done);
    raw.on('error', done);
  });

  app.addHook('onClose', async () => {
    for (const c of clients) c.reply.raw.end();
    clients.clear();
    perAddress.clear();
    stop();
  });
}

function withRetry<E>(reply: FastifyReply, error: E): E {
  void reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
  return error;
}
