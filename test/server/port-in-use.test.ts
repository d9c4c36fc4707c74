/**
 * Listening on a port another process holds: `listen()` rejects with
 * `EARSHOT_PORT_IN_USE` naming the address (it rejected with Node's raw
 * EADDRINUSE), and `earshot serve` prints it and exits 1.
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
