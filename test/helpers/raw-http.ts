/** HTTP written as raw bytes, for what fetch cannot send or hides (framing, Connection: close). */
import { connect } from 'node:net';

/** Writes `request` as raw bytes to the server at `url` and resolves to everything it answers before closing (at most 10 s), read as UTF-8. */
export function rawExchange(url: string, request: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    const chunks: Buffer[] = [];
    const text = () => Buffer.concat(chunks).toString('utf8');
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('close', () => resolve(text()));
    socket.on('error', reject);
    socket.write(request);
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after 10 s: ${text()}`));
    }, 10_000).unref();
  });
}
