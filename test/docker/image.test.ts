/**
 * docker/Dockerfile, built as users build it, with only its base image
 * substituted (no image registry is reachable here: test/docker/make-base-image.sh
 * makes a Debian bookworm + Node 22 stand-in for node:22-bookworm-slim). The
 * container runs as configured by environment only (two engine processes),
 * a test publisher streams into it over WHIP, and its recordings land on the
 * bind-mounted volume, owned by the image's non-root user; `docker stop`
 * drains and finalizes.
 *
 * Skipped, saying why, only when Docker cannot run on this machine at all
 * (test/docker/ensure-docker.sh); with EARSHOT_REQUIRE_DOCKER=1 (CI) that is
 * a failure instead.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio, sendMany } from '../../src/client/audio-sender.js';
import { mayBeEnded } from '../helpers/sending.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const tone = fixturePath('tone-1k-48k.wav');
/** The image's user (docker/Dockerfile). */
const UID = 10001;
const ADMIN = 'docker-test-admin';
const PUBLISH = 'docker-test-publish';

const ensure = spawnSync('bash', [join(ROOT, 'test', 'docker', 'ensure-docker.sh')], { encoding: 'utf8' });
const dockerReady = ensure.status === 0;
if (!dockerReady) {
  const why = `Docker cannot run here: ${(ensure.stderr || ensure.error?.message || '').trim()}`;
  if (process.env.EARSHOT_REQUIRE_DOCKER === '1') throw new Error(`${why} (EARSHOT_REQUIRE_DOCKER=1)`);
  console.warn(`test/docker/image.test.ts skipped — ${why}`);
}

const run = promisify(execFile);
/** Runs docker; the classic builder, because BuildKit would want its frontend image from a registry. */
async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('docker', args, { env: { ...process.env, DOCKER_BUILDKIT: '0' }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function finalized(file: string): Promise<boolean> {
  const bytes = await readFile(file);
  const at = bytes.indexOf('data', 12, 'latin1');
  return at > 0 && bytes.readUInt32LE(at + 4) === bytes.length - at - 8;
}

const timings: Record<string, number> = {};
async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings[what] = Math.round((performance.now() - t0) / 100) / 10;
  }
}

describe.skipIf(!dockerReady)('docker/Dockerfile', () => {
  const image = 'earshot-test:latest';
  const container = `earshot-test-${process.pid}`;
  let dir: string;
  let recordings: string;
  let url: string;
  const started = performance.now();

  beforeAll(async () => {
    const base = await timed('base image', async () => {
      const { stdout } = await run('bash', [join(ROOT, 'test', 'docker', 'make-base-image.sh')], { timeout: 15 * 60_000, maxBuffer: 16 * 1024 * 1024 });
      return stdout.trim().split('\n').pop()!;
    });
    await timed('docker build', () => docker(['build', '--build-arg', `BASE_IMAGE=${base}`, '-f', join(ROOT, 'docker', 'Dockerfile'), '-t', image, ROOT], 15 * 60_000));
    dir = await mkdtemp(join(tmpdir(), 'earshot-docker-'));
    recordings = join(dir, 'recordings');
    await run('mkdir', ['-p', recordings]);
    // The volume belongs to the image's user, as a user would set it up (chown needs root; else anyone may write).
    await chown(recordings, UID, UID).catch(() => chmod(recordings, 0o777));
    await writeFile(join(dir, 'raw.json'), JSON.stringify({ name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] }));
    await chmod(dir, 0o755);
    const port = await freePort();
    const ice = 41000 + Math.floor(Math.random() * 80) * 100;
    url = `http://127.0.0.1:${port}`;
    // Host networking: the publisher runs on this machine and talks to 127.0.0.1, which must be the
    // container's 127.0.0.1 too (docs/scaling.md shows the published-ports form for real hosts).
    await timed('docker run', () =>
      docker([
        'run', '-d', '--init', '--name', container, '--network', 'host', '--health-interval', '2s',
        '-e', `EARSHOT_ADMIN_TOKEN=${ADMIN}`,
        '-e', `EARSHOT_TOKEN=${PUBLISH}`,
        '-e', 'EARSHOT_ICE_HOSTS=127.0.0.1',
        '-e', `EARSHOT_ICE_PORTS=${ice}-${ice + 99}`,
        '-e', 'EARSHOT_PROCESSES=2',
        '-e', 'EARSHOT_ADMISSION=off',
        '-e', 'EARSHOT_PIPELINE=/etc/earshot/raw.json',
        '-v', `${join(dir, 'raw.json')}:/etc/earshot/raw.json:ro`,
        '-v', `${recordings}:/var/lib/earshot/recordings`,
        // The port as an argument, not PORT: the health check must follow what serve listens on.
        image, 'serve', '--port', String(port),
      ]),
    );
    await timed('healthy', async () => {
      for (const deadline = Date.now() + 90_000; Date.now() < deadline; ) {
        const state = await docker(['inspect', '--format', '{{.State.Status}} {{.State.Health.Status}}', container]);
        if (state === 'running healthy') return;
        if (!state.startsWith('running')) throw new Error(`container ${state}:\n${await docker(['logs', container]).catch(() => '')}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(`container not healthy within 90 s:\n${await docker(['logs', container]).catch(() => '')}`);
    });
  }, 30 * 60_000);

  afterAll(async () => {
    if (!dockerReady) return;
    await docker(['rm', '-f', container]).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
    timings.total = Math.round((performance.now() - started) / 100) / 10;
    console.log(`docker test timings (s): ${JSON.stringify(timings)}`);
  }, 60_000);

  it('runs as a non-root user, refuses the admin API without its token, and serves /health', async () => {
    expect(await docker(['exec', container, 'id', '-u'])).toBe(String(UID));
    expect((await fetch(`${url}/stats`)).status).toBe(401);
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; processes: number; access: Record<string, string> };
    expect(health).toMatchObject({ status: 'ok', processes: 2, access: { publish: 'token', admin: 'token' } });
  });

  it('sizes itself by a CPU limit (docker run --cpus): one process, one DSP thread for --cpus 1; warns without EARSHOT_ICE_HOSTS', async () => {
    const port = await freePort();
    const limited = `${container}-cpus`;
    // No EARSHOT_ICE_HOSTS: the server must warn that its candidates carry the container's own addresses.
    await docker(['run', '-d', '--name', limited, '--network', 'host', '--cpus', '1', '-e', `PORT=${port}`, '-e', `EARSHOT_ADMIN_TOKEN=${ADMIN}`, '-e', `EARSHOT_TOKEN=${PUBLISH}`, image]);
    try {
      let health: { processes?: number; engines?: unknown; poolThreads?: number } | undefined;
      for (const deadline = Date.now() + 60_000; !health && Date.now() < deadline; ) {
        health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => (r.ok ? (r.json() as Promise<typeof health>) : undefined), () => undefined);
        if (!health) await new Promise((r) => setTimeout(r, 300));
      }
      // Without the limit this machine's cores would set the thread count (a 2-core CI machine: 2).
      expect(health?.poolThreads).toBe(1);
      // One process: no engines (--processes defaults to one up to 3 CPUs).
      expect(health?.engines).toBeUndefined();
      expect(await docker(['logs', limited])).toMatch(/running in a container without --ice-host \(EARSHOT_ICE_HOSTS\)/);
    } finally {
      await docker(['rm', '-f', limited]).catch(() => undefined);
    }
  });

  it('records WHIP publishers onto the volume: right duration and tone, files owned by the image user', async () => {
    const results = await timed('publish', () => sendMany(2, { url: `${url}/whip/docker/peer`, source: tone, seconds: 2, token: PUBLISH }));
    expect(results.filter((r) => 'error' in r)).toEqual([]);
    const files = (await readdir(recordings)).filter((f) => f.startsWith('docker-peer-'));
    expect(files).toHaveLength(2);
    for (const f of files) {
      const wav = await readWav(join(recordings, f));
      expect(Math.abs(wav.durationSec - 2)).toBeLessThan(0.04);
      expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);
      expect((await stat(join(recordings, f))).uid).toBe(UID);
    }
    const { peers } = (await (await fetch(`${url}/stats`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { peers: unknown[] };
    expect(Array.isArray(peers)).toBe(true);
  });

  it('drains on docker stop: exit code 0 and a live session\'s recording finalized', async () => {
    const controller = new AbortController();
    const sending = mayBeEnded(sendAudio({ url: `${url}/whip/docker/live`, source: tone, loop: true, signal: controller.signal, skipDelete: true, token: PUBLISH }));
    let name: string | undefined;
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !name; ) {
      const res = await fetch(`${url}/stats/live`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const s = res.ok ? ((await res.json()) as { rtp: { packetsReceived: number }; recording: { name: string } | null }) : undefined;
      if (s && s.rtp.packetsReceived >= 50 && s.recording) name = s.recording.name;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(name).toBeDefined();
    await timed('docker stop', () => docker(['stop', '-t', '30', container], 60_000));
    controller.abort();
    await sending.catch(() => undefined);
    expect(await docker(['inspect', '--format', '{{.State.ExitCode}}', container])).toBe('0');
    expect(await finalized(join(recordings, name!))).toBe(true);
    expect((await readWav(join(recordings, name!))).durationSec).toBeGreaterThan(0.9);
    const logs = await docker(['logs', container]);
    expect(logs).toMatch(/"peer":"live".*"reason":"shutdown"|"reason":"shutdown".*"peer":"live"/);
  });
});
