/**
 * Which pipeline a stream runs: the one its request names, else its room's
 * binding (`PUT /rooms/:room`), else the default; and what keeps a pipeline
 * from being deleted. With a bindings file (core/room-bindings-file.ts) the
 * bindings outlive a restart: each change is written before it applies, onto
 * what the file holds then, and a change made to the file on disk applies too.
 */
import type { Pipeline } from '../pipeline/pipeline.js';
import type { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import type { PeerEntry } from './peer-registry.js';
import { byRoom, type RoomBindingsFile } from './room-bindings-file.js';

/** A room whose binding changed on disk. */
export interface RoomChange {
  room: string;
  /** The pipeline it is bound to now; undefined: unbound. */
  pipeline: string | undefined;
  /** What it was bound to before. */
  before: string | undefined;
  /** `pipeline` is not loaded: the room's streams get 404 naming it until it is. */
  missing: boolean;
}

export class RoomPipelines {
  readonly #pipelines: PipelineRegistry;
  readonly #defaultPipeline: string;
  readonly #bindings = new Map<string, string>();
  readonly #file: RoomBindingsFile | undefined;
  /** Told of the bindings changed on disk, whichever reading found them (the watcher's, or one before a change). */
  readonly #onChangedOnDisk: ((changes: RoomChange[]) => void) | undefined;
  /** The change in progress: the next waits for it. */
  #changing: Promise<unknown> = Promise.resolve();
  /** The bindings file's reading (`load`), once begun. */
  #loaded: Promise<Record<string, string>> | undefined;

  constructor(pipelines: PipelineRegistry, defaultPipeline: string, file?: RoomBindingsFile, onChangedOnDisk?: (changes: RoomChange[]) => void) {
    this.#pipelines = pipelines;
    this.#defaultPipeline = defaultPipeline;
    this.#file = file;
    this.#onChangedOnDisk = onChangedOnDisk;
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
      // A change made before the file was read (none can be: each waits for this) would be newer.
      for (const { room, pipeline } of await this.#sync(false)) if (pipeline !== undefined && !this.#pipelines.has(pipeline)) missing[room] = pipeline;
      return missing;
    })();
    return this.#loaded;
  }

  /**
   * Reads the bindings file again (it changed on disk: edited, written by
   * another server sharing the directory, a new ConfigMap version) and
   * applies what changed in it since it was last read, in turn with the
   * changes over HTTP; `onChangedOnDisk` hears of them. A binding to a
   * pipeline that is not loaded is kept, as at start. A file that is not room
   * bindings rejects with `EARSHOT_ROOM_BINDINGS_INVALID` and changes nothing.
   */
  reload(): Promise<void> {
    return this.#inTurn(async () => {
      await this.load();
      await this.#sync(true);
    });
  }

  /** Whether the file is read before each change (it may change on disk under a writable directory's other writers). */
  get #readBeforeChanges(): boolean {
    return this.#file !== undefined && !this.#file.readOnly;
  }

  /** Applies the file's changes since it was last read or written (`RoomBindingsFile.changes`); `report`: to `onChangedOnDisk`. */
  async #sync(report: boolean): Promise<RoomChange[]> {
    if (!this.#file) return [];
    const changes: RoomChange[] = [];
    for (const { room, pipeline } of await this.#file.changes()) {
      const before = this.#bindings.get(room);
      if (pipeline === undefined) this.#bindings.delete(room);
      else this.#bindings.set(room, pipeline);
      if (before !== pipeline) changes.push({ room, pipeline, before, missing: pipeline !== undefined && !this.#pipelines.has(pipeline) });
    }
    if (report && changes.length > 0) this.#onChangedOnDisk?.(changes);
    return changes;
  }

  /**
   * Makes the bindings exactly these, as they are elsewhere (an engine process
   * gets its machine's: at start, and whenever they change), in memory only
   * and unchecked, like `load`'s. Returns those whose pipeline is not loaded:
   * they are kept, and their rooms' streams get 404 naming it.
   */
  restore(bindings: Record<string, string>): Record<string, string> {
    this.#bindings.clear();
    const missing: Record<string, string> = {};
    for (const [room, pipeline] of Object.entries(bindings)) {
      this.#bindings.set(room, pipeline);
      if (!this.#pipelines.has(pipeline)) missing[room] = pipeline;
    }
    return missing;
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
      // 404 for an unknown name, asked in turn: a DELETE of the pipeline may have come first.
      if (pipeline !== undefined) this.#pipelines.get(pipeline);
      const had = this.#bindings.has(room);
      if (!had && pipeline === undefined) return false;
      if (this.#file && this.#readBeforeChanges) await this.#file.write(this.#sorted(room, pipeline));
      if (pipeline === undefined) this.#bindings.delete(room);
      else this.#bindings.set(room, pipeline);
      return had;
    });
  }

  /**
   * Runs `task` once the binding changes before it are done, and the next
   * wait for it, on the bindings as the file holds them then: a pipeline's
   * deletion runs here, so that a binding made meanwhile cannot name the
   * pipeline it removes (each sees the other), nor can one made on disk
   * that the watcher has not applied yet. An edit the watcher has not applied
   * yet (or cannot: no watch) is applied first, so a change never writes the
   * bindings as they were before it. A file broken on disk rejects with
   * `EARSHOT_ROOM_BINDINGS_INVALID` and `task` does not run. (A read-only
   * file changes only with a new version, which the watcher applies.)
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.#inTurn(async () => {
      await this.load();
      if (!this.#readBeforeChanges) return task();
      // Another server sharing the directory neither writes between this reading and this change's write.
      return this.#file!.locked(async () => {
        await this.#sync(true);
        return task();
      });
    });
  }

  #inTurn<T>(task: () => Promise<T>): Promise<T> {
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
