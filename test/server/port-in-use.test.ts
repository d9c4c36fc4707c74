/**
 * Listening on a port another process holds: `listen()` rejects with
 * `EARSHOT_PORT_IN_USE` naming the address (it rejected with Node's raw
 * EADDRINUSE), and `earshot serve` prints it and exits 1. An address the
 * machine does not have, a second `listen()` and one after `close()` reject
 * with `EARSHOT_LISTEN_FAILED`; a host that is not an address or a name is
 * refused by `createServer` itself.
 */
import { createServer as createNetServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, EarshotError } from '../../src/index.js';
import { startCli } from '../cluster/cli-server.js';

let holder: Server;
let port: number;
beforeAll(async () => {
  holder = createNetServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  port = (holder.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => holder.close(() => resolve())));

describe('a port already in use', () => {
  it('rejects listen() with EARSHOT_PORT_IN_USE naming host and port', async () => {
    const server = await createServer({ logLevel: 'silent', host: '127.0.0.1', port, threads: 1 });
    try {
      const error = await server.listen().then(
        () => expect.fail('listen() succeeded on a port in use'),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(EarshotError);
      expect(error).toMatchObject({ code: 'EARSHOT_PORT_IN_USE', extensions: { host: '127.0.0.1', port } });
      expect((error as Error).message).toMatch(new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${port}: another process already listens there`));
    } finally {
      await server.close();
    }
  });

  it('makes earshot serve print the error with its code and exit 1', async () => {
    await expect(startCli(['--port', String(port), '--threads', '1'])).rejects.toThrow(
      new RegExp(`exited with 1 before listening:[\\s\\S]*earshot: Cannot listen on 127\\.0\\.0\\.1:${port}: [^\\n]*--port[^\\n]*\\[EARSHOT_PORT_IN_USE\\]`),
    );
  });
});

/** What `p` rejected with (failing the test if it resolved). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('it succeeded'),
    (e: unknown) => e,
  );
}

describe('other listen failures', () => {
  it('rejects listen() on an address this machine does not have with EARSHOT_LISTEN_FAILED, saying what to bind', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): on no interface here.
    const server = await createServer({ logLevel: 'silent', host: '192.0.2.1', port: 0, threads: 1, adminToken: 'admin-secret', token: 'publish-secret' });
    try {
      const error = await rejection(server.listen());
      expect(error).toBeInstanceOf(EarshotError);
      expect(error).toMatchObject({ code: 'EARSHOT_LISTEN_FAILED', extensions: { host: '192.0.2.1', port: 0 } });
      expect((error as Error).message).toMatch(/^Cannot listen on 192\.0\.2\.1:0: no network interface of this machine has that address\. .*\(EADDRNOTAVAIL\)\.$/);
    } finally {
      await server.close();
    }
  });

  it('listens once: a second listen() and one after close() reject with EARSHOT_LISTEN_FAILED; a failed one may be tried again', async () => {
    const holder2 = createNetServer();
    await new Promise<void>((resolve) => holder2.listen(0, '127.0.0.1', resolve));
    const held = (holder2.address() as { port: number }).port;
    const server = await createServer({ logLevel: 'silent', host: '127.0.0.1', port: held, threads: 1 });
    try {
      expect(await rejection(server.listen())).toMatchObject({ code: 'EARSHOT_PORT_IN_USE' });
      await new Promise<void>((resolve) => holder2.close(() => resolve()));
      const url = await server.listen();
      expect((await fetch(`${url}/health`)).status).toBe(200);
      expect(await rejection(server.listen())).toMatchObject({ code: 'EARSHOT_LISTEN_FAILED', message: expect.stringMatching(/listen\(\) was already called; a server listens once/) });
    } finally {
      await server.close();
    }
    expect(await rejection(server.listen())).toMatchObject({ code: 'EARSHOT_LISTEN_FAILED', message: expect.stringMatching(/this server has been closed/) });
    // Nor does a closed server take processors or stage modules (they would run on nothing, and detach nothing).
    // Each says which call it refused, not that the server takes no new sessions.
    expect(() => server.registerProcessor('late', () => ({ next() {} }))).toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN', message: expect.stringMatching(/^Shutting down or closed: registerProcessor\(\) after close\(\) registers into a server that runs no more streams/) }));
    expect(() => server.attachProcessor('late')).toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN', message: expect.stringMatching(/attachProcessor\(\) after close\(\)/) }));
    expect(await rejection(server.registerStageModule('no-such-module.js'))).toMatchObject({ code: 'EARSHOT_SHUTTING_DOWN', message: expect.stringMatching(/registerStageModule\(\) after close\(\)/) });
  });

  it('names the address it listens on when listen() is called twice, the port it was given for port 0', async () => {
    const server = await createServer({ logLevel: 'silent', host: '127.0.0.1', port: 0, threads: 1 });
    try {
      const url = await server.listen();
      expect(await rejection(server.listen())).toMatchObject({ code: 'EARSHOT_LISTEN_FAILED', message: expect.stringContaining(`Cannot listen on 127.0.0.1:${new URL(url).port}: listen() was already called`) });
    } finally {
      await server.close();
    }
  });

  it('rejects a listen() that close() overtook (while the workers started) with EARSHOT_LISTEN_FAILED, not an internal error', async () => {
    const server = await createServer({ logLevel: 'silent', host: '127.0.0.1', port: 0, threads: 1 });
    const listening = rejection(server.listen());
    await server.close();
    expect(await listening).toMatchObject({ code: 'EARSHOT_LISTEN_FAILED', message: expect.stringMatching(/this server has been closed/) });
  });

  it('refuses a host that is neither an IP address nor a host name at createServer', async () => {
    for (const host of ['999.1.1.1', 'not a host!', '1.2.3', '']) {
      const error = await rejection(createServer({ logLevel: 'silent', host, port: 0, threads: 1 }));
      expect(error, host).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'host' } });
      expect((error as Error).message).toBe(`options.host must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost), got ${JSON.stringify(host)}`);
    }
  });

  it('makes earshot serve print EARSHOT_LISTEN_FAILED and exit 1 for an address the machine does not have', async () => {
    await expect(startCli(['--host', '192.0.2.1', '--port', '0', '--threads', '1', '--admin-token', 'admin-secret'])).rejects.toThrow(
      /exited with 1 before listening:[\s\S]*earshot: Cannot listen on 192\.0\.2\.1:0: no network interface[^\n]*\[EARSHOT_LISTEN_FAILED\]/,
    );
  });
});
