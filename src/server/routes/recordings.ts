/**
 * Recordings: list with duration and size, and download as audio/wav.
 *
 * Downloads carry their length and honour single byte ranges (RFC 9110 §14):
 * without them a browser's <audio> treats the file as a live stream, shows no
 * duration and cannot seek.
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';
import type { EarshotCore } from '../earshot-core.js';

export function registerRecordingRoutes(app: FastifyInstance, core: EarshotCore): void {
  app.get('/recordings', async () => ({ recordings: await core.store.list() }));

  // `*`: names may include the subdirectories of a record sink's `directory` (calls/demo/x.wav).
  app.get<{ Params: { '*': string } }>('/recordings/*', async (req, reply) => {
    const entry = await core.store.describe(req.params['*']); // validates the name, 404s unknown files
    // The size when asked: a recording still being written is served as far as it got.
    const size = entry.bytes;
    void reply
      .type('audio/wav')
      .header('Content-Disposition', `attachment; filename="${entry.name.split('/').pop()}"`)
      .header('Cache-Control', 'no-store')
      .header('Accept-Ranges', 'bytes');
    const range = byteRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      void reply.header('Content-Range', `bytes */${size}`);
      throw errors.RANGE_NOT_SATISFIABLE(size, String(req.headers.range));
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    if (range) void reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`);
    void reply.header('Content-Length', String(end - start + 1));
    if (end < start) return reply.send(Buffer.alloc(0));
    return reply.send(createReadStream(core.store.pathOf(entry.name), { start, end }));
  });
}

/**
 * The one byte range of a `Range` header, clamped to the file; undefined for no
 * header, a malformed one or several ranges (the whole file is sent then, which
 * RFC 9110 §14.2 allows).
 */
export function byteRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return undefined;
  return { start, end };
}
