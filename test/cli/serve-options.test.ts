/**
 * `earshot serve`: every option can be set from the environment (containers
 * and systemd units have no command line to speak of) and `--help` shows each
 * one's default and variable; the environment forms of the list options parse
 * like their flags.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { registerServeCommand, switchOption } from '../../src/cli/serve-command.js';
import { checkPoolOptions } from '../../src/core/option-checks.js';
import { POOL_OPTION_RANGES } from '../../src/pool/pool-limits.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { startCli } from '../cluster/cli-server.js';
import { EARSHOT_BIN } from '../helpers/cli.js';

const root = join(import.meta.dirname, '..', '..');

/** The option entries of `serve --help`, each joined onto one line. */
async function helpEntries(): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, [EARSHOT_BIN, 'serve', '--help'], { cwd: root, env: { ...process.env, COLUMNS: '100' } });
  const options = stdout.slice(stdout.indexOf('Options:') + 'Options:'.length);
  const entries: string[] = [];
  for (const line of options.split('\n')) {
    if (/^ {2}-/.test(line)) entries.push(line.trim());
    else if (/^ {3,}\S/.test(line) && entries.length > 0) entries[entries.length - 1] += ` ${line.trim()}`;
  }
  return entries;
}

/** The options `serve` would run with, from `argv` and the environment, without starting anything. */
async function parsedOptions(argv: string[]): Promise<Record<string, unknown>> {
  const program = new Command('earshot').exitOverride();
  registerServeCommand(program);
  let captured: Record<string, unknown> | undefined;
  program.hook('preAction', (_program, command) => {
    captured = command.opts();
    throw new Error('parsed');
  });
  await program.parseAsync(['serve', ...argv], { from: 'user' }).catch((e: Error) => {
    if (e.message !== 'parsed') throw e;
  });
  return captured!;
}

/** Parses `serve` with `argv` as the CLI does, its errors thrown rather than printed (for the values it refuses). */
function parseServe(argv: string[]): Promise<Command> {
  const program = new Command('earshot').exitOverride().configureOutput({ writeErr: () => {} });
  registerServeCommand(program);
  return program.parseAsync(['serve', ...argv], { from: 'user' });
}

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('EARSHOT_')) delete process.env[k];
  Object.assign(process.env, saved);
});

describe('earshot serve options', () => {
  it('--help shows an environment variable and a default for every option', async () => {
    const entries = await helpEntries();
    expect(entries.length).toBeGreaterThan(25);
    const envs: string[] = [];
    for (const entry of entries.filter((e) => !e.startsWith('-h, --help'))) {
      const env = /\benv: ([A-Z_]+)\)/.exec(entry)?.[1];
      expect(env, entry).toBeDefined();
      expect(env!, entry).toMatch(/^(PORT|EARSHOT_[A-Z_]+)$/);
      expect(entry, entry).toMatch(/\(default: |\bdefault: /);
      envs.push(env!);
    }
    expect(new Set(envs).size).toBe(envs.length);
    for (const env of ['EARSHOT_ICE_HOSTS', 'EARSHOT_ICE_PORTS', 'EARSHOT_ICE_SERVERS', 'EARSHOT_TLS_CERT', 'EARSHOT_TLS_KEY']) expect(envs).toContain(env);
  });

  it('reads the ICE and TLS settings from the environment', async () => {
    Object.assign(process.env, {
      EARSHOT_ICE_HOSTS: '198.51.100.1, 198.51.100.2',
      EARSHOT_ICE_PORTS: '40000-40099',
      EARSHOT_ICE_SERVERS: 'stun:stun.example.net\n  turn:turn.example.net:3478?transport=udp,alice,pa,ss',
      EARSHOT_TLS_CERT: '/etc/earshot/cert.pem',
      EARSHOT_TLS_KEY: '/etc/earshot/key.pem',
    });
    expect(await parsedOptions([])).toMatchObject({
      iceHost: ['198.51.100.1', '198.51.100.2'],
      icePorts: [40000, 40099],
      iceServer: [{ urls: 'stun:stun.example.net' }, { urls: 'turn:turn.example.net:3478?transport=udp', username: 'alice', credential: 'pa,ss' }],
      tlsCert: '/etc/earshot/cert.pem',
      tlsKey: '/etc/earshot/key.pem',
    });
  });

  it("admission's latency limit: 20 ms from 25 % load by default; the floor from 0 (any load) to 100", async () => {
    expect(await parsedOptions([])).toMatchObject({ admissionMaxLatency: 20, admissionLatencyMinLoad: 25 });
    expect(await parsedOptions(['--admission-latency-min-load', '0'])).toMatchObject({ admissionLatencyMinLoad: 0 });
    await expect(parsedOptions(['--admission-latency-min-load', '101'])).rejects.toThrow(/--admission-latency-min-load/);
  });

  it('--ice-server repeats and refuses a bad server with a clear message', async () => {
    const opts = await parsedOptions(['--ice-server', 'stun:a.example.net', '--ice-server', 'turns:b.example.net,u,p']);
    expect(opts.iceServer).toEqual([{ urls: 'stun:a.example.net' }, { urls: 'turns:b.example.net', username: 'u', credential: 'p' }]);
    await expect(parseServe(['--ice-server', 'turn:b.example.net'])).rejects.toThrow(/a TURN server needs a username and a credential/);
  });

  it('--trust-proxy takes the proxies\' addresses, repeated or comma-separated, from the flag or EARSHOT_TRUST_PROXY, and refuses every address or a hop count', async () => {
    expect((await parsedOptions([])).trustProxy).toBeUndefined();
    expect((await parsedOptions(['--trust-proxy', '127.0.0.1,10.0.0.0/8', '--trust-proxy', 'uniquelocal'])).trustProxy).toEqual(['127.0.0.1', '10.0.0.0/8', 'uniquelocal']);
    process.env.EARSHOT_TRUST_PROXY = '127.0.0.1, fd00::/8';
    expect((await parsedOptions([])).trustProxy).toEqual(['127.0.0.1', 'fd00::/8']);
    // An empty variable (a compose file's `${PROXIES:-}`) believes no proxy.
    process.env.EARSHOT_TRUST_PROXY = '';
    expect((await parsedOptions([])).trustProxy).toEqual([]);
    delete process.env.EARSHOT_TRUST_PROXY;
    await expect(parseServe(['--trust-proxy', 'true'])).rejects.toThrow(/--trust-proxy must list the proxies to believe: .*, not "true" \(every address\)/);
    await expect(parseServe(['--trust-proxy', '1'])).rejects.toThrow(/--trust-proxy must list .*, not a hop count \(1\)/);
    await expect(parseServe(['--trust-proxy', '10.0.0.0/33'])).rejects.toThrow(/--trust-proxy has "10\.0\.0\.0\/33", whose prefix length is not a number from 1 to 32/);
  });

  it('--threads takes the range the library takes: 1 to 4 × the cores', async () => {
    const { max } = POOL_OPTION_RANGES.threads;
    expect(max).toBeGreaterThanOrEqual(4);
    expect((await parsedOptions(['--threads', String(max)])).threads).toBe(max);
    await expect(parseServe(['--threads', String(max + 1)])).rejects.toThrow(`--threads must be an integer from 1 to ${max}.`);
    // The same bounds where createServer and the pool check them.
    expect(() => checkPoolOptions({ threads: max })).not.toThrow();
    expect(() => checkPoolOptions({ threads: max + 1 })).toThrow(`options.threads must be an integer from 1 to ${max}, got ${max + 1}`);
    expect(() => new WorkerPool({ threads: max + 1 })).toThrow(new RangeError(`options.threads must be an integer from 1 to ${max}, got ${max + 1}`));
  });

  it("--parallel-scavenge is off unless the flag or EARSHOT_PARALLEL_SCAVENGE turns V8's helper threads on", async () => {
    expect((await parsedOptions([])).parallelScavenge).toBe('off');
    expect((await parsedOptions(['--parallel-scavenge', 'on'])).parallelScavenge).toBe('on');
    process.env.EARSHOT_PARALLEL_SCAVENGE = 'on';
    expect((await parsedOptions([])).parallelScavenge).toBe('on');
    delete process.env.EARSHOT_PARALLEL_SCAVENGE;
    await expect(parseServe(['--parallel-scavenge', 'yes'])).rejects.toThrow("Allowed choices are on, off.");
  });

  /** A worker-pool flag of `serve`: its default, the flag, its environment variable, and the values it refuses with `message`. */
  async function checkPoolFlag(flag: string, option: string, env: string, c: { byDefault: number; given: number; fromEnv: number; bad: string[]; message: string }): Promise<void> {
    expect((await parsedOptions([]))[option]).toBe(c.byDefault);
    expect((await parsedOptions([flag, String(c.given)]))[option]).toBe(c.given);
    process.env[env] = String(c.fromEnv);
    expect((await parsedOptions([]))[option]).toBe(c.fromEnv);
    delete process.env[env];
    for (const bad of c.bad) await expect(parseServe([flag, bad])).rejects.toThrow(c.message);
  }

  it("--batch-interval sets the workers' batch interval, from the flag or EARSHOT_BATCH_INTERVAL, 1 to 100 ms", async () => {
    await checkPoolFlag('--batch-interval', 'batchInterval', 'EARSHOT_BATCH_INTERVAL', { byDefault: 5, given: 12, fromEnv: 20, bad: ['0', '101', '', '0x10', '1e1'], message: '--batch-interval must be a number from 1 to 100 (ms).' });
    // Fractions, as the library takes them.
    expect((await parsedOptions(['--batch-interval', '7.5'])).batchInterval).toBe(7.5);
  });

  it('--early-output sets how long a batch runs before its worker hands back what it has finished, from the flag or EARSHOT_EARLY_OUTPUT', async () => {
    await checkPoolFlag('--early-output', 'earlyOutput', 'EARSHOT_EARLY_OUTPUT', { byDefault: 4, given: 0, fromEnv: 9, bad: ['-1', '600001', ''], message: '--early-output must be a number from 0 to 600000 (ms).' });
    expect(() => checkPoolOptions({ earlyOutputMs: -1 })).toThrow('options.earlyOutputMs must be a number from 0 to 600000 (ms), got -1');
  });

  it("--quiet-hold sets how long a silent talker's comfort-noise updates may wait for a batch, from the flag or EARSHOT_QUIET_HOLD", async () => {
    await checkPoolFlag('--quiet-hold', 'quietHold', 'EARSHOT_QUIET_HOLD', { byDefault: 200, given: 0, fromEnv: 50, bad: ['-1', '2001', 'x'], message: '--quiet-hold must be a number from 0 to 2000 (ms).' });
    expect(() => checkPoolOptions({ quietHoldMs: 2001 })).toThrow('options.quietHoldMs must be a number from 0 to 2000 (ms), got 2001');
  });

  it('reads numbers as decimal digits only: an empty PORT or a hex value is refused, not taken as 0 or 16', async () => {
    for (const bad of ['', ' ', '0x46A6', '1e3', '-0']) await expect(parseServe(['--port', bad])).rejects.toThrow('--port must be an integer from 0 to 65535.');
    process.env.PORT = '';
    await expect(parseServe([])).rejects.toThrow('--port must be an integer from 0 to 65535.');
    delete process.env.PORT;
    expect((await parsedOptions(['--port', '18086'])).port).toBe(18086);
  });

  it('reads an on/off variable by its value: EARSHOT_INSECURE=0 or false leaves --insecure off, a value that is neither is refused', async () => {
    /** --insecure as the server would get it, from `argv` and the environment. */
    const insecure = async (argv: string[]) => {
      const program = new Command('earshot').exitOverride();
      registerServeCommand(program);
      let value: boolean | undefined;
      program.hook('preAction', (_program, command) => {
        value = switchOption(command, 'insecure', '--insecure');
        throw new Error('parsed');
      });
      await program.parseAsync(['serve', ...argv], { from: 'user' }).catch((e: Error) => {
        if (e.message !== 'parsed') throw e;
      });
      return value;
    };
    expect(await insecure([])).toBe(false);
    expect(await insecure(['--insecure'])).toBe(true);
    for (const off of ['0', 'false', 'FALSE', 'no', 'off', '']) {
      process.env.EARSHOT_INSECURE = off;
      expect(await insecure([]), `EARSHOT_INSECURE=${off}`).toBe(false);
    }
    for (const on of ['1', 'true', 'Yes', 'on']) {
      process.env.EARSHOT_INSECURE = on;
      expect(await insecure([]), `EARSHOT_INSECURE=${on}`).toBe(true);
    }
    process.env.EARSHOT_INSECURE = 'maybe';
    await expect(insecure([])).rejects.toThrow('EARSHOT_INSECURE (--insecure) must be 1, true, yes or on to turn it on, or 0, false, no, off or empty to leave it off; got "maybe".');
    // The flag given on the command line wins over the variable.
    process.env.EARSHOT_INSECURE = '0';
    expect(await insecure(['--insecure'])).toBe(true);
  });

  it('EARSHOT_METRICS_PUBLIC=false keeps /metrics behind the admin token; a value that is neither on nor off stops the server', async () => {
    process.env.EARSHOT_METRICS_PUBLIC = 'false';
    // And an empty EARSHOT_TRUST_PROXY believes no proxy (it would need --token otherwise): the server starts.
    process.env.EARSHOT_TRUST_PROXY = '';
    const server = await startCli(['--admin-token', 'admin-secret', '--threads', '1']);
    try {
      expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer admin-secret' } })).status).toBe(200);
    } finally {
      await server.stop();
      await server.cleanup();
    }
    process.env.EARSHOT_METRICS_PUBLIC = 'nope';
    await expect(startCli(['--threads', '1'])).rejects.toThrow(/exited with 1 before listening:[\s\S]*EARSHOT_METRICS_PUBLIC \(--metrics-public\) must be 1, true, yes or on/);
  });

  it('names the flag, not the library option, when the server refuses a value, and the variable when the value came from one', async () => {
    // Each its own process, all at once (one after the other: 10 s of the suite).
    await Promise.all([
      expect(startCli(['--cors-origin', '*', '--threads', '1'])).rejects.toThrow(/earshot: --cors-origin: must not contain "\*"[^\n]*\[EARSHOT_OPTION_INVALID\]/),
      expect(startCli(['--ice-host', '999.1.1.1', '--threads', '1'])).rejects.toThrow(/earshot: --ice-host: [^\n]*999\.1\.1\.1[^\n]*\[EARSHOT_OPTION_INVALID\]/),
      // Options that need each other: refused with the code every other refusal of a value carries (none before).
      expect(startCli(['--public-url', 'http://media.example', '--threads', '1'])).rejects.toThrow(/earshot: --public-url and --node-id need --cluster \[EARSHOT_OPTION_INVALID\]/),
      // Copied from --host 0.0.0.0: announced, no client could connect (it was taken).
      expect(startCli(['--ice-host', '0.0.0.0', '--threads', '1'])).rejects.toThrow(/earshot: --ice-host: must be an address clients can reach, not the unspecified address [^\n]*"0\.0\.0\.0"[^\n]*\[EARSHOT_OPTION_INVALID\]/),
      expect(startCli(['--token', 'two words', '--threads', '1'])).rejects.toThrow(/earshot: --token: must be usable as an HTTP bearer token [^\n]*character 4 of 9 is " "[^\n]*\[EARSHOT_OPTION_INVALID\]/),
      expect(startCli(['--trust-proxy', '127.0.0.1', '--token', 'p', '--threads', '1'])).rejects.toThrow(/earshot: --trust-proxy: needs an admin token [^\n]*\[EARSHOT_OPTION_INVALID\]/),
      expect(startCli(['--host', '999.1.1.1', '--threads', '1'])).rejects.toThrow(/earshot: --host: must be an IP address or a host name [^\n]*"999\.1\.1\.1"[^\n]*\[EARSHOT_OPTION_INVALID\]/),
    ]);
    // A value from the environment is named by its variable (an empty EARSHOT_TOKEN= in a compose file read as a --token nobody typed).
    process.env.EARSHOT_TOKEN = '';
    try {
      await expect(startCli(['--threads', '1'])).rejects.toThrow(/earshot: EARSHOT_TOKEN \(--token\): must be a non-empty string, got ""[^\n]*\[EARSHOT_OPTION_INVALID\]/);
    } finally {
      delete process.env.EARSHOT_TOKEN;
    }
  });

  it('refuses an option of --cluster given without it, rather than doing nothing with it', async () => {
    await expect(startCli(['--drain-timeout', '5', '--threads', '1'])).rejects.toThrow(/exited with 1 before listening:[\s\S]*--drain-timeout needs --cluster/);
    await expect(startCli(['--node-id', 'a', '--threads', '1'])).rejects.toThrow(/exited with 1 before listening:[\s\S]*--public-url and --node-id need --cluster/);
  });

  it("--sink-env lets a websocket sink's header name a variable besides EARSHOT_SINK_…; without it such a pipeline stops the server at start; the URL goes to EARSHOT_HEALTH_FILE", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-sink-env-'));
    try {
      const file = join(dir, 'asr.json');
      await writeFile(file, JSON.stringify({ name: 'asr', stages: [], sinks: [{ type: 'websocket', url: 'ws://127.0.0.1:9/', headers: { Authorization: 'Bearer ${ASR_TOKEN}' } }] }));
      await expect(startCli(['--pipeline', file, '--threads', '1'])).rejects.toThrow(/exited with 1 before listening:[\s\S]*\$\{ASR_TOKEN\} is not a variable sink headers may read/);
      expect(await parsedOptions(['--sink-env', 'ASR_TOKEN', '--sink-env', 'B,C'])).toMatchObject({ sinkEnv: ['ASR_TOKEN', 'B', 'C'] });
      process.env.EARSHOT_SINK_ENV = 'OTHER,ASR_TOKEN';
      expect(await parsedOptions([])).toMatchObject({ sinkEnv: ['OTHER', 'ASR_TOKEN'] });
      delete process.env.EARSHOT_SINK_ENV;
      // (And the URL it listens on goes to EARSHOT_HEALTH_FILE, for a container's health check.)
      process.env.EARSHOT_HEALTH_FILE = join(dir, 'earshot.url');
      const server = await startCli(['--pipeline', file, '--sink-env', 'ASR_TOKEN', '--threads', '1']);
      try {
        expect(((await (await fetch(`${server.url}/pipelines`)).json()) as { default: string }).default).toBe('asr');
        expect((await readFile(join(dir, 'earshot.url'), 'utf8')).trim()).toBe(server.url);
      } finally {
        await server.stop();
        await server.cleanup();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('shows --batch-interval, --early-output and --quiet-hold in /stats of the server it starts', async () => {
    const server = await startCli(['--batch-interval', '12', '--early-output', '0', '--quiet-hold', '0', '--threads', '1']);
    try {
      const stats = (await (await fetch(`${server.url}/stats`)).json()) as { server: { pool: Record<string, number> } };
      expect(stats.server.pool).toMatchObject({ batchIntervalMs: 12, threads: 1, earlyOutputMs: 0, earlyResults: 0, quietHoldMs: 0, framesHeld: 0 });
    } finally {
      await server.stop();
      await server.cleanup();
    }
  });
});
