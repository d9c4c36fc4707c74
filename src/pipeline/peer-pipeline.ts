/**
 * One peer's running pipeline: encoded frames go to the peer's pinned worker,
 * processed frames of each branch come back as a shared RxJS stream, and the
 * branch's sinks subscribe to it independently. A sink that throws is detached
 * and counted; the stream and the other sinks go on.
 */
import { performance } from 'node:perf_hooks';
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { ProcessedFrame, StageSpec } from '../dsp/types.js';
import type { WorkerPool, PoolStream } from '../pool/worker-pool.js';
import type { IngestFrame } from '../rtc/rtp-ingest.js';
import { PeerAudioStats } from '../sinks/peer-stats.js';
import type { LatencyHistogram } from '../sinks/latency-histogram.js';
import { RecordSink } from '../sinks/record-sink.js';
import type { RecordingInfo } from '../sinks/recorder.js';
import type { RecordingsStore } from '../sinks/recordings-store.js';
import { runProcessor, type ProcessorEvent, type ProcessorRegistry } from '../sinks/processors.js';
import type { Pipeline } from './pipeline.js';

export interface PeerPipelineOptions {
  pool: WorkerPool;
  store: RecordingsStore;
  pipeline: Pipeline;
  room: string;
  peer: string;
  session: string;
  /** Where the pipeline's `processor` sinks find their factories. */
  processors: ProcessorRegistry;
  /** A server-wide latency histogram that every frame's latency is added to as well. */
  latency?: LatencyHistogram;
  /** Events emitted by processors (`context.emit`). */
  onProcessorEvent(event: ProcessorEvent): void;
  /** Called once when the worker reports that the stages failed. */
  onPipelineError(message: string): void;
  /** Sink and processor failures (logged by the caller, once per sink). */
  onSinkError(sink: string, error: Error): void;
}

/** A processor attached to one of this peer's branches. */
export interface AttachedProcessor {
  name: string;
  branch: string;
  /** `detached` after it threw or errored (see `sinkErrors`), or after `detach()`. */
  state: 'running' | 'detached' | 'failed';
}

export interface BranchOutput {
  name: string;
  sampleRate: number;
  channels: number;
  /** Processed frames of this branch, hot and shared; completes when the stream ends. */
  audio$: Observable<ProcessedFrame>;
}

interface BranchRuntime {
  name: string;
  subject: Subject<ProcessedFrame>;
  record?: RecordSink;
  measured: boolean;
}

export class PeerPipeline {
  readonly stats = new PeerAudioStats();
  readonly branches: BranchOutput[];
  sinkErrors = 0;
  /** Processors that failed and were detached. */
  processorErrors = 0;
  readonly #processors: Array<AttachedProcessor & { sub?: Subscription }> = [];
  readonly #runtime: BranchRuntime[];
  readonly #stream: PoolStream;
  readonly #options: PeerPipelineOptions;
  #closed: Promise<RecordingInfo[]> | undefined;

  constructor(options: PeerPipelineOptions) {
    this.#options = options;
    const { pipeline } = options;
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const vars = { room: options.room, peer: options.peer, date: stamp, time: stamp.slice(9), session: options.session.slice(0, 8), pipeline: pipeline.name };
    const statsBranch = pipeline.branches.findIndex((b) => b.sinks.some((s) => s.type === 'stats'));
    this.#runtime = pipeline.branches.map((b, i) => {
      const rec = b.sinks.find((s) => s.type === 'record');
      const runtime: BranchRuntime = {
        name: b.name,
        subject: new Subject<ProcessedFrame>(),
        measured: i === statsBranch,
      };
      // Every branch can be recorded on request; one with a record sink follows its settings.
      runtime.record = new RecordSink({
        store: options.store,
        peer: options.peer,
        baseName: recordingBaseName(rec?.type === 'record' ? rec : undefined, { ...vars, branch: b.name }, pipeline.branches.length > 1),
        sampleRate: b.sampleRate,
        channels: b.channels,
        sampleFormat: rec?.type === 'record' ? (rec.sampleFormat ?? 's16') : 's16',
        onError: (e) => this.#sinkFailed(`record:${b.name}`, e),
      });
      return runtime;
    });
    this.branches = this.#runtime.map((r, i) => ({
      name: r.name,
      sampleRate: pipeline.branches[i].sampleRate,
      channels: pipeline.branches[i].channels,
      audio$: r.subject.asObservable(),
    }));
    for (const r of this.#runtime) this.#attachSinks(r);
    // Processor sinks: every name was checked to be registered before the session started.
    pipeline.branches.forEach((b) => {
      for (const sink of b.sinks) {
        if (sink.type === 'processor') this.attachProcessor(sink.name, sink.options ?? {}, b.name);
      }
    });

    this.#stream = options.pool.openStream(
      { channels: pipeline.channels, branches: pipeline.branches.map((b) => ({ stages: b.stages as StageSpec[] })) },
      {
        onFrames: (branch, frames) => this.#deliver(branch, frames),
        onCounters: (c) => this.stats.setCounters(c),
        onError: (message) => options.onPipelineError(message),
      },
    );

    // Auto-started recordings begin at media position 0 of the stream.
    pipeline.branches.forEach((b, i) => {
      const rec = b.sinks.find((s) => s.type === 'record');
      if (rec?.type === 'record' && rec.autoStart !== false) {
        this.#runtime[i].record!.start(undefined, true).catch((e: Error) => this.#sinkFailed(`record:${b.name}`, e));
      }
    });
  }

  /** Thread id of the worker this peer's stream is pinned to. */
  get worker(): number | undefined {
    const w = this.#stream.workers;
    return w[w.length - 1];
  }

  get workers(): readonly number[] {
    return this.#stream.workers;
  }

  get droppedFrames(): number {
    return this.#stream.dropped;
  }

  push(frame: IngestFrame): void {
    this.#stream.push(frame);
  }

  /**
   * Starts recording on the branches that have a record sink, or on the first
   * branch if none has. `path` (programmatic API) records the first target to
   * that file, wherever it is.
   */
  async startRecording(name?: string, path?: string): Promise<RecordingInfo[]> {
    const targets = this.#recordTargets();
    if (path !== undefined) return [await targets[0].record!.start(undefined, false, path)];
    const started: RecordingInfo[] = [];
    for (const r of targets) {
      const branchName = name !== undefined && targets.length > 1 ? `${name.replace(/\.wav$/i, '')}-${r.name}` : name;
      started.push(await r.record!.start(branchName));
    }
    return started;
  }

  async stopRecording(): Promise<RecordingInfo[]> {
    const active = this.#runtime.filter((r) => r.record?.active);
    if (active.length === 0) {
      // Let the sink produce the typed "not recording" error.
      await this.#recordTargets()[0].record!.stop();
    }
    return Promise.all(active.map((r) => r.record!.stop()));
  }

  recordings(): RecordingInfo[] {
    return this.#runtime.map((r) => r.record?.info()).filter((i): i is RecordingInfo => i !== undefined);
  }

  /**
   * Drains the worker (every frame received is processed), completes the
   * branch streams and finalizes every recording. Idempotent.
   */
  close(): Promise<RecordingInfo[]> {
    this.#closed ??= (async () => {
      await this.#stream.close();
      for (const r of this.#runtime) r.subject.complete();
      const infos = await Promise.all(this.#runtime.map((r) => r.record?.finalize()));
      return infos.filter((i): i is RecordingInfo => i !== undefined);
    })();
    return this.#closed;
  }

  /**
   * Attaches a registered main-thread processor to a branch (default: the
   * first). Returns a function that detaches it. An unknown name throws
   * `EARSHOT_PROCESSOR_NOT_FOUND`; a processor that fails later is detached and
   * counted instead (see the module comment of sinks/processors.ts).
   */
  attachProcessor(name: string, options: Record<string, unknown> = {}, branch?: string): () => void {
    const factory = this.#options.processors.get(name);
    const r = branch === undefined ? this.#runtime[0] : this.#runtime.find((x) => x.name === branch);
    if (!r) throw new RangeError(`pipeline "${this.#options.pipeline.name}" has no branch "${branch}"`);
    const entry: AttachedProcessor & { sub?: Subscription } = { name, branch: r.name, state: 'running' };
    this.#processors.push(entry);
    const { peer, room, session } = this.#options;
    entry.sub = runProcessor(
      r.subject,
      factory,
      {
        peerId: peer,
        roomId: room,
        sessionId: session,
        branch: r.name,
        options: Object.freeze({ ...options }),
        emit: (event, data) => {
          try {
            this.#options.onProcessorEvent({ peerId: peer, roomId: room, sessionId: session, processor: name, event: String(event), data, at: Date.now() });
          } catch {
            // an event listener's failure is not the processor's
          }
        },
      },
      (error) => {
        entry.state = 'failed';
        entry.sub?.unsubscribe();
        this.processorErrors++;
        this.#sinkFailed(`processor:${name}`, error);
      },
    );
    if (entry.state === 'failed') entry.sub?.unsubscribe();
    return () => {
      if (entry.state === 'running') entry.state = 'detached';
      entry.sub?.unsubscribe();
    };
  }

  /** Processors attached to this peer, with their state. */
  processors(): AttachedProcessor[] {
    return this.#processors.map(({ name, branch, state }) => ({ name, branch, state }));
  }

  #recordTargets(): BranchRuntime[] {
    const withSink = this.#runtime.filter((_, i) => this.#options.pipeline.branches[i].sinks.some((s) => s.type === 'record'));
    return withSink.length > 0 ? withSink : [this.#runtime[0]];
  }

  #deliver(branch: number, frames: ProcessedFrame[]): void {
    const r = this.#runtime[branch];
    if (!r) return;
    const now = performance.now();
    for (const f of frames) {
      if (branch === 0) {
        // One figure per frame of the first branch.
        this.stats.addLatency(now - f.arrival);
        this.#options.latency?.add(now - f.arrival);
      }
      r.subject.next(f);
    }
  }

  #attachSinks(r: BranchRuntime): void {
    const guard = (sink: string, fn: (f: ProcessedFrame) => void) => {
      const sub = r.subject.subscribe({
        next: (f) => {
          try {
            fn(f);
          } catch (e) {
            sub.unsubscribe();
            this.#sinkFailed(sink, e as Error);
          }
        },
      });
    };
    if (r.measured) guard(`stats:${r.name}`, (f) => this.stats.addFrame(f, performance.now()));
    const record = r.record!;
    guard(`record:${r.name}`, (f) => record.write(f));
  }

  #sinkFailed(sink: string, error: Error): void {
    this.sinkErrors++;
    this.#options.onSinkError(sink, error);
  }
}

/** Default file name of a record sink, without ".wav". */
export const DEFAULT_RECORD_TEMPLATE = '{room}-{peer}-{date}';

/**
 * The name (relative to the recordings directory, without ".wav") a record
 * sink's next file gets: its `directory` and `template` with the placeholders
 * filled in. With several branches, "-{branch}" is appended unless the
 * template names the branch itself, so branches never collide.
 */
export function recordingBaseName(
  sink: { directory?: string; template?: string } | undefined,
  vars: Record<'room' | 'peer' | 'date' | 'time' | 'session' | 'branch' | 'pipeline', string>,
  multipleBranches: boolean,
): string {
  const fill = (text: string) => text.replace(/\{(\w+)\}/g, (whole, key: string) => (key in vars ? vars[key as keyof typeof vars] : whole));
  let template = sink?.template ?? DEFAULT_RECORD_TEMPLATE;
  if (multipleBranches && !template.includes('{branch}')) template += '-{branch}';
  const directory = (sink?.directory ?? '').replace(/\/+$/, '');
  return `${directory ? `${fill(directory)}/` : ''}${fill(template)}`;
}
