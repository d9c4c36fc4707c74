/**
 * One WHIP publisher: a werift peer connection answering the client's offer,
 * its audio track fed through RtpIngest, and the peer's lifecycle (connect,
 * ICE/DTLS failure, media timeout) ending the stream exactly once.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { RTCPeerConnection, RTCRtpCodecParameters, type MediaStreamTrack, type RtpPacket } from 'werift';
import { errors, isEarshotError } from '../errors.js';
import { clip } from './bounded-text.js';
import { disableImplicitStun, iceConfig, iceGatheringComplete, requireCandidates, strengthenIceCredentials, type IceOptions } from './ice-config.js';
import { completeAnswer, planNegotiation, withoutTrickle, type NegotiationPlan } from './offer-reduction.js';
import { withOpusPreferences } from './opus-answer.js';
import type { EncodedFrame } from '../media/frames.js';
import { RtpIngest, type RtpIngestOptions, type RtpInput, type RtpReceiveStats } from './rtp-ingest.js';
import { ClientChannel } from './data-channel.js';
import { parseOffer, summarizeOffer, type OfferSummary, type ParsedOffer } from './sdp-offer.js';
import { answerDtlsRole } from './dtls-role.js';
import { onDtlsClosed } from './dtls-closed.js';
import { guardDtlsRecords } from './dtls-record-guard.js';
import { reportCname, reportFiguresFrom } from './receiver-reports.js';
// Replace werift's string-based RTP header parsing and two per-packet costs of its receiver
// before any packet arrives (see the modules).
import './werift-rtp-header.js';
import './werift-receiver.js';
import './werift-srtp-gcm.js';
import './werift-srtp-context.js';
// Bound the DTLS handshake fragments werift keeps, and answer only authenticated STUN requests (see the modules).
import './werift-dtls-fragments.js';
import './werift-stun-auth.js';
// Drop data-channel chunks a peer sends beyond the receive window, as RFC 9260 §6.2 says (see the module).
import './werift-sctp-window.js';
// Count the SRTCP packets that fail authentication, which werift drops without a trace.
import './werift-srtcp-count.js';
import { leanReceivePath } from './werift-events.js';
import { shortcutRtp } from './werift-rtp-shortcut.js';
import { routeUnsignalledSsrcs } from './werift-unsignalled-ssrc.js';
import { sayGoodbye } from './werift-goodbye.js';
import { PeriodicClock } from '../media/periodic-clock.js';

/**
 * How many of a WHIP session's first packets may each prompt an attempt at
 * the shortcut from transport to session (it needs werift's RTCP loop running,
 * which the first packet starts; later attempts cover a slow start).
 */
const SHORTCUT_TRIES = 5;

/** Every session's connect and media timeouts, checked four times a second by one timer for the process, all in one turn (one slot). */
const SESSION_CHECKS = new PeriodicClock(250, 250);

/**
 * Why a session ended (`endReason` in its statistics, `reason` of its `ended`
 * event, the `reason` label of `earshot_sessions_ended_total`; docs/http-api.md
 * says what each means). `engine-exited` comes only from `createCluster`
 * (`earshot serve --processes N`): the engine process that ran the session died.
 */
export type SessionEndReason =
  | 'deleted'
  | 'replaced'
  | 'ice-failed'
  | 'disconnected'
  | 'closed-by-peer'
  | 'connect-timeout'
  | 'media-timeout'
  | 'pipeline-error'
  | 'shutdown'
  // Reported by the front process, which ends the session in its dead engine's place.
  | 'engine-exited';

export type SessionState = 'connecting' | 'connected' | 'ended';

/** An offer checked and planned by `PeerSession.prepareOffer`. */
export interface PreparedOffer {
  readonly parsed: ParsedOffer;
  readonly offer: OfferSummary;
  readonly plan: NegotiationPlan;
}

export interface PeerSessionOptions {
  ice?: IceOptions;
  /** End the session when no RTP arrives for this long after it connected. Default 10000 ms. */
  mediaTimeoutMs?: number;
  /** End the session when ICE/DTLS have not connected within this time. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Ask the sender for stereo (RFC 7587 `stereo=1` in the answer). Default false. */
  stereo?: boolean;
  /**
   * Ask the sender for discontinuous transmission (RFC 7587 `usedtx=1`): no
   * packets while silent; the ingest turns the gaps into silence at their media
   * time. Default true.
   */
  dtx?: boolean;
  ingest?: RtpIngestOptions;
}

export interface PeerSessionEvents {
  /** An encoded frame, in media order. */
  onFrame(frame: EncodedFrame): void;
  /** Called once, after the last frame. */
  onEnd(reason: SessionEndReason): void;
  onConnected?(): void;
  /** A message the client sent on its data channel, accepted (see data-channel.ts): parsed JSON, or the text. */
  onClientMessage?(data: unknown): void;
  /** The client's data channel opened. */
  onChannelOpen?(): void;
}

export class PeerSession {
  /** Unguessable id used in the session URL (128 random bits). */
  readonly id = randomBytes(16).toString('base64url');
  readonly createdAt = Date.now();
  connectedAt: number | undefined;
  endedAt: number | undefined;
  state: SessionState = 'connecting';
  endReason: SessionEndReason | undefined;
  /** SDP answer, with all server candidates (non-trickle: it never offers `a=ice-options:trickle`). */
  answer = '';
  offer: OfferSummary | undefined;
  /** Packets whose payload type was not the negotiated Opus one (ignored). */
  foreignPackets = 0;
  /**
   * The client's data channel (WHIP offers with an `m=application` section):
   * state `none` without one. Connections made with the caller's own
   * signaling leave their channels to the caller (always `none`).
   */
  readonly channel: ClientChannel;

  readonly #pc: RTCPeerConnection;
  readonly #ingest: RtpIngest;
  readonly #events: PeerSessionEvents;
  readonly #mediaTimeoutMs: number;
  readonly #stereo: boolean;
  readonly #dtx: boolean;
  readonly #connectTimeoutMs: number;
  /** Stops this session's timeout checks (see SESSION_CHECKS). */
  #unwatch: (() => void) | undefined;
  #lastPacketAt = performance.now();
  readonly #packet: RtpInput = { sequenceNumber: 0, timestamp: 0, ssrc: 0, payload: new Uint8Array(0), headerBytes: 0, arrival: 0 };
  #track: MediaStreamTrack | undefined;
  /** Opus payload type when the remote description was not seen by us (user-driven signaling). */
  #trackPayloadType: number | undefined;
  /**
   * Packets werift's own path may still deliver before the session tries
   * (again) to take them straight from the transport (werift-rtp-shortcut.ts);
   * 0 once it did, and always for connections on the caller's signaling.
   */
  #shortcutTries: number;

  private constructor(readonly room: string, readonly peer: string, options: PeerSessionOptions, events: PeerSessionEvents, iceLite = true, dataChannel = false) {
    this.#events = events;
    this.channel = new ClientChannel(dataChannel, {
      onMessage: (data) => this.#events.onClientMessage?.(data),
      onOpen: () => this.#events.onChannelOpen?.(),
    });
    this.#mediaTimeoutMs = options.mediaTimeoutMs ?? 10_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 15_000;
    this.#ingest = new RtpIngest((f) => this.#events.onFrame(f), options.ingest);
    this.#stereo = options.stereo === true;
    this.#dtx = options.dtx !== false;
    this.#shortcutTries = iceLite ? SHORTCUT_TRIES : 0;
    const fmtp = `minptime=10;useinbandfec=1${options.stereo ? ';stereo=1' : ''}${options.dtx === false ? '' : ';usedtx=1'}`;
    this.#pc = new RTCPeerConnection({
      // An ICE-lite agent has host candidates only (RFC 8445 §2.5): STUN/TURN
      // servers are for clients (advertised over WHIP), never contacted by it.
      ...iceConfig(iceLite ? { ...options.ice, iceServers: [] } : options.ice),
      // A WHIP server is always the answerer and reachable: ICE-lite, no gathering beyond host candidates.
      // A connection for the user's own signaling may be either side, so it runs full ICE.
      iceLite,
      codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, parameters: fmtp })] },
    });
  }

  /**
   * Validates an offer and plans what of it is negotiated, opening nothing:
   * typed errors for an unusable one (`EARSHOT_SDP_INVALID`,
   * `EARSHOT_NO_OPUS_AUDIO`, …). Cheap, so a server checks it before its
   * limits: an offer that can never be accepted must not be told to retry.
   */
  static prepareOffer(sdp: string): PreparedOffer {
    const parsed = parseOffer(sdp);
    const offer = summarizeOffer(parsed);
    return { parsed, offer, plan: planNegotiation(parsed, offer) };
  }

  /**
   * Validates the offer (unless prepared already), creates the peer and
   * returns it once the answer (with every candidate) is ready. Throws typed
   * errors for unusable offers. werift sees only the sections earshot
   * negotiates (offer-reduction.ts), so the checks and the reduction run
   * before any socket is opened.
   */
  static async answer(room: string, peer: string, sdp: string | PreparedOffer, options: PeerSessionOptions, events: PeerSessionEvents): Promise<PeerSession> {
    const { parsed, offer, plan } = typeof sdp === 'string' ? PeerSession.prepareOffer(sdp) : sdp;
    const session = new PeerSession(room, peer, options, events, true, plan.dataChannel !== undefined);
    session.offer = offer;
    try {
      await session.#negotiate(parsed, plan);
    } catch (e) {
      await session.#pc.close().catch(() => {});
      // werift's messages may quote the offer: bounded, so a crafted offer cannot inflate the response or the log.
      throw isEarshotError(e) ? e : errors.NEGOTIATION_FAILED(clip(e instanceof Error ? e.message : String(e)));
    }
    // werift can give up on the connection while the offer is being answered (it did on offers whose ICE
    // credentials it could not use): such a session must not be handed out, or it would be registered dead.
    if (session.state === 'ended') throw errors.NEGOTIATION_FAILED(`the connection failed while the offer was answered (${session.endReason ?? 'ended'})`);
    return session;
  }

  /**
   * A session around a peer connection the caller negotiates with its own
   * signaling (`WebRTCHandler.createPeerConnection`). The first audio track it
   * receives is processed like a WHIP publisher's; the connect and media
   * timeouts apply the same way. No STUN server is contacted unless
   * `options.ice.iceServers` names one.
   */
  static forPeerConnection(room: string, peer: string, options: PeerSessionOptions, events: PeerSessionEvents): PeerSession {
    const session = new PeerSession(room, peer, options, events, false);
    session.#watch();
    const pc = session.#pc;
    // werift gathers (and would query its default STUN server) inside
    // setLocalDescription, whichever side the user's signaling makes us: clear
    // the STUN server of every transport right before that, on this instance only.
    const setLocalDescription = pc.setLocalDescription.bind(pc);
    pc.setLocalDescription = ((description?: Parameters<RTCPeerConnection['setLocalDescription']>[0]) => {
      strengthenIceCredentials(pc);
      disableImplicitStun(pc, options.ice?.iceServers);
      return setLocalDescription(description as never);
    }) as RTCPeerConnection['setLocalDescription'];
    // The description the user's signaling sends is made here, before setLocalDescription: its ICE
    // credentials must be the strengthened ones already.
    const createAnswer = pc.createAnswer.bind(pc);
    pc.createAnswer = (() => {
      strengthenIceCredentials(pc);
      return createAnswer();
    }) as RTCPeerConnection['createAnswer'];
    const createOffer = pc.createOffer.bind(pc);
    pc.createOffer = ((...args: Parameters<RTCPeerConnection['createOffer']>) => {
      strengthenIceCredentials(pc);
      return createOffer(...args);
    }) as RTCPeerConnection['createOffer'];
    session.#unwatch = SESSION_CHECKS.add(() => session.#checkTimeouts());
    return session;
  }

  /** The werift peer connection (for `createPeerConnection` users). */
  get peerConnection(): RTCPeerConnection {
    return this.#pc;
  }

  #watch(): void {
    const pc = this.#pc;
    pc.onTrack.subscribe((track) => {
      if (track.kind !== 'audio' || this.#track) return;
      this.#track = track;
      this.#trackPayloadType = track.codec?.payloadType;
      track.onReceiveRtp.subscribe((rtp) => this.#onRtp(rtp));
      leanReceivePath(pc);
      // The receiver reports about this stream say what the ingest counted (RFC 3550 A.1, A.3).
      for (const transceiver of pc.getTransceivers()) {
        if (transceiver.kind !== 'audio') continue;
        reportFiguresFrom(transceiver.receiver, () => this.#ingest.reportFigures());
        reportCname(transceiver.receiver, pc.cname);
      }
    });
    pc.connectionStateChange.subscribe((state) => this.#onConnectionState(state));
  }

  async #negotiate(offer: ParsedOffer, plan: NegotiationPlan): Promise<void> {
    const pc = this.#pc;
    this.#watch();
    if (plan.dataChannel !== undefined) pc.onDataChannel.subscribe((channel) => this.channel.attach(channel));
    await pc.setRemoteDescription({ type: 'offer', sdp: plan.offer });
    routeUnsignalledSsrcs(pc);
    answerDtlsRole(pc, offer, offer.sections[this.offer!.audioIndex]);
    strengthenIceCredentials(pc);
    const answer = await pc.createAnswer();
    disableImplicitStun(pc, []);
    await pc.setLocalDescription(answer);
    await iceGatheringComplete(pc);
    const local = pc.localDescription?.sdp;
    if (!local) throw new Error('werift produced no local description');
    if (!/^m=audio [1-9]/m.test(local)) throw errors.NO_OPUS_AUDIO('no offered audio codec matched opus/48000/2');
    requireCandidates(local);
    const opus = /^a=rtpmap:(\d+) opus\/48000/im.exec(local);
    const completed = withoutTrickle(completeAnswer(offer, plan.sections, local));
    this.answer = opus ? withOpusPreferences(completed, Number(opus[1]), { stereo: this.#stereo, dtx: this.#dtx }) : completed;
    this.#unwatch?.();
    this.#unwatch = SESSION_CHECKS.add(() => this.#checkTimeouts());
  }

  #onRtp(rtp: RtpPacket): void {
    if (this.state === 'ended') return;
    const opusPayloadType = this.offer?.opusPayloadType ?? this.#trackPayloadType;
    if (opusPayloadType !== undefined && rtp.header.payloadType !== opusPayloadType) {
      this.foreignPackets++;
      return;
    }
    const now = performance.now();
    this.#lastPacketAt = now;
    // One object for every packet (the ingest reads it and keeps nothing of it).
    const p = this.#packet;
    p.sequenceNumber = rtp.header.sequenceNumber;
    p.timestamp = rtp.header.timestamp;
    p.ssrc = rtp.header.ssrc;
    // werift's payload as it is, no copy: a view into the packet werift decrypted
    // into, a buffer of its own that werift does not reuse. The pool copies the
    // bytes once, into the batch it hands to the worker.
    p.payload = rtp.payload;
    p.headerBytes = rtp.header.payloadOffset;
    p.arrival = now;
    this.#ingest.receive(p);
    if (this.#shortcutTries > 0) this.#tryShortcut(rtp);
  }

  /** After werift's `handleRTP` has returned (it starts the RTCP loop after delivering), try the shortcut. */
  #tryShortcut(rtp: RtpPacket): void {
    this.#shortcutTries--;
    const track = this.#track;
    queueMicrotask(() => {
      if (this.state === 'ended' || !track) return;
      if (shortcutRtp(this.#pc, track, rtp)) this.#shortcutTries = 0;
    });
  }

  #onConnectionState(state: string): void {
    // Before its DTLS handshake: a stranger's datagram may reach the socket from its first moment.
    if (state === 'connecting') guardDtlsRecords(this.#pc);
    if (state === 'connected' && this.state === 'connecting') {
      this.state = 'connected';
      this.connectedAt = Date.now();
      leanReceivePath(this.#pc);
      // A close_notify can only come over an established association: watched from now, for WHIP's
      // sessions and for connections negotiated with the caller's own signaling alike.
      onDtlsClosed(this.#pc, () => void this.close('closed-by-peer'));
      this.#lastPacketAt = performance.now();
      this.#events.onConnected?.();
    } else if (state === 'failed') {
      void this.close(this.state === 'connecting' ? 'ice-failed' : 'disconnected');
    } else if (state === 'closed') {
      void this.close('closed-by-peer');
    }
  }

  #checkTimeouts(): void {
    const now = performance.now();
    if (this.state === 'connecting' && Date.now() - this.createdAt > this.#connectTimeoutMs) {
      void this.close('connect-timeout');
    } else if (this.state === 'connected' && now - this.#lastPacketAt > this.#mediaTimeoutMs) {
      void this.close('media-timeout');
    }
  }

  rtpStats(): RtpReceiveStats {
    return this.#ingest.stats(performance.now());
  }

  /** Ends the session: plays out held packets, then reports the end once. */
  async close(reason: SessionEndReason): Promise<void> {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endReason = reason;
    this.endedAt = Date.now();
    this.#unwatch?.();
    this.channel.close();
    this.#ingest.flush();
    // The client hears that the session ended (RTCP BYE, DTLS close_notify), unless it ended it itself.
    if (reason !== 'closed-by-peer') await sayGoodbye(this.#pc);
    this.#events.onEnd(reason);
    await this.#pc.close().catch(() => {});
  }
}
