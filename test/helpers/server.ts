/**
 * Starts the real earshot server on a free loopback port with a fresh
 * recordings directory, for integration tests.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type CreateServerOptions, type EarshotServer } from '../../src/index.js';

export interface TestServer {
  server: EarshotServer;
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  recordingsDir: string;
  close(): Promise<void>;
}

export async function startServer(options: CreateServerOptions = {}): Promise<TestServer> {
  const recordingsDir = await mkdtemp(join(tmpdir(), 'earshot-test-'));
  const server = await createServer({ port: 0, host: '127.0.0.1', recordingsDir, logLevel: 'warn', ...options });
  const url = await server.listen();
  return {
    server,
    url,
    recordingsDir,
    async close() {
      await server.close();
      await rm(recordingsDir, { recursive: true, force: true });
    },
  };
}
