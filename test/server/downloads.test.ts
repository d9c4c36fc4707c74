/**
 * Recording downloads are bounded: a client that stops reading cannot hold
 * the server's file descriptors (the attack: 120 stalled downloads against a
 * 256-descriptor limit made /health and WHIP fail with EMFILE), and listings
 * of thousands of recordings come in pages.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { expectProblem } from '../helpers/problems.js';
import { sparseWav } from '../helpers/wav-files.js';
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js';


/**
 * The audio of a big WAV (silence): more than the kernel buffers of a loopback
 * connection hold (Linux autotunes a receive buffer up to tcp_rmem's maximum,
 * 32 MiB here, plus the sender's 4 MiB), so a reader that stops really stalls.
 */
const BIG_BYTES = 96 * 1024 * 1024;

/** Opens a GET for `path` and never reads the body: the server's writes back up. */
function stalledDownload(port: number, path: string): Promise<{ socket: Socket; status: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const timer = setTimeout(() => reject(new Error(`no response to GET ${path} within 10 s`)), 10_000);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    socket.once('data', (chunk: Buffer) => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 0);
      clearTimeout(timer);
      socket.pause(); // stop reading: TCP flow control stalls the server's writes
      resolve({ socket, status });
    });
  });
}

/** The idle timeout of the stalled-downloads server: long enough that 120 connections are made before it cuts any. */
const IDLE_MS = 4000;

describe('stalled downloads', () => {
  let dir: string;
  let server: SpawnedServer | undefined;
  let url = '';
  const sockets: Socket[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'earshot-downloads-'));
    await sparseWav(join(dir, 'big.wav'), BIG_BYTES);
    // The attack's conditions: 256 file descriptors for the whole server process, set once it
    // listens. (Under that limit from the first instruction, start-up itself can fail: each DSP
    // worker loads its modules with many files open at once.)
    server = await spawnServer({ recordingsDir: dir, downloadIdleTimeoutMs: IDLE_MS, maxDownloadsPerClient: 4, maxDownloads: 16 });
    execFileSync('prlimit', ['--pid', String(server.child.pid), '--nofile=256:256']);
    expect(readFileSync(`/proc/${server.child.pid}/limits`, 'utf8')).toMatch(/Max open files\s+256\s+256/);
    url = server.url;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('120 stalled downloads: 4 are served, the rest get 429 with Retry-After, and /health and WHIP keep working; the stalled ones are cut after the idle timeout', async () => {
    const port = Number(new URL(url).port);
    const results: number[] = [];
    let firstStalled = 0;
    for (let i = 0; i < 120; i++) {
      const r = await stalledDownload(port, '/recordings/big.wav');
      if (i === 0) firstStalled = performance.now();
      sockets.push(r.socket);
      results.push(r.status);
    }
    expect(results.filter((s) => s === 200)).toHaveLength(4);
    expect(results.filter((s) => s === 429)).toHaveLength(116);

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    const whip = await fetch(`${url}/whip/fd/alice`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
    expect(whip.status).toBe(201);
    await whip.text();
    await expectProblem(await fetch(`${url}/recordings/big.wav`), { status: 429, code: 'EARSHOT_TOO_MANY_DOWNLOADS', retryAfter: '5' });

    // The server cuts the 4 stalled transfers once they make no progress for IDLE_MS, which frees their
    // slots: new downloads are served again, four at once once all four are cut. (Reading on from a
    // stalled socket the server has not cut yet would be progress, and the whole file would follow.)
    let freed: number[] = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      const probes = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const probe = await fetch(`${url}/recordings/big.wav`, { headers: { range: 'bytes=0-43' } });
          await probe.arrayBuffer();
          return probe.status;
        }),
      );
      freed = probes;
      if (probes.every((st) => st === 206)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(freed).toEqual([206, 206, 206, 206]);
    // After the idle timeout, not before, and not at twice it (Node's own socket timeout let its first
    // expiry pass while a write was pending: 60 s for the default 30).
    const freedAfter = performance.now() - firstStalled;
    expect(freedAfter).toBeGreaterThanOrEqual(IDLE_MS);
    expect(freedAfter).toBeLessThan(1.75 * IDLE_MS);
    // Reading on, each stalled download ends early, far short of the file.
    const served = sockets.filter((_, i) => results[i] === 200);
    const received = await Promise.all(
      served.map(
        (s) =>
          new Promise<number>((resolve, reject) => {
            let bytes = 0;
            const timer = setTimeout(() => reject(new Error(`a stalled download was not cut: ${bytes} bytes read, socket ${s.readyState}`)), 20_000);
            s.on('data', (c: Buffer) => (bytes += c.length));
            s.on('error', () => undefined); // the server may reset the connection it cut
            s.once('close', () => {
              clearTimeout(timer);
              resolve(bytes);
            });
            s.resume();
          }),
      ),
    );
    for (const bytes of received) expect(bytes).toBeLessThan(BIG_BYTES);
  });
});

describe('the recordings listing', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer();
    // 5000 recordings (the finding: 0.6–1.0 s per unpaginated listing, and /health slowed with it).
    await Promise.all(Array.from({ length: 5000 }, (_, i) => copyFile(fixturePath('tone-1k-48k.wav'), join(t.recordingsDir, `call-${String(i).padStart(5, '0')}.wav`))));
  });
  afterAll(() => t.close());

  it('comes in pages with a cursor: every recording exactly once, in name order, each with a working signed link', async () => {
    const first = (await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string; url: string }>; next: string | null; total: number };
    expect(first.recordings).toHaveLength(100);
    expect(first.total).toBe(5000);
    expect(first.next).toBe('call-00099.wav');

    const seen: string[] = [];
    let cursor: string | null = null;
    const timings: number[] = [];
    do {
      const started = performance.now();
      const res = await fetch(`${t.url}/recordings?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      const page = (await res.json()) as { recordings: Array<{ name: string; seconds: number }>; next: string | null };
      timings.push(performance.now() - started);
      seen.push(...page.recordings.map((r) => r.name));
      expect(page.recordings.every((r) => Math.abs(r.seconds - 3) < 0.01)).toBe(true);
      cursor = page.next;
    } while (cursor);
    expect(seen).toHaveLength(5000);
    expect(new Set(seen).size).toBe(5000);
    expect([...seen].sort()).toEqual(seen);
    // Figures, not thresholds: this machine is shared.
    console.log(`recordings listing, 5000 files: pages of 1000 took ${timings.map((ms) => ms.toFixed(0)).join(', ')} ms`);

    const link = first.recordings[0].url;
    expect(link).toMatch(/^\/recordings\/call-00000\.wav\?expires=\d+&signature=/);
    const download = await fetch(`${t.url}${link}`);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toMatch(/^audio\/(x-)?wav/);
    expect(download.headers.get('etag')).toBeTruthy();
    await download.arrayBuffer();
  });

  it('comes newest first with ?order=newest, a page at a time: every recording once, by modification time', async () => {
    // A shuffle of the times, so that name order and time order differ; two share each second, ordered then by name.
    const key = (i: number) => Math.floor(((i * 7919) % 5000) / 2);
    const base = Date.now() / 1000 - 10_000;
    await Promise.all(Array.from({ length: 5000 }, (_, i) => utimes(join(t.recordingsDir, `call-${String(i).padStart(5, '0')}.wav`), base + key(i), base + key(i))));
    const expected = Array.from({ length: 5000 }, (_, i) => i)
      .sort((a, b) => key(b) - key(a) || a - b)
      .map((i) => `call-${String(i).padStart(5, '0')}.wav`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await fetch(`${t.url}/recordings?order=newest&limit=700${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      const page = (await res.json()) as { recordings: Array<{ name: string; modifiedAt: string }>; next: string | null; total: number };
      expect(page.total).toBe(5000);
      seen.push(...page.recordings.map((r) => r.name));
      cursor = page.next;
    } while (cursor);
    expect(seen).toEqual(expected);
    // A recording written now comes first.
    await copyFile(fixturePath('tone-1k-48k.wav'), join(t.recordingsDir, 'aaa-oldest-name.wav'));
    const first = (await (await fetch(`${t.url}/recordings?order=newest&limit=1`)).json()) as { recordings: Array<{ name: string }> };
    expect(first.recordings.map((r) => r.name)).toEqual(['aaa-oldest-name.wav']);
    await rm(join(t.recordingsDir, 'aaa-oldest-name.wav'));
    // An order it does not know, or a name-order cursor given to the newest-first order: 400, saying which.
    await expectProblem(await fetch(`${t.url}/recordings?order=oldest`), { status: 400, code: 'EARSHOT_BODY_INVALID', detail: /\?order= must be "name" \(the default\) or "newest"/ });
    await expectProblem(await fetch(`${t.url}/recordings?order=newest&cursor=call-00001.wav`), { status: 400, code: 'EARSHOT_BODY_INVALID', detail: /\?cursor= must be the "next" value of the previous page of the same order/ });
  });

  it('with the admin role open (no admin token), a stale or altered link opens its file as the bare URL does', async () => {
    // A dashboard tab kept across a server restart holds links signed with the old key.
    for (const query of ['?expires=1&signature=abc', `?expires=${Math.floor(Date.now() / 1000) + 60}&signature=AAAA`]) {
      const res = await fetch(`${t.url}/recordings/call-00000.wav${query}`);
      expect(res.status, query).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(288_044);
    }
    // Not from another site's page: the open admin role does not serve those, link or no link.
    const cross = await fetch(`${t.url}/recordings/call-00000.wav?expires=1&signature=abc`, { headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
    expect(cross.status).toBe(401);
    await cross.arrayBuffer();
  });

  it('rejects a bad limit with 400', async () => {
    for (const limit of ['0', '1001', 'x', '1e3', '0x10', '5.0', '%205']) {
      const res = await fetch(`${t.url}/recordings?limit=${limit}`);
      expect(res.status).toBe(400);
      // The title is the problem type's (RFC 9457): a body or a query parameter; the detail names which.
      expect(await res.json()).toMatchObject({ code: 'EARSHOT_BODY_INVALID', title: 'Invalid request body or query parameter', detail: '?limit= must be an integer from 1 to 1000.' });
    }
  });
});

describe('signed download links', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startServer({ adminToken: 'admin-secret', downloadLinkSeconds: 60 });
    await copyFile(fixturePath('tone-1k-48k.wav'), join(t.recordingsDir, 'a.wav'));
    await copyFile(fixturePath('tone-1k-48k.wav'), join(t.recordingsDir, 'b.wav'));
  });
  afterAll(() => t.close());

  it('open exactly their file without a token; a tampered or foreign link is 401', async () => {
    const list = (await (await fetch(`${t.url}/recordings`, { headers: { authorization: 'Bearer admin-secret' } })).json()) as { recordings: Array<{ name: string; url: string }> };
    const a = list.recordings.find((r) => r.name === 'a.wav')!;
    expect((await fetch(`${t.url}/recordings/a.wav`)).status).toBe(401);
    const ok = await fetch(`${t.url}${a.url}`);
    expect(ok.status).toBe(200);
    expect((await ok.arrayBuffer()).byteLength).toBe(288_044);
    // The same signature on another file, or a later expiry, does not verify.
    expect((await fetch(`${t.url}${a.url.replace('/a.wav', '/b.wav')}`)).status).toBe(401);
    const later = a.url.replace(/expires=(\d+)/, (_, e: string) => `expires=${Number(e) + 1000}`);
    expect((await fetch(`${t.url}${later}`)).status).toBe(401);
    // A name that is not valid is judged only for someone allowed to ask: without a token, the token's 401.
    const traversal = await fetch(`${t.url}/recordings/..%2fetc%2fpasswd`);
    expect([traversal.status, ((await traversal.json()) as { code: string }).code]).toEqual([401, 'EARSHOT_UNAUTHORIZED']);
    const signedTraversal = await fetch(`${t.url}/recordings/..%2fetc%2fpasswd?${a.url.split('?')[1]}`);
    expect([signedTraversal.status, ((await signedTraversal.json()) as { code: string }).code]).toEqual([401, 'EARSHOT_DOWNLOAD_LINK_INVALID']);
    const asAdmin = await fetch(`${t.url}/recordings/..%2fetc%2fpasswd`, { headers: { authorization: 'Bearer admin-secret' } });
    expect([asAdmin.status, ((await asAdmin.json()) as { code: string }).code]).toEqual([400, 'EARSHOT_RECORDING_NAME_INVALID']);
  });

  it('an expired or altered link says so, with its own code; the admin token still opens the file', async () => {
    const short = await startServer({ adminToken: 'admin-secret', downloadLinkSeconds: 1 });
    try {
      await copyFile(fixturePath('tone-1k-48k.wav'), join(short.recordingsDir, 'a.wav'));
      const admin = { authorization: 'Bearer admin-secret' };
      const list = (await (await fetch(`${short.url}/recordings`, { headers: admin })).json()) as { recordings: Array<{ url: string }> };
      const link = list.recordings[0].url;
      const expires = Number(/expires=(\d+)/.exec(link)![1]);
      const problem = async (path: string, headers: Record<string, string> = {}) => {
        const res = await fetch(`${short.url}${path}`, { headers });
        return { status: res.status, ...((await res.json()) as { code: string; detail: string }) };
      };
      // Altered: another signature, or another expiry under the same one.
      const altered = await problem(link.replace(/signature=[\w-]+/, 'signature=AAAA'));
      expect(altered).toMatchObject({ status: 401, code: 'EARSHOT_DOWNLOAD_LINK_INVALID' });
      expect(altered.detail).toMatch(/does not open this recording: .* for a fresh link, or send the admin token\.$/);
      expect(await problem(link.replace(/expires=\d+/, `expires=${expires + 60}`))).toMatchObject({ status: 401, code: 'EARSHOT_DOWNLOAD_LINK_INVALID' });
      // No link at all: the route's own answer.
      expect(await problem('/recordings/a.wav')).toMatchObject({ status: 401, code: 'EARSHOT_UNAUTHORIZED' });
      await sleep(Math.max(0, expires * 1000 - Date.now()) + 200);
      const expired = await problem(link);
      expect(expired).toMatchObject({ status: 401, code: 'EARSHOT_DOWNLOAD_LINK_EXPIRED' });
      expect(expired.detail).toBe(`This download link expired at ${new Date(expires * 1000).toISOString()}. List the recordings again (GET /recordings, or reload the dashboard) for a fresh link, or send the admin token.`);
      // With the admin token the same request opens the file; with a wrong one it is the token's error.
      const withToken = await fetch(`${short.url}${link}`, { headers: admin });
      expect(withToken.status).toBe(200);
      expect((await withToken.arrayBuffer()).byteLength).toBe(288_044);
      expect(await problem(link, { authorization: 'Bearer wrong' })).toMatchObject({ status: 401, code: 'EARSHOT_UNAUTHORIZED' });
    } finally {
      await short.close();
    }
  });

  it('never serve a file through a symbolic link in the recordings directory, even to the admin', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'earshot-outside-'));
    await writeFile(join(outside, 'secret.wav'), 'not a recording: a file outside the recordings directory');
    await copyFile(fixturePath('tone-1k-48k.wav'), join(outside, 'tone.wav'));
    await symlink(join(outside, 'secret.wav'), join(t.recordingsDir, 'link.wav'));
    await symlink(outside, join(t.recordingsDir, 'linked-dir'));
    const admin = { authorization: 'Bearer admin-secret' };
    for (const name of ['link.wav', 'linked-dir/tone.wav']) {
      const res = await fetch(`${t.url}/recordings/${name}`, { headers: admin });
      expect([name, res.status, ((await res.json()) as { code: string }).code]).toEqual([name, 404, 'EARSHOT_RECORDING_NOT_FOUND']);
    }
    // Nor are they listed; the real recordings still are, and download.
    const list = (await (await fetch(`${t.url}/recordings`, { headers: admin })).json()) as { recordings: Array<{ name: string }> };
    expect(list.recordings.map((r) => r.name).sort()).toEqual(['a.wav', 'b.wav']);
    expect((await fetch(`${t.url}/recordings/a.wav`, { headers: admin })).status).toBe(200);
    await rm(outside, { recursive: true, force: true });
  });
});
