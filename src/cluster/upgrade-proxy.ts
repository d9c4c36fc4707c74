/**
 * WebSocket upgrades through the front (`serve --processes`, `--cluster`):
 * `GET /peers/:peer/audio` must reach the engine, or the cluster node, that
 * runs the peer. HTTP forwarding (forward.ts) relays a request and its
 * response; an upgraded connection is a byte stream both ways, so it is
 * spliced instead: the client's request head is written to the target as
 * received (plus the hop mark between nodes, minus a proxy's forwarding
 * headers), then the two sockets are piped
 * to each other until either closes.
 *
 * The resolver checks what the engine's route would check first (the admin
 * role with its Host checks, for every path: the splice drops a proxy's
 * forwarding headers; the peer's name, on the path as the engine's router
 * decodes it), so that a refusal says the same whether or not the peer is live; the target checks again (the engines and nodes share the
 * tokens), and its refusals (401, 404, 503 …) flow back through the splice. A
 * peer the front cannot place gets the usual problem document on the raw
 * socket.
 */
import type { IncomingMessage, Server } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { Duplex } from 'node:stream';
import { errors, isEarshotError } from '../errors.js';
import { isForwardingHeader } from '../server/client-address.js';

/** Where an upgrade goes. */
export interface UpgradeTarget {
  host: string;
  port: number;
  /** Another node (not an engine of this machine): its own Host header, TLS for an https node. */
  remote?: { tls: boolean };
  /** Headers added to the client's (the hop mark between nodes). */
  headers?: Record<string, string>;
}

/** Resolves the target of an upgrade request, or throws the error to answer with. */
export type UpgradeResolver = (req: IncomingMessage) => Promise<UpgradeTarget>;

/** Splices upgrade requests on `server` to what `resolve` finds. */
export function installUpgradeProxy(server: Server, resolve: UpgradeResolver): void {
  server.on('upgrade', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    client.on('error', () => client.destroy());
    resolve(req).then(
      (target) => splice(req, client, head, target),
      (e: unknown) => refuse(client, e),
    );
  });
}

function splice(req: IncomingMessage, client: Duplex, head: Buffer, target: UpgradeTarget): void {
  const tls = target.remote?.tls === true;
  const upstream: Socket = tls ? connectTls({ host: target.host, port: target.port, servername: target.host }) : connectTcp(target.port, target.host);
  const close = () => {
    upstream.destroy();
    client.destroy();
  };
  upstream.on('error', () => {
    // Nothing reached the client yet: say so; otherwise the client sees its socket close.
    if (!client.destroyed && upstream.bytesRead === 0) refuse(client, errors.ENGINE_UNAVAILABLE('the process that runs the peer did not answer'));
    else close();
  });
  client.on('close', close);
  upstream.on('close', close);
  upstream.once(tls ? 'secureConnect' : 'connect', () => {
    const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      // The Host of a remote node is its own (as in HTTP forwarding between nodes), and the page's Origin,
      // checked here, would read as another site's against it (cluster-node.ts, #hopHeaders).
      if (target.remote && (name === 'host' || name === 'origin' || name === 'sec-fetch-site')) continue;
      // As HTTP forwarding does (forward.ts): a proxy's forwarding headers were for this front to read, not
      // for a node whose trustProxy covers this node's address to believe.
      if (isForwardingHeader(name)) continue;
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    }
    if (target.remote) lines.push(`Host: ${target.host}:${target.port}`);
    for (const [name, value] of Object.entries(target.headers ?? {})) lines.push(`${name}: ${value}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
}

/** Answers an upgrade request with a problem document and closes the socket. */
function refuse(client: Duplex, e: unknown): void {
  if (client.destroyed) return;
  const error = isEarshotError(e) ? e : errors.INTERNAL(e instanceof Error ? e.message : String(e));
  const body = JSON.stringify(error.toProblem());
  const status = error.statusCode;
  const retry = status === 503 ? 'Retry-After: 1\r\n' : '';
  client.end(`HTTP/1.1 ${status} ${error.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`);
}
