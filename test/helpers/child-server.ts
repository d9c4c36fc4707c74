/**
 * Runs the real server in its own process (for tests that need process-level
 * conditions, e.g. a small file-descriptor limit). Options come as JSON in
 * EARSHOT_TEST_OPTIONS; the base URL is printed as one line `URL <url>`.
 * SIGTERM closes the server gracefully.
 */
import { createServer, type CreateServerOptions } from '../../src/index.js';

const options = JSON.parse(process.env.EARSHOT_TEST_OPTIONS ?? '{}') as CreateServerOptions;
const server = await createServer({ port: 0, host: '127.0.0.1', logLevel: 'warn', ...options });
const url = await server.listen();
process.stdout.write(`URL ${url}\n`);
process.on('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
