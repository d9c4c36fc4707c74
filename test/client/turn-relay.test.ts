/**
 * `earshot send` / `sendAudio` through a TURN server, for networks that block
 * UDP to the WHIP server: a real coturn on loopback, the real server, only
 * relayed candidates offered (`iceTransportPolicy: 'relay'`, `--relay-only`),
 * and every packet arriving. A refused credential is named before an offer is
 * posted, not after the connect timeout.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { WhipClient } from '../../src/client/whip-client.js';
import { EARSHOT_BIN } from '../helpers/cli.js';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';
import { freePort } from '../cluster/redis-server.js';

let turn: ChildProcess | undefined;
let turnPort = 0;
let t: TestServer;

beforeAll(async () => {
  turnPort = await freePort();
  // Relayed addresses from a range of its own, on loopback (coturn refuses loopback peers unless told).
  const relayFrom = 40_000 + Math.floor(Math.random() * 20_000);
  turn = spawn('turnserver', [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${turnPort}`,
    `--min-port=${relayFrom}`, `--max-port=${relayFrom + 50}`, '--lt-cred-mech', '--user=earshot:secret', '--realm=earshot.test',
    '--allow-loopback-peers', '--log-file=stdout', '--no-stdout-log', '--userdb=/dev/null',
  ], { stdio: 'ignore' });
  turn.once('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new Error('turnserver is not installed: this test needs coturn (Debian: apt-get install coturn; .ci/run installs it)');
  });
  // It listens on TCP too, on the same port: connectable once it is up.
  await until('turnserver listens', () => new Promise<true | undefined>((resolve) => {
    const s = connect(turnPort, '127.0.0.1', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(undefined));
  }), 15_000);
  t = await startServer({ threads: 1, pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
});

afterAll(async () => {
  turn?.kill('SIGKILL');
  await t?.close();
});

const TURN = { urls: () => `turn:127.0.0.1:${turnPort}`, username: 'earshot', credential: 'secret' };

/** The candidates of the offers `fetch` posts. */
function recordingOffers(offers: string[][]): typeof fetch {
  return async (input, init) => {
    if (init?.method === 'POST') offers.push(String(init.body).split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')));
    return fetch(input, init);
  };
}

async function packetsReceived(peer: string): Promise<number> {
  const stats = (await (await fetch(`${t.url}/stats/${peer}`)).json()) as { rtp: { packetsReceived: number } };
  return stats.rtp.packetsReceived;
}

describe('sending through a TURN server', () => {
  it('offers only relayed candidates with iceTransportPolicy "relay", and every packet arrives through the relay', async () => {
    const offers: string[][] = [];
    const result = await sendAudio({
      url: `${t.url}/whip/turn/relayed`, source: fixturePath('tone-1k-48k.wav'), seconds: 2, fetch: recordingOffers(offers),
      iceServers: [{ urls: TURN.urls(), username: TURN.username, credential: TURN.credential }], iceTransportPolicy: 'relay',
    });
    expect(result.packetsSent).toBe(100);
    expect(offers).toHaveLength(1);
    expect(offers[0].length).toBeGreaterThan(0);
    for (const c of offers[0]) expect(c).toMatch(/ typ relay raddr /);
    expect(await packetsReceived('relayed')).toBe(100);
  });

  it('names a refused credential with EARSHOT_WEBRTC_CONNECT_FAILED before posting an offer, and refuses "relay" without a TURN server', async () => {
    const offers: string[][] = [];
    await expect(
      sendAudio({
        url: `${t.url}/whip/turn/refused`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, fetch: recordingOffers(offers), connectTimeoutMs: 60_000,
        iceServers: [{ urls: TURN.urls(), username: TURN.username, credential: 'wrong' }], iceTransportPolicy: 'relay',
      }),
    ).rejects.toMatchObject({ code: 'EARSHOT_WEBRTC_CONNECT_FAILED', message: expect.stringMatching(/^No relayed ICE candidate was gathered: the TURN server did not answer, or refused the username and credential/) });
    // Nothing was posted: no session was made for an offer that could not connect.
    expect(offers).toEqual([]);
    await expect(sendAudio({ url: `${t.url}/whip/turn/none`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, iceTransportPolicy: 'relay' })).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'iceTransportPolicy' } });
    await expect(sendAudio({ url: `${t.url}/whip/turn/bad`, source: fixturePath('tone-1k-48k.wav'), seconds: 1, iceServers: [{ urls: 'turn:127.0.0.1' }] })).rejects.toMatchObject({ code: 'EARSHOT_ICE_SERVER_INVALID' });
  });

  it('earshot send --ice-server … --relay-only sends through it', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [EARSHOT_BIN, 'send', fixturePath('tone-1k-48k.wav'), '--seconds', '1', '--url', `${t.url}/whip/turn/cli`, '--ice-server', `${TURN.urls()},earshot,secret`, '--relay-only'], { timeout: 60_000 }, (error, out, err) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout: out, stderr: err }),
      ),
    );
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/done: 1\.00 s, 50 packets/);
    expect(await packetsReceived('cli')).toBe(50);
  });
});

describe('the ICE servers the endpoint advertises (RFC 9725 §4.6), asked for before the offer', () => {
  let advertising: TestServer;
  beforeAll(async () => {
    advertising = await startServer({ threads: 1, pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] }, iceServers: [{ urls: TURN.urls(), username: TURN.username, credential: TURN.credential }] });
  });
  afterAll(async () => {
    await advertising?.close();
  });

  /** The methods of the requests `fetch` makes, and the candidates of the offers it posts. */
  function recording(methods: string[], offers: string[][]): typeof fetch {
    const inner = recordingOffers(offers);
    return (input, init) => (methods.push(init?.method ?? 'GET'), inner(input, init));
  }

  it('reads them from the Link fields of its answer to OPTIONS, credentials quoted as RFC 8288 quotes them', async () => {
    const server = await startServer({ threads: 1, pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] }, iceServers: [{ urls: 'stun:127.0.0.1:3478' }, { urls: 'turn:127.0.0.1:3478?transport=udp', username: 'user', credential: 'my"pa\\ss, word;x' }] });
    try {
      expect(await new WhipClient().iceServers(`${server.url}/whip/room/peer`)).toEqual([
        { urls: 'stun:127.0.0.1:3478' },
        { urls: 'turn:127.0.0.1:3478?transport=udp', username: 'user', credential: 'my"pa\\ss, word;x' },
      ]);
    } finally {
      await server.close();
    }
    // An endpoint that advertises none.
    expect(await new WhipClient().iceServers(`${t.url}/whip/room/peer`)).toEqual([]);
  });

  it('sendAudio({ iceServersFromServer }) relays through the TURN server the endpoint advertises, and every packet arrives', async () => {
    const methods: string[] = [];
    const offers: string[][] = [];
    const result = await sendAudio({ url: `${advertising.url}/whip/turn/advertised`, source: fixturePath('tone-1k-48k.wav'), seconds: 2, fetch: recording(methods, offers), iceServersFromServer: true, iceTransportPolicy: 'relay' });
    expect(result.packetsSent).toBe(100);
    expect(methods.slice(0, 2)).toEqual(['OPTIONS', 'POST']);
    expect(offers[0].length).toBeGreaterThan(0);
    for (const c of offers[0]) expect(c).toMatch(/ typ relay raddr /);
    const stats = (await (await fetch(`${advertising.url}/stats/advertised`)).json()) as { rtp: { packetsReceived: number } };
    expect(stats.rtp.packetsReceived).toBe(100);
  });

  it('your own iceServers win (no OPTIONS); "relay" against an endpoint that advertises no TURN server is refused before an offer is posted', async () => {
    const methods: string[] = [];
    const offers: string[][] = [];
    await sendAudio({ url: `${t.url}/whip/turn/own`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.5, fetch: recording(methods, offers), iceServersFromServer: true, iceServers: [{ urls: TURN.urls(), username: TURN.username, credential: TURN.credential }], iceTransportPolicy: 'relay' });
    expect(methods[0]).toBe('POST');
    const refusedMethods: string[] = [];
    const refusedOffers: string[][] = [];
    await expect(sendAudio({ url: `${t.url}/whip/turn/nothing`, source: fixturePath('tone-1k-48k.wav'), seconds: 0.5, fetch: recording(refusedMethods, refusedOffers), iceServersFromServer: true, iceTransportPolicy: 'relay' })).rejects.toMatchObject({
      code: 'EARSHOT_OPTION_INVALID',
      message: expect.stringMatching(/^options\.iceTransportPolicy is "relay", but http:\/\/127\.0\.0\.1:\d+\/whip\/turn\/nothing advertises no TURN server to relay through/),
    });
    expect(refusedMethods).toEqual(['OPTIONS']);
    await expect(sendAudio({ signaling: async () => '', source: fixturePath('tone-1k-48k.wav'), seconds: 0.5, iceServersFromServer: true })).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'iceServersFromServer' } });
  });

  it('earshot send --ice-servers-from-server --relay-only sends through it', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [EARSHOT_BIN, 'send', fixturePath('tone-1k-48k.wav'), '--seconds', '1', '--url', `${advertising.url}/whip/turn/cli-advertised`, '--ice-servers-from-server', '--relay-only'], { timeout: 60_000 }, (error, out, err) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout: out, stderr: err }),
      ),
    );
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/done: 1\.00 s, 50 packets/);
    const stats = (await (await fetch(`${advertising.url}/stats/cli-advertised`)).json()) as { rtp: { packetsReceived: number } };
    expect(stats.rtp.packetsReceived).toBe(50);
  });
});
