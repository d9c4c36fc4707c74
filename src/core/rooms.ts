/**
 * Which pipeline a stream runs: the one its request names, else its room's
 * binding (`PUT /rooms/:room`), else the default; and what keeps a pipeline
 * from being deleted. With a bindings file (core/room-bindings-file.ts) the
 * bindings outlive a restart: each change is written before it applies.
 */
import type { Pipeline } from '../pipeline/pipeline.js';
import type { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import type { PeerEntry } from './peer-registry.js';
import { byRoom, type RoomBindingsFile } from './room-bindings-file.js';

export class RoomPipelines {
  readonly #pipelines: PipelineRegistry;
  readonly #defaultPipeline: string;
  readonly #bindings = new Map<string, string>();
  readonly #file: RoomBindingsFile | undefined;
  /** The change in progress: the next waits for it. */
  #changing: Promise<unknown> = Promise.resolve();
  /** The bindings file's reading (`load`), once begun. */
  #loaded: Promise<Record<string, string>> | undefined;

  constructor(pipelines: PipelineRegistry, defaultPipeline: string, file?: RoomBindingsFile) {
    this.#pipelines = pipelines;
    this.#defaultPipeline = defaultPipeline;
    this.#file = file;
  }

  /** Where the bindings are kept, if anywhere but in memory. */
  get file(): string | undefined {
    return this.#file?.path;
  }

  /**
   * Reads the bindings file, once (at start, or before the first change if
   * that comes first: a change must not write the file without what it
   * held). Returns the bindings whose pipeline is not loaded: they are kept
   * (the room's streams get 404 naming it, rather than silently the default
   * pipeline), and the caller says so.
   */
  load(): Promise<Record<string, string>> {
    this.#loaded ??= (async () => {
      if (!this.#file) return {};
      const missing: Record<string, string> = {};
      for (const [room, pipeline] of Object.entries(await this.#file.read())) {
        // A change made before the file was read (none can be: each waits for this) would be newer.
        this.#bindings.set(room, pipeline);
        if (!this.#pipelines.has(pipeline)) missing[room] = pipeline;
      }
      return missing;
    })();
    return this.#loaded;
  }

  /**
   * Sets bindings as they were elsewhere (a restarted engine process gets its
   * machine's), in memory only and unchecked, like `load`'s.
   */
  restore(bindings: Record<string, string>): void {
    for (const [room, pipeline] of Object.entries(bindings)) this.#bindings.set(room, pipeline);
  }

  get defaultPipeline(): string {
    return this.#defaultPipeline;
  }

  /** The pipeline a new stream in `room` runs; an unknown name is `EARSHOT_PIPELINE_NOT_FOUND` (404). */
  pipelineFor(room: string, requested?: string): Pipeline {
    return this.#pipelines.get(requested ?? this.#bindings.get(room) ?? this.#defaultPipeline);
  }

  /**
   * Binds a room to a pipeline for streams that start from now on: 404 for an
   * unknown pipeline; with a file, saved first (a failed write changes nothing).
   */
  async bind(room: string, pipeline: string): Promise<void> {
    await this.#change(room, pipeline);
  }

  /** Removes a room's binding (saved first, with a file); false if it had none. */
  unbind(room: string): Promise<boolean> {
    return this.#change(room, undefined);
  }

  /**
   * Makes one change once the changes before it are done, onto the bindings
   * as they left them; with a file, the bindings with this change are saved
   * first. So the file and memory agree whatever the order of the writes.
   * Resolves to whether the room had a binding before.
   */
  #change(room: string, pipeline: string | undefined): Promise<boolean> {
    return this.exclusive(async (): Promise<boolean> => {
      await this.load();
      // 404 for an unknown name, asked in turn: a DELETE of the pipeline may have come first.
      if (pipeline !== undefined) this.#pipelines.get(pipeline);
      const had = this.#bindings.has(room);
      if (!had && pipeline === undefined) return false;
      if (this.#file) await this.#file.write(this.#sorted(room, pipeline));
      if (pipeline === undefined) this.#bindings.delete(room);
      else this.#bindings.set(room, pipeline);
      return had;
    });
  }

  /**
   * Runs `task` once the binding changes before it are done, and the next
   * wait for it: a pipeline's deletion runs here, so that a binding made
   * meanwhile cannot name the pipeline it removes (each sees the other).
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#changing.then(task, task);
    this.#changing = run.catch(() => undefined);
    return run;
  }

  /** Room → pipeline bindings, by room name. */
  bindings(): Record<string, string> {
    return byRoom(this.#bindings);
  }

  /** The bindings with `room` bound to `pipeline` (undefined: unbound), by room name. */
  #sorted(room: string, pipeline: string | undefined): Record<string, string> {
    const all = new Map(this.#bindings);
    if (pipeline === undefined) all.delete(room);
    else all.set(room, pipeline);
    return byRoom(all);
  }

  /** What keeps a pipeline from being deleted (live sessions, room bindings, being the default), or undefined. */
  usersOf(name: string, live: readonly PeerEntry[]): string | undefined {
    const uses: string[] = [];
    if (name === this.#defaultPipeline) uses.push('it is the default pipeline');
    const rooms = [...this.#bindings].filter(([, p]) => p === name).map(([r]) => r);
    if (rooms.length) uses.push(`bound to room${rooms.length > 1 ? 's' : ''} ${rooms.join(', ')}`);
    const peers = live.filter((e) => e.pipelineName === name).map((e) => e.peer);
    if (peers.length) uses.push(`${peers.length} live session${peers.length > 1 ? 's' : ''}: ${peers.slice(0, 5).join(', ')}${peers.length > 5 ? ', …' : ''}`);
    return uses.length ? uses.join('; ') : undefined;
  }
}
