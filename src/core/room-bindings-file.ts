/**
 * Where room bindings (`PUT /rooms/:room`) outlive a restart: `rooms.json` in
 * the pipelines directory, beside the pipelines they name, so that copying or
 * mounting that one directory carries a server's whole configuration.
 *
 *     { "rooms": { "pstn": "telephony", "support": "call-recording" } }
 *
 * Read at start, again when it changes on disk (a hand edit, another server
 * sharing the directory, a new ConfigMap version), and again before each
 * change, which is made onto what the file holds then; written whole on every
 * change (pipeline/replace-file.ts: a crash or power cut leaves the old file
 * or the new one, never half of either). So a change over HTTP never undoes
 * one made on disk. In a directory the server may not write (a ConfigMap),
 * the file is read and changes stay in memory.
 */
import { constants, watch, type FSWatcher } from 'node:fs';
import { access, open, readFile, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errors } from '../errors.js';
import { KEEPS_LAST, parseJsonText } from '../pipeline/json-text.js';
import { replaceFile } from '../pipeline/replace-file.js';
import { checkName } from './names.js';

/** The file's name in the pipelines directory (never read as a pipeline). */
export const ROOM_BINDINGS_FILE = 'rooms.json';

/** An editor's save is often several writes (truncate, write, rename): read once they settle. */
const CHANGE_DEBOUNCE_MS = 100;
/** How long a change waits for another server's lock on the file before it fails. */
const LOCK_WAIT_MS = 5000;
/** A lock older than this was left by a server that died holding it: taken over. */
const LOCK_STALE_MS = 10_000;

/** Bindings as an object in room order: what the file, `GET /rooms` and `roomBindings()` hold. */
export function byRoom(bindings: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries([...bindings].sort(([a], [b]) => a.localeCompare(b)));
}

/** A room whose binding differs from the file's last reading; `pipeline` undefined: unbound. */
export interface RoomBindingChange {
  room: string;
  pipeline: string | undefined;
}

/** The rooms whose binding differs between two readings of the file, with the later one's. */
function changedBetween(before: Record<string, string>, now: Record<string, string>): RoomBindingChange[] {
  // Own properties only: a room may be called "constructor" or "toString".
  const of = (bindings: Record<string, string>, room: string) => (Object.hasOwn(bindings, room) ? bindings[room] : undefined);
  const rooms = new Set([...Object.keys(before), ...Object.keys(now)]);
  return [...rooms].filter((room) => of(before, room) !== of(now, room)).map((room) => ({ room, pipeline: of(now, room) }));
}

export class RoomBindingsFile {
  readonly path: string;
  /**
   * The file is read, never written: its directory is read-only (a
   * Kubernetes ConfigMap's). Bindings changed over HTTP then live in memory.
   */
  readonly readOnly: boolean;
  /**
   * What the file held when `changes()` last read it or `write()` wrote it:
   * a change on disk is what differs from it. Only that is applied, so that
   * in a read-only directory the bindings changed over HTTP (kept in memory)
   * stay unless the file changes those rooms.
   */
  #lastSeen: Record<string, string> = {};

  constructor(path: string, options: { readOnly?: boolean } = {}) {
    this.path = path;
    this.readOnly = options.readOnly === true;
  }

  /**
   * The bindings file of pipelines directory `dir`: undefined where bindings
   * live in memory (`persist` false, or the bundled pipelines, which belong to
   * the package), read-only where the directory cannot be written (checked
   * now: a read-only mount answers so even to root).
   */
  static async of(dir: string | undefined, options: { bundled: boolean; persist?: boolean }): Promise<RoomBindingsFile | undefined> {
    if (dir === undefined || options.bundled || options.persist === false) return undefined;
    const writable = await access(dir, constants.W_OK).then(
      () => true,
      () => false,
    );
    return new RoomBindingsFile(join(dir, ROOM_BINDINGS_FILE), { readOnly: !writable });
  }

  /**
   * The bindings the file holds, room → pipeline; none when there is no file.
   * A file that is not `{ "rooms": { room: pipeline, … } }` with valid room
   * names is `EARSHOT_ROOM_BINDINGS_INVALID`: a server should not start
   * without knowing which pipeline its rooms run.
   */
  async read(): Promise<Record<string, string>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw errors.ROOM_BINDINGS_INVALID(this.path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    // A byte order mark is read past; a syntax error says where, and a room bound twice is refused
    // (JSON would keep the last binding without a word).
    const parsed = parseJsonText(text);
    if ('notJson' in parsed) throw errors.ROOM_BINDINGS_INVALID(this.path, `is ${parsed.notJson}`);
    const [twice] = parsed.repeatedKeys;
    if (twice) throw errors.ROOM_BINDINGS_INVALID(this.path, `has the key ${twice.path} twice (${twice.where}); ${KEEPS_LAST}`);
    const doc = parsed.value;
    const rooms = (doc as { rooms?: unknown } | null)?.rooms;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || typeof rooms !== 'object' || rooms === null || Array.isArray(rooms)) {
      throw errors.ROOM_BINDINGS_INVALID(this.path, 'must be {"rooms": {"<room>": "<pipeline>", …}}');
    }
    const bindings: Record<string, string> = {};
    for (const [room, pipeline] of Object.entries(rooms)) {
      try {
        checkName('room', room);
      } catch (e) {
        throw errors.ROOM_BINDINGS_INVALID(this.path, `binds a room name that is not allowed (${(e as Error).message})`);
      }
      if (typeof pipeline !== 'string' || pipeline === '') throw errors.ROOM_BINDINGS_INVALID(this.path, `binds room "${room}" to no pipeline name`);
      bindings[room] = pipeline;
    }
    return bindings;
  }

  /**
   * Calls `onChange` once the file may have changed on disk (debounced):
   * written, replaced or removed, or the directory's entries swapped (a
   * Kubernetes ConfigMap's `..data` link). Not for the server's own
   * temporary files. Returns what stops watching. A directory the system
   * will not watch (the limit on file watches reached) calls `onError`; the
   * file is then still read before each change.
   */
  watch(onChange: () => void, onError: (e: NodeJS.ErrnoException) => void): () => void {
    const dir = dirname(this.path);
    const name = basename(this.path);
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;
    const stop = () => {
      clearTimeout(timer);
      watcher?.close();
      watcher = undefined;
    };
    try {
      watcher = watch(dir, { persistent: false }, (_event, filename) => {
        const file = filename?.toString();
        // Another file of the directory (a pipeline, a temporary file): not ours. No name, or a
        // name that is no file of ours (`..data`): the directory's entries may have been swapped.
        if (file !== undefined && file !== name && (file.endsWith('.json') || file.endsWith('.tmp'))) return;
        clearTimeout(timer);
        timer = setTimeout(onChange, CHANGE_DEBOUNCE_MS);
      });
    } catch (e) {
      onError(e as NodeJS.ErrnoException);
      return stop;
    }
    watcher.on('error', (e: NodeJS.ErrnoException) => {
      stop();
      onError(e);
    });
    return stop;
  }

  /**
   * Runs `task` (a reading of the file and the writing of a change) holding
   * the lock on the file, so that two servers sharing the directory cannot
   * both read it and then each write it without the other's change. The lock
   * is a file of its own beside it (`.rooms.json.lock.tmp`, created only if
   * absent, which the directory's watchers ignore); one older than 10 s was
   * left by a server that died holding it and is taken over. Waits at most
   * 5 s for another server's, then rejects with
   * `EARSHOT_ROOM_BINDINGS_WRITE_FAILED`. `readOnly`: no lock.
   */
  async locked<T>(task: () => Promise<T>): Promise<T> {
    if (this.readOnly) return task();
    const lock = join(dirname(this.path), `.${basename(this.path)}.lock.tmp`);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await (await open(lock, 'wx')).close();
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') throw errors.ROOM_BINDINGS_WRITE_FAILED(this.path, `its lock ${lock} cannot be made (${code ?? (e as Error).message})`);
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > LOCK_STALE_MS) await unlink(lock).catch(() => undefined);
        else if (Date.now() > deadline) throw errors.ROOM_BINDINGS_WRITE_FAILED(this.path, `another server has held its lock ${lock} for more than ${LOCK_WAIT_MS / 1000} s`);
        else await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
      }
    }
    try {
      return await task();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }

  /**
   * Reads the file and resolves to the rooms whose binding differs from what
   * it held when last read here or written (at the first reading: every
   * room it binds). Rejects as `read()` does, and then forgets nothing.
   */
  async changes(): Promise<RoomBindingChange[]> {
    const now = await this.read();
    const changed = changedBetween(this.#lastSeen, now);
    this.#lastSeen = now;
    return changed;
  }

  /**
   * Replaces the file with `bindings` (nothing, `readOnly`). Rejects with
   * `EARSHOT_ROOM_BINDINGS_WRITE_FAILED` (500), the file left as it was. The
   * caller makes one write at a time (RoomPipelines).
   */
  async write(bindings: Record<string, string>): Promise<void> {
    if (this.readOnly) return;
    try {
      await replaceFile(this.path, `${JSON.stringify({ rooms: bindings }, null, 2)}\n`);
    } catch (e) {
      throw errors.ROOM_BINDINGS_WRITE_FAILED(this.path, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
    this.#lastSeen = { ...bindings };
  }
}
