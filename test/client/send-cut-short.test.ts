/**
 * `earshot send` as users run it (the real CLI, spawned, sending to the real
 * server): a WAV file cut short (a copy or download that stopped) is sent as far
 * as it goes, with a warning saying how much of what its header declares is
 * missing; a whole file, and one written to a pipe (no size in its header), get
 * no warning. The summary counts the packets `--simulate-loss` withheld.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEarshot } from '../helpers/cli.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let dir: string;
beforeAll(async () => {
  t = await startServer({ threads: 1, pipeline: { name: 'plain', stages: [], sinks: [{ type: 'stats' }] } });
  dir = await mkdtemp(join(tmpdir(), 'earshot-send-cli-'));
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

const send = (file: string, peer: string) => runEarshot(['send', file, '--url', `${t.url}/whip/cli/${peer}`, '--speed', '10']);

describe('earshot send', () => {
  it('sends a file cut short as far as it goes, warning how much its header declares that it lacks; a whole file gets no warning', async () => {
    // tone-1k-48k.wav: 3 s of 48 kHz 16-bit mono after its header; cut 1 s (96,000 bytes) into its samples.
    const whole = await readFile(fixturePath('tone-1k-48k.wav'));
    const dataAt = whole.indexOf('data', 12, 'latin1') + 8;
    const cut = join(dir, 'cut.wav');
    await writeFile(cut, whole.subarray(0, dataAt + 96_000));
    const sent = await send(cut, 'cut');
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.stderr).toBe(`earshot send: warning: ${cut} is cut short: its header declares 3.00 s of audio, the file holds 1.00 s; sending what it holds\n`);
    expect(sent.stdout).toMatch(/^done: 1\.00 s, 50 packets, /m);

    const full = await send(fixturePath('tone-1k-48k.wav'), 'whole');
    expect(full.code, full.stderr).toBe(0);
    expect(full.stderr).toBe('');
    expect(full.stdout).toMatch(/^done: 3\.00 s, 150 packets, /m);

    // Written to a pipe, a WAV says 0xFFFFFFFF for its size: nothing is missing.
    const piped = Buffer.from(whole.subarray(0, dataAt + 96_000));
    piped.writeUInt32LE(0xffffffff, dataAt - 4);
    piped.writeUInt32LE(0xffffffff, 4);
    const pipe = join(dir, 'piped.wav');
    await writeFile(pipe, piped);
    const unsized = await send(pipe, 'piped');
    expect(unsized.code, unsized.stderr).toBe(0);
    expect(unsized.stderr).toBe('');
    expect(unsized.stdout).toMatch(/^done: 1\.00 s, 50 packets, /m);
  }, 90_000);

  it('says how many packets --simulate-loss withheld: sent and withheld make the whole file', async () => {
    const lossy = await runEarshot(['send', fixturePath('tone-1k-48k.wav'), '--url', `${t.url}/whip/cli/lossy`, '--speed', '10', '--simulate-loss', '0.2']);
    expect(lossy.code, lossy.stderr).toBe(0);
    const m = /^done: 3\.00 s, (\d+) packets \((\d+) more withheld: --simulate-loss\), /m.exec(lossy.stdout);
    expect(m, lossy.stdout).not.toBeNull();
    expect(Number(m![1]) + Number(m![2])).toBe(150);
    expect(Number(m![2])).toBeGreaterThan(0);
  }, 60_000);
});
