/**
 * What a WHIP client hears on its data channel, and where what it says goes
 * (docs/data-channel.md is the contract). Out: the stream's speaking turns,
 * a level reading every `LEVEL_INTERVAL_MS`, recordings starting, stopping
 * and failing, processors' events (`context.emit`) and answers
 * (`context.send`). In: each accepted client message is published on
 * `events$` as `client-message` (processor `earshot`) and given to the
 * stream's processors (`context.messages$`).
 *
 * Pacing, batching, size and rate limits are the channel's
 * (rtc/data-channel.ts); this file decides what the messages say and which
 * may be dropped first when the queue is full (levels, events and processor
 * messages; never state changes while there is anything else to drop).
 */
import { performance } from 'node:perf_hooks';
import { Subject, type Observable } from 'rxjs';
import type { PeerPipeline, RecordingChange } from '../pipeline/peer-pipeline.js';
import type { ClientChannel } from '../rtc/data-channel.js';
import type { PeerSession } from '../rtc/peer-session.js';
import type { ProcessorClientLink, ProcessorEvent } from '../sinks/processors.js';

/**
 * A client's data channel message on `events$`. These stay in the process
 * that runs the session: they are not sent to `GET /events` nor, with
 * `--processes N`, to the front process (client input, up to 50 messages of
 * 16 KiB a second per peer, must not be amplified to every operator stream).
 */
export function isClientMessage(e: ProcessorEvent): boolean {
  return e.processor === 'earshot' && e.event === 'client-message';
}

/** How often a level reading is sent while the session is connected and the channel open. */
export const LEVEL_INTERVAL_MS = 200;

export interface ClientFeedOptions {
  session: PeerSession;
  peer: string;
  room: string;
  pipeline: string;
  /** Where accepted client messages are published (`client-message`). */
  events$: Subject<ProcessorEvent>;
  /** The observable as handed to processors: a throwing subscriber is reported through `onError`. */
  guard<T>(source: Observable<T>, onError: (error: Error) => void): Observable<T>;
}

export class ClientFeed implements ProcessorClientLink {
  readonly #o: ClientFeedOptions;
  readonly #channel: ClientChannel;
  readonly #messages = new Subject<unknown>();
  #pipeline: PeerPipeline | undefined;
  #levelTimer: NodeJS.Timeout | undefined;

  constructor(options: ClientFeedOptions) {
    this.#o = options;
    this.#channel = options.session.channel;
  }

  /** The stream's pipeline: its speaking turns and levels are sent from now on. */
  attach(pipeline: PeerPipeline): void {
    this.#pipeline = pipeline;
    if (this.#channel.state === 'none') return;
    pipeline.stats.onSpeakingChange = (speaking, at) => this.#channel.put({ type: 'speaking', speaking, at });
    this.#startLevels();
  }

  /** The channel opened: a first message with the stream's ids, then levels every `LEVEL_INTERVAL_MS`. */
  opened(): void {
    const o = this.#o;
    this.#channel.put({ type: 'hello', peer: o.peer, room: o.room, session: o.session.id, pipeline: o.pipeline, at: this.#at() });
    this.#startLevels();
  }

  #startLevels(): void {
    if (this.#levelTimer || !this.#pipeline || this.#channel.state !== 'open') return;
    this.#levelTimer = setInterval(() => this.#level(), LEVEL_INTERVAL_MS);
    this.#levelTimer.unref();
  }

  /** A message the client sent, accepted by the channel's limits. */
  received(data: unknown): void {
    const { session, peer, room } = this.#o;
    this.#o.events$.next({ peerId: peer, roomId: room, sessionId: session.id, processor: 'earshot', event: 'client-message', data, at: Date.now() });
    this.#messages.next(data);
  }

  recording(change: RecordingChange): void {
    const r = change.recording;
    this.#channel.put({
      type: 'recording',
      state: change.state,
      recording: r.name,
      branch: change.branch,
      ...(change.state === 'started' ? {} : { seconds: r.seconds }),
      ...(change.state === 'failed' ? { code: r.code ?? null, error: r.error ?? null } : {}),
      at: this.#at(),
    });
  }

  /** An event a processor emitted on this stream (`context.emit`); earshot's own are not forwarded. */
  processorEvent(e: ProcessorEvent): void {
    if (e.processor === 'earshot') return;
    this.#channel.put({ type: 'event', processor: e.processor, event: e.event, data: e.data ?? null, at: this.#at() }, { droppable: true });
  }

  messages$(_processor: string, onError: (error: Error) => void): Observable<unknown> {
    return this.#o.guard(this.#messages.asObservable(), onError);
  }

  /** False, among the channel's other refusals, for `data` JSON has no form for (undefined, a function, a symbol). */
  send(processor: string, data: unknown): boolean {
    return this.#channel.put({ type: 'message', processor, data, at: this.#at() }, { droppable: true }) === 'queued';
  }

  /** The stream ended: no more levels, and processors' `messages$` complete. */
  close(): void {
    clearInterval(this.#levelTimer);
    this.#levelTimer = undefined;
    if (this.#pipeline) this.#pipeline.stats.onSpeakingChange = undefined;
    this.#messages.complete();
  }

  #level(): void {
    if (this.#channel.state !== 'open') {
      // The client closed its channel; the stream may go on without it.
      if (this.#channel.state === 'closed') clearInterval(this.#levelTimer);
      return;
    }
    if (this.#o.session.state !== 'connected' || !this.#pipeline) return;
    const l = this.#pipeline.stats.level(performance.now(), LEVEL_INTERVAL_MS);
    // One reading waits at most: a newer one replaces it.
    this.#channel.put({ type: 'level', rmsDbfs: l.rmsDbfs, peakDbfs: l.peakDbfs, vad: l.vad, at: l.mediaMs }, { key: 'level', droppable: true });
  }

  /** The stream's media time now (ms), as far as the measured branch has got. */
  #at(): number {
    return this.#pipeline?.stats.mediaMs ?? 0;
  }
}
