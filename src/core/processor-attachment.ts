/**
 * Processors attached by scope (`attachProcessor(name, { peer | room })`):
 * applied to the streams running now and to every stream that starts later,
 * until detached.
 */
import { checkNonEmptyString, checkOptionNames, failOption } from '../option-checks.js';
import type { ProcessorRegistry } from '../sinks/processors.js';
import type { PeerEntry } from './peer-registry.js';

/** Where `attachProcessor` applies: one peer, one room, or (neither given) every stream. */
export interface ProcessorScope {
  peer?: string;
  room?: string;
  /** Branch to read (default: the first). Streams whose pipeline lacks it are skipped. */
  branch?: string;
  /** Passed to the factory as `context.options`. */
  options?: Record<string, unknown>;
}

interface Attachment {
  name: string;
  scope: ProcessorScope;
  /** Detaches it from each stream it was applied to. */
  detach: Array<() => void>;
}

export class ProcessorAttachments {
  readonly #processors: ProcessorRegistry;
  readonly #attachments = new Set<Attachment>();

  constructor(processors: ProcessorRegistry) {
    this.#processors = processors;
  }

  /** Attaches `name` to the `live` streams in `scope` and to later ones; returns the detach function. */
  attach(name: string, scope: ProcessorScope, live: readonly PeerEntry[]): () => void {
    checkScope(scope);
    this.#processors.get(name); // unknown names fail now, not per stream
    const attachment: Attachment = { name, scope, detach: [] };
    this.#attachments.add(attachment);
    for (const entry of live) apply(attachment, entry);
    return () => {
      this.#attachments.delete(attachment);
      for (const d of attachment.detach.splice(0)) d();
    };
  }

  /** Applies every attachment whose scope covers a stream that just started. */
  applyTo(entry: PeerEntry): void {
    for (const a of this.#attachments) apply(a, entry);
  }
}

function apply(a: Attachment, entry: PeerEntry): void {
  const { peer, room, branch, options } = a.scope;
  if ((peer !== undefined && peer !== entry.peer) || (room !== undefined && room !== entry.room)) return;
  if (branch !== undefined && !entry.pipeline.branches.some((b) => b.name === branch)) return;
  a.detach.push(entry.pipeline.attachProcessor(a.name, options ?? {}, branch));
}

const SCOPE_KEYS = { peer: true, room: true, branch: true, options: true } as const;

/**
 * `EARSHOT_OPTION_INVALID` for a scope that is not what `ProcessorScope`
 * says: a misspelt key (`rooom`) or a string scope would otherwise attach the
 * processor to every stream, and a number for a name would match none.
 */
function checkScope(scope: unknown): void {
  checkOptionNames("attachProcessor's scope", scope, SCOPE_KEYS, 'scope.');
  const s = scope as ProcessorScope;
  for (const key of ['peer', 'room', 'branch'] as const) checkNonEmptyString(`scope.${key}`, s[key]);
  if (s.options !== undefined && (typeof s.options !== 'object' || s.options === null || Array.isArray(s.options))) failOption('scope.options', 'an object', s.options);
}
