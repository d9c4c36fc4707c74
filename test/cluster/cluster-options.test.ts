/**
 * createCluster checks its options before it starts any process: the same
 * checks as createServer, its own options, and the cluster node's, each
 * refusal an `EARSHOT_OPTION_INVALID` naming the option.
 */
import { describe, expect, it } from 'vitest';
import { createCluster, type ClusterOptions } from '../../src/index.js';

const cases: Array<[string, Record<string, unknown>, RegExp]> = [
  ['processes', { processes: 0 }, /processes must be an integer from 1 to 64, got 0/],
  ['processes', { processes: 2.5 }, /processes must be an integer/],
  ['port', { port: 70000 }, /port must be an integer from 0 to 65535/],
  ['maxSesions', { maxSesions: 3 }, /is not an option of createCluster \(did you mean maxSessions\?\)/],
  ['drainTimeoutMs', { drainTimeoutMs: -1 }, /drainTimeoutMs must be an integer/],
  ['logger', { logger: console }, /not supported by createCluster/],
  ['processors', { processors: {} }, /not supported by createCluster/],
  ['cluster.redis', { cluster: { redis: 'http://10.0.0.5:6379' } }, /redis:\/\/ or rediss:\/\/ URL/],
  // Both were taken, then failed as "Invalid URL" without a code, or joined database 0 with an unhandled rejection.
  ['cluster.redis', { cluster: { redis: 'redis://127.0.0.1:99999' } }, /must be a redis:\/\/ or rediss:\/\/ URL \(redis:\/\/\[user:password@\]host\[:port\]\[\/db\]\), got "redis:\/\/127\.0\.0\.1:99999"/],
  ['cluster.redis', { cluster: { redis: 'redis://127.0.0.1:6379/abc' } }, /names database "abc": after the host, "\/" and a database number/],
  ['cluster.publicUrl', { cluster: { redis: 'redis://127.0.0.1:1', publicUrl: 'http://node-1.example/earshot' } }, /no path/],
  ['cluster.nodeId', { cluster: { redis: 'redis://127.0.0.1:1', nodeId: 'bad id!' } }, /is not allowed/],
  ['cluster.publicUrll', { cluster: { redis: 'redis://127.0.0.1:1', publicUrll: 'http://x' } }, /did you mean cluster.publicUrl\?/],
  ['cluster.publicUrl', { host: '0.0.0.0', adminToken: 'a'.repeat(32), cluster: { redis: 'redis://127.0.0.1:1' } }, /required when listening on every address/],
];

describe('createCluster options', () => {
  // Refusals are printed (the CLI writes them to stderr): a password in the URL must not be.
  it.each([
    ['redis://user:hunter2@127.0.0.1:16379/abc', /names database "abc".*got "redis:\/\/user:\*\*\*@127\.0\.0\.1:16379\/abc"/],
    ['redis://user:hunter2@127.0.0.1:99999', /got "redis:\/\/user:\*\*\*@127\.0\.0\.1:99999"/],
    ['redis://:hunter2@:6379', /got "redis:\/\/:\*\*\*@:6379"/],
    ['redis://hunter2@127.0.0.1:6379/x', /got "redis:\/\/\*\*\*@127\.0\.0\.1:6379\/x"/],
  ])('never shows the password of %s in its refusal', async (redis, message) => {
    const error = await createCluster({ cluster: { redis } } as ClusterOptions).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'cluster.redis' } });
    expect((error as Error).message).toMatch(message);
    expect(JSON.stringify(error)).not.toContain('hunter2');
    expect((error as Error).message).not.toContain('hunter2');
  });

  it.each(cases)('refuses %s before starting anything', async (option, options, message) => {
    const error = await createCluster(options as ClusterOptions).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', statusCode: 500, extensions: { option } });
    expect((error as Error).message).toMatch(message);
  });
});
