/**
 * `earshot pipelines --url`: the real CLI, spawned, against a real server that
 * has an admin token (as every server reachable beyond loopback must): it asks
 * with `--admin-token` or EARSHOT_ADMIN_TOKEN, and without one says what the
 * server answered and what to pass.
 */
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';
import { runEarshot } from '../helpers/cli.js';


// No admin token from the environment running the tests: each case gives its own.
const earshot = (args: string[], env: Record<string, string | undefined> = {}) => runEarshot(args, { EARSHOT_ADMIN_TOKEN: '', ...env });

/** Runs `check` on a fresh temp directory holding `files` (name → pipeline document), removed afterwards. */
async function withPipelinesDir(files: Record<string, unknown>, check: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'earshot-pipelines-command-'));
  try {
    for (const [name, doc] of Object.entries(files)) await writeFile(join(dir, name), JSON.stringify(doc));
    await check(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const DEFAULT = { name: 'default', stages: [], sinks: [{ type: 'stats' }] };

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ adminToken: 'admin-secret' });
});
afterAll(async () => {
  await t?.close();
});

describe('earshot pipelines --url', () => {
  it("lists a token-guarded server's pipelines with --admin-token or EARSHOT_ADMIN_TOKEN", async () => {
    for (const run of [earshot(['pipelines', '--url', t.url, '--admin-token', 'admin-secret']), earshot(['pipelines', '--url', `${t.url}/`, '--json'], { EARSHOT_ADMIN_TOKEN: 'admin-secret' })]) {
      const { code, stdout, stderr } = await run;
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(stdout).toMatch(/default/);
    }
    const listed = JSON.parse((await earshot(['pipelines', '--url', t.url, '--json'], { EARSHOT_ADMIN_TOKEN: 'admin-secret' })).stdout) as Array<{ name: string; default?: boolean }>;
    expect(listed.find((p) => p.default)?.name).toBe('default');
  }, 60_000);

  it("without the token, or with a wrong one, says what the server answered and what to pass, and exits 1", async () => {
    const none = await earshot(['pipelines', '--url', t.url]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(new RegExp(`^earshot pipelines: ${t.url}/pipelines answered 401: .+ \\[EARSHOT_UNAUTHORIZED\\] \\(pass the admin token: --admin-token or EARSHOT_ADMIN_TOKEN\\)\\n$`));
    const wrong = await earshot(['pipelines', '--url', t.url, '--admin-token', 'nope']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/answered 401: .+ \[EARSHOT_UNAUTHORIZED\]\n$/);
  }, 60_000);

  it('a server that is not there: the reason, not "fetch failed"', async () => {
    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { code, stderr } = await earshot(['pipelines', '--url', `http://127.0.0.1:${port}`]);
    expect(code).toBe(1);
    expect(stderr).toBe(`earshot pipelines: the server at http://127.0.0.1:${port} did not answer: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  }, 60_000);
});

describe('earshot pipelines of a directory', () => {
  it('marks the default pipeline as serve would pick it: "default", or EARSHOT_PIPELINE', async () => {
    const plain = await earshot(['pipelines', '--json'], { EARSHOT_PIPELINE: undefined });
    expect([plain.code, plain.stderr]).toEqual([0, '']);
    const marked = (out: string) => (JSON.parse(out) as Array<{ name: string; default?: boolean }>).filter((p) => p.default).map((p) => p.name);
    expect(marked(plain.stdout)).toEqual(['default']);
    // Each branch's sample format, as GET /pipelines gives it: voice-agent hands on 16-bit frames.
    const voiceAgent = (JSON.parse(plain.stdout) as Array<{ name: string; branches: Array<{ sampleRate: number; sampleFormat: string }> }>).find((p) => p.name === 'voice-agent');
    expect(voiceAgent?.branches.map((b) => [b.sampleRate, b.sampleFormat])).toEqual([[16000, 's16']]);
    expect((await earshot(['pipelines'], { EARSHOT_PIPELINE: undefined })).stdout).toMatch(/^ {2}main: .* ⇒ processor, stats {2}\[16000 Hz, mono, 16-bit \(s16\)\]$/m);
    const telephony = await earshot(['pipelines'], { EARSHOT_PIPELINE: 'telephony' });
    expect(telephony.stdout).toMatch(/^telephony \(default\)/m);
    expect(telephony.stdout).not.toMatch(/^default \(default\)/m);
    // A name the directory lacks: serve would not start; the list is shown, and the exit says so.
    const nope = await earshot(['pipelines'], { EARSHOT_PIPELINE: 'nope' });
    expect(nope.code).toBe(1);
    expect(nope.stdout).toMatch(/^telephony/m);
    expect(nope.stderr).toMatch(/^earshot pipelines: EARSHOT_PIPELINE names "nope", which is not a pipeline of .*: serve would refuse to start \(EARSHOT_PIPELINE_NOT_FOUND\)\n$/);
  }, 60_000);
});

describe('earshot pipelines: what it refuses', () => {
  it('--url with --pipelines on the command line: one list or the other, not --pipelines silently ignored', async () => {
    const both = await earshot(['pipelines', '--url', t.url, '--pipelines', 'pipelines', '--admin-token', 'admin-secret']);
    expect(both.code).toBe(1);
    expect(both.stderr).toBe('earshot pipelines: --pipelines and --url ask for different lists (a directory, a running server): give one of them.\n');
    // From the environment (set for serve), --pipelines does not stand in the way of --url.
    const env = await earshot(['pipelines', '--url', t.url, '--admin-token', 'admin-secret'], { EARSHOT_PIPELINES: 'pipelines' });
    expect(env.code).toBe(0);
  }, 60_000);

  it('a directory without pipeline files: says so and exits 1, as serve and validate refuse it', async () => {
    await withPipelinesDir({}, async (dir) => {
      const { code, stdout, stderr } = await earshot(['pipelines', '--pipelines', dir]);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr).toBe(`earshot pipelines: ${dir}: no pipeline files (*.json) in this directory\n`);
    });
  }, 60_000);

  it('a directory whose pipelines use custom stages: lists it with --stage-types, and without them says what to pass', async () => {
    const custom = { name: 'custom', stages: [{ type: 'dc-blocker' }, { type: 'gain', db: -6 }], sinks: [{ type: 'record' }] };
    await withPipelinesDir({ 'default.json': DEFAULT, 'custom.json': custom }, async (dir) => {
      const without = await earshot(['pipelines', '--pipelines', dir]);
      expect(without.code).toBe(1);
      expect(without.stderr).toMatch(/"dc-blocker" is not a stage type/);
      expect(without.stderr).toMatch(/\nFor a directory whose pipelines use custom stages: earshot pipelines --stage-types TYPE,…\n$/);
      const listed = await earshot(['pipelines', '--pipelines', dir, '--stage-types', 'dc-blocker']);
      expect([listed.code, listed.stderr]).toEqual([0, '']);
      expect(listed.stdout).toMatch(/^custom\n  main: dc-blocker → gain ⇒ record {2}\[48000 Hz, mono, assumed: a custom stage decides\]$/m);
      expect(listed.stdout).toMatch(/^default \(default\)\n  main: \(decoded audio\) ⇒ stats {2}\[48000 Hz, mono\]$/m);
      expect(listed.stdout).toMatch(/^default \(default\)$/m);
      // A running server knows its own stage modules.
      const both = await earshot(['pipelines', '--url', t.url, '--stage-types', 'dc-blocker', '--admin-token', 'admin-secret']);
      expect(both.code).toBe(1);
      expect(both.stderr).toMatch(/--stage-types is for a directory/);
    });
  }, 60_000);

  it('a directory with several broken files: names every one with its problems, as serve does', async () => {
    const broken = { 'default.json': DEFAULT, 'a.json': { ...DEFAULT, name: 'wrong' }, 'b.json': { name: 'b', stages: [{ type: 'gian' }], sinks: [{ type: 'stats' }] } };
    await withPipelinesDir(broken, async (dir) => {
      for (const args of [['pipelines', '--pipelines', dir], ['serve', '--port', '0', '--pipelines', dir]]) {
        // serve refuses an empty admin token before it reads pipelines: none at all here.
        const { code, stderr } = await earshot(args, { EARSHOT_ADMIN_TOKEN: undefined });
        expect(code, args[0]).toBe(1);
        // "gian" is a misspelt built-in stage ("did you mean"), not a custom one: no --stage-types hint.
        expect(stderr, args[0]).not.toMatch(/--stage-types TYPE/);
        expect(stderr, args[0]).toMatch(new RegExp(`2 pipeline files in ${dir} have problems:\na\\.json: .*holds a pipeline named "wrong".*\\[EARSHOT_PIPELINE_NAME_MISMATCH\\]\nb\\.json: Pipeline "b" has 1 problem:\n {4}/stages/0/type: "gian" is not a stage type`));
        // Each file's own code, once: the first file's code was written again after the last file's.
        expect(stderr, args[0]).toMatch(/\(did you mean "gain"\?\); .* \[EARSHOT_PIPELINE_INVALID\]\n/);
      }
    });
  }, 60_000);
});
