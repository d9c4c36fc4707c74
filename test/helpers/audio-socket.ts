/**
 * `GET /peers/:peer/audio` as a test client: a `ws` WebSocket that keeps
 * every message (JSON ones parsed, binary ones as Buffers) and tells how the
 * upgrade went (open, or the HTTP refusal with its problem document).
 */
import { WebSocket } from 'ws';

export type SocketMessage = Record<string, unknown> | Buffer;

/** Opens `url` (ws://…/peers/:peer/audio); `outcome` says whether it opened or how it was refused. */
export function audioSocket(url: string, options: { headers?: Record<string, string>; protocols?: string[]; autoPong?: boolean } = {}) {
  // autoPong false: a client that vanished without closing (it answers no ping).
  const socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers, autoPong: options.autoPong ?? true });
  const messages: SocketMessage[] = [];
  socket.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
    messages.push(isBinary ? Buffer.from(buf) : (JSON.parse(buf.toString('utf8')) as Record<string, unknown>));
  });
  const outcome = new Promise<{ open: true } | { open: false; status: number; type: string; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }>((resolve, reject) => {
    socket.once('open', () => resolve({ open: true }));
    socket.once('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      // With this listener, ending the refused request is ours to do (ws leaves it open).
      res.on('end', () => {
        req.destroy();
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text || '{}') as Record<string, unknown>;
        } catch {
          body = { text }; // not a problem document: kept for the assertion's message
        }
        resolve({ open: false, status: res.statusCode ?? 0, type: String(res.headers['content-type']), headers: res.headers, body });
      });
    });
    socket.once('error', (e) => reject(e));
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, messages, outcome, closed };
}

/** The binary messages (PCM frames), in order, as one buffer. */
export function binaryOf(messages: readonly SocketMessage[]): Buffer {
  return Buffer.concat(messages.filter((m): m is Buffer => Buffer.isBuffer(m)));
}

/** The binary messages read as s16 PCM, as floats (−1..1). */
export function s16Of(messages: readonly SocketMessage[]): Float32Array {
  const pcm = binaryOf(messages);
  const ints = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
  return Float32Array.from(ints, (v) => v / 32768);
}

/** How many binary messages (frames) arrived. */
export function framesIn(messages: readonly SocketMessage[]): number {
  return messages.filter((m) => Buffer.isBuffer(m)).length;
}
