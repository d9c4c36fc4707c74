/**
 * `earshot send <file>`: publish a WAV file over WHIP in real time (or faster, with --speed),
 * streamed from disk as it is sent.
 */
import { stat } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { BITRATE_RANGE, MIN_SECONDS, peerUrl, sendAudio, sendMany, type SendProgress, type SendResult } from '../client/audio-sender.js';
import { openWav } from '../client/wav-source.js';
import type { RTCIceServer } from 'werift';
import { badTokenCharacter, credentialsProblem, withoutCredentials } from '../client/whip-client.js';
import { hasTurnServer } from '../rtc/ice-servers.js';
import { iceServers } from './ice-server-option.js';

/** Most sessions one `send` runs: each is a WebRTC connection of this process. */
const MAX_COUNT = 1000;

/** At least one 20 ms packet, decimal: "Infinity" and "1e400" sent forever, 0.005 nothing. */
function seconds(v: string): number {
  const n = /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  if (!(Number.isFinite(n) && n >= MIN_SECONDS)) throw new InvalidArgumentError(`--seconds must be a number of at least ${MIN_SECONDS} (one 20 ms packet).`);
  return n;
}

/** A number from `min` to `max`, decimal. */
function between(name: string, min: number, max: number, integer: boolean, unit = '') {
  return (v: string) => {
    const n = /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
    if (!(n >= min && n <= max) || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(`${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}${unit}.`);
    return n;
  };
}

export function registerSendCommand(program: Command): void {
  program
    .command('send')
    .description('stream a WAV file to a WHIP endpoint in real time (Opus over WebRTC)')
    .addHelpText(
      'after',
      '\nExit status: 0 when every session was sent and ended, also when Ctrl-C or\nSIGTERM stopped it while sending; 1 on an error; 130 (Ctrl-C) or 143 (SIGTERM)\nwhen stopped before media flowed. Either way a session the server made is\nended (DELETE).',
    )
    .argument('<file>', 'WAV file: PCM, float, A-law, µ-law or mono IMA ADPCM, any rate and channel count')
    .option('--url <url>', 'WHIP endpoint (required), e.g. http://127.0.0.1:8080/whip/demo/alice')
    .addOption(new Option('--seconds <n>', `send n seconds of media, at least ${MIN_SECONDS} (past the file's end: silence, unless --loop repeats the file)`).argParser(seconds))
    .option('--loop', 'repeat the file seamlessly (until --seconds, Ctrl-C or SIGTERM)')
    .addOption(new Option('--count <k>', `K concurrent sessions, 1–${MAX_COUNT} (peers get -1 … -K), the file read and encoded once for all`).default(1).argParser(between('--count', 1, MAX_COUNT, true)))
    .addOption(new Option('--token <token>', 'bearer token').env('EARSHOT_TOKEN'))
    .addOption(new Option('--channels <n>', 'channels to send (default: 1 for a mono file, 2 otherwise; more than two are mixed down to stereo)').choices(['1', '2']))
    .addOption(new Option('--bitrate <bps>', `Opus bitrate in bit/s, ${BITRATE_RANGE.min}–${BITRATE_RANGE.max} (default: 32000 mono, 64000 stereo)`).argParser(between('--bitrate', BITRATE_RANGE.min, BITRATE_RANGE.max, true, ' bit/s')))
    .option('--dtx', 'discontinuous transmission as browsers send it: silence is not sent (Opus DTX), when the answer asks for it (usedtx=1)')
    .addOption(new Option('--simulate-loss <fraction>', 'withhold this share of packets (0–0.5) to test loss handling').argParser(between('--simulate-loss', 0, 0.5, false)))
    .addOption(
      new Option('--speed <factor>', 'send this many times faster than real time (1–50) when only the result matters, e.g. uploading a file; the server then measures jitter, bitrate and latency of a burst')
        .default(1)
        .argParser(between('--speed', 1, 50, false, ' (1: real time)')),
    )
    .addOption(new Option('--ice-server <url[,username,credential]>', 'STUN/TURN server to connect through, e.g. a TURN server where the network blocks UDP to the server; repeatable (default: none, nothing but the WHIP exchange and the media leaves the machine)').argParser(iceServers))
    .option('--ice-servers-from-server', 'ask the endpoint for its STUN/TURN servers first (its Link rel="ice-server" fields, RFC 9725 §4.6) and connect through them; ignored with --ice-server')
    .option('--relay-only', 'connect only through a TURN server (--ice-server, or one the endpoint advertises with --ice-servers-from-server), e.g. to check that it works')
    .action(async (file: string, opts: { url?: string; seconds?: number; loop?: boolean; count: number; token?: string; channels?: '1' | '2'; bitrate?: number; dtx?: boolean; simulateLoss?: number; speed: number; iceServer?: RTCIceServer[]; iceServersFromServer?: boolean; relayOnly?: boolean }) => {
      // Checked here rather than as a required option: commander checks those before the arguments, so
      // `earshot send` with nothing asked for --url, not for the file.
      if (opts.url === undefined) fail('--url is required: the WHIP endpoint to publish to, e.g. --url http://127.0.0.1:8080/whip/demo/alice');
      const url = opts.url;
      let protocol = '';
      try {
        protocol = new URL(url).protocol;
      } catch {
        fail(`--url "${withoutCredentials(url)}" is not a URL`);
      }
      // Checked here, not by fetch: an ftp: URL or a token with a newline failed as a server that did not answer.
      if (protocol !== 'http:' && protocol !== 'https:') fail(`--url must be an http:// or https:// URL (WHIP runs over HTTP), got "${withoutCredentials(url)}"`);
      const credentials = credentialsProblem(url, '--token or EARSHOT_TOKEN');
      if (credentials) fail(`--url ${credentials}`);
      const bad = opts.token === undefined ? -1 : badTokenCharacter(opts.token);
      if (bad >= 0) fail(`--token (or EARSHOT_TOKEN) must be visible ASCII characters, but character ${bad + 1} of ${opts.token!.length} is ${JSON.stringify(opts.token![bad])}`);
      if (opts.relayOnly && !hasTurnServer(opts.iceServer) && !(opts.iceServersFromServer && opts.iceServer === undefined)) {
        fail('--relay-only needs a turn: or turns: --ice-server to relay through, or --ice-servers-from-server for one the endpoint advertises');
      }
      const controller = new AbortController();
      // Ctrl-C, and `kill` / `docker stop` / a process manager: stop sending and end the session (DELETE),
      // or the server holds it until its media timeout. A second signal ends the process at once.
      let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined;
      const stop = (signal: 'SIGINT' | 'SIGTERM') => {
        stoppedBy = signal;
        controller.abort();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      // Stopped before media flowed: a session the server had made was ended; exit as a shell reports the signal (128 + its number).
      const aborted = (e: unknown) => stoppedBy !== undefined && (e as { code?: unknown })?.code === 'EARSHOT_SEND_ABORTED';
      const signalExit = (): never => process.exit(stoppedBy === 'SIGTERM' ? 143 : 130);
      const tty = process.stdout.isTTY;
      const progress = new Map<number, SendProgress>();
      let lastPrint = 0;
      let firstReport: number | undefined;
      const print = () => {
        const all = [...progress.values()];
        if (all.length === 0) return;
        // The first line once every session has reported (each does a second after it connects), or 5 s
        // after the first did: at the first report, a line read "1/2 sessions" while both were sending.
        firstReport ??= Date.now();
        if (all.length < opts.count && Date.now() - firstReport < 5000) return;
        const media = Math.min(...all.map((p) => p.mediaSeconds));
        const total = all[0].totalSeconds;
        const packets = all.reduce((n, p) => n + p.packetsSent, 0);
        // Each session's own rate, averaged: all the bytes over the slowest session's time counted the ones ahead too fast.
        const kbps = all.reduce((n, p) => n + (p.bytesSent * 8) / 1000 / Math.max(p.mediaSeconds, 0.001), 0) / all.length;
        const line = `sent ${media.toFixed(1)}${total ? `/${total.toFixed(1)}` : ''} s · ${packets} packets · ${kbps.toFixed(1)} kb/s per session · ${all.length}/${opts.count} sessions`;
        if (tty) process.stdout.write(`\r${line}   `);
        else if (Date.now() - lastPrint >= 5000) {
          lastPrint = Date.now();
          process.stdout.write(`${line}\n`);
        }
      };
      const base = {
        source: file,
        seconds: opts.seconds,
        loop: opts.loop,
        token: opts.token,
        channels: opts.channels ? (Number(opts.channels) as 1 | 2) : undefined,
        bitrate: opts.bitrate,
        dtx: opts.dtx,
        simulateLoss: opts.simulateLoss,
        speed: opts.speed,
        iceServers: opts.iceServer,
        iceServersFromServer: opts.iceServersFromServer,
        iceTransportPolicy: opts.relayOnly ? ('relay' as const) : undefined,
        signal: controller.signal,
      };
      try {
        await warnIfCutShort(file);
        const results =
          opts.count === 1
            ? [await sendAudio({ ...base, url, onProgress: (p) => (progress.set(0, p), print()) })]
            : await sendMany(opts.count, { ...base, url, onProgress: (p) => (progress.set(p.session ?? 0, p), print()) });
        if (tty) process.stdout.write('\n');
        const ok = results.filter((r): r is SendResult => !('error' in r));
        for (const r of results) if ('error' in r) process.stderr.write(`earshot send: ${r.url}: ${describe(r.error)}\n`);
        // A send that a signal cut short says so: its figures are not the whole file's.
        const ending = stoppedBy === undefined ? 'done' : `stopped by ${stoppedBy === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'}`;
        for (const [i, r] of results.entries()) {
          if ('error' in r) continue;
          const dtx = r.dtxFrames > 0 ? ` (${r.dtxFrames} silent frames not sent: DTX)` : '';
          const held = r.packetsDropped > 0 ? ` (${r.packetsDropped} more withheld: --simulate-loss)` : '';
          const peer = opts.count > 1 ? ` ${peerUrl(url, i + 1)}` : '';
          process.stdout.write(`${ending}${peer}: ${r.mediaSeconds.toFixed(2)} s, ${r.packetsSent} packets${held}${dtx}, ${r.bytesSent} bytes, session ${r.sessionUrl} (ended)\n`);
        }
        if (ok.length < results.length) {
          if (results.every((r) => !('error' in r) || aborted(r.error))) signalExit();
          process.exit(1);
        }
      } catch (e) {
        if (tty) process.stdout.write('\n');
        if (aborted(e)) {
          process.stderr.write(`earshot send: ${describe(e as Error)}\n`);
          signalExit();
        }
        fail(describe(e as Error));
      }
    });
}

/**
 * A file cut short (a copy or download that stopped) sends what it holds, which
 * without a word looks like a complete send of a shorter file.
 */
async function warnIfCutShort(file: string): Promise<void> {
  // A regular file only: a pipe (`/dev/stdin`) read here would be read up before it is sent. A file that
  // cannot be opened is left to the send, which says why.
  if (!(await stat(file).catch(() => undefined))?.isFile()) return;
  const wav = await openWav(file);
  try {
    if (wav.missingSeconds < 0.02) return;
    const holds = wav.frames / wav.fmt.sampleRate;
    process.stderr.write(
      `earshot send: warning: ${file} is cut short: its header declares ${(holds + wav.missingSeconds).toFixed(2)} s of audio, the file holds ${holds.toFixed(2)} s; sending what it holds\n`,
    );
  } finally {
    await wav.close();
  }
}

/** The message, and the error's code where it is one of earshot's (a DOMException's number or a system code would mean nothing here). */
function describe(e: Error & { code?: unknown }): string {
  return `${e.message}${typeof e.code === 'string' && e.code.startsWith('EARSHOT_') ? ` [${e.code}]` : ''}`;
}

function fail(message: string): never {
  process.stderr.write(`earshot send: ${message}\n`);
  process.exit(1);
}
