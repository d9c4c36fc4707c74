/**
 * One WHEP listener (the WHEP draft, RFC 9725's egress sibling): a werift peer
 * connection answering a player's receive-only audio offer and sending it
 * Opus packets that were encoded once for every listener of a stream.
 *
 * Like a WHIP session it is ICE-lite with host candidates only, answers with
 * every candidate (no trickle), negotiates only the audio section (every
 * other offered section is answered rejected, without a socket) and never
 * contacts a STUN server. Each listener has its own RTP sequence numbers,
 * timestamps and SSRC; the timestamps follow the packets' media positions, so
 * a gap in what is sent (none is expected: the worker fills silence) shows up
 * to the player as a gap, not as compressed time.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RTCRtpTransceiver } from 'werift';
import { errors, isEarshotError } from '../errors.js';
import type { EncodedFrame } from '../media/frames.js';
import { clip } from './bounded-text.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete, requireCandidates, strengthenIceCredentials, type IceOptions } from './ice-config.js';
import { completeAnswer, reducedOffer, requireTransport, withoutTrickle } from './offer-reduction.js';
import { parseOffer, summarizeOffer, type OfferSummary, type ParsedOffer } from './sdp-offer.js';
import { answerDtlsRole } from './dtls-role.js';
import { withOpusPreferences } from './opus-answer.js';
import { onDtlsClosed } from './dtls-closed.js';
import { guardDtlsRecords } from './dtls-record-guard.js';
import { reportAtRfcInterval } from './sender-reports.js';
import { sendRtpPayload } from './werift-rtp-send.js';
import { sayGoodbye } from './werift-goodbye.js';

export type ListenerEndReason = 'deleted' | 'stream-ended' | 'ice-failed' | 'disconnected' | 'closed-by-peer' | 'connect-timeout' | 'shutdown';

/** A player's offer checked by `ListenerSession.prepareOffer`. */
export interface PreparedPlayerOffer {
  readonly parsed: ParsedOffer;
  readonly summary: OfferSummary;
}

export interface ListenerSessionOptions {
  ice?: IceOptions;
  /** End the listener when ICE/DTLS have not connected within this time. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** End the listener (`disconnected`) when its player has sent no RTCP for this long. Default 25000 ms (RFC 3550 §6.3.5); 0: never. */
  rtcpTimeoutMs?: number;
  /** Channels of the packets sent (the answer says `sprop-stereo=1` for 2). */
  channels: 1 | 2;
  /** Called once when the listener ends, for any reason. */
  onEnd(reason: ListenerEndReason): void;
}

/** RFC 3550 §6.3.5: five report intervals at the 5 s minimum. */
const RTCP_TIMEOUT_MS = 25_000;
/** A packet this much later (ms) than the pace of those sent before it is not sent (see `#late`). */
const LATE_MS = 200;
/** Late packets in a row for this much media (ms) move the pace instead (the stream fell behind for good). */
const LATE_RUN_MS = 1000;
/** How fast the pace may drift later by itself (ms per ms: a sender's clock slower than ours, up to 0.1 %). */
const PACE_DRIFT = 0.001;

export class ListenerSession {
  /** Unguessable id used in the session URL (128 random bits). */
  readonly id = randomBytes(16).toString('base64url');
  readonly createdAt = Date.now();
  state: 'connecting' | 'connected' | 'ended' = 'connecting';
  endReason: ListenerEndReason | undefined;
  /** SDP answer, with all server candidates. */
  answer = '';
  /** Packets sent to the player. */
  packetsSent = 0;
  /** Packets not sent because they came too late to play (the start of a sender's pause: `#late`). */
  packetsLate = 0;
  /** The pace packets are sent at: their smallest lag of wall clock (ms) to media position, and when it was seen. */
  #pace: { lag: number; at: number } | undefined;
  /** Media position of the first of the late packets skipped in a row. */
  #lateSince: number | undefined;
  readonly #pc: RTCPeerConnection;
  readonly #transceiver: RTCRtpTransceiver;
  readonly #options: ListenerSessionOptions;
  #timer: NodeJS.Timeout | undefined;
  #sequence = randomInt(0, 0x10000);
  readonly #timestampBase = randomInt(0, 0x100000000);
  /** Media position (48 kHz) of the first packet sent: RTP timestamp 0 + base. */
  #origin: number | undefined;
  #nextPosition: number | undefined;

  private constructor(options: ListenerSessionOptions) {
    this.#options = options;
    const fmtp = `minptime=10;useinbandfec=0${options.channels === 2 ? ';stereo=1;sprop-stereo=1' : ''}`;
    this.#pc = new RTCPeerConnection({
      ...iceConfig({ ...options.ice, iceServers: [] }),
      iceLite: true,
      codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, parameters: fmtp })] },
    });
    // An unassociated send-only transceiver: werift matches it to the offer's receiving audio section.
    this.#transceiver = this.#pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
    reportAtRfcInterval(this.#transceiver.sender);
  }

  /**
   * Validates a player's offer (it must receive Opus audio), opening nothing:
   * typed errors for an unusable one. Cheap, so a server checks it before its
   * limits: an offer that can never be accepted must not be told to retry.
   */
  static prepareOffer(sdp: string): PreparedPlayerOffer {
    const parsed = parseOffer(sdp, 'receive');
    const summary = summarizeOffer(parsed, 'receive');
    // As WHIP checks it: without these werift answered 201 and the listener could never connect.
    requireTransport(parsed, parsed.sections[summary.audioIndex]);
    return { parsed, summary };
  }

  /**
   * Validates a player's offer (unless prepared already) and answers it.
   * Throws typed errors (`EARSHOT_SDP_INVALID`, `EARSHOT_NO_OPUS_AUDIO`, …)
   * before any socket is opened for an unusable offer.
   */
  static async answer(sdp: string | PreparedPlayerOffer, options: ListenerSessionOptions): Promise<ListenerSession> {
    const { parsed, summary } = typeof sdp === 'string' ? ListenerSession.prepareOffer(sdp) : sdp;
    const session = new ListenerSession(options);
    try {
      const pc = session.#pc;
      pc.connectionStateChange.subscribe((state) => session.#onConnectionState(state));
      await pc.setRemoteDescription({ type: 'offer', sdp: reducedOffer(parsed, [summary.audioIndex]) });
      answerDtlsRole(pc, parsed, parsed.sections[summary.audioIndex]);
      strengthenIceCredentials(pc);
      const answer = await pc.createAnswer();
      disableImplicitStun(pc, []);
      await pc.setLocalDescription(answer);
      await iceGatheringComplete(pc);
      const local = pc.localDescription?.sdp;
      if (!local || !/^m=audio [1-9]/m.test(local)) throw errors.NO_OPUS_AUDIO('no offered audio codec matched opus/48000/2', true);
      requireCandidates(local);
      // The Opus lines say what this sender does (sprop-stereo for a stereo branch), not what werift
      // copied from the offer (the player's useinbandfec, minptime, transport-cc feedback).
      session.answer = withOpusPreferences(withoutTrickle(completeAnswer(parsed, [summary.audioIndex], local)), summary.opusPayloadType, { stereo: false, dtx: false, spropStereo: options.channels === 2 });
    } catch (e) {
      await session.#pc.close().catch(() => {});
      throw isEarshotError(e) ? e : errors.NEGOTIATION_FAILED(clip(e instanceof Error ? e.message : String(e)));
    }
    session.#timer = setTimeout(() => {
      if (session.state === 'connecting') void session.close('connect-timeout');
    }, options.connectTimeoutMs ?? 15_000);
    session.#timer.unref();
    return session;
  }

  /**
   * Whether `frame` comes too late to send (counted in `packetsLate`): more
   * than LATE_MS behind the pace of the packets sent before it (the
   * smallest lag of wall clock to media position, allowed to drift later by
   * PACE_DRIFT). A sender's pause reaches the encoder only with its next
   * packet (a DTX sender's comfort-noise update, 400 ms later), so the
   * packets coded for the start of a pause leave together, 260–400 ms late:
   * sent, a browser's jitter buffer took that burst for network jitter and
   * raised its delay to ~350 ms for good. Not sent, the player conceals a
   * few packets of near silence and the next one sent starts a talkspurt
   * (marker bit). Packets late for more than LATE_RUN_MS of media in a row
   * are a stream whose pace moved (a worker fallen behind): the pace follows.
   */
  #late(frame: EncodedFrame): boolean {
    const now = performance.now();
    const lag = now - frame.position / 48;
    const pace = this.#pace === undefined ? lag : this.#pace.lag + (now - this.#pace.at) * PACE_DRIFT;
    if (lag - pace <= LATE_MS) {
      if (lag <= pace) this.#pace = { lag, at: now };
      this.#lateSince = undefined;
      return false;
    }
    this.#lateSince ??= frame.position;
    if ((frame.position - this.#lateSince) / 48 < LATE_RUN_MS) {
      this.packetsLate++;
      return true;
    }
    this.#pace = { lag, at: now };
    this.#lateSince = undefined;
    return false;
  }

  /**
   * Sends one packet (nothing before the player connected: it would be lost
   * anyway). A settled pause's repeated packets (`frame.repeat`) are not sent,
   * as a DTX sender sends nothing while silent: the player hears the same. A
   * sender's pause reaches the encoder only when the sender resumes, so its
   * packets would all go at once, minutes of them after a long pause; only the
   * dozen or so before the silence settles do.
   */
  send(frame: EncodedFrame): void {
    if (this.state !== 'connected' || frame.payload === null || frame.repeat) return;
    if (this.#late(frame)) return;
    this.#origin ??= frame.position;
    // A jump in media position (a listener that missed packets) starts a talkspurt: marker bit (RFC 3551 §4.1).
    const marker = this.#nextPosition === undefined || frame.position !== this.#nextPosition;
    this.#nextPosition = frame.position + frame.samples;
    const sequence = this.#sequence;
    this.#sequence = (sequence + 1) & 0xffff;
    try {
      sendRtpPayload(this.#transceiver.sender, frame.payload, sequence, (this.#timestampBase + frame.position - this.#origin) >>> 0, marker);
      this.packetsSent++;
    } catch {
      // A transport closing under us: the connection state change ends the listener.
    }
  }

  #onConnectionState(state: string): void {
    // Before its DTLS handshake: a stranger's datagram may reach the socket from its first moment.
    if (state === 'connecting') guardDtlsRecords(this.#pc);
    if (state === 'connected' && this.state === 'connecting') {
      this.state = 'connected';
      clearTimeout(this.#timer);
      onDtlsClosed(this.#pc, () => void this.close('closed-by-peer'));
      this.#watchPlayer();
    } else if (state === 'failed') {
      void this.close(this.state === 'connecting' ? 'ice-failed' : 'disconnected');
    } else if (state === 'closed') {
      void this.close('closed-by-peer');
    }
  }

  /**
   * An ICE-lite server hears nothing else when a player goes without its DELETE
   * (a closed tab, a crash): its receiver reports stop. Without this the
   * listener kept its place and was sent to until its peer's stream ended.
   */
  #watchPlayer(): void {
    const timeoutMs = this.#options.rtcpTimeoutMs ?? RTCP_TIMEOUT_MS;
    if (!(timeoutMs > 0)) return;
    let last = performance.now();
    const heard = () => {
      last = performance.now();
    };
    // Any RTCP that decrypts on the connection, before werift routes it: a player that hears nothing
    // (a silent peer) reports without report blocks (RFC 3550 §6.4.2), and werift passes a report only
    // to the senders its blocks name, so the sender's own event took Chromium for gone after 25 s of silence.
    for (const transport of this.#pc.dtlsTransports) transport.onRtcp.subscribe(heard);
    this.#timer = setInterval(() => {
      if (this.state === 'connected' && performance.now() - last > timeoutMs) void this.close('disconnected');
    }, Math.min(5000, timeoutMs / 2));
    this.#timer.unref();
  }

  /** Ends the listener once: reports the reason, closes the connection. */
  async close(reason: ListenerEndReason): Promise<void> {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endReason = reason;
    clearTimeout(this.#timer); // the connect timeout, or the player watch's interval (clearTimeout clears both)
    // The player hears that the listener ended (DTLS close_notify), unless it ended it itself.
    if (reason !== 'closed-by-peer') await sayGoodbye(this.#pc);
    this.#options.onEnd(reason);
    await this.#pc.close().catch(() => {});
  }
}
