/**
 * HTTP requests sent from a chosen loopback address (127.0.0.2, 127.0.0.3 …:
 * Linux routes all of 127.0.0.0/8 to the loopback interface), so that a test
 * can be several clients of a server on one machine, as the per-client limits
 * see them. Answers as a fetch `Response`, for `expectProblem`.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

export function fetchFrom(localAddress: string, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers, localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (typeof value === 'string') headers.set(name, value);
          else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
        }
        resolve(new Response(res.statusCode === 204 || res.statusCode === 304 ? null : Buffer.concat(chunks), { status: res.statusCode, headers }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A response whose headers have arrived, its body still coming (an event stream never ends by itself). */
export interface OpenResponse {
  status: number;
  headers: Headers;
  /** The whole body as a fetch `Response` (for `expectProblem`); only for a response that ends. */
  whole(): Promise<Response>;
  /** Drops the connection, as a closed tab does. */
  close(): void;
}

/** Sends a request from `localAddress` and resolves as soon as the answer's headers arrive. */
export function openFrom(localAddress: string, url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<OpenResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers, localAddress }, (res) => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (typeof value === 'string') headers.set(name, value);
        else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const ended = new Promise<void>((done) => res.on('end', done));
      resolve({
        status: res.statusCode ?? 0,
        headers,
        whole: async () => {
          await ended;
          return new Response(chunks.length > 0 ? Buffer.concat(chunks) : null, { status: res.statusCode, headers });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', (e) => {
      if (!req.destroyed || (e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
    });
    req.end();
  });
}

/**
 * A GET of `path` on `url`'s server from `localAddress` whose reader stops as soon as the answer
 * begins: TCP flow control then stalls the server's writes, so a download holds its place (its
 * per-client and total slots) until the returned socket is destroyed. Resolves with the status.
 */
export function stalledGet(localAddress: string, url: string, path: string, headers: Record<string, string>): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const port = Number(new URL(url).port);
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to GET ${path} within 10 s`));
    }, 10_000);
    socket.once('error', reject);
    const lines = Object.entries({ host: `127.0.0.1:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('')}\r\n`);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 0), socket });
    });
  });
}
