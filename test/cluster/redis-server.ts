/**
 * A real `redis-server` for the cluster tests, on a free loopback port, with
 * nothing persisted. `kill()` and `start()` again on the same port simulate
 * Redis going away and coming back (empty, as a restarted Redis without
 * persistence does).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { connect } from 'node:net';

export interface TestRedis {
  port: number;
  url: string;
  /** (Re)starts the server on `port`; resolves once it answers PING. */
  start(): Promise<void>;
  /** SIGKILL; resolves once it exited. */
  kill(): Promise<void>;
  /** Sends one command (RESP) and resolves to the raw reply. */
  command(...args: string[]): Promise<string>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** `args`: more redis-server options, e.g. `['--enable-debug-command', 'local']` for `DEBUG SLEEP`. */
export async function startRedis(timeoutMs = 10_000, args: string[] = []): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const redis: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
      let failed: Error | undefined;
      child.once('error', (e: NodeJS.ErrnoException) => {
        failed = e.code === 'ENOENT' ? new Error('redis-server is not installed: the cluster tests need it (Debian: apt-get install redis-server; .ci/run installs it)') : e;
      });
      const deadline = Date.now() + timeoutMs;
      while (!(await ping(port))) {
        if (failed) throw failed;
        if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within ${timeoutMs} ms`);
        if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    command: (...args) => command(port, args),
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGKILL');
      await exited;
    },
  };
  await redis.start();
  return redis;
}

function command(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(2000, () => socket.destroy(new Error('redis-server did not answer')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString());
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}
