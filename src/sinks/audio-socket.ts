/**
 * One branch's processed audio over a WebSocket, in earshot's framing (see
 * docs/websocket.md): a JSON `start` message, then one binary message of raw
 * little-endian PCM per frame, JSON `speech-start` / `speech-end` events in
 * order with the audio, and a JSON `end` message before the socket closes.
 * The `websocket` sink (websocket-sink.ts, which connects and reconnects) and
 * `GET /peers/:peer/audio` (a socket a client opened) both speak through it.
 *
 * Nothing here ever waits: `write` copies the frame into a bounded queue and
 * sends what the socket takes without buffering more than `HIGH_WATER_BYTES`
 * of its own; a slow or absent reader fills the queue, and then the oldest
 * frame is dropped and counted. The stream, its other sinks and every other
 * stream go on.
 *
 * Silence waits as its length. A pause reaches the stream when the sender
 * resumes, all at once, as frames of zeros up to a second long (an hour of
 * them, with a long media timeout): consecutive frames of zeros join one run
 * in the queue, holding no samples and taking one place, and the run is sent
 * from a block of zeros a second at a time, as the socket takes it. So a
 * pause is sent whole, at its media time, whatever its length.
 */
import { endianness } from 'node:os';
import type { AudioFrame, SampleFormat } from '../media/frames.js';
import { quantizeS16 } from '../media/pcm16.js';
import { isSilence, sharedZerosF32, sharedZerosS16 } from '../media/shared-zeros.js';
import { SpeakingTracker, type SpeakingState } from './speaking.js';

/** Bytes the socket may hold unsent before frames wait in the queue instead (~2 s of 16 kHz s16). */
export const HIGH_WATER_BYTES = 64 * 1024;
/** Frames kept by default while the reader is slow or away: 5 s of 20 ms frames. */
export const DEFAULT_QUEUE_FRAMES = 250;
const BIG_ENDIAN = endianness() === 'BE';

/**
 * What the stream needs of a socket: a `ws` WebSocket fits (said structurally,
 * so that earshot's published types do not depend on those of `ws`).
 */
export interface AudioSocket {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes handed to the socket and not yet written to the network. */
  readonly bufferedAmount: number;
  send(data: string | Buffer, options?: { binary?: boolean }, callback?: (error?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  once(event: 'close', listener: () => void): unknown;
}

/** Who the audio is: the `start` message's fields. */
export interface AudioSocketIdentity {
  session: string;
  peer: string;
  room: string;
  pipeline: string;
  branch: string;
}

export interface AudioSocketOptions extends AudioSocketIdentity {
  /** Encoding of the binary messages. */
  sampleFormat: SampleFormat;
  /** Bound of the queue, in frames (default 250); a run of frames of zeros waits as its length and takes one place. */
  queueFrames?: number;
  /** The branch's format before its first frame (for a `start` sent when no audio came). */
  expected: { sampleRate: number; channels: number };
  /** Called once when the oldest frames start being dropped after a spell without drops. */
  onDropping?(): void;
  /**
   * Where the branch's speaking verdict stands as the stream is joined (a
   * listener that connects mid-stream): its turns then start and end at the
   * frames the branch's own (the statistics') do, and a connection that
   * joins mid-speech gets its `speech-start` right after `start`, rather than
   * 60 ms later. Default: not speaking.
   */
  speaking?: SpeakingState;
}

/** The `start` message. */
export interface StartMessage extends AudioSocketIdentity {
  type: 'start';
  format: { sampleRate: number; channels: number; sampleFormat: SampleFormat; frameMs: number };
  /** Media time (seconds since the stream started) of the first audio that follows. */
  at: number;
  /** Set when this connection continues an earlier one of the same sink: the media time audio resumes at. */
  resumedAt?: number;
}

export interface AudioSocketCounters {
  /** Frames of the branch offered to this socket stream. */
  frames: number;
  /** Frames handed to a socket. */
  sentFrames: number;
  /** Frames dropped from a full queue. */
  droppedFrames: number;
  /** Frames waiting now. */
  queuedFrames: number;
  /** Bytes of audio handed to a socket. */
  bytesSent: number;
}

/**
 * What waits to be sent: a frame's bytes; a run of frames of zeros by its
 * length (`samples` per channel left to send from `position`, the run's
 * `frames` counted when it is all sent or dropped); a text message (a speech
 * event's `speech` says whether the talker speaks after it).
 */
type Item = { audio: Buffer; position: number; samples: number } | { silence: number; position: number; frames: number } | { text: string; speech?: boolean };

/** Most of a run of silence sent in one message: a second, as the longest frames of a pause are. */
const SILENCE_MESSAGE_SECONDS = 1;

/**
 * `samples` zeros in the wire encoding: the bytes of a view of this thread's
 * shared zeros, never written (views of them may wait in a socket). A `ws`
 * client masks what it sends into a copy when given a Buffer (it masks in
 * place only data it converted itself); the tests send a long pause through
 * such a client and get zeros throughout.
 */
function zeroBytes(samples: number, sampleFormat: SampleFormat): Buffer {
  const zeros = sampleFormat === 's16' ? sharedZerosS16(samples) : sharedZerosF32(samples);
  return Buffer.from(zeros.buffer, zeros.byteOffset, zeros.byteLength);
}

export class AudioSocketStream {
  readonly #o: AudioSocketOptions;
  readonly #limit: number;
  /** Items from `#head` on wait to be sent (an array with a moving head: no shift() per frame). */
  #queue: Item[] = [];
  #head = 0;
  /** Frames waiting (a run of silence counts its frames). */
  #queuedAudio = 0;
  /** Audio items waiting, a run of silence as one: what `queueFrames` bounds. */
  #queuedItems = 0;
  #socket: AudioSocket | undefined;
  /** The `start` of the current socket has been sent. */
  #started = false;
  #connections = 0;
  /** What the first frames said: rate, channels, duration (the longer of the first two). */
  #format: { sampleRate: number; channels: number; frameMs: number } | undefined;
  /** Media position (samples) just past the last frame written. */
  #nextPosition = 0;
  #dropping = false;
  #ended = false;
  readonly #speaking = new SpeakingTracker();
  /** A turn's start or end decided on a frame this reader skipped (f32, no floats): said with the next frame it gets. */
  #deferred: 'start' | 'end' | undefined;
  /** Whether the talker was speaking as of the last speech event that left the queue (sent, or dropped with its audio). */
  #speakingAtHead = false;
  readonly counters: AudioSocketCounters = { frames: 0, sentFrames: 0, droppedFrames: 0, queuedFrames: 0, bytesSent: 0 };

  constructor(options: AudioSocketOptions) {
    this.#o = options;
    this.#limit = options.queueFrames ?? DEFAULT_QUEUE_FRAMES;
    if (options.speaking) {
      this.#speaking.resume(options.speaking);
      this.#speakingAtHead = options.speaking.speaking === true;
    }
  }

  get sampleFormat(): SampleFormat {
    return this.#o.sampleFormat;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * One frame of the branch. `pcm16` is the worker's 16-bit copy when it made
   * one; a frame whose floats were left out (`complete` false) has that copy as
   * its data and is skipped by an f32 stream. The samples are copied: the
   * frame's buffer is reused after this call.
   */
  write(frame: AudioFrame, pcm16: Int16Array | undefined, complete = true): void {
    if (this.#ended) return;
    const samples = frame.data.length / frame.channels;
    // Its speech flag counts all the same, so that turns start and end at the frames every other reader of
    // the branch sees; a change decided on it is said with the first audio this reader gets (not before
    // the audio it has: a socket's events never precede its start).
    if (this.#o.sampleFormat === 'f32' && !complete) {
      const change = this.#speakingChange(frame);
      // Changes alternate: a second one undoes the first before it was said.
      if (change) this.#deferred = this.#deferred === undefined ? change : undefined;
      return;
    }
    // The longer of the first two frames: a resampled branch's first frame is short by the filter's delay.
    if (this.counters.frames < 2) {
      const frameMs = Math.round((samples / frame.sampleRate) * 1e5) / 100;
      if (!this.#format) this.#format = { sampleRate: frame.sampleRate, channels: frame.channels, frameMs };
      else this.#format.frameMs = Math.max(this.#format.frameMs, frameMs);
    }
    this.counters.frames++;
    if (this.#deferred) {
      this.#pushSpeech(this.#deferred, frame);
      this.#deferred = undefined;
    }
    const change = this.#speakingChange(frame);
    if (change) this.#pushSpeech(change, frame);
    this.#nextPosition = frame.position + samples;
    if (isSilence(frame.peak, frame.data)) this.#pushSilence(frame.position, samples);
    else this.#push({ audio: this.#bytes(frame, pcm16), position: frame.position, samples });
    this.flush();
  }

  /** The frame's speech flag (or VAD) through the debounce: where a turn starts or ends. */
  #speakingChange(frame: AudioFrame): 'start' | 'end' | undefined {
    if (frame.speech === undefined && frame.vad === undefined) return undefined;
    return this.#speaking.update(frame.speech ?? (frame.vad ?? 0) >= 0.5);
  }

  /** Queues a speech event at `frame`'s position. */
  #pushSpeech(change: 'start' | 'end', frame: AudioFrame): void {
    this.#push({ text: JSON.stringify({ type: change === 'start' ? 'speech-start' : 'speech-end', at: seconds(frame.position, frame.sampleRate) }), speech: change === 'start' });
  }

  /**
   * Sends through `socket` from now on (open): a `start` message, then the
   * queue. A socket after the first is a reconnection (`resumedAt`).
   */
  attach(socket: AudioSocket): void {
    this.#socket = socket;
    this.#started = false;
    this.#connections++;
    this.flush();
  }

  /** The socket is gone: frames wait in the queue for the next one. */
  detach(): void {
    this.#socket = undefined;
    this.#started = false;
  }

  /**
   * The stream ended: queues the `end` message (nothing is written after it).
   * `flush` then sends it when the queue before it is out.
   */
  end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    // A turn still open when the stream ends closes where its audio does: events come in pairs.
    if (this.#speaking.speaking === true) {
      this.#speaking.speaking = false;
      const rate = this.#format?.sampleRate ?? this.#o.expected.sampleRate;
      this.#push({ text: JSON.stringify({ type: 'speech-end', at: seconds(this.#nextPosition, rate) }), speech: false });
    }
    const c = this.counters;
    this.#queue.push({ text: JSON.stringify({ type: 'end', reason, frames: c.frames, sentFrames: c.sentFrames + this.#queuedAudio, droppedFrames: c.droppedFrames }) });
    this.flush();
  }

  /**
   * Nothing more will be sent (the stream ended and its socket closed, or never opened): every
   * frame still waiting is counted as dropped, so that `frames` = `sentFrames` + `droppedFrames`
   * in the end.
   */
  abandon(): void {
    this.counters.droppedFrames += this.#queuedAudio;
    this.#queue = [];
    this.#head = 0;
    this.#queuedAudio = 0;
    this.#queuedItems = 0;
    this.counters.queuedFrames = 0;
  }

  /** Nothing is left to send (after `end`: the `end` message went out). */
  get drained(): boolean {
    return this.#head >= this.#queue.length;
  }

  /** Sends what waits, as long as the socket takes it without buffering more than HIGH_WATER_BYTES. */
  flush(): void {
    const socket = this.#socket;
    if (!socket || socket.readyState !== 1 /* OPEN */) return;
    if (!this.#started) {
      // A start needs the format: from the first two frames (a resampled branch's first is short), the
      // first if the stream ends after it, or the expected one when it ends without audio.
      if (this.counters.frames < 2 && !this.#ended) return;
      const start = this.#startMessage();
      socket.send(JSON.stringify(start));
      this.#started = true;
      // Mid-speech (the speech-start went out on an earlier connection, or was dropped with its audio):
      // this connection hears it start where its audio does, so that its first speech-end has a pair,
      // as a listener joining mid-speech gets one.
      if (this.#speakingAtHead) socket.send(JSON.stringify({ type: 'speech-start', at: start.at }));
    }
    while (this.#head < this.#queue.length && socket.bufferedAmount < HIGH_WATER_BYTES) {
      const item = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as Item;
      if ('text' in item) {
        if (item.speech !== undefined) this.#speakingAtHead = item.speech;
        socket.send(item.text);
      } else if ('silence' in item) {
        // A run of silence goes a second at a time; it leaves the queue with its last part.
        const f = this.#format!;
        const samples = Math.min(item.silence, f.sampleRate * SILENCE_MESSAGE_SECONDS);
        const data = zeroBytes(samples * f.channels, this.#o.sampleFormat);
        item.silence -= samples;
        item.position += samples;
        if (item.silence > 0) this.#queue[--this.#head] = item;
        else {
          this.#queuedAudio -= item.frames;
          this.#queuedItems--;
          this.counters.sentFrames += item.frames;
        }
        this.counters.bytesSent += data.length;
        socket.send(data, { binary: true }, this.#afterSend);
      } else {
        this.#queuedAudio--;
        this.#queuedItems--;
        this.counters.sentFrames++;
        this.counters.bytesSent += item.audio.length;
        // The callback fires when the socket took the bytes: room for more.
        socket.send(item.audio, { binary: true }, this.#afterSend);
      }
    }
    this.#compact();
    this.counters.queuedFrames = this.#queuedAudio;
  }

  readonly #afterSend = (error?: Error) => {
    if (!error && this.#head < this.#queue.length) this.flush();
  };

  #startMessage(): StartMessage {
    const f = this.#format ?? { ...this.#o.expected, frameMs: 20 };
    const { session, peer, room, pipeline, branch, sampleFormat } = this.#o;
    // The first audio that follows: the head of the queue, or the next frame to come.
    const next = this.#queue.slice(this.#head).find((i): i is Exclude<Item, { text: string }> => !('text' in i));
    const at = seconds(next ? next.position : this.#nextPosition, f.sampleRate);
    return {
      type: 'start',
      session,
      peer,
      room,
      pipeline,
      branch,
      format: { sampleRate: f.sampleRate, channels: f.channels, sampleFormat, frameMs: f.frameMs },
      at,
      ...(this.#connections > 1 ? { resumedAt: at } : {}),
    };
  }

  #push(item: Item): void {
    if (!('text' in item)) {
      if (this.#queuedItems >= this.#limit) this.#dropOldest();
      this.#queuedAudio++;
      this.#queuedItems++;
    }
    this.#queue.push(item);
    this.counters.queuedFrames = this.#queuedAudio;
  }

  /** A frame of zeros: the run of silence last in the queue grows by it if it ends where the frame starts, else a new run. */
  #pushSilence(position: number, samples: number): void {
    const last = this.#head < this.#queue.length ? this.#queue[this.#queue.length - 1] : undefined;
    if (last && 'silence' in last && last.position + last.silence === position) {
      last.silence += samples;
      last.frames++;
      this.#queuedAudio++;
      this.counters.queuedFrames = this.#queuedAudio;
    } else {
      this.#push({ silence: samples, position, frames: 1 });
    }
  }

  /**
   * Drops the oldest waiting frame, and the speech events queued before it
   * (they mark times within the audio that is gone): the queue stays bounded
   * however long the reader is away.
   */
  #dropOldest(): void {
    while (this.#head < this.#queue.length) {
      const item = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as Item;
      if ('text' in item) {
        if (item.speech !== undefined) this.#speakingAtHead = item.speech;
        continue;
      }
      // A run of silence goes whole, with every frame of it (some of its seconds may have been sent).
      const frames = 'silence' in item ? item.frames : 1;
      this.#queuedAudio -= frames;
      this.#queuedItems--;
      this.counters.droppedFrames += frames;
      if (!this.#dropping) {
        this.#dropping = true;
        this.#o.onDropping?.();
      }
      break;
    }
    this.#compact();
  }

  #compact(): void {
    if (this.#head >= this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      // Drained: the next drop starts a new episode.
      this.#dropping = false;
    } else if (this.#head > 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The frame's samples in the wire encoding, copied into a Buffer of their own. */
  #bytes(frame: AudioFrame, pcm16: Int16Array | undefined): Buffer {
    const data = frame.data;
    let out: Buffer;
    if (this.#o.sampleFormat === 's16') {
      const src = pcm16 ?? (data instanceof Int16Array ? data : undefined);
      out = Buffer.allocUnsafe(data.length * 2);
      if (src) out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
      else quantizeS16(data as Float32Array, new Int16Array(out.buffer, out.byteOffset, data.length));
      if (BIG_ENDIAN) out.swap16();
    } else {
      out = Buffer.allocUnsafe(data.length * 4);
      const dst = new Float32Array(out.buffer, out.byteOffset, data.length);
      if (data instanceof Float32Array) dst.set(data);
      else for (let i = 0; i < data.length; i++) dst[i] = data[i] / 32768;
      if (BIG_ENDIAN) out.swap32();
    }
    return out;
  }
}

/** How long an ended stream's socket may take to send its queue and `end` message before it is cut. */
export const END_GRACE_MS = 5000;

/**
 * Closes `socket` (code 1000) once `stream` has sent everything, its `end`
 * message included, or cuts it after `graceMs`; resolves when it is closed.
 * Call after `stream.end()`.
 */
export function closeWhenDrained(socket: AudioSocket, stream: AudioSocketStream, graceMs = END_GRACE_MS): Promise<void> {
  return new Promise<void>((resolve) => {
    if (socket.readyState > 1 /* CLOSING, CLOSED */) return resolve();
    const done = () => {
      clearInterval(poll);
      clearTimeout(cut);
      resolve();
    };
    const poll = setInterval(() => {
      stream.flush();
      if (socket.readyState === 1 && stream.drained && socket.bufferedAmount === 0) socket.close(1000, 'stream ended');
      if (socket.readyState === 3) done();
    }, 20);
    const cut = setTimeout(() => {
      socket.terminate();
      done();
    }, graceMs);
    cut.unref();
    socket.once('close', done);
  });
}

function seconds(position: number, sampleRate: number): number {
  return Math.round((position / sampleRate) * 1e6) / 1e6;
}
