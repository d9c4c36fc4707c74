/**
 * The `websocket` sink: a branch's processed audio, live, to a WebSocket
 * server (speech recognition, a voice agent). It connects when the stream
 * starts, with the pipeline's headers (`${NAME}` replaced by environment
 * variables), speaks earshot's framing (audio-socket.ts, docs/websocket.md)
 * and reconnects with exponential backoff when the server is down or the
 * connection drops: 0.5 s, doubling to 10 s by default, back to the start
 * after a connection that opened. While it is away, frames wait in the
 * bounded queue (drop-oldest, counted); a reconnection starts with a new
 * `start` message whose `resumedAt` says where the audio resumes.
 *
 * When the stream ends the sink sends what is queued and the `end` message,
 * and closes; a sink waiting to reconnect tries once more at once. It gives
 * that `END_GRACE_MS` (5 s) at most and never holds up the session's end or
 * its recordings (they do not await `end()`; only server shutdown does, so the
 * message leaves before the process does). Frames that never went out are
 * counted as dropped.
 *
 * Header values are secrets: they go into the connection request and nowhere
 * else (statistics show the URL without its query or credentials).
 */
import { WebSocket } from 'ws';
import { errors } from '../errors.js';
import type { SampleFormat } from '../media/frames.js';
import { AudioSocketStream, closeWhenDrained, DEFAULT_QUEUE_FRAMES, type AudioSocketIdentity } from './audio-socket.js';
import type { AudioFrame } from '../media/frames.js';
import { ENV_REFERENCE, sinkVariableAllowed } from './sink-environment.js';

/** Time for the connection (TCP, TLS, HTTP upgrade) to open; past it, the attempt has failed and the next waits its turn. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The largest message read from the server (and ignored). A voice agent may answer with speech of
 * its own, seconds of PCM in one message: a smaller limit closed such a connection (1009) and lost
 * audio at each reconnection. Larger messages still close it, so that one cannot fill the memory.
 */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/** A `websocket` sink as the pipeline declares it. */
export interface WebSocketSinkConfig {
  url: string;
  headers?: Record<string, string>;
  format?: SampleFormat;
  queueFrames?: number;
  reconnectDelayMs?: number;
  reconnectMaxDelayMs?: number;
}

export interface WebSocketSinkOptions extends AudioSocketIdentity {
  config: WebSocketSinkConfig;
  /** Header values with their environment variables filled in (`resolveHeaders`). */
  headers: Record<string, string>;
  expected: { sampleRate: number; channels: number };
  /** Things an operator should hear about once, not per frame: outages, recoveries, drops. */
  onEvent?(type: 'websocket-unavailable' | 'websocket-reconnected' | 'websocket-dropping', level: 'info' | 'warn', message: string, data: Record<string, unknown>): void;
}

export type WebSocketSinkState = 'connecting' | 'open' | 'waiting' | 'closing' | 'closed';

/** A websocket sink in the peer's statistics (`GET /stats/:peer` → `websockets`). */
export interface WebSocketSinkStats {
  branch: string;
  /** The server, without query string or credentials. */
  url: string;
  /** `connecting`, `open`, `waiting` (to reconnect), `closing` (sending the end), `closed`. */
  state: WebSocketSinkState;
  sampleFormat: SampleFormat;
  /** Frames of the branch the sink was given. */
  frames: number;
  sentFrames: number;
  droppedFrames: number;
  queuedFrames: number;
  bytesSent: number;
  /** Connection attempts after the first. */
  reconnects: number;
  /** Connections that opened. */
  connections: number;
  /** Why the last connection failed or closed, if it did. */
  lastError: string | null;
}

/**
 * The header values with `${NAME}` replaced by `env.NAME`. A variable sink
 * headers may not read (sink-environment.ts) is `EARSHOT_SINK_ENV_NOT_ALLOWED`,
 * a missing one `EARSHOT_SINK_ENV_MISSING`, each naming the variable and the
 * header's place in the pipeline (never a value).
 */
export function resolveHeaders(headers: Record<string, string> | undefined, where: { pipeline: string; path: string }, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    out[name] = value.replace(ENV_REFERENCE, (_, variable: string) => {
      if (!sinkVariableAllowed(variable, env)) throw errors.SINK_ENV_NOT_ALLOWED(where.pipeline, `${where.path}/headers/${name}`, variable);
      const v = env[variable];
      if (v === undefined) throw errors.SINK_ENV_MISSING(where.pipeline, `${where.path}/headers/${name}`, variable);
      return v;
    });
  }
  return out;
}

/** `wss://user:pw@asr.example/v1?key=…` → `wss://asr.example/v1`: what statistics and logs may show. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

export class WebSocketSink {
  readonly stream: AudioSocketStream;
  readonly #o: WebSocketSinkOptions;
  readonly #url: string;
  #socket: WebSocket | undefined;
  #state: WebSocketSinkState = 'connecting';
  #timer: NodeJS.Timeout | undefined;
  #delay: number;
  #reconnects = 0;
  #connections = 0;
  #lastError: string | null = null;
  /** The last connection failed and the outage was reported (once per outage). */
  #outage = false;
  #ending: Promise<void> | undefined;
  /**
   * `end()` has begun (set before `#ending`, which is assigned once end's synchronous part has run):
   * its one last connection attempt failing schedules no other.
   */
  #finishing = false;

  constructor(options: WebSocketSinkOptions) {
    this.#o = options;
    this.#url = redactUrl(options.config.url);
    this.#delay = options.config.reconnectDelayMs ?? 500;
    const { session, peer, room, pipeline, branch, expected } = options;
    // Only what the start message says: the headers (secrets) stay here.
    this.stream = new AudioSocketStream({
      session,
      peer,
      room,
      pipeline,
      branch,
      expected,
      sampleFormat: options.config.format ?? 's16',
      queueFrames: options.config.queueFrames ?? DEFAULT_QUEUE_FRAMES,
      onDropping: () =>
        this.#event('websocket-dropping', 'warn', 'websocket sink queue full: dropping the oldest audio until the server takes it again', { state: this.#state }),
    });
    this.#connect();
  }

  get sampleFormat(): SampleFormat {
    return this.stream.sampleFormat;
  }

  write(frame: AudioFrame, pcm16: Int16Array | undefined, complete: boolean): void {
    this.stream.write(frame, pcm16, complete);
  }

  stats(): WebSocketSinkStats {
    const c = this.stream.counters;
    return {
      branch: this.#o.branch,
      url: this.#url,
      state: this.#state,
      sampleFormat: this.stream.sampleFormat,
      frames: c.frames,
      sentFrames: c.sentFrames,
      droppedFrames: c.droppedFrames,
      queuedFrames: c.queuedFrames,
      bytesSent: c.bytesSent,
      reconnects: this.#reconnects,
      connections: this.#connections,
      lastError: this.#lastError,
    };
  }

  /**
   * The stream ended: sends the queue and the `end` message, then closes.
   * Resolves when done, or after END_GRACE_MS (the socket is then cut). A
   * sink waiting to reconnect tries once more now, within the same grace,
   * rather than after its backoff. What never went out is counted as dropped.
   */
  end(reason: string): Promise<void> {
    this.#ending ??= (async () => {
      this.#finishing = true;
      clearTimeout(this.#timer);
      this.stream.end(reason);
      if (!this.#socket && this.#state === 'waiting') {
        this.#reconnects++;
        this.#connect();
      }
      const socket = this.#socket;
      if (socket) {
        this.#state = 'closing';
        // A socket still connecting gets the start, the queue and the end once it opens, within the same grace.
        await closeWhenDrained(socket, this.stream);
      }
      // Counted in droppedFrames (and earshot_websocket_frames_dropped_total), as the queue's own drops are.
      this.stream.abandon();
      this.#state = 'closed';
    })();
    return this.#ending;
  }

  #connect(): void {
    this.#state = 'connecting';
    let socket: WebSocket;
    try {
      // What the server sends is ignored; a message past MAX_REPLY_BYTES is refused rather than buffered.
      socket = new WebSocket(this.#o.config.url, { headers: this.#o.headers, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, perMessageDeflate: false, maxPayload: MAX_REPLY_BYTES });
    } catch (e) {
      this.#failed((e as Error).message);
      return;
    }
    this.#socket = socket;
    socket.on('open', () => {
      this.#connections++;
      this.#state = this.#ending ? 'closing' : 'open';
      this.#delay = this.#o.config.reconnectDelayMs ?? 500;
      if (this.#outage) {
        this.#outage = false;
        this.#event('websocket-reconnected', 'info', 'websocket sink connected again', { reconnects: this.#reconnects });
      }
      this.stream.attach(socket);
    });
    let error: string | undefined;
    socket.on('error', (e) => {
      error ??= e.message;
    });
    // Anything the server says is ignored: the protocol is one way.
    socket.on('close', (code, reason) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.stream.detach();
      if (this.#ending) return;
      this.#failed(error ?? `closed by the server (${code}${reason.length ? ` ${reason.toString().slice(0, 100)}` : ''})`);
    });
  }

  /** Waits, then tries again; the wait doubles up to the maximum. */
  #failed(why: string): void {
    this.#lastError = why;
    // The last attempt, made by end(), failed at once: no more.
    if (this.#finishing) return;
    this.#state = 'waiting';
    if (!this.#outage) {
      this.#outage = true;
      this.#event('websocket-unavailable', 'warn', 'websocket sink cannot reach its server; audio waits in its queue and it retries', { error: why });
    }
    const delay = this.#delay;
    this.#delay = Math.min(delay * 2, this.#o.config.reconnectMaxDelayMs ?? 10_000);
    this.#timer = setTimeout(() => {
      this.#reconnects++;
      this.#connect();
    }, delay);
    this.#timer.unref();
  }

  #event(type: Parameters<NonNullable<WebSocketSinkOptions['onEvent']>>[0], level: 'info' | 'warn', message: string, data: Record<string, unknown>): void {
    try {
      this.#o.onEvent?.(type, level, message, { branch: this.#o.branch, url: this.#url, ...data });
    } catch {
      // a listener's failure is not the sink's
    }
  }
}
