/**
 * `sendAudio`'s options are checked before anything connects, each refusal an
 * `EARSHOT_OPTION_INVALID` naming the option (they were RangeErrors without a
 * code), a misspelt option refused by name; and the CLI's flags take the same
 * ranges. (Sending itself, in real time and faster, is
 * exercised end to end by test/integration; here only `sendMany`'s progress.)
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { RTCPeerConnection } from 'werift';
import { describe, expect, it } from 'vitest';
import { encodeSource, sendAudio, sendMany, type SendProgress } from '../../src/client/audio-sender.js';
import { readWavSource } from '../../src/client/wav-stream.js';
import { EarshotError } from '../../src/errors.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete } from '../../src/rtc/ice-config.js';
import { fixturePath } from '../helpers/fixtures.js';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { EARSHOT_BIN } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

const source = { sampleRate: 48000 as const, channels: [new Float32Array(960)] };
// Nothing listens there: an option that passed the checks would fail to connect instead.
const url = 'http://127.0.0.1:9/whip/room/peer';

/** The refusal `EARSHOT_OPTION_INVALID` of `option`, with this message. */
const refusal = (option: string, message: string) => ({ code: 'EARSHOT_OPTION_INVALID', extensions: { option }, message });

describe('sendAudio options', () => {
  it('takes a speed from 1 (real time) to 50 and refuses anything else up front', async () => {
    for (const speed of [0, 0.5, 51, Number.NaN, Infinity, -1]) {
      await expect(sendAudio({ url, source, speed })).rejects.toMatchObject(refusal('speed', `options.speed must be a number from 1 to 50, got ${speed}`));
    }
  });

  it('needs a url unless signaling replaces it', async () => {
    await expect(sendAudio({ source })).rejects.toMatchObject(refusal('url', 'options.url is required: the WHIP endpoint to publish to (or give signaling instead)'));
  });

  it('refuses a loss share outside 0–0.5 and an empty source', async () => {
    await expect(sendAudio({ url, source, simulateLoss: 0.6 })).rejects.toMatchObject(refusal('simulateLoss', 'options.simulateLoss must be a number from 0 to 0.5, got 0.6'));
    await expect(sendAudio({ url, source: { sampleRate: 48000, channels: [new Float32Array(0)] } })).rejects.toMatchObject(refusal('source', 'options.source holds no audio: nothing to send'));
    await expect(sendAudio({ url, source: 42 as never })).rejects.toMatchObject(refusal('source', expect.stringMatching(/^options\.source must be a WAV file path, decoded PCM .* or Opus packets .*, got 42$/) as never));
  });

  it('takes seconds from one 20 ms packet up, finite, and says so before reading the file', async () => {
    // 0.005 s passed the check and then sent nothing; Infinity and 1e400 sent forever.
    for (const seconds of [0.005, 0.019, 0, -1, Number.NaN, Infinity, 1e400]) {
      const refused = refusal('seconds', `options.seconds must be a finite number of at least 0.02 (one 20 ms packet), got ${seconds}`);
      await expect(sendAudio({ url, source: 'no-such.wav', seconds })).rejects.toMatchObject(refused);
      await expect(sendMany(2, { url, source: 'no-such.wav', seconds })).rejects.toMatchObject(refused);
    }
  });

  it('refuses an option name it does not know, naming it and the nearest one (a misspelt option did nothing)', async () => {
    const refused = (await sendAudio({ url, source, speeed: 5 } as never).catch((e: unknown) => e)) as EarshotError;
    expect(refused).toBeInstanceOf(EarshotError);
    expect(refused).toMatchObject(refusal('speeed', 'options.speeed is not an option of sendAudio (did you mean speed?)'));
    await expect(sendMany(2, { url, source, simulatedLoss: 0.1 } as never)).rejects.toMatchObject(refusal('simulatedLoss', 'options.simulatedLoss is not an option of sendMany (did you mean simulateLoss?)'));
    await expect(sendAudio({ url, source, volume: 2 } as never)).rejects.toMatchObject(refusal('volume', 'options.volume is not an option of sendAudio'));
    await expect(sendMany(0, { url, source })).rejects.toMatchObject(refusal('count', 'options.count must be a positive integer, got 0'));
    // No options at all, as null: refused as such (it was a TypeError from reading undefined).
    await expect((sendAudio as (o?: unknown) => Promise<unknown>)()).rejects.toMatchObject(refusal('', 'options must be an object (the options of sendAudio), got undefined'));
    await expect(sendAudio(null as never)).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', message: expect.stringMatching(/^options must be an object \(the options of sendAudio\)/) });
  });

  it('refuses options of the wrong kind by name', async () => {
    await expect(sendAudio({ url, source, loop: 'yes' as never })).rejects.toMatchObject(refusal('loop', 'options.loop must be true or false, got "yes"'));
    await expect(sendAudio({ url, source, connectTimeoutMs: 0 })).rejects.toMatchObject(refusal('connectTimeoutMs', 'options.connectTimeoutMs must be a number from 1 to 2147483647 (ms), got 0'));
    await expect(sendAudio({ url, source, rtcpTimeoutMs: -1 })).rejects.toMatchObject(refusal('rtcpTimeoutMs', 'options.rtcpTimeoutMs must be a number from 0 to 2147483647 (ms; 0 turns it off), got -1'));
    await expect(sendAudio({ url, source, onProgress: 'log' as never })).rejects.toMatchObject(refusal('onProgress', 'options.onProgress must be a function, got "log"'));
    await expect(sendAudio({ url, source, signal: {} as never })).rejects.toMatchObject(refusal('signal', 'options.signal must be an AbortSignal, got an object'));
    await expect(sendAudio({ url, source, hostAddresses: '127.0.0.1' as never })).rejects.toMatchObject(refusal('hostAddresses', 'options.hostAddresses must be an array of strings, got "127.0.0.1"'));
  });

  it('refuses a URL other than http(s) and a token that is not visible ASCII before anything is sent (they were "did not answer")', async () => {
    await expect(sendAudio({ url: 'ftp://127.0.0.1/whip/room/peer', source: 'no-such.wav' })).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'url' }, message: 'options.url must be an http: or https: URL (WHIP runs over HTTP), got "ftp://127.0.0.1/whip/room/peer"' });
    // A user name and password in the URL: refused as such, never printed (fetch refused it, read as a server that did not answer).
    const withPassword = (await sendAudio({ url: 'http://user:s3cr3t@127.0.0.1:9/whip/room/peer', source: 'no-such.wav' }).catch((e: unknown) => e)) as Error;
    expect(withPassword).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'url' }, message: expect.stringMatching(/^options\.url must not carry a user name or password \("http:\/\/\*\*\*@127\.0\.0\.1:9\/whip\/room\/peer"\): earshot authenticates with a bearer token/) });
    expect(withPassword.message).not.toContain('s3cr3t');
    // Nor in a URL that does not parse.
    const unparsable = (await sendAudio({ url: 'http://user:s3cr3t@bad host/whip/room/peer', source: 'no-such.wav' }).catch((e: unknown) => e)) as Error;
    expect(unparsable).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', message: 'options.url must be a URL, got "http://***@bad host/whip/room/peer"' });
    const refused = await sendAudio({ url, source: 'no-such.wav', token: 'secret\n' }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'token' }, message: 'options.token must be visible ASCII characters (a bearer token, sent in a header), but character 7 of 7 is "\\n"' });
    // With its own signaling, the URL is not used.
    await expect(sendAudio({ signaling: async () => '', source, seconds: 0.005 })).rejects.toThrow(/seconds must be/);
  });

  it('sends 1 or 2 channels and refuses any other count by name (it threw a bare number)', async () => {
    for (const channels of [0, 3, 6, 1.5]) {
      const refused = refusal('channels', `options.channels must be 1 or 2, got ${channels}`);
      await expect(sendAudio({ url, source, channels: channels as 1 })).rejects.toMatchObject(refused);
      await expect(sendMany(2, { url, source, channels: channels as 1 })).rejects.toMatchObject(refused);
      // It returned two channels for 3.
      await expect(readWavSource(fixturePath('tone-1k-48k.wav'), channels as 1)).rejects.toMatchObject(refused);
      expect(() => encodeSource(source, channels as 1)).toThrow(refused.message);
    }
  });

  it('takes an Opus bitrate from 6000 to 510000 bit/s: below, libopus codes nothing but silence', async () => {
    for (const bitrate of [600, 5999, 510_001, 32000.5]) {
      // Before reading the file (it was checked once the file had been decoded).
      await expect(sendAudio({ url, source: 'no-such.wav', bitrate })).rejects.toMatchObject(refusal('bitrate', `options.bitrate must be an integer from 6000 to 510000 bit/s (Opus), got ${bitrate}`));
    }
  });

  it('reports the progress of each of sendMany\'s sessions, numbered', async () => {
    const t = await startServer({ threads: 1, pipeline: { name: 'plain', stages: [], sinks: [{ type: 'stats' }] } });
    try {
      const seen: SendProgress[] = [];
      const results = await sendMany(2, { url: `${t.url}/whip/many/p`, source: fixturePath('tone-1k-48k.wav'), seconds: 3, speed: 2, onProgress: (p) => seen.push(p) });
      expect(results.every((r) => !('error' in r))).toBe(true);
      expect(new Set(seen.map((p) => p.session))).toEqual(new Set([1, 2]));
      // Packets encoded before (an EncodedSource): each session sends every one of them, and the server gets them.
      const encoded = encodeSource(await readWavSource(fixturePath('tone-1k-48k.wav'), 1, 1));
      const twice = await sendMany(2, { url: `${t.url}/whip/many/e`, source: encoded, speed: 2 });
      expect(twice.map((r) => ('error' in r ? r.error.message : r.packetsSent))).toEqual([encoded.opus.length, encoded.opus.length]);
      for (const peer of ['e-1', 'e-2']) {
        const stats = (await (await fetch(`${t.url}/stats/${peer}`)).json()) as { rtp: { packetsReceived: number } };
        expect(stats.rtp.packetsReceived, peer).toBe(encoded.opus.length);
      }
    } finally {
      await t.close();
    }
  });
});

describe('answers and connections that cannot carry audio', () => {
  it('refuses an answer that is not a usable SDP answer with EARSHOT_WHIP_ANSWER_INVALID, sending nothing', async () => {
    // werift took these and reported "connected" with no transport: 50 packets "sent" into nothing.
    for (const answer of ['x', 'v=0\r\n', 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\n']) {
      await expect(sendAudio({ signaling: async () => answer, hostAddresses: ['127.0.0.1'], source, seconds: 1 }), JSON.stringify(answer)).rejects.toMatchObject({
        code: 'EARSHOT_WHIP_ANSWER_INVALID',
        message: expect.stringMatching(/^The answer from your signaling is not a usable SDP answer: .*Nothing was sent\.$/),
      });
    }
  });

  /** A real werift answer to the offer, from a peer closed at once (it never connects), edited by `edit`. */
  const gone = (edit: (sdp: string) => string = (sdp) => sdp) => async (offer: string) => {
    const pc = new RTCPeerConnection(iceConfig({ hostAddresses: ['127.0.0.1'] }));
    await pc.setRemoteDescription({ type: 'offer', sdp: offer });
    await pc.setLocalDescription(await pc.createAnswer());
    disableImplicitStun(pc, []);
    await iceGatheringComplete(pc);
    const answer = pc.localDescription!.sdp;
    await pc.close();
    return edit(answer);
  };

  it('says EARSHOT_WEBRTC_CONNECT_FAILED when a real answer never connects (its peer is gone)', async () => {
    await expect(sendAudio({ signaling: gone(), hostAddresses: ['127.0.0.1'], source, seconds: 1, connectTimeoutMs: 1500 })).rejects.toMatchObject({ code: 'EARSHOT_WEBRTC_CONNECT_FAILED', statusCode: 504 });
  });

  it('refuses an answer that takes no Opus or will not receive (a=inactive, a=sendonly), sending nothing', async () => {
    // werift threw a bare InvalidAccessError (code 15) for the first, and sent into the other two.
    const cases: Array<[(sdp: string) => string, RegExp]> = [
      [(sdp) => sdp.replace(/opus\/48000\/2/g, 'PCMU/8000'), /its audio section accepts no Opus \(a=rtpmap:… opus\/48000\/2\), the only codec offered/],
      [(sdp) => sdp.replace(/^a=recvonly/m, 'a=inactive'), /its audio section is a=inactive: the server would receive nothing/],
      [(sdp) => sdp.replace(/^a=recvonly/m, 'a=sendonly'), /its audio section is a=sendonly: the server would receive nothing/],
    ];
    for (const [edit, message] of cases) {
      await expect(sendAudio({ signaling: gone(edit), hostAddresses: ['127.0.0.1'], source, seconds: 1 })).rejects.toMatchObject({ code: 'EARSHOT_WHIP_ANSWER_INVALID', message });
    }
  });

  it('stops with EARSHOT_SEND_ABORTED at once when its signal aborts while connecting, and ends the session it made', async () => {
    const t = await startServer({ threads: 1, pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
    try {
      const controller = new AbortController();
      // The answer is real, but its ICE candidates are dropped: it never connects, so the abort comes while connecting.
      const fetchDroppingCandidates: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method !== 'POST' || res.status !== 201) return res;
        setTimeout(() => controller.abort(), 100);
        const sdp = (await res.text()).replace(/^a=candidate:.*\r\n/gm, '');
        return new Response(sdp, { status: 201, headers: res.headers });
      };
      const outcome = await sendAudio({ url: `${t.url}/whip/aborted/p1`, fetch: fetchDroppingCandidates, source, seconds: 1, connectTimeoutMs: 60_000, signal: controller.signal }).catch((e: unknown) => e);
      expect(outcome).toMatchObject({ code: 'EARSHOT_SEND_ABORTED', message: 'Stopped while connecting, before any audio was sent; the session the server had created was ended (DELETE).' });
      const stats = (await (await fetch(`${t.url}/stats/p1`)).json()) as { state: string; endReason: string };
      expect(stats).toMatchObject({ state: 'ended', endReason: 'deleted' });
      // Aborted before anything: nothing is posted.
      await expect(sendAudio({ url: `${t.url}/whip/aborted/p2`, source, seconds: 1, signal: AbortSignal.abort() })).rejects.toMatchObject({
        code: 'EARSHOT_SEND_ABORTED',
        message: 'Stopped while gathering ICE candidates, before any audio was sent; no session had been created.',
      });
      expect((await fetch(`${t.url}/stats/p2`)).status).toBe(404);
    } finally {
      await t.close();
    }
  });
});

describe('earshot send flags', () => {
  const send = (...args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [EARSHOT_BIN, 'send', fixturePath('tone-1k-48k.wav'), '--url', url, ...args], { cwd: ROOT, timeout: 60_000 }, (error, _stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stderr }),
      );
    });

  it('refuses values outside the ranges the help gives, before connecting', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--bitrate', '600'], /--bitrate must be an integer from 6000 to 510000 bit\/s\./],
      [['--simulate-loss', '0.6'], /--simulate-loss must be a number from 0 to 0\.5\./],
      [['--count', '1001'], /--count must be an integer from 1 to 1000\./],
      // Both were "EARSHOT_WHIP_UNREACHABLE … did not answer", though no request was sent.
      [['--url', 'ftp://127.0.0.1/whip/room/peer'], /--url must be an http:\/\/ or https:\/\/ URL \(WHIP runs over HTTP\), got "ftp:\/\/127\.0\.0\.1\/whip\/room\/peer"/],
      [['--token', 'secret\n'], /--token \(or EARSHOT_TOKEN\) must be visible ASCII characters, but character 7 of 7 is "\\n"/],
      // A password in the URL was printed, in a "did not answer" about a server never asked.
      [['--url', 'http://user:s3cr3t@127.0.0.1:9/whip/room/peer'], /--url must not carry a user name or password \("http:\/\/\*\*\*@127\.0\.0\.1:9\/whip\/room\/peer"\): earshot authenticates with a bearer token \(--token or EARSHOT_TOKEN\)/],
      // 0.005 passed and then failed without a code; Infinity and 1e400 sent forever.
      [['--seconds', '0.005'], /--seconds must be a number of at least 0\.02 \(one 20 ms packet\)\./],
      [['--seconds', 'Infinity'], /--seconds must be a number of at least 0\.02/],
      [['--seconds', '1e400'], /--seconds must be a number of at least 0\.02/],
      // Read by Number() once: hex and exponents were taken as speeds.
      [['--speed', '0x10'], /--speed must be a number from 1 to 50 \(1: real time\)\./],
      [['--speed', '1e1'], /--speed must be a number from 1 to 50 \(1: real time\)\./],
    ];
    // Each its own process, all at once: one after the other they took 23 s of the suite.
    const [zero, ...runs] = await Promise.all([
      // 0 is in the help's range: it is taken (and the send then fails to connect to the closed port, not on the flag).
      send('--simulate-loss', '0', '--seconds', '0.1'),
      ...cases.map(([args]) => send(...args)),
    ]);
    cases.forEach(([args, message], i) => {
      expect(runs[i].code, args.join(' ')).toBe(1);
      expect(runs[i].stderr).toMatch(message);
      expect(runs[i].stderr).not.toContain('s3cr3t');
    });
    expect(zero.stderr).not.toMatch(/--simulate-loss/);
    expect(zero.stderr).toMatch(/earshot send: /);
  }, 120_000);
});

describe('a session that ends on the server while sending', () => {
  /** Sends the tone for up to 50 s; what it ends with (an error, or 'finished'), and when. */
  function sendLong(url: string) {
    const started = performance.now();
    const outcome = sendAudio({ url, source: fixturePath('tone-1k-48k.wav'), loop: true, seconds: 50, rtcpTimeoutMs: 10_000 }).then(
      () => 'finished' as const,
      (e: unknown) => e as { code?: string; message: string },
    );
    return { outcome, seconds: () => (performance.now() - started) / 1000 };
  }

  it('stops the sender at once with EARSHOT_WHIP_SESSION_LOST when the server ends the session (it closes DTLS)', { timeout: 60_000 }, async () => {
    const t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
    try {
      const sending = sendLong(`${t.url}/whip/lost/p1`);
      // Someone else ends the session after 3 s (an admin, a drain).
      await new Promise((r) => setTimeout(r, 3000));
      const stats = (await (await fetch(`${t.url}/stats/p1`)).json()) as { session: string };
      expect((await fetch(`${t.url}/whip/sessions/${stats.session}`, { method: 'DELETE' })).status).toBe(200);
      expect(await sending.outcome).toMatchObject({ code: 'EARSHOT_WHIP_SESSION_LOST', message: expect.stringMatching(/^The server closed the connection \(DTLS close_notify\): /) });
      // Within a packet or two of the DELETE, not the RTCP timeout.
      expect(sending.seconds()).toBeLessThan(3 + 2);
    } finally {
      await t.close();
    }
  });

  it('fails with EARSHOT_WHIP_SESSION_LOST, not a network failure, when its session is replaced before it connects', { timeout: 60_000 }, async () => {
    const t = await startServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
    try {
      const url = `${t.url}/whip/lost/twice`;
      // The second publisher of the peer posts as soon as the first has its answer, before the first connects.
      const fetchThenReplace: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method === 'POST' && res.status === 201) {
          const replacing = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: chromeLikeOffer() });
          expect(replacing.status).toBe(201);
        }
        return res;
      };
      const outcome = await sendAudio({ url, source: fixturePath('tone-1k-48k.wav'), seconds: 1, connectTimeoutMs: 2000, fetch: fetchThenReplace }).catch((e: unknown) => e);
      expect(outcome).toMatchObject({ code: 'EARSHOT_WHIP_SESSION_LOST', message: expect.stringMatching(/^The server ended the session before WebRTC connected \(its DELETE answered 404\): another publisher of the peer replaced it, /) });
    } finally {
      await t.close();
    }
  });

  it('fails with EARSHOT_WHIP_SESSION_LOST, not a finished send, when the server was restarted while it sent (the DELETE finds no session)', { timeout: 90_000 }, async () => {
    // Killed without a word and started again on its port while the send goes on (within the RTCP timeout);
    // the send is ended once the new server listens, so that its DELETE reaches it. (A send of a fixed 10 s
    // ended before a loaded CI machine had the new server up, and its DELETE found the port closed.)
    const first = await spawnServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
    let second: TestServer | undefined;
    const stop = new AbortController();
    try {
      const url = `${first.url}/whip/lost/p3`;
      let settled = false;
      const outcome = sendAudio({ url, source: fixturePath('tone-1k-48k.wav'), loop: true, seconds: 60, rtcpTimeoutMs: 25_000, signal: stop.signal })
        .then(
          () => 'finished' as const,
          (e: unknown) => e as { code?: string; message: string },
        )
        .finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 1500));
      await first.stop('SIGKILL');
      second = await startServer({ port: Number(new URL(first.url).port), pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
      // The sender did not stop for the restart by itself.
      expect(settled).toBe(false);
      stop.abort();
      expect(await outcome).toMatchObject({
        code: 'EARSHOT_WHIP_SESSION_LOST',
        message: expect.stringMatching(/^The server no longer had the session when sending ended \(its DELETE answered 404\): .* What was sent after it ended was not received\.$/),
      });
    } finally {
      stop.abort();
      await first.stop('SIGKILL');
      await second?.close();
    }
  });

  it('stops the sender with EARSHOT_WHIP_SESSION_LOST once a server that vanished has sent no RTCP report for rtcpTimeoutMs', { timeout: 90_000 }, async () => {
    // A server killed without a word: no close_notify, its reports just stop.
    const server = await spawnServer({ pipeline: { name: 'raw', stages: [], sinks: [{ type: 'stats' }] } });
    try {
      // 10 s: above the longest gap between two of the server's reports (6.2 s, RFC 3550 §6.3.1).
      const sending = sendLong(`${server.url}/whip/lost/p2`);
      await new Promise((r) => setTimeout(r, 3000));
      await server.stop('SIGKILL');
      expect(await sending.outcome).toMatchObject({ code: 'EARSHOT_WHIP_SESSION_LOST', message: expect.stringMatching(/no RTCP report for 10 s/) });
      // Well before the 50 s it was asked to send: at most the timeout after the last report.
      expect(sending.seconds()).toBeLessThan(3 + 10 + 6.2 + 2);
    } finally {
      await server.stop('SIGKILL');
    }
  });
});

