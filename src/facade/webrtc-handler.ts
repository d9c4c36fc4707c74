/**
 * The WebRTCHandler API: a `WebRTCHandler` for programs that do their own
 * signaling. It runs the same core as the server (worker pool, pipeline,
 * recorder, statistics) without HTTP; its methods are the camelCase forms of
 * `create_peer_connection`, `start_audio_recording` and the rest
 * (docs/library.md, "Your own signaling: the WebRTCHandler API").
 */
import { readdirSync } from 'node:fs';
import { isAbsolute, join, sep } from 'node:path';
import pino from 'pino';
import { Subject, tap, type Observable } from 'rxjs';
import type { RTCIceServer, RTCPeerConnection } from 'werift';
import { packageRoot } from '../package-root.js';
import { errors, isEarshotError } from '../errors.js';
import { loadPipelineFileSync, parsePipeline, type Pipeline } from '../pipeline/pipeline.js';
import { asPipelineDocument, isBuiltPipeline, isPipelineName, type PipelineSource } from '../pipeline/pipeline-builder.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { EarshotCore, type ServerStats, type StreamHandle } from '../core/earshot-core.js';
import type { PeerStatsSnapshot } from '../core/peer-registry.js';
import { defaultProcessors, ProcessorRegistry, type ProcessorEvent } from '../sinks/processors.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import type { AudioFrame } from '../pipeline/operators.js';
import { checkCoreOptions } from '../core/core-options.js';
import type { AdmissionOptions } from '../core/admission.js';
import { failOption } from '../option-checks.js';
import { checkIpAddresses, checkNonEmptyString, checkOptionNames, checkOneOf, checkPipelineOption, checkPoolOptions, checkPortRange, LOG_LEVELS, type LogLevel } from '../core/option-checks.js';
import { checkIceServers } from '../rtc/ice-servers.js';
import type { AudioProcessor } from './audio-processor.js';

export interface WebRTCHandlerOptions {
  /**
   * Pipeline: the name of a bundled one (`"default"`, `"voice-agent"`, …), a
   * JSON file path, a pipeline document or definition (stage operators
   * allowed), or a built `Pipeline`.
   * Default: `pipelines/handler.json` — audio passed through, a stats sink, and
   * a record sink that waits for `startAudioRecording` (autoStart false).
   */
  pipeline?: PipelineSource;
  /** Directory for recordings started without an absolute path. Default `recordings`. */
  recordingsDir?: string;
  /** DSP worker threads, 1 to 4 × the cores. Default: one per CPU the process may use (its affinity, or a container's CPU limit where lower). */
  threads?: number;
  /** ICE host candidates to announce (e.g. `['127.0.0.1']` for loopback). Default: every non-loopback interface. */
  iceHostAddresses?: string[];
  /** UDP port range for media. Default: any free port. */
  icePortRange?: [number, number];
  /** STUN/TURN servers. Default none (no outside host is contacted). */
  iceServers?: RTCIceServer[];
  /** End a stream when no RTP arrives for this long after connecting. Default 10000 ms. */
  mediaTimeoutMs?: number;
  /** End a stream that has not connected in this time. Default 15000 ms. */
  connectTimeoutMs?: number;
  /** Log level: fatal, error, warn (default), info, debug, trace, silent. */
  logLevel?: LogLevel;
  /**
   * Admission by measured load, as `createServer`'s: a new peer connection is
   * refused (`EARSHOT_OVERLOADED`) while the workers, the main thread, the
   * frame queues or the frame latency are past their limits, so the streams
   * already running stay clean. `false` admits every peer. Default: on, with
   * the defaults of `AdmissionOptions`.
   */
  admission?: AdmissionOptions | false;
}

/** A frame a registered custom processor produced, with where it came from. */
export interface ProcessedAudio {
  peerId: string;
  processor: string;
  frame: AudioFrame;
}

/**
 * Usable as soon as it is constructed: the core (pipeline, worker pool,
 * recordings directory) is built synchronously and finishes starting in the
 * background. A peer connection made before the workers are warm is fine: its
 * frames wait in the pool's queue (up to `maxQueuedFrames`, 2 s of audio) and
 * nothing is processed or written until the workers and the recordings
 * directory are ready, which takes a fraction of the time ICE and DTLS do.
 */
export class WebRTCHandler {
  readonly #core: EarshotCore;
  /** Resolves once the workers run; rejects with the reason they or the recordings directory could not start. */
  readonly #started: Promise<void>;
  #startError: unknown;
  /** Its own processors, then those registered process-wide (`registerProcessor`), as a server's. */
  readonly #processors = new ProcessorRegistry({ fallback: defaultProcessors });
  /** Detaches the current attachment of each custom processor, by name (a name registered again replaces it). */
  readonly #customDetach = new Map<string, () => void>();
  readonly #processed$ = new Subject<ProcessedAudio>();
  /** `processedAudio$`, its subscribers' exceptions reported by the core. */
  readonly #processedForApplication: Observable<ProcessedAudio>;
  #shutdown: Promise<void> | undefined;

  /**
   * Throws at once for a pipeline that cannot be read or is invalid
   * (`EARSHOT_PIPELINE_FILE_UNREADABLE`, `EARSHOT_PIPELINE_INVALID`) and for
   * an unusable option (`EARSHOT_OPTION_INVALID` naming it); a failure
   * to start the workers or to create the recordings directory comes later,
   * from `ready()` and from every method after it.
   */
  constructor(options: WebRTCHandlerOptions = {}) {
    checkHandlerOptions(options);
    const pipeline = resolvePipeline(options.pipeline);
    const core = new EarshotCore({
      pipelines: PipelineRegistry.inMemory([pipeline]),
      defaultPipeline: pipeline.name,
      recordingsDir: options.recordingsDir ?? 'recordings',
      pool: new WorkerPool({ threads: options.threads }),
      processors: this.#processors,
      ice: { hostAddresses: options.iceHostAddresses, portRange: options.icePortRange, iceServers: options.iceServers },
      mediaTimeoutMs: options.mediaTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      admission: options.admission,
      log: pino({ level: options.logLevel ?? 'warn' }),
    });
    this.#core = core;
    this.#processedForApplication = core.guarded(this.#processed$, 'processedAudio$');
    // AudioTranscoder / AudioFilter / stage operators on this handler's streams use its workers
    // (core.withPool; they queue frames until the workers are warm, like the handler's own streams).
    // The pool is started on its own as well as by core.start() (which creates the recordings
    // directory first): streams adopted meanwhile can only drain and close through running
    // workers, so the pool must come up even if the directory fails, and a failure is acted
    // on only once both have settled.
    this.#started = Promise.allSettled([core.start(), core.pool.start()]).then((results) => {
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failed) return;
      this.#startError = failed.reason;
      // Streams adopted before the failure would otherwise run on without a usable handler.
      this.#shutdownCore().catch(() => {}); // close() reports it
      throw failed.reason;
    });
    this.#started.catch(() => {}); // surfaced by ready() and every method after the failure
  }

  /**
   * Resolves once the workers run and the recordings directory is usable;
   * rejects with the reason they are not (`EARSHOT_RECORDINGS_DIR_UNWRITABLE`,
   * `EARSHOT_INTERNAL` for a worker that failed to start). Optional: every
   * method works before it resolves.
   */
  async ready(): Promise<void> {
    await this.#started;
  }

  /**
   * A werift peer connection for `peerId` in `roomId`, for your own signaling
   * (offer or answer, trickle or not). The first audio track it receives is
   * processed by the pipeline; statistics and recording work by `peerId`.
   * Callable right after `new WebRTCHandler()`: the stream waits for the
   * workers. A peer id already live is replaced.
   */
  createPeerConnection(roomId: string, peerId: string): RTCPeerConnection {
    return this.#live().adopt(roomId, peerId).peerConnection;
  }

  /**
   * Starts recording a peer to `path`: a bare file name goes to the recordings
   * directory, any other path is used as given (its directory must exist).
   * Waits for `ready()` first.
   */
  async startAudioRecording(peerId: string, path?: string): Promise<RecordingInfo> {
    if (path !== undefined && (typeof path !== 'string' || path === '')) failOption('path', 'a file name or path', path);
    await this.#started;
    const pipeline = this.#peer(peerId).pipeline;
    const explicit = path !== undefined && (isAbsolute(path) || path.includes('/') || path.includes(sep));
    const [info] = explicit ? await pipeline.startRecording(undefined, path) : await pipeline.startRecording(path);
    return info;
  }

  /** Stops a peer's recording and finalizes the file. */
  async stopAudioRecording(peerId: string): Promise<RecordingInfo> {
    await this.#started;
    const [info] = await this.#peer(peerId).pipeline.stopRecording();
    return info;
  }

  /** A peer's statistics (live, or one of the last 1000 ended peers). */
  getAudioStatistics(peerId: string): PeerStatsSnapshot {
    try {
      return this.#live().peerStats(peerId);
    } catch (e) {
      throw peerNotFoundHere(e, peerId, 'known');
    }
  }

  /** Statistics of every live peer, by peer id. */
  getAllAudioStatistics(): Record<string, PeerStatsSnapshot> {
    return Object.fromEntries(this.#live().peers.snapshots().map((s) => [s.peer, s]));
  }

  /**
   * Registers a processor under `name` and runs it on every stream, now and
   * later. What it emits appears on `processedAudio$`. A processor that throws
   * is detached from that stream and counted in its stats. `processor` must be
   * an `AudioProcessor` (or any object with a `process(peerId, frames$)` method
   * returning an Observable); anything else is refused here with
   * `EARSHOT_PROCESSOR_INVALID` rather than failing on every stream later.
   * A name registered again replaces the processor: the one before is
   * detached from every stream first, so each frame is processed once.
   * Returns a function that detaches it.
   */
  registerCustomAudioProcessor(name: string, processor: AudioProcessor): () => void {
    const core = this.#live();
    // After close() it would register into a handler that runs no more streams: refused, as a new peer is.
    if (this.#shutdown) throw errors.SHUTTING_DOWN('registerCustomAudioProcessor() after close() registers into a handler that runs no more streams; create a new WebRTCHandler');
    const problem = processorProblem(processor);
    if (problem) throw errors.PROCESSOR_INVALID(String(name), problem);
    this.#customDetach.get(name)?.();
    this.#processors.register(name, (ctx) => (frames$: Observable<AudioFrame>) =>
      processor.process(ctx.peerId, frames$).pipe(tap((frame) => this.#processed$.next({ peerId: ctx.peerId, processor: name, frame }))),
    );
    const detachNow = core.attachProcessor(name);
    const detach = () => {
      detachNow();
      if (this.#customDetach.get(name) === detach) this.#customDetach.delete(name);
    };
    this.#customDetach.set(name, detach);
    return detach;
  }

  /** `{ server, peers }` every `intervalMs` (default 1000): the statistics as an observable. */
  statistics$(intervalMs?: number): Observable<{ server: ServerStats; peers: PeerStatsSnapshot[] }> {
    return this.#live().stats$(intervalMs);
  }

  /** The same as `statistics$`, under the name the server (`createServer().stats$`) gives it. */
  stats$(intervalMs?: number): Observable<{ server: ServerStats; peers: PeerStatsSnapshot[] }> {
    return this.statistics$(intervalMs);
  }

  /** Frames emitted by registered custom processors. */
  get processedAudio$(): Observable<ProcessedAudio> {
    return this.#processedForApplication;
  }

  /** Every new stream (see `server.streams$`); subscribe before `createPeerConnection` to see its stream. */
  get streams$(): Observable<StreamHandle> {
    return this.#live().streams$;
  }

  /** Events processors emit. */
  get events$(): Observable<ProcessorEvent> {
    return this.#live().events$;
  }

  /** Ends every stream (finalizing recordings) and stops the workers. */
  async close(): Promise<void> {
    // Streams can only drain through running workers: let the start finish (or fail) first.
    await this.#started.catch(() => {});
    await this.#shutdownCore();
    this.#processed$.complete();
  }

  /** Once: both close() and a failed start end the core, and close() must wait for whichever came first. */
  #shutdownCore(): Promise<void> {
    this.#shutdown ??= this.#core.shutdown();
    return this.#shutdown;
  }

  /** The live peer, or EARSHOT_PEER_NOT_FOUND naming this class's own list rather than an HTTP route. */
  #peer(peerId: string): ReturnType<EarshotCore['peer']> {
    try {
      return this.#core.peer(peerId);
    } catch (e) {
      throw peerNotFoundHere(e, peerId, 'live');
    }
  }

  #live(): EarshotCore {
    if (this.#startError !== undefined) throw this.#startError;
    return this.#core;
  }
}

/** Why `value` cannot be used as an AudioProcessor, or undefined if it can. */
function processorProblem(value: unknown): string | undefined {
  const expected = 'expected an AudioProcessor instance (an object with a process(peerId, frames$) method that returns an Observable of frames)';
  if (typeof value === 'function') {
    return `${expected}, got a function: wrap it in a subclass of AudioProcessor whose process() applies it`;
  }
  if (typeof value !== 'object' || value === null) return `${expected}, got ${value === null ? 'null' : typeof value}`;
  if (typeof (value as { process?: unknown }).process !== 'function') return `${expected}, got an object without a process method`;
  return undefined;
}

/** Every option of `WebRTCHandler`, for the check of the names given (a new option must be added here: the type says so). */
const HANDLER_OPTIONS: Record<keyof WebRTCHandlerOptions, true> = {
  pipeline: true, recordingsDir: true, threads: true, iceHostAddresses: true, icePortRange: true, iceServers: true,
  mediaTimeoutMs: true, connectTimeoutMs: true, logLevel: true, admission: true,
};

/** Throws `EARSHOT_OPTION_INVALID` (or `EARSHOT_ICE_SERVER_INVALID`) for the first option that is not usable. */
function checkHandlerOptions(options: WebRTCHandlerOptions): void {
  checkOptionNames('WebRTCHandler', options, HANDLER_OPTIONS);
  checkPipelineOption('pipeline', options.pipeline);
  checkNonEmptyString('recordingsDir', options.recordingsDir);
  checkPoolOptions({ threads: options.threads });
  checkIpAddresses('iceHostAddresses', options.iceHostAddresses);
  checkPortRange('icePortRange', options.icePortRange);
  if (options.iceServers !== undefined) checkIceServers(options.iceServers);
  checkCoreOptions({ mediaTimeoutMs: options.mediaTimeoutMs, connectTimeoutMs: options.connectTimeoutMs, admission: options.admission });
  checkOneOf('logLevel', options.logLevel, LOG_LEVELS);
}

function resolvePipeline(p: WebRTCHandlerOptions['pipeline']): Pipeline {
  const bundled = join(packageRoot(), 'pipelines');
  if (p === undefined) return loadPipelineFileSync(join(bundled, 'handler.json'));
  // A name (no path, no .json) is a bundled pipeline, as for createServer: it was read as a file path.
  if (typeof p === 'string' && isPipelineName(p)) {
    const names = readdirSync(bundled).filter((f) => f.endsWith('.json') && f !== 'pipeline.schema.json').map((f) => f.slice(0, -'.json'.length));
    if (!names.includes(p)) throw errors.PIPELINE_NOT_FOUND(p, names.sort(), 'Name a bundled one, or pass a pipeline file\'s path (ending in .json) or a definePipeline() object.');
    return loadPipelineFileSync(join(bundled, `${p}.json`));
  }
  if (typeof p === 'string') return loadPipelineFileSync(p);
  if (isBuiltPipeline(p)) return p;
  return parsePipeline(asPipelineDocument(p));
}

/** The core's EARSHOT_PEER_NOT_FOUND said "GET /stats lists the peers", which a handler has no route for. */
function peerNotFoundHere(e: unknown, peerId: string, scope: 'live' | 'known'): unknown {
  if (!isEarshotError(e) || e.code !== 'EARSHOT_PEER_NOT_FOUND') return e;
  return errors.PEER_NOT_FOUND(peerId, scope, 'getAllAudioStatistics() lists the live peers.');
}
