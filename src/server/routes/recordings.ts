/**
 * Recordings: a paginated listing with duration and size, and downloads.
 *
 * Downloads are served by @fastify/static's `sendFile` (single byte ranges,
 * ETag, Last-Modified; RFC 9110 §14): without ranges a browser's <audio> treats
 * the file as a live stream, shows no duration and cannot seek. A recording
 * still being written is served as far as it got.
 *
 * A download holds a socket and a file descriptor while it runs, so they are
 * bounded: a client that stops reading is cut off after `idleTimeoutMs`
 * without progress, and only so many downloads may run at once per client
 * (an address, an IPv6 client's /64; see client-address.ts) and in all.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from '../../errors.js';
import { RecordingsStore } from '../../sinks/recordings-store.js';
import type { Access } from '../access.js';
import type { DownloadLinks } from '../download-links.js';
import type { EarshotCore } from '../../core/earshot-core.js';
import { requestClient } from '../client-address.js';
import { queryInteger } from '../query-integer.js';

export interface DownloadLimits {
  /** Concurrent downloads one client may run (one address; an IPv6 client: its /64). */
  perClient: number;
  /** Concurrent downloads in all. */
  total: number;
  /** A download that sends nothing for this long (the client stopped reading) is cut off, ms. */
  idleTimeoutMs: number;
}

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** Serves recording `name` to `req` as `GET /recordings/<name>` does (signed link or admin, ranges, download limits). */
export type ServeRecording = (req: FastifyRequest<{ Querystring: { expires?: string; signature?: string } }>, reply: FastifyReply, name: string) => Promise<FastifyReply>;

/**
 * `core` needs only the store (hook: the `--processes N` front serves recordings from the shared directory with no core of its own).
 * `clientOf`: who a download is from, for `limits.perClient`, asked once the download is authorized (a cluster node counts a download another node forwards against the client that node names).
 */
export function registerRecordingRoutes(
  app: FastifyInstance,
  core: Pick<EarshotCore, 'store'>,
  access: Access,
  links: DownloadLinks,
  limits: DownloadLimits,
  clientOf: (req: FastifyRequest) => string | Promise<string> = requestClient,
): ServeRecording {
  app.get<{ Querystring: { limit?: string; cursor?: string; order?: string } }>('/recordings', async (req) => {
    const limit = queryInteger(req.query.limit, DEFAULT_PAGE, 1, MAX_PAGE, `?limit= must be an integer from 1 to ${MAX_PAGE}.`);
    const order = req.query.order ?? 'name';
    if (order !== 'name' && order !== 'newest') throw errors.BODY_INVALID('?order= must be "name" (the default) or "newest".');
    const cursor = req.query.cursor;
    // A cursor of the newest-first order is the time and name of the last recording of a page.
    if (cursor !== undefined && (typeof cursor !== 'string' || cursor.length > 1024 || (order === 'newest' && !/^\d{1,16}:./.test(cursor)))) {
      throw errors.BODY_INVALID(`?cursor= must be the "next" value of the previous page${order === 'newest' ? ' of the same order' : ''}.`);
    }
    const page = await core.store.page({ limit, cursor, order });
    return {
      recordings: page.recordings.map((r) => ({ ...r, url: links.sign(r.name) })),
      next: page.next,
      total: page.total,
      linkSeconds: links.ttlSeconds,
    };
  });

  const active = new Map<string, number>();
  let running = 0;

  const serve: ServeRecording = async (req, reply, given) => {
    // Who may ask comes before what is asked: a name that is not valid is said only to someone allowed
    // to ask (no link was ever signed for one, so only the admin role can be).
    let name: string | undefined;
    let nameProblem: unknown;
    try {
      name = RecordingsStore.checkName(given);
    } catch (e) {
      nameProblem = e;
    }
    // A signed link opens exactly its file; anything else needs the admin role. A link that no
    // longer opens it, sent without a token, is told so: "needs the admin token" would puzzle
    // whoever holds an hour-old link from the dashboard. Where the admin role is open to this
    // request, it opens the file as the same URL without the link would.
    const link = name !== undefined ? links.check(name, req.query.expires, req.query.signature) : req.query.signature === undefined && req.query.expires === undefined ? 'none' : 'invalid';
    if (link !== 'valid') {
      if (link !== 'none' && req.headers.authorization === undefined && !access.holds(req, 'admin')) {
        throw link === 'expired' ? errors.DOWNLOAD_LINK_EXPIRED(new Date(Number(req.query.expires) * 1000).toISOString()) : errors.DOWNLOAD_LINK_INVALID();
      }
      await access.require('admin')(req, reply);
    }
    if (name === undefined) throw nameProblem;
    const entry = await core.store.describe(name, given); // 404s unknown files, naming the name as given
    // A Range that is not a valid byte-ranges-specifier is ignored: the whole file (RFC 9110 §14.2).
    if (req.headers.range !== undefined && !validByteRanges(req.headers.range)) delete req.headers.range;
    // If-Range compares entity tags strongly (RFC 9110 §13.1.5): a weak tag (ours all are, W/"size-mtime")
    // never matches, so the whole file is sent; so is it for anything but one strong tag in that form (a
    // list, or the header twice), which @fastify/send would search for ours as a substring. Dates go on.
    const ifRange = req.headers['if-range'];
    if (typeof ifRange === 'string' && /^\s*(W\/|")/.test(ifRange) && !/^\s*"[^"]*"\s*$/.test(ifRange)) delete req.headers.range;
    // A suffix longer than the file is the whole file (RFC 9110 §14.1.3), as a range from 0: 206, not 416.
    if (suffixCoversAll(req.headers.range, entry.bytes)) req.headers.range = 'bytes=0-';
    // Our own 416 (problem+json with the size), before any slot is taken.
    if (rangeBeyondEnd(req.headers.range, entry.bytes)) {
      void reply.header('Content-Range', `bytes */${entry.bytes}`);
      throw errors.RANGE_NOT_SATISFIABLE(entry.bytes, String(req.headers.range).slice(0, 100));
    }
    // As the other per-client limits count: an IPv6 client is its /64, so that one host cannot take a
    // slot per address it picks; an IPv4 client seen through a dual-stack listener is its IPv4 address.
    const client = await clientOf(req);
    const mine = active.get(client) ?? 0;
    if (mine >= limits.perClient) throw withRetry(reply, errors.TOO_MANY_DOWNLOADS(limits.perClient, 'from one address'));
    if (running >= limits.total) throw withRetry(reply, errors.TOO_MANY_DOWNLOADS(limits.total, 'on this server'));
    active.set(client, mine + 1);
    running++;
    track(reply.raw, limits.idleTimeoutMs, () => {
      running--;
      const n = (active.get(client) ?? 1) - 1;
      if (n > 0) active.set(client, n);
      else active.delete(client);
    });
    void reply
      .header('Content-Disposition', `attachment; filename="${entry.name.split('/').pop()}"`)
      .header('Cache-Control', 'no-store');
    return reply.sendFile(entry.name, core.store.dir, { acceptRanges: true, etag: true, lastModified: true, cacheControl: false, dotfiles: 'deny' });
  };

  // `*`: names may include the subdirectories of a record sink's `directory` (calls/demo/x.wav).
  app.get<{ Params: { '*': string }; Querystring: { expires?: string; signature?: string } }>('/recordings/*', { config: { access: 'admin-or-signed' } }, (req, reply) => serve(req, reply, req.params['*']));
  return serve;
}

/** `bytes=` and one or more `first-[last]` (last ≥ first) or `-suffix` specs (RFC 9110 §14.1.2). */
function validByteRanges(header: string): boolean {
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return false;
  return m[1].split(',').every((spec) => {
    const r = /^\s*(\d*)-(\d*)\s*$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) return false;
    return r[1] === '' || r[2] === '' || Number(r[2]) >= Number(r[1]);
  });
}

/** A single `bytes=` range that starts at or past the end, or asks for the last 0 bytes or the last bytes of an empty file: RFC 9110 §14.1.1 416. */
function rangeBeyondEnd(header: string | undefined, size: number): boolean {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return false;
  return m[1] === '' ? Number(m[2]) === 0 || size === 0 : Number(m[1]) >= size;
}

/** A single suffix range (`bytes=-N`) at least as long as a file that is not empty. */
function suffixCoversAll(header: string | undefined, size: number): boolean {
  const m = header ? /^bytes=-(\d+)$/.exec(header.trim()) : null;
  return m !== null && size > 0 && Number(m[1]) >= size;
}

function withRetry<E>(reply: { header(k: string, v: string): unknown }, error: E): E {
  reply.header('Retry-After', '5');
  return error;
}

/**
 * Cuts the connection of a download that makes no progress for `idleMs`
 * (its reader stopped: the socket buffer is full and nothing is written), and
 * calls `done` once when the response ends, whichever way.
 *
 * Progress is what the socket has handed to the operating system: the
 * chunks whose writes completed (a chunk is handed on only once the one
 * before was written) and, within the chunk being written, what libuv still
 * holds of it (`writeQueueSize`, which shrinks as the kernel takes bytes), so
 * a slow reader is progress and a stalled one is not. Not the socket's own
 * timeout: Node lets its first expiry pass while a write is pending, so a
 * stalled download was cut at twice the setting (60 s for 30). The socket is
 * read on every check: a pipelined request's response gets it only once the
 * responses before it are sent.
 */
function track(res: ServerResponse, idleMs: number, done: () => void): void {
  let finished = false;
  let handedOn = -1;
  let pending = -1;
  let since = performance.now();
  const check = setInterval(() => {
    const socket = res.socket;
    if (!socket) return;
    const now = performance.now();
    const sent = socket.bytesWritten - socket.writableLength;
    const queued = (socket as unknown as { _handle?: { writeQueueSize?: number } | null })._handle?.writeQueueSize ?? 0;
    if (sent !== handedOn || queued !== pending) {
      handedOn = sent;
      pending = queued;
      since = now;
    } else if (now - since >= idleMs) socket.destroy();
  }, Math.min(1000, Math.max(50, idleMs / 10)));
  check.unref();
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(check);
    done();
  };
  // 'close' fires when the response completed or its connection went away.
  res.once('close', finish);
}
