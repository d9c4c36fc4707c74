/**
 * `sendAudio`: publish PCM (or a WAV file) to a WHIP endpoint as Opus over
 * WebRTC, paced in real time (or faster, with `speed`). This is the core of
 * `earshot send` and what the integration tests and the capacity benchmark use
 * as a client.
 */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtcpRrPacket, RtcpSrPacket, type RTCDataChannel, type RTCIceServer, type RTCRtpTransceiver } from 'werift';
import { errors, isEarshotError } from '../errors.js';
import { checkBoolean, checkFunction, checkMilliseconds, checkNumber, checkOptionNames, checkStringArray, describeValue, failOption } from '../option-checks.js';
import { OpusEncoder } from '../../wasm/opus.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete, isLoopbackHost, strengthenIceCredentials } from '../rtc/ice-config.js';
import { checkIceServers, hasTurnServer } from '../rtc/ice-servers.js';
import { reportAtRfcInterval } from '../rtc/sender-reports.js';
import { sendRtpPayload } from '../rtc/werift-rtp-send.js';
import { sayGoodbye } from '../rtc/werift-goodbye.js';
import { checkChannels, type PcmSource } from './wav-source.js';
import { openWavStream } from './wav-stream.js';
import { checkToken, checkWhipUrl, WhipClient } from './whip-client.js';

/** Audio already encoded as 20 ms Opus packets (load tests encode once, send many times). */
export interface EncodedSource {
  opus: Uint8Array[];
  channels: 1 | 2;
  /**
   * The packets were encoded with Opus DTX: a packet of at most 2 bytes is a
   * DTX frame, and the sender sends such packets as a browser does (see
   * {@link SendOptions.dtx}).
   */
  dtx?: boolean;
}

export interface SendOptions {
  /** WHIP endpoint, e.g. `http://127.0.0.1:8080/whip/demo/alice`. Required unless `signaling` is given, which replaces it. */
  url?: string;
  /**
   * Your own signaling instead of WHIP: given the complete offer (all
   * candidates), resolve to the answer. No DELETE is sent at the end: the
   * peer connection is closed with a DTLS close_notify, as a browser's is,
   * which ends the session at once on earshot.
   */
  signaling?: (offerSdp: string) => Promise<string>;
  /**
   * A WAV file path (any rate/channels; converted to 48 kHz), decoded 48 kHz PCM, or Opus packets.
   * A file is read from disk as it is sent, a second or so ahead, so a file of hours takes no more
   * memory than one of seconds (a pipe or device, which cannot be read so, is read whole first).
   */
  source: string | PcmSource | EncodedSource;
  /**
   * Stop after this many seconds of media, at least 0.02 (one packet); default: the whole source, or
   * forever with `loop`. Longer than the source (without `loop`), the rest is sent as silence.
   */
  seconds?: number;
  /**
   * Repeat the source until `seconds` or `signal` ends it. A file or PCM repeats seamlessly, in
   * every session of `sendMany` too: the sample after its last is its first. Opus packets
   * ({@link EncodedSource}) repeat packet by packet, with the gap and click their edges have.
   */
  loop?: boolean;
  /** 1 or 2 channels to encode (a file of more is mixed down to stereo). Default: 1 for mono sources, 2 otherwise. */
  channels?: 1 | 2;
  /**
   * Opus bitrate in bit/s, 6000–510000 (Opus's range; below ~2000 libopus
   * codes nothing but silence). Default 32000 mono, 64000 stereo (what
   * browsers use).
   */
  bitrate?: number;
  /**
   * Discontinuous transmission, as a browser sends when the answer carries
   * `usedtx=1` (RFC 7587): the encoder's DTX is on, and during silence only
   * the first DTX frame of a run is sent, plus the encoder's own periodic
   * updates; the RTP timestamp keeps advancing, sequence numbers do not, and
   * the first packet after a gap carries the marker bit. A silent stretch then
   * costs the network and the server next to nothing. An answer without
   * `usedtx=1` gets every frame, as a browser sends it then. For an
   * {@link EncodedSource} its own `dtx` decides. Default false.
   */
  dtx?: boolean;
  /** Bearer token for the WHIP endpoint. */
  token?: string;
  /**
   * The `fetch` for the WHIP requests. Default: the global one (system CAs,
   * plus `NODE_EXTRA_CA_CERTS`); pass your own to trust a self-signed server
   * or use a proxy.
   */
  fetch?: typeof globalThis.fetch;
  /**
   * Aborts sending; the session is then ended (DELETE) unless `skipDelete`.
   * Once media flows, `sendAudio` then resolves with what was sent; before
   * (while gathering, publishing or connecting) it rejects with
   * `EARSHOT_SEND_ABORTED` at once.
   */
  signal?: AbortSignal;
  /** Called about every second with progress. */
  onProgress?(progress: SendProgress): void;
  /** ICE host addresses. Default: 127.0.0.1 for a loopback URL, otherwise all interfaces (never STUN). */
  hostAddresses?: string[];
  /**
   * STUN/TURN servers to gather candidates with (W3C `RTCIceServer`s: `urls`,
   * and `username` + `credential` for TURN), e.g. a TURN server where the
   * network blocks UDP to the WHIP server. Checked up front
   * (`EARSHOT_ICE_SERVER_INVALID`). Default none: no request leaves the
   * machine but the WHIP exchange and the media. werift, the WebRTC stack,
   * uses the first STUN and the first TURN URL given (TURN over UDP, TCP or
   * TLS: `turns:`).
   */
  iceServers?: RTCIceServer[];
  /**
   * Ask the WHIP endpoint for its STUN/TURN servers before the offer, and gather candidates with
   * them: the `Link: <…>; rel="ice-server"` fields it answers an OPTIONS request with (RFC 9725
   * §4.6; `earshot serve --ice-server` advertises them, and TURN credentials only to a client with
   * the publish token). For a network that blocks UDP to the server when the server's operator
   * runs a TURN server. Ignored when `iceServers` is given: yours win, as the RFC allows. Not with
   * `signaling`. Default false: nothing leaves the machine but the WHIP exchange and the media.
   */
  iceServersFromServer?: boolean;
  /** `'relay'`: connect through the TURN server only (its relayed candidates), as a browser's `iceTransportPolicy`. Default `'all'`. */
  iceTransportPolicy?: 'all' | 'relay';
  /** Leave the session without DELETE and without closing DTLS at the end (simulates a client that vanishes). Default false. */
  skipDelete?: boolean;
  /** Wait for ICE/DTLS to connect at most this long. Default 10000 ms. */
  connectTimeoutMs?: number;
  /**
   * Give up, with `EARSHOT_WHIP_SESSION_LOST`, when the server has sent no
   * RTCP report for this long: a server that stopped or crashed, or one that
   * ended the session without closing DTLS, tells a sender nothing else.
   * (A server that closes DTLS when it ends a session, as earshot does —
   * deleted by someone else, replaced, drained — stops the sender at once,
   * with the same error.) RFC 3550 §6.3.5 times a participant out after five
   * report intervals: 25 s at the 5 s minimum (the default), timed from the
   * connection. Every WebRTC endpoint sends RTCP receiver reports (RFC 8834
   * §4.1); for a `signaling` peer that does not, 0 turns this off.
   */
  rtcpTimeoutMs?: number;
  /**
   * Simulate network loss: this share of packets (0–0.5) is not sent, though
   * their sequence numbers are used, as if the network dropped them. Drops are
   * spread evenly (every 1/loss-th packet), never the first or last. Default 0.
   */
  simulateLoss?: number;
  /**
   * Media seconds sent per second of wall-clock time, 1–50. Default 1: real
   * time, as a microphone sends. Above 1 the same packets leave sooner, for
   * jobs that only need the audio on the server (tests, uploading a file). The
   * RTP timestamps still advance 20 ms per packet, so the server's media
   * positions, recordings and loss/DTX accounting are those of a real-time
   * send; what it measures against arrival time (jitter, bitrate, latency) is
   * then that of a burst, not of a live stream.
   *
   * The bound: the server queues up to 2 s of a stream's frames for its worker
   * (`maxQueuedFrames`), i.e. 2/`speed` s of wall-clock time, so a worker that
   * pauses longer than that drops the oldest frames. At 50 that is 40 ms, about
   * one GC pause or a worker's start-up; 5–10 keeps ample margin.
   */
  speed?: number;
  /**
   * Opens a data channel in the offer (label `earshot`) and hands it to this
   * callback as soon as it is created; it opens once the connection is up
   * (`channel.stateChanged`). The server sends the stream's events on it as
   * JSON (speaking, levels, recording state, processors' messages) and
   * delivers what you `send()` to `events$` and processors; see
   * docs/data-channel.md. It closes when sending ends.
   */
  dataChannel?: (channel: RTCDataChannel) => void;
  /**
   * Called with each RTCP receiver report the server sends about this stream
   * (RFC 3550 §6.4.2; earshot sends one every 2–6 s, RFC 3550 §6.2): what it
   * has received, lost and its interarrival jitter estimate, as the server
   * sees them.
   */
  onReceiverReport?: (report: ReceiverReport) => void;
}

/** One report block of an RTCP receiver report about the sent stream (RFC 3550 §6.4.1). */
export interface ReceiverReport {
  /** Share of packets lost since the previous report, 0–1 (the field's 8-bit fixed point ÷ 256). */
  fractionLost: number;
  /** Packets lost since the stream began (expected − received; duplicates can make it negative). */
  packetsLost: number;
  /** Extended highest sequence number received: 16-bit cycles count above the sequence number. */
  highestSequence: number;
  /** Interarrival jitter, in RTP timestamp units (1/48000 s for Opus). */
  jitter: number;
}

export interface SendProgress {
  /** With `sendMany`: which session, 1 … count. */
  session?: number;
  mediaSeconds: number;
  totalSeconds: number | undefined;
  packetsSent: number;
  bytesSent: number;
}

export interface SendResult {
  /** The WHIP session's URL (the answer's `Location`); `''` when `signaling` did the exchange: there is no WHIP session. */
  sessionUrl: string;
  packetsSent: number;
  /** Packets withheld by `simulateLoss`. */
  packetsDropped: number;
  /** 20 ms frames not sent because they were DTX silence (`dtx`). */
  dtxFrames: number;
  /** Opus payload bytes sent. */
  bytesSent: number;
  mediaSeconds: number;
  wallSeconds: number;
  ssrc: number;
}

const FRAME = 960; // 20 ms at 48 kHz
/** A 20 ms Opus packet (CELT, fullband) that decodes to silence. */
const SILENT_FRAME = new Uint8Array([0xf8, 0xff, 0xfe]);
/** In DTX, libopus sends a comfort-noise update every 400 ms (20 frames) of silence. */
const DTX_UPDATE_FRAMES = 20;

/** The least `seconds` to send: one 20 ms packet. */
export const MIN_SECONDS = 0.02;

/** Every option of `sendAudio`, for the check of the names given (a new option must be added here: the type says so). */
const SEND_OPTIONS: Record<keyof SendOptions, true> = {
  url: true, signaling: true, source: true, seconds: true, loop: true, channels: true, bitrate: true, dtx: true, token: true,
  fetch: true, signal: true, onProgress: true, hostAddresses: true, iceServers: true, iceServersFromServer: true, iceTransportPolicy: true, skipDelete: true, connectTimeoutMs: true, rtcpTimeoutMs: true,
  simulateLoss: true, speed: true, dataChannel: true, onReceiverReport: true,
};

/**
 * Refuses options that cannot be sent, before a file is read or anything
 * connects: `EARSHOT_OPTION_INVALID` naming the option (`options.speed must
 * be a number from 1 to 50, got 60`), and a name that is not an option (a
 * misspelt one would silently do nothing) with the nearest known one.
 */
function checkOptions(options: SendOptions, what: 'sendAudio' | 'sendMany'): void {
  // Required (a source, and a url or signaling): none at all is refused as a wrong value, as null is.
  if (options === undefined) throw errors.OPTION_INVALID('', `must be an object (the options of ${what}), got undefined`);
  checkOptionNames(what, options, SEND_OPTIONS);
  const { seconds, source } = options;
  checkFunction('signaling', options.signaling);
  if (!options.signaling) checkWhipUrl(options.url);
  checkToken(options.token);
  const inMemory = typeof source === 'object' && source !== null && (Array.isArray((source as EncodedSource).opus) || Array.isArray((source as PcmSource).channels));
  if (typeof source !== 'string' && !inMemory) {
    failOption('source', 'a WAV file path, decoded PCM { sampleRate: 48000, channels: Float32Array[] } or Opus packets { opus: Uint8Array[], channels }', source);
  }
  // Below one packet nothing was sent, and an infinite duration sent forever.
  if (seconds !== undefined && !(typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= MIN_SECONDS)) failOption('seconds', `a finite number of at least ${MIN_SECONDS} (one 20 ms packet)`, seconds);
  checkBoolean('loop', options.loop);
  checkChannels(options.channels);
  checkBitrate(options.bitrate);
  checkBoolean('dtx', options.dtx);
  checkFunction('fetch', options.fetch);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) failOption('signal', 'an AbortSignal', options.signal);
  checkFunction('onProgress', options.onProgress);
  checkStringArray('hostAddresses', options.hostAddresses);
  if (options.iceServers !== undefined) checkIceServers(options.iceServers);
  if (options.iceTransportPolicy !== undefined && options.iceTransportPolicy !== 'all' && options.iceTransportPolicy !== 'relay') failOption('iceTransportPolicy', '"all" or "relay"', options.iceTransportPolicy);
  checkBoolean('iceServersFromServer', options.iceServersFromServer);
  if (options.iceServersFromServer && options.signaling) throw errors.OPTION_INVALID('iceServersFromServer', 'asks a WHIP endpoint for its ICE servers; with signaling there is none to ask: give iceServers');
  // With the endpoint's servers, whether one is TURN is known once it has answered (publish checks it then).
  const fromServer = options.iceServersFromServer === true && options.iceServers === undefined;
  if (options.iceTransportPolicy === 'relay' && !fromServer && !hasTurnServer(options.iceServers)) {
    throw errors.OPTION_INVALID('iceTransportPolicy', 'is "relay", which needs a turn: server in iceServers: there is nothing to relay through');
  }
  checkBoolean('skipDelete', options.skipDelete);
  checkMilliseconds('connectTimeoutMs', options.connectTimeoutMs);
  checkNumber('rtcpTimeoutMs', options.rtcpTimeoutMs, 0, 2 ** 31 - 1, ' (ms; 0 turns it off)');
  checkNumber('simulateLoss', options.simulateLoss, 0, 0.5);
  checkNumber('speed', options.speed, 1, 50);
  checkFunction('dataChannel', options.dataChannel);
  checkFunction('onReceiverReport', options.onReceiverReport);
}

/** Opus's bitrates, or `EARSHOT_OPTION_INVALID`. */
function checkBitrate(bitrate: unknown): void {
  if (bitrate !== undefined && !(typeof bitrate === 'number' && Number.isInteger(bitrate) && bitrate >= BITRATE_RANGE.min && bitrate <= BITRATE_RANGE.max)) {
    failOption('bitrate', `an integer from ${BITRATE_RANGE.min} to ${BITRATE_RANGE.max} bit/s (Opus)`, bitrate);
  }
}

/**
 * Publishes `options.source` to a WHIP endpoint (or over your `signaling`)
 * and resolves when it has been sent and the session ended. Every option is
 * checked first, before a file is read or anything connects: an unusable
 * value or a name that is not an option rejects with `EARSHOT_OPTION_INVALID`
 * naming it (`options.speeed is not an option of sendAudio (did you mean
 * speed?)`). A file's header is read next, before anything connects
 * (`EARSHOT_WAV_UNREADABLE`); its audio is read as it is sent, and if that
 * fails (`EARSHOT_WAV_READ_FAILED`: the file was truncated meanwhile, a read
 * error) sending stops and the session is ended.
 */
export async function sendAudio(options: SendOptions): Promise<SendResult> {
  checkOptions(options, 'sendAudio');
  return publish(options, await prepare(options));
}

/** What a session sends: its packets, their channels, and how many packets one pass of the source is. */
interface Prepared {
  frames: FrameSource;
  channels: 1 | 2;
  packets: number;
}

/**
 * The packets of `options.source`: a file is streamed from disk (its header read and checked
 * here, its audio a stretch at a time while it is sent), PCM in memory encoded as it is sent,
 * Opus packets sent as they are.
 */
async function prepare(options: SendOptions): Promise<Prepared> {
  const { source, loop = false, bitrate, dtx = false } = options;
  if (typeof source === 'string') {
    const stream = await openWavStream(source, options.channels);
    try {
      return { frames: pcmFrames(stream, stream.channels, bitrate, dtx, loop), channels: stream.channels, packets: Math.ceil(stream.frames / FRAME) };
    } catch (e) {
      await stream.close();
      throw e;
    }
  }
  if ('opus' in source) return { frames: encodedFrames(source, loop), channels: source.channels, packets: source.opus.length };
  const channels = options.channels ?? (source.channels.length >= 2 ? 2 : 1);
  return { frames: pcmFrames(memoryReader(source), channels, bitrate, dtx, loop), channels, packets: Math.ceil(source.channels[0].length / FRAME) };
}

/** Publishes `prepared` as `options` say, and closes its frames. */
async function publish(options: SendOptions, { frames, channels, packets }: Prepared): Promise<SendResult> {
  const started = performance.now();
  let pc: RTCPeerConnection | undefined;
  let sessionUrl: string | undefined;
  const whip = new WhipClient({ token: options.token, fetch: options.fetch });
  try {
    const totalFrames = options.seconds !== undefined ? Math.round((options.seconds * 48000) / FRAME) : options.loop ? Infinity : packets;
    if (!(totalFrames > 0)) throw errors.OPTION_INVALID('source', 'holds no audio: nothing to send');
    // checkOptions made sure a WHIP send has its URL.
    const loopback = !options.signaling && isLoopbackHost(new URL(options.url ?? '').hostname);
    const hostAddresses = options.hostAddresses ?? (loopback ? ['127.0.0.1'] : undefined);
    let iceServers = options.iceServers;
    if (options.iceServersFromServer && iceServers === undefined) {
      iceServers = await whip.iceServers(options.url!, options.signal);
      if (options.iceTransportPolicy === 'relay' && !hasTurnServer(iceServers)) {
        throw errors.OPTION_INVALID('iceTransportPolicy', `is "relay", but ${options.url} advertises no TURN server to relay through (its answer to OPTIONS has no Link: <turn:…>; rel="ice-server" with credentials for this token)`);
      }
    }
    pc = new RTCPeerConnection({
      ...iceConfig({ hostAddresses, iceServers }),
      iceTransportPolicy: options.iceTransportPolicy ?? 'all',
      // RFC 9725 §4.5: WHIP clients use max-bundle. werift's default opens a transport per section,
      // and the data channel's, bundled away, kept its UDP socket open after close().
      bundlePolicy: 'max-bundle',
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111, parameters: `minptime=10;useinbandfec=1${channels === 2 ? ';stereo=1;sprop-stereo=1' : ''}` })],
      },
    });
    const transceiver = pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
    // Sender reports every ~4 s (RFC 3550), as browsers send audio's, not werift's every ~1 s.
    reportAtRfcInterval(transceiver.sender);
    if (options.dataChannel) options.dataChannel(pc.createDataChannel('earshot'));
    strengthenIceCredentials(pc);
    const offer = await pc.createOffer();
    disableImplicitStun(pc, iceServers);
    await pc.setLocalDescription(offer);
    await iceGatheringComplete(pc);
    // Stopped while gathering: nothing was posted, so no session to end.
    if (options.signal?.aborted) throw errors.SEND_ABORTED('while gathering ICE candidates', 'none');
    // An offer without a candidate can never connect: say why now rather than after connectTimeoutMs.
    if (!/^a=candidate:/m.test(pc.localDescription!.sdp)) {
      throw errors.WEBRTC_CONNECT_FAILED(
        options.iceTransportPolicy === 'relay'
          ? 'No relayed ICE candidate was gathered: the TURN server did not answer, or refused the username and credential'
          : 'No ICE candidate was gathered (no usable network address)',
      );
    }
    const published = options.signaling
      ? { answer: await options.signaling(pc.localDescription!.sdp), sessionUrl: '' }
      : await whip.publish(options.url ?? '', pc.localDescription!.sdp, options.signal);
    sessionUrl = published.sessionUrl || undefined;
    const unusable = answerProblem(published.answer);
    if (unusable) throw errors.WHIP_ANSWER_INVALID(options.signaling ? 'your signaling' : (options.url ?? ''), unusable);
    await pc.setRemoteDescription({ type: 'answer', sdp: published.answer });
    // Stopped while connecting, the catch below ends the session with DELETE, unless told not to or there is no URL.
    try {
      await connected(pc, options.connectTimeoutMs ?? 10_000, options.signal, sessionUrl && !options.skipDelete ? 'ended' : 'left');
    } catch (e) {
      // A session the server ended before it connected (replaced by another publisher of the peer, ended by
      // an admin) leaves no DTLS connection to close: the DELETE tells it from a network that never carried.
      if (!(isEarshotError(e) && e.code === errors.WEBRTC_CONNECT_FAILED.code) || !sessionUrl || options.skipDelete) throw e;
      const ending = sessionUrl;
      sessionUrl = undefined;
      if ((await endSession(whip, ending).catch(() => undefined)) === 404) {
        throw errors.WHIP_SESSION_LOST(
          published.sessionUrl,
          `The server ended the session before WebRTC connected (its DELETE answered 404): another publisher of the peer replaced it, an admin ended it, or the server's own connect timeout ran out before this sender's ${options.connectTimeoutMs ?? 10_000} ms (then check that UDP reaches the server)`,
        );
      }
      throw e;
    }

    const ssrc = transceiver.sender.ssrc;
    // The server's reports say its session is alive; a sender hears of nothing else when it ends.
    // Timed from the connection: a WebRTC endpoint must send RTCP (RFC 8834 §4.1), receiver reports included.
    const lastReport = { at: performance.now() };
    transceiver.sender.onRtcp.subscribe(() => (lastReport.at = performance.now()));
    const onReport = options.onReceiverReport;
    if (onReport) {
      transceiver.sender.onRtcp.subscribe((packet) => {
        if (!(packet instanceof RtcpRrPacket || packet instanceof RtcpSrPacket)) return;
        for (const r of packet.reports) {
          if (r.ssrc === ssrc) onReport({ fractionLost: r.fractionLost / 256, packetsLost: signed24(r.packetsLost), highestSequence: r.highestSequence, jitter: r.jitter });
        }
      });
    }
    const rtcpTimeoutMs = options.rtcpTimeoutMs ?? RTCP_TIMEOUT_MS;
    // A server that ends the session closes DTLS (close_notify; earshot does): the transport closes at once.
    // One that vanishes says nothing, and its reports stop.
    const closed = { byServer: false };
    transceiver.sender.dtlsTransport.onStateChange.subscribe((state) => (closed.byServer ||= state === 'closed'));
    const lost = (now: number) => closed.byServer || (rtcpTimeoutMs > 0 && now - lastReport.at > rtcpTimeoutMs);
    // DTX is the receiver's to ask for (RFC 7587 §6.1, usedtx): without it, every frame goes out, as libwebrtc sends.
    const sent = await pace(transceiver, frames, totalFrames, options, lost, frames.dtx && answerAsksDtx(published.answer));
    if (sent.lost) {
      if (closed.byServer) sessionUrl = undefined; // nothing left to DELETE
      const why = closed.byServer ? 'The server closed the connection (DTLS close_notify)' : `The server sent no RTCP report for ${rtcpTimeoutMs / 1000} s (RFC 3550 §6.3.5)`;
      throw errors.WHIP_SESSION_LOST(published.sessionUrl || 'the session', why);
    }
    await sleep(200); // let the last packets leave before the session ends
    const ending = sessionUrl;
    sessionUrl = undefined; // a DELETE that fails is not sent again by the catch below
    // Ended by the server as the last packets left (it closed DTLS): nothing was sent after that.
    if (ending && !options.skipDelete && !closed.byServer && (await endSession(whip, ending)) === 404) {
      throw errors.WHIP_SESSION_LOST(published.sessionUrl, 'The server no longer had the session when sending ended (its DELETE answered 404)', true);
    }
    const { lost: _lost, ...counts } = sent;
    return { sessionUrl: published.sessionUrl, ...counts, wallSeconds: (performance.now() - started) / 1000, ssrc };
  } catch (e) {
    if (sessionUrl && !options.skipDelete) await whip.end(sessionUrl).catch(() => undefined);
    throw e;
  } finally {
    await frames.close();
    // As a browser closes: the DTLS close_notify tells the server at once (with `signaling`, the only
    // word it gets). A client simulating one that vanished says nothing.
    if (pc && !options.skipDelete) await sayGoodbye(pc);
    await pc?.close().catch(() => undefined);
  }
}

/** How long a DELETE answered 404 waits before it is sent once more (a cluster node that rejoined answers 404 for about a second). */
const DELETE_RETRY_MS = 1500;

/**
 * Ends the session, and asks once more after a 404. A 404 that stays means
 * the server no longer has the session and said nothing the sender heard (it
 * was restarted, or an engine of it was): what was sent since then went
 * nowhere. Once more, because a node of a Redis cluster that rejoined answers
 * 404 for about a second for the sessions it runs.
 */
async function endSession(whip: WhipClient, sessionUrl: string): Promise<number> {
  const status = await whip.end(sessionUrl);
  if (status !== 404) return status;
  await sleep(DELETE_RETRY_MS);
  return whip.end(sessionUrl);
}

/**
 * Sends `count` sessions at once; peer ids get `-1` … `-count` appended. One
 * failure does not stop the others. The options are checked as `sendAudio`'s
 * (`EARSHOT_OPTION_INVALID`), once for all. A file (or PCM) is read and
 * encoded once for all sessions, as it is sent: each session sends the same
 * packets from the first, at its own pace.
 */
export async function sendMany(count: number, options: SendOptions): Promise<Array<SendResult | { error: Error; url: string }>> {
  if (!Number.isInteger(count) || count < 1) throw errors.OPTION_INVALID('count', `must be a positive integer, got ${describeValue(count)}`);
  checkOptions(options, 'sendMany');
  const prepared = await prepare(options);
  // One reader and encoder for all, as the sessions send: K encoders would cost the sender K times
  // the CPU, and packets encoded up front are one pass, which a loop can only replay packet by
  // packet (the last padded with silence, the first encoded from silence: a gap and a click).
  // Packets encoded before (an EncodedSource) are shared the same way.
  const shared = new SharedFrames(prepared.frames);
  try {
    return await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const url = count === 1 || options.url === undefined ? options.url : peerUrl(options.url, i + 1);
        const onProgress = options.onProgress && ((p: SendProgress) => options.onProgress!({ ...p, session: i + 1 }));
        return publish({ ...options, url, onProgress }, { ...prepared, frames: shared.reader() }).catch((error: Error) => ({ error, url: url ?? '' }));
      }),
    );
  } finally {
    await prepared.frames.close();
  }
}

/** The WHIP URL of `sendMany`'s session `k` (1-based): the peer id of `url` with `-k` appended. */
export function peerUrl(url: string, k: number): string {
  const u = new URL(url);
  u.pathname = u.pathname.replace(/\/?$/, '').replace(/([^/]+)$/, `$1-${k}`);
  return u.href;
}

/**
 * Why an SDP answer cannot carry the audio, or undefined: werift takes almost
 * any string as an answer and then reports `connected` with no transport, so
 * that a sender would "send" into nothing (an answer of "x" sent 50 packets).
 */
function answerProblem(sdp: unknown): string | undefined {
  if (typeof sdp !== 'string' || !/^v=0\r?$/m.test(sdp.split('\n', 1)[0] ?? '')) return 'it does not start with "v=0"';
  if (!/^m=audio [1-9]\d* /m.test(sdp)) return 'it accepts no audio (no m=audio line with a port)';
  if (!/^a=fingerprint:/m.test(sdp)) return 'it has no DTLS fingerprint (a=fingerprint)';
  if (!/^a=ice-ufrag:/m.test(sdp) || !/^a=ice-pwd:/m.test(sdp)) return 'it has no ICE credentials (a=ice-ufrag, a=ice-pwd)';
  // The offer's audio section (the first): Opus is all it offers, and the server must want to receive.
  const audio = audioSection(sdp);
  if (opusPayloadType(audio) === undefined) return 'its audio section accepts no Opus (a=rtpmap:… opus/48000/2), the only codec offered';
  const direction = /^a=(sendrecv|recvonly|sendonly|inactive)\r?$/m.exec(audio)?.[1] ?? 'sendrecv';
  if (direction === 'sendonly' || direction === 'inactive') return `its audio section is a=${direction}: the server would receive nothing`;
  return undefined;
}

/** An SDP's first audio section, from its m= line to the next one ('' without one). */
function audioSection(sdp: string): string {
  const at = sdp.search(/^m=audio /m);
  return at < 0 ? '' : (sdp.slice(at).split(/^m=/m)[1] ?? '');
}

/** The payload type an audio section gives Opus (`a=rtpmap:<pt> opus/48000/2`), if it has it. */
function opusPayloadType(audio: string): string | undefined {
  return /^a=rtpmap:(\d+) opus\/48000\/2\r?$/im.exec(audio)?.[1];
}

/** Whether the answer's Opus format asks for DTX (`usedtx=1` in its fmtp). */
function answerAsksDtx(sdp: string): boolean {
  const audio = audioSection(sdp);
  const pt = opusPayloadType(audio);
  if (pt === undefined) return false;
  const fmtp = new RegExp(`^a=fmtp:${pt} (.*)$`, 'm').exec(audio)?.[1] ?? '';
  return /(?:^|;)\s*usedtx=1\s*(?:;|$)/.test(fmtp.trim());
}

function connected(pc: RTCPeerConnection, timeoutMs: number, signal: AbortSignal | undefined, session: 'ended' | 'left'): Promise<void> {
  if (signal?.aborted) return Promise.reject(errors.SEND_ABORTED('while connecting', session));
  if (pc.connectionState === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(errors.WEBRTC_CONNECT_FAILED(`WebRTC did not connect within ${timeoutMs} ms (ICE/DTLS)`)), timeoutMs);
    const sub = pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') finish();
      else if (s === 'failed' || s === 'closed') finish(errors.WEBRTC_CONNECT_FAILED(`WebRTC connection ${s} before media could flow`));
    });
    const onAbort = () => finish(errors.SEND_ABORTED('while connecting', session));
    signal?.addEventListener('abort', onAbort, { once: true });
    function finish(err?: Error) {
      clearTimeout(timer);
      sub.unSubscribe();
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    }
  });
}

/** Yields the next 20 ms Opus packet of the source, or null at its end (never with `loop`, unless the source is empty). */
export interface FrameSource {
  /** Encoded with DTX: packets of ≤ 2 bytes are DTX frames. */
  readonly dtx: boolean;
  /** Rejects when the source fails (a file truncated while it is sent: `EARSHOT_WAV_READ_FAILED`). */
  next(): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

/**
 * Packets as given. With `loop` they start over after the last: packet by packet, so not seamless
 * (the last is padded to 20 ms, the first was encoded from silence); a PCM source or a file loops
 * seamlessly.
 */
function encodedFrames(source: EncodedSource, loop: boolean): FrameSource {
  let i = 0;
  return {
    dtx: source.dtx ?? false,
    async next() {
      if (i >= source.opus.length && loop) i = 0;
      return source.opus[i++] ?? null;
    },
    close: async () => undefined,
  };
}

/** 48 kHz PCM a stretch at a time: a file streamed from disk (`WavStream`), or PCM in memory. */
interface PcmReader {
  /** The next stretch, one plane per channel, or null at the end of the source. */
  read(): Promise<Float32Array[] | null>;
  /** Back to the first sample. */
  rewind(): Promise<void>;
  close(): Promise<void>;
}

/** PCM in memory, as one stretch. */
function memoryReader(source: PcmSource): PcmReader {
  let done = false;
  return {
    read: async () => (done ? null : ((done = true), source.channels)),
    rewind: async () => void (done = false),
    close: async () => undefined,
  };
}

/** Opus's bitrates, bit/s. */
export const BITRATE_RANGE = { min: 6000, max: 510_000 } as const;

/** An Opus encoder for `channels` (1 or 2) at `bitrate` (default 32 kbit/s mono, 64 stereo), both checked. */
function newEncoder(channels: 1 | 2, bitrate: number | undefined, dtx: boolean): OpusEncoder {
  checkChannels(channels);
  checkBitrate(bitrate);
  return new OpusEncoder({ channels, bitrate: bitrate ?? (channels === 2 ? 64000 : 32000), dtx });
}

/** `n` frames of `planes` from `from` into the interleaved `pcm` at frame `at`: channel c is plane c, or the last plane. */
function interleave(planes: Float32Array[], from: number, pcm: Float32Array, at: number, n: number, channels: number): void {
  for (let c = 0; c < channels; c++) {
    const plane = planes[Math.min(c, planes.length - 1)];
    for (let k = 0; k < n; k++) pcm[(at + k) * channels + c] = plane[from + k];
  }
}

/**
 * Encodes `reader`'s PCM 20 ms at a time (channel c of the packets is the source's channel c, or
 * its last). With `loop` the PCM repeats seamlessly: the next pass starts right after the last
 * sample, in the same packet (padding each pass to a packet boundary put up to 20 ms of silence
 * and a click between passes), through the same encoder, and `next()` never returns null.
 */
function pcmFrames(reader: PcmReader, channels: 1 | 2, bitrate: number | undefined, dtx: boolean, loop = false): FrameSource {
  const encoder = newEncoder(channels, bitrate, dtx);
  const pcm = new Float32Array(FRAME * channels);
  let block: Float32Array[] = [];
  let offset = 0;
  /** The pass so far has had audio: a source of none would loop forever. */
  let audible = false;
  let ended = false;
  return {
    dtx,
    async next() {
      if (ended) return null;
      pcm.fill(0); // without loop, the last frame is zero-padded
      let i = 0;
      while (i < FRAME) {
        const length = block.length > 0 ? block[0].length : 0;
        if (offset >= length) {
          const next = await reader.read();
          offset = 0;
          if (next) {
            block = next;
            audible ||= next[0].length > 0;
            continue;
          }
          block = [];
          if (!(loop && audible)) {
            ended = true;
            break;
          }
          await reader.rewind();
          audible = false;
          continue;
        }
        const n = Math.min(FRAME - i, length - offset);
        interleave(block, offset, pcm, i, n, channels);
        i += n;
        offset += n;
      }
      return i === 0 ? null : encoder.encode(pcm);
    },
    async close() {
      encoder.close();
      await reader.close();
    },
  };
}

/** Encodes a PCM source once into Opus packets (with `dtx`, as {@link SendOptions.dtx} sends them), for sending it many times. */
export function encodeSource(source: PcmSource, channels: 1 | 2 = source.channels.length >= 2 ? 2 : 1, bitrate?: number, dtx = false): EncodedSource {
  const encoder = newEncoder(channels, bitrate, dtx);
  const pcm = new Float32Array(FRAME * channels);
  const length = source.channels[0].length;
  const opus: Uint8Array[] = [];
  try {
    for (let offset = 0; offset < length; offset += FRAME) {
      pcm.fill(0); // the last frame is zero-padded
      interleave(source.channels, offset, pcm, 0, Math.min(FRAME, length - offset), channels);
      opus.push(encoder.encode(pcm));
    }
  } finally {
    encoder.close();
  }
  return { opus, channels, dtx };
}

/**
 * One source's packets for several sessions (`sendMany`): each reader gets them all in order from
 * the first, at its own pace, while the source is read and encoded once, as far as the foremost
 * session has come. Packets are kept until every reader is past them: about the spread between
 * the sessions (they start together and send in real time, so a few seconds at most, the longest
 * a session takes to connect), never the whole source. A failure of the source is each reader's.
 */
export class SharedFrames {
  readonly #source: FrameSource;
  /** Packets from number #first on. */
  #packets: Uint8Array[] = [];
  #first = 0;
  #sinceTrim = 0;
  #ended = false;
  #failed: { error: unknown } | undefined;
  #pulling: Promise<void> | undefined;
  readonly #readers = new Set<{ at: number }>();

  constructor(source: FrameSource) {
    this.#source = source;
  }

  /** Packets kept for the readers that are behind (dropped 50 pulls at a time once every reader is past them). */
  get held(): number {
    return this.#packets.length;
  }

  /** A session's packets, from the first. Every reader must exist before the first packet is dropped: made before any session sends. */
  reader(): FrameSource {
    const cursor = { at: this.#first };
    this.#readers.add(cursor);
    return {
      dtx: this.#source.dtx,
      next: () => this.#next(cursor),
      close: async () => void this.#readers.delete(cursor),
    };
  }

  async #next(cursor: { at: number }): Promise<Uint8Array | null> {
    while (cursor.at - this.#first >= this.#packets.length) {
      if (this.#failed) throw this.#failed.error;
      if (this.#ended) return null;
      await (this.#pulling ??= this.#pull());
    }
    return this.#packets[cursor.at++ - this.#first];
  }

  /** One more packet from the source; one pull at a time, for all readers. */
  async #pull(): Promise<void> {
    try {
      const packet = await this.#source.next();
      if (packet === null) this.#ended = true;
      else {
        this.#packets.push(packet);
        // Dropping what every reader is past costs a pass over the readers (up to 1000): not at every packet.
        if (++this.#sinceTrim >= 50) this.#trim();
      }
    } catch (error) {
      this.#failed = { error };
    } finally {
      this.#pulling = undefined;
    }
  }

  #trim(): void {
    this.#sinceTrim = 0;
    let slowest = this.#first + this.#packets.length;
    for (const r of this.#readers) slowest = Math.min(slowest, r.at);
    const drop = slowest - this.#first;
    if (drop <= 0) return;
    this.#packets = this.#packets.slice(drop);
    this.#first = slowest;
  }
}

/** RFC 3550 §6.3.5: five report intervals at the 5 s minimum. */
const RTCP_TIMEOUT_MS = 25_000;

/** Sends `totalFrames` frames on time; stops early when `lost(now)` says the server's session is gone. */
async function pace(transceiver: RTCRtpTransceiver, frames: FrameSource, totalFrames: number, options: SendOptions, lost: (now: number) => boolean, withholdDtx: boolean) {
  const sender = transceiver.sender;
  let seq = randomInt(0, 0x10000);
  let ts = randomInt(0, 2 ** 32);
  let packets = 0;
  let dropped = 0;
  let dtxFrames = 0;
  let bytes = 0;
  // In a run of DTX frames after its first one: not sent (libwebrtc's behaviour with usedtx=1).
  let inDtx = false;
  /** Silent frames sent past the end of the source (`seconds` longer than it). */
  let padded = 0;
  let talkspurt = true;
  const loss = options.simulateLoss ?? 0;
  const dropEvery = loss > 0 ? Math.round(1 / loss) : 0;
  const intervalMs = 20 / (options.speed ?? 1);
  let offset = 0;
  const start = performance.now();
  let lastProgress = start;
  let gone = false;
  for (let k = 0; k < totalFrames; k++) {
    if (options.signal?.aborted) break;
    if (lost(performance.now())) {
      gone = true;
      break;
    }
    // Past the end without loop (a longer --seconds): keep time with silent frames.
    const next = await frames.next();
    const payload = next ?? SILENT_FRAME;
    // Schedule by absolute time from the start so timer jitter does not accumulate.
    const due = start + k * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    // Behind schedule (a fast send, or a busy event loop): still yield once per packet, so a
    // receiver in this process reads its socket between packets instead of after a burst that
    // overflows the socket's receive buffer.
    else await yieldToEventLoop();
    // With DTX, that silence is withheld as libopus's own DTX frames are (≤ 2 bytes), but for a
    // comfort-noise update every 400 ms, as libopus sends one: the session never looks dead.
    const isDtx = withholdDtx && (next === null ? padded++ % DTX_UPDATE_FRAMES !== 0 : payload.length <= 2);
    // The last frame is sent whatever it is: the receiver learns of a DTX gap from the packet after it,
    // so a stream that ended in one would end, to it, where the gap began.
    if (isDtx && inDtx && k + 1 < totalFrames) {
      // Withheld, not lost: the timestamp moves on, the sequence number does not (RFC 3551 §4.1).
      dtxFrames++;
      talkspurt = true;
    } else {
      inDtx = isDtx;
      const drop = dropEvery > 0 && k % dropEvery === dropEvery - 1 && k + 1 < totalFrames;
      if (drop) dropped++;
      else {
        // The marker bit starts each talkspurt: the first packet, and the first after a DTX gap.
        sendRtpPayload(sender, payload, seq, ts, talkspurt);
        packets++;
        bytes += payload.length;
      }
      talkspurt = false;
      seq = (seq + 1) & 0xffff;
    }
    ts = (ts + FRAME) >>> 0;
    const now = performance.now();
    if (options.onProgress && now - lastProgress >= 1000) {
      lastProgress = now;
      options.onProgress({ mediaSeconds: ((packets + dropped + dtxFrames) * FRAME) / 48000, totalSeconds: Number.isFinite(totalFrames) ? (totalFrames * FRAME) / 48000 : undefined, packetsSent: packets, bytesSent: bytes });
    }
  }
  return { packetsSent: packets, packetsDropped: dropped, dtxFrames, bytesSent: bytes, mediaSeconds: ((packets + dropped + dtxFrames) * FRAME) / 48000, lost: gone };
}

/**
 * A report block's cumulative number of packets lost, a signed 24-bit field
 * (RFC 3550 §6.4.1): duplicates make it negative. werift reads it unsigned,
 * so −6 arrived as 16777210.
 */
export function signed24(value: number): number {
  return (value << 8) >> 8;
}
