/**
 * `earshot send` stopped by a signal ends its WHIP session (DELETE) before it exits, for SIGTERM
 * (`kill`, `docker stop`, a process manager) as for Ctrl-C: the real CLI, spawned, sending to
 * the real server, which must see the session end at once, not after its media timeout. Stopped
 * before media flows, it exits at once as a shell reports the signal (130, 143).
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { EARSHOT_BIN } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

type Stats = { state: string; endReason: string | null; rtp: { packetsReceived: number } };

let t: TestServer;
beforeAll(async () => {
  t = await startServer({ threads: 1, pipeline: { name: 'plain', stages: [], sinks: [{ type: 'stats' }] } });
});
afterAll(() => t?.close());

async function statsOf(peer: string): Promise<Stats | undefined> {
  const res = await fetch(`${t.url}/stats/${peer}`);
  return res.ok ? ((await res.json()) as Stats) : undefined;
}

/** Polls `peer`'s statistics until `done` holds or `ms` pass; the last statistics. */
async function until(peer: string, done: (s: Stats) => boolean, ms: number): Promise<Stats | undefined> {
  let s: Stats | undefined;
  for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    s = await statsOf(peer);
    if (s && done(s)) break;
  }
  return s;
}

describe('earshot send stopped by a signal', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`ends the session with DELETE on ${signal} and exits 0`, async () => {
      const peer = `stopped-${signal.toLowerCase()}`;
      const child = spawn(process.execPath, [EARSHOT_BIN, 'send', fixturePath('tone-1k-48k.wav'), '--loop', '--url', `${t.url}/whip/signals/${peer}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (b: Buffer) => (output += b));
      child.stderr.on('data', (b: Buffer) => (output += b));
      const exited = new Promise<number | string | null>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig)));
      try {
        const sending = await until(peer, (s) => s.rtp.packetsReceived >= 25, 30_000);
        expect(sending?.rtp.packetsReceived, output).toBeGreaterThanOrEqual(25);
        child.kill(signal);
        const stoppedAt = Date.now();
        expect(await exited, output).toBe(0);
        const ended = await until(peer, (s) => s.state === 'ended', 5000);
        // The server's media timeout is 10 s: without the DELETE it would end the session then, as media-timeout.
        expect(ended).toMatchObject({ state: 'ended', endReason: 'deleted' });
        expect(Date.now() - stoppedAt).toBeLessThan(5000);
        // Not "done": the figures are what was sent before the signal, not the file's.
        expect(output).toMatch(new RegExp(`stopped by ${signal === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'}: [\\d.]+ s, \\d+ packets, .* \\(ended\\)`));
        expect(output).not.toMatch(/done:/);
      } finally {
        child.kill('SIGKILL');
      }
    }, 60_000);
  }
});

describe('earshot send stopped by a signal before media flows', () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`exits ${code} at once on ${signal} while its offer waits for an answer, saying so`, async () => {
      // An endpoint that takes the offer and never answers (the POST's own timeout is 10 s).
      let posted = false;
      const stub = createServer((req) => {
        posted = true;
        req.resume();
      });
      await new Promise<void>((done) => stub.listen(0, '127.0.0.1', done));
      const child = spawn(process.execPath, [EARSHOT_BIN, 'send', fixturePath('tone-1k-48k.wav'), '--url', `http://127.0.0.1:${(stub.address() as AddressInfo).port}/whip/r/p`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b));
      const exited = new Promise<number | string | null>((resolve) => child.on('exit', (c, sig) => resolve(c ?? sig)));
      try {
        for (const deadline = Date.now() + 30_000; !posted && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
        expect(posted).toBe(true);
        child.kill(signal);
        expect(await exited, stderr).toBe(code);
        expect(stderr).toMatch(/^earshot send: Stopped while publishing the offer, before any audio was sent; .* \[EARSHOT_SEND_ABORTED\]\n$/);
      } finally {
        child.kill('SIGKILL');
        stub.closeAllConnections();
        await new Promise<void>((done) => stub.close(() => done()));
      }
    }, 60_000);
  }
});
