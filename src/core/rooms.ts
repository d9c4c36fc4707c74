/**
 * Which pipeline a stream runs: the one its request names, else its room's
 * binding (`PUT /rooms/:room`), else the default; and what keeps a pipeline
 * from being deleted.
 */
import type { Pipeline } from '../pipeline/pipeline.js';
import type { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import type { PeerEntry } from './peer-registry.js';

export class RoomPipelines {
  readonly #pipelines: PipelineRegistry;
  readonly #defaultPipeline: string;
  readonly #bindings = new Map<string, string>();

  constructor(pipelines: PipelineRegistry, defaultPipeline: string) {
    this.#pipelines = pipelines;
    this.#defaultPipeline = defaultPipeline;
  }

  get defaultPipeline(): string {
    return this.#defaultPipeline;
  }

  /** The pipeline a new stream in `room` runs; an unknown name is `EARSHOT_PIPELINE_NOT_FOUND` (404). */
  pipelineFor(room: string, requested?: string): Pipeline {
    return this.#pipelines.get(requested ?? this.#bindings.get(room) ?? this.#defaultPipeline);
  }

  /** Binds a room to a pipeline for streams that start from now on. */
  bind(room: string, pipeline: string): void {
    this.#pipelines.get(pipeline); // 404 for an unknown name
    this.#bindings.set(room, pipeline);
  }

  /** Removes a room's binding; false if it had none. */
  unbind(room: string): boolean {
    return this.#bindings.delete(room);
  }

  /** Room → pipeline bindings, by room name. */
  bindings(): Record<string, string> {
    return Object.fromEntries([...this.#bindings].sort(([a], [b]) => a.localeCompare(b)));
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
