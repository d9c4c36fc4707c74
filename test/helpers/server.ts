/**
 * Starts the real earshot server on a free loopback port with a fresh
 * recordings directory, for integration tests.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
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
  // A copy of the bundled pipelines: a test that PUTs or DELETEs pipelines must never change the repository's.
  let pipelinesDir = options.pipelinesDir;
  let ownPipelines: string | undefined;
  if (pipelinesDir === undefined) {
    pipelinesDir = ownPipelines = await mkdtemp(join(tmpdir(), 'earshot-pipelines-'));
    await cp(join(import.meta.dirname, '..', '..', 'pipelines'), pipelinesDir, { recursive: true });
  }
  // Admission by measured load is off unless a test turns it on: here the publishers run in the
  // same process as the server, so the event loop's load is not the server's own.
  const server = await createServer({ port: 0, host: '127.0.0.1', recordingsDir, logLevel: 'warn', admission: false, ...options, pipelinesDir });
  const url = await server.listen();
  return {
    server,
    url,
    recordingsDir,
    async close() {
      await server.close();
      await rm(recordingsDir, { recursive: true, force: true });
      if (ownPipelines) await rm(ownPipelines, { recursive: true, force: true });
    },
  };
}
