/**
 * The seed's API, in TypeScript: a `WebRTCHandler` for programs that do their
 * own signaling. It runs the same core as the server (worker pool, pipeline,
 * recorder, statistics) without HTTP; each method maps to a seed method under
 * its camelCase name (see the README's "Seed API" table).
 */
import { isAbsolute, join, sep } from 'node:path';
import pino from 'pino';
import { Subject, tap, type Observable } from 'rxjs';
import type { RTCIceServer, RTCPeerConnection } from 'werift';
import { packageRoot } from '../package-root.js';
import { loadPipelineFile, parsePipeline, type Pipeline } from '../pipeline/pipeline.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { EarshotCore, type ServerStats, type StreamHandle } from '../server/earshot-core.js';
import type { PeerStatsSnapshot } from '../server/peer-registry.js';
import { ProcessorRegistry, type ProcessorEvent } from '../sinks/processors.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import { hasDefaultPool, setDefaultPool, type AudioFrame } from '../pipeline/operators.js';
import type { AudioProcessor } from './audio-processor.js';

export interface WebRTCHandlerOptions {
  /**
   * Pipeline: a JSON file path, a pipeline document or a built `Pipeline`.
   * Default: `pipelines/handler.json` — audio passed through, a stats sink, and
   * a record sink that waits for `startAudioRecording` (autoStart false).
   */
  pipeline?: string | Pipeline | object;
  /** Directory for recordings started without an absolute path. Default `recordings`. */
  recordingsDir?: string;
  /** DSP worker threads. Default 2. */
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
  /** Log level (pino). Default `warn`. */
  logLevel?: string;
}

/** A frame a registered custom processor produced, with where it came from. */
export interface ProcessedAudio {
  peerId: string;
  processor: string;
  frame: AudioFrame;
}

export class WebRTCHandler {
  readonly #core: Promise<EarshotCore>;
  #coreNow: EarshotCore | undefined;
  readonly #processors = new ProcessorRegistry();
  readonly #processed$ = new Subject<ProcessedAudio>();
  #ownsDefaultPool = false;

  constructor(options: WebRTCHandlerOptions = {}) {
    this.#core = (async () => {
      const pipeline = await resolvePipeline(options.pipeline);
      const core = new EarshotCore({
        pipelines: PipelineRegistry.inMemory([pipeline]),
        defaultPipeline: pipeline.name,
        recordingsDir: options.recordingsDir ?? 'recordings',
        pool: new WorkerPool({ threads: options.threads }),
        processors: this.#processors,
        ice: { hostAddresses: options.iceHostAddresses, portRange: options.icePortRange, iceServers: options.iceServers },
        mediaTimeoutMs: options.mediaTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        log: pino({ level: options.logLevel ?? 'warn' }),
      });
      await core.start();
      // AudioTranscoder / AudioFilter / stage operators without a pool use this handler's workers.
      if (!hasDefaultPool()) {
        setDefaultPool(core.pool);
        this.#ownsDefaultPool = true;
      }
      this.#coreNow = core;
      return core;
    })();
    this.#core.catch(() => {}); // surfaced by ready() and every method
  }

  /** Resolves once the workers run; rejects with the pipeline's or pool's error. */
  async ready(): Promise<void> {
    await this.#core;
  }

  /**
   * A werift peer connection for `peerId` in `roomId`, for your own signaling
   * (offer or answer, trickle or not). The first audio track it receives is
   * processed by the pipeline; statistics and recording work by `peerId`.
   * Await `ready()` first. A peer id already live is replaced.
   */
  createPeerConnection(roomId: string, peerId: string): RTCPeerConnection {
    return this.#live().adopt(roomId, peerId).peerConnection;
  }

  /**
   * Starts recording a peer to `path`: a bare file name goes to the recordings
   * directory, any other path is used as given (its directory must exist).
   */
  async startAudioRecording(peerId: string, path?: string): Promise<RecordingInfo> {
    const core = await this.#core;
    const pipeline = core.peer(peerId).pipeline;
    const explicit = path !== undefined && (isAbsolute(path) || path.includes('/') || path.includes(sep));
    const [info] = explicit ? await pipeline.startRecording(undefined, path) : await pipeline.startRecording(path);
    return info;
  }

  /** Stops a peer's recording and finalizes the file. */
  async stopAudioRecording(peerId: string): Promise<RecordingInfo> {
    const core = await this.#core;
    const [info] = await core.peer(peerId).pipeline.stopRecording();
    return info;
  }

  /** A peer's statistics (live, or one of the last 1000 ended peers). */
  getAudioStatistics(peerId: string): PeerStatsSnapshot {
    return this.#live().peerStats(peerId);
  }

  /** Statistics of every live peer, by peer id. */
  getAllAudioStatistics(): Record<string, PeerStatsSnapshot> {
    return Object.fromEntries(this.#live().peers.snapshots().map((s) => [s.peer, s]));
  }

  /**
   * Registers a processor under `name` and runs it on every stream, now and
   * later. What it emits appears on `processedAudio$`. A processor that throws
   * is detached from that stream and counted in its stats.
   */
  registerCustomAudioProcessor(name: string, processor: AudioProcessor): () => void {
    const core = this.#live();
    this.#processors.register(name, (ctx) => (frames$: Observable<AudioFrame>) =>
      processor.process(ctx.peerId, frames$).pipe(tap((frame) => this.#processed$.next({ peerId: ctx.peerId, processor: name, frame }))),
    );
    return core.attachProcessor(name);
  }

  /** `{ server, peers }` every `intervalMs` (default 1000): the statistics as an observable. */
  statistics$(intervalMs?: number): Observable<{ server: ServerStats; peers: PeerStatsSnapshot[] }> {
    return this.#live().stats$(intervalMs);
  }

  /** Frames emitted by registered custom processors. */
  get processedAudio$(): Observable<ProcessedAudio> {
    return this.#processed$.asObservable();
  }

  /** Every new stream (see `server.streams$`). */
  get streams$(): Observable<StreamHandle> {
    return this.#live().streams$.asObservable();
  }

  /** Events processors emit. */
  get events$(): Observable<ProcessorEvent> {
    return this.#live().events$.asObservable();
  }

  /** Ends every stream (finalizing recordings) and stops the workers. */
  async close(): Promise<void> {
    const core = await this.#core.catch(() => undefined);
    await core?.shutdown();
    if (this.#ownsDefaultPool) setDefaultPool(undefined);
    this.#processed$.complete();
  }

  #live(): EarshotCore {
    if (!this.#coreNow) throw new Error('WebRTCHandler is not ready yet: await handler.ready() first');
    return this.#coreNow;
  }
}

async function resolvePipeline(p: WebRTCHandlerOptions['pipeline']): Promise<Pipeline> {
  if (p === undefined) return loadPipelineFile(join(packageRoot(), 'pipelines', 'handler.json'));
  if (typeof p === 'string') return loadPipelineFile(p);
  if ('branches' in p && typeof (p as Pipeline).toJSON === 'function') return p as Pipeline;
  return parsePipeline(p);
}
