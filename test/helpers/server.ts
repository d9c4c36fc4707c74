/**
 * Starts the real earshot server on a free loopback port with a fresh
 * recordings directory, for integration tests.
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
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

export interface TestServerOptions extends CreateServerOptions {
  /**
   * Pipelines to add to the copy of the bundled ones, picked per session with
   * `?pipeline=NAME`: one server can then run every test of a file that
   * needs different pipelines, instead of a server (and its workers' start-up,
   * seconds on a busy machine) per test.
   */
  extraPipelines?: Array<{ name: string } & Record<string, unknown>>;
}

export async function startServer({ extraPipelines = [], ...options }: TestServerOptions = {}): Promise<TestServer> {
  if (extraPipelines.length > 0 && options.pipelinesDir !== undefined) throw new Error('extraPipelines go into the copy of the bundled pipelines; not with pipelinesDir');
  const recordingsDir = await mkdtemp(join(tmpdir(), 'earshot-test-'));
  // A copy of the bundled pipelines: a test that PUTs or DELETEs pipelines must never change the repository's.
  let pipelinesDir = options.pipelinesDir;
  let ownPipelines: string | undefined;
  if (pipelinesDir === undefined) {
    pipelinesDir = ownPipelines = await mkdtemp(join(tmpdir(), 'earshot-pipelines-'));
    await cp(join(import.meta.dirname, '..', '..', 'pipelines'), pipelinesDir, { recursive: true });
    for (const p of extraPipelines) await writeFile(join(pipelinesDir, `${p.name}.json`), JSON.stringify(p));
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
