/**
 * `maxConnections`: past the bound a new connection is closed at once, and
 * one freed makes room again, so idle connections cannot use up the
 * descriptors recordings need. The default comes from the open-file limit.
 */
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMaxConnections } from '../../src/server/connection-limit.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

let t: TestServer;
const open: Socket[] = [];
beforeAll(async () => {
  t = await startServer({ maxConnections: 3 });
});
afterAll(async () => {
  for (const s of open) s.destroy();
  await t?.close();
});

/** Connects, sends GET /health, and resolves to the status line, or 'closed' if the server closed it without one. */
function health(keep = false): Promise<string> {
  const u = new URL(t.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname, () => socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!text.includes('\r\n')) return;
      if (keep) open.push(socket);
      else socket.destroy();
      resolve(text.split('\r\n')[0]);
    });
    socket.on('close', () => resolve(text.split('\r\n')[0] || 'closed'));
    socket.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve('closed') : reject(e)));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer and not closed')));
  });
}

describe('maxConnections', () => {
  it('closes a connection past the bound at once, and takes one again when another goes', async () => {
    // Three kept-alive connections: the bound.
    for (let i = 0; i < 3; i++) expect(await health(true)).toBe('HTTP/1.1 200 OK');
    expect(await health()).toBe('closed');
    open.pop()!.destroy();
    await until('the freed connection to be counted out', () => new Promise<true | undefined>((r) => t.server.app.server.getConnections((_e, n) => r(n < 3 ? true : undefined))));
    expect(await health()).toBe('HTTP/1.1 200 OK');
  });

  it('defaults to half the open-file limit, within 64–16384 (4096 where the limit is unknown)', async () => {
    const limits = await readFile('/proc/self/limits', 'utf8').catch(() => undefined);
    const soft = Number(limits?.split('\n').find((l) => l.startsWith('Max open files'))?.split(/\s{2,}/)[1]);
    expect(defaultMaxConnections()).toBe(Number.isFinite(soft) ? Math.min(16_384, Math.max(64, Math.floor(soft / 2))) : 4096);
  });
});
