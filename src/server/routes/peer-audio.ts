/**
 * `GET /peers/:peer/audio`, upgraded to a WebSocket: a peer's processed audio,
 * live, in the framing of the `websocket` sink (sinks/audio-socket.ts,
 * docs/websocket.md): `start`, binary PCM frames, speech events, `end`.
 * `?branch=` picks the branch (default the first), `?format=s16|f32` the
 * encoding (default s16).
 *
 * Admin only, like everything that reveals data: the token comes as
 * `Authorization: Bearer` or, from a browser (which cannot set headers on a
 * WebSocket), as the offered subprotocol `earshot-bearer.<base64url token>`
 * next to `earshot-audio`, which the server selects (server/access.ts).
 *
 * The access check, the peer and the query are settled before the upgrade, so
 * a refusal is an ordinary problem response (401/403, 404 unknown peer, 400).
 * A listener costs the worker nothing until it connects: the peer's branch is
 * sent to this thread (as a 16-bit copy, or floats for f32) only while some
 * socket or sink reads it. A reader slower than the stream loses the oldest
 * frames of its own bounded queue, counted in its `end` message; nothing else
 * waits for it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { EarshotCore } from '../../core/earshot-core.js';
import { errors } from '../../errors.js';
import { RETRY_AFTER_SECONDS } from './whip.js';
import type { PcmListener } from '../../pipeline/peer-pipeline.js';
import { AudioSocketStream, closeWhenDrained } from '../../sinks/audio-socket.js';

/** The subprotocol the server selects when a client offers it (browsers need one selected when they offer any). */
export const AUDIO_PROTOCOL = 'earshot-audio';

/**
 * Pings the socket every half of `timeoutMs` and ends it (its listener place
 * with it) once a whole half has passed without an answer: a pong, or any
 * message. A client that vanished without closing (a laptop that slept, a
 * dropped network) otherwise holds its place until TCP gives up, which takes
 * many minutes. A pong answers only once the client has read what was sent
 * before the ping, so one that stops reading for that long is ended too.
 * Returns the timer, for the caller to clear on close; none when `timeoutMs` is 0.
 */
function watchAnswers(socket: WebSocket, timeoutMs: number, onSilent: () => void): ReturnType<typeof setInterval> | undefined {
  if (!(timeoutMs > 0)) return undefined;
  let answered = true;
  const heard = () => {
    answered = true;
  };
  socket.on('pong', heard);
  socket.on('message', heard);
  const timer = setInterval(() => {
    if (!answered) {
      clearInterval(timer);
      onSilent();
      socket.terminate();
      return;
    }
    answered = false;
    socket.ping();
  }, timeoutMs / 2);
  // A socket's own timer must not hold a closing process open.
  timer.unref();
  return timer;
}

type AudioRequest = FastifyRequest<{ Params: { peer: string }; Querystring: { branch?: string; format?: string } }>;

export function registerPeerAudioRoutes(app: FastifyInstance, core: EarshotCore): void {
  /** The peer, branch and format a request asks for; throws the problem to answer instead. */
  const target = (req: AudioRequest) => {
    const entry = core.peer(req.params.peer);
    const { branch, format = 's16' } = req.query;
    if (format !== 's16' && format !== 'f32') throw errors.BODY_INVALID('?format= must be "s16" or "f32".');
    const branches = entry.pipeline.branches;
    const b = branch === undefined ? branches[0] : branches.find((x) => x.name === branch);
    if (!b) throw errors.BRANCH_NOT_FOUND(entry.peer, String(branch).slice(0, 64), branches.map((x) => x.name));
    return { entry, branch: b, format: format as 's16' | 'f32' };
  };

  app.route({
    method: 'GET',
    url: '/peers/:peer/audio',
    // Before the upgrade: a refusal is an HTTP problem response, not a socket that closes.
    preHandler: async (req, reply) => {
      // A client that offers subprotocols needs one selected (RFC 6455 §4.1: else it fails the connection,
      // a browser with a bare error event): without ours among them, say so now, as HTTP.
      const offered = req.headers['sec-websocket-protocol'];
      if (offered !== undefined && !offered.split(',').some((p) => p.trim() === AUDIO_PROTOCOL)) {
        throw errors.BAD_REQUEST(`The WebSocket offers the subprotocols "${offered.slice(0, 200).replace(/earshot-bearer\.[^,\s]*/g, 'earshot-bearer.…')}", without "${AUDIO_PROTOCOL}", the one this endpoint speaks: offer "${AUDIO_PROTOCOL}" (beside earshot-bearer.<token> if you send the token that way), or none.`);
      }
      const { entry } = target(req as AudioRequest);
      try {
        core.listeners.checkRoom(entry.peer);
      } catch (e) {
        void reply.header('Retry-After', String(RETRY_AFTER_SECONDS));
        throw e;
      }
    },
    handler: async (_req: FastifyRequest, reply: FastifyReply) => {
      reply.header('upgrade', 'websocket');
      throw errors.BAD_REQUEST.withStatus(426, 'GET /peers/:peer/audio streams audio over a WebSocket: connect with a WebSocket client (ws:// or wss://), see docs/http-api.md.');
    },
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      let t: ReturnType<typeof target>;
      let release: () => void;
      try {
        t = target(req as AudioRequest);
        release = core.listeners.takeSocketSlot(t.entry.peer);
      } catch (e) {
        // The peer ended, or its last listener slot went, between the check and the upgrade.
        socket.close(1013, (e as Error).message.slice(0, 120));
        return;
      }
      const { entry, branch, format } = t;
      const stream = new AudioSocketStream({
        session: entry.session.id,
        peer: entry.peer,
        room: entry.room,
        pipeline: entry.pipelineName,
        branch: branch.name,
        sampleFormat: format,
        expected: { sampleRate: branch.sampleRate, channels: branch.channels },
        // Joining mid-speech: its speech-start comes right after start, where its audio begins, and its turns end where the branch's do.
        speaking: entry.pipeline.speakingState(branch.name),
      });
      const log = req.log.child({ peer: entry.peer, branch: branch.name });
      const listener: PcmListener = {
        sampleFormat: format,
        write: (frame, pcm16, complete) => stream.write(frame, pcm16, complete),
        end: (reason) => {
          stream.end(reason);
          return closeWhenDrained(socket, stream);
        },
      };
      const detach = entry.pipeline.addListener(listener, branch.name);
      stream.attach(socket);
      log.info({ format }, 'audio listener connected');
      const heartbeat = watchAnswers(socket, core.listeners.timeoutMs, () => log.info({ timeoutMs: core.listeners.timeoutMs }, 'audio listener answered no ping; closing its socket'));
      // The protocol is one way: what the client sends is ignored (ws bounds its size).
      socket.on('close', () => {
        clearInterval(heartbeat);
        release();
        detach();
        stream.detach();
        const c = stream.counters;
        log.info({ sentFrames: c.sentFrames, droppedFrames: c.droppedFrames }, 'audio listener disconnected');
      });
    },
  });
}
