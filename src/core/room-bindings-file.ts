/**
 * Where room bindings (`PUT /rooms/:room`) outlive a restart: `rooms.json` in
 * the pipelines directory, beside the pipelines they name, so that copying or
 * mounting that one directory carries a server's whole configuration.
 *
 *     { "rooms": { "pstn": "telephony", "support": "call-recording" } }
 *
 * Read once at start; written whole on every change (a temporary file renamed
 * over it, so a crash mid-write leaves the old file or the new one, never half
 * of either).
 */
import { randomUUID } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errors } from '../errors.js';
import { checkName } from './names.js';

/** The file's name in the pipelines directory (never read as a pipeline). */
export const ROOM_BINDINGS_FILE = 'rooms.json';

export class RoomBindingsFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
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
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw errors.ROOM_BINDINGS_INVALID(this.path, `is not JSON (${(e as Error).message})`);
    }
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
   * Replaces the file with `bindings`. Rejects with
   * `EARSHOT_ROOM_BINDINGS_WRITE_FAILED` (500), the file left as it was. The
   * caller makes one write at a time (RoomPipelines).
   */
  async write(bindings: Record<string, string>): Promise<void> {
    // Hidden and ending in .tmp: the pipelines directory's watcher ignores it.
    const temp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.${randomUUID()}.tmp`);
    try {
      await writeFile(temp, `${JSON.stringify({ rooms: bindings }, null, 2)}\n`, { flag: 'wx' });
      await rename(temp, this.path);
    } catch (e) {
      await unlink(temp).catch(() => {});
      throw errors.ROOM_BINDINGS_WRITE_FAILED(this.path, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
  }
}
