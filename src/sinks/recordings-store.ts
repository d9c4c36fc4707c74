/**
 * The recordings directory: checked writable at start, safe names (no path
 * traversal), unique names for new recordings, and listing with durations read
 * from the WAV headers (Ogg Opus `.opus` files: from their last page). A name is a file name, optionally under subdirectories
 * (`calls/demo/alice-20261125-101500.wav`, from a record sink's `directory`):
 * every segment is a plain name, never `.`, `..` or absolute (the rule lives in
 * recording-names.ts, shared with pipeline validation).
 */
import { constants } from 'node:fs';
import { access, lstat, open, readdir, realpath, stat, statfs } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { errors, isEarshotError } from '../errors.js';
import { readOggOpusSummary } from './ogg-opus-reader.js';
import { RECORDING_MAX_DEPTH, RECORDING_NAME_RULE, RECORDING_SEGMENT, recordingNameProblem } from './recording-names.js';
import { makeDirectory } from './make-directory.js';
import { readWavHeaderInfo, type WavHeaderInfo } from './wav-header.js';

/** Suffixes of recording files: WAV, and Ogg Opus (".opus", as RFC 7845 §9 recommends for audio-only Ogg Opus). */
export const RECORDING_EXTENSIONS = ['.wav', '.opus'] as const;
export type RecordingExtension = (typeof RECORDING_EXTENSIONS)[number];

export interface RecordingEntry {
  name: string;
  /** "wav" or "ogg-opus" (a `.opus` file). */
  format: 'wav' | 'ogg-opus';
  bytes: number;
  /** Seconds of audio the header covers (a recording in progress may be slightly ahead of it); for Ogg Opus, the last page's granule position less the pre-skip. */
  seconds: number;
  sampleRate: number;
  channels: number;
  modifiedAt: string;
}

const SEGMENT = RECORDING_SEGMENT;
/** Subdirectory levels a name may have (and `list()` descends). */
const MAX_DEPTH = RECORDING_MAX_DEPTH;

/**
 * Free space below which the directory counts as unusable for a record sink
 * with `required: true` (16 MiB: about three minutes of one 48 kHz mono s16
 * stream). A session that must be recorded is better refused than started
 * onto a disk that fills within seconds.
 */
export const MIN_FREE_BYTES = 16 * 1024 * 1024;

export interface RecordingsStoreOptions {
  /** Free space `checkUsable()` requires. Default `MIN_FREE_BYTES` (16 MiB). */
  minFreeBytes?: number;
}

export class RecordingsStore {
  readonly dir: string;
  #walking: Promise<string[]> | undefined;

  readonly minFreeBytes: number;

  constructor(dir: string, options: RecordingsStoreOptions = {}) {
    this.dir = resolve(dir);
    this.minFreeBytes = options.minFreeBytes ?? MIN_FREE_BYTES;
    if (!(this.minFreeBytes >= 0)) throw new RangeError(`minFreeBytes must be 0 or more, got ${options.minFreeBytes}`);
  }

  /** Creates the directory if needed and checks that it is a writable directory. */
  async init(): Promise<void> {
    try {
      await makeDirectory(this.dir);
      if (!(await stat(this.dir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      await access(this.dir, constants.W_OK);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // mkdir on a path that exists as a file says EEXIST; what the operator must fix is "not a directory".
      throw errors.RECORDINGS_DIR_UNWRITABLE(this.dir, err.code === 'EEXIST' ? 'ENOTDIR' : (err.code ?? err.message));
    }
  }

  /**
   * Whether a new recording could be written now: the directory exists (or
   * can be created), is a writable directory, and its file system has at least
   * `minFreeBytes` free. Throws `EARSHOT_RECORDINGS_DIR_UNWRITABLE` saying
   * which (ENOSPC when space is short). Used up front for record sinks with
   * `required: true` (see `recordingPreflight`).
   *
   * `sub`: a directory inside it (a record sink's own, `calls/sales`), checked and named instead,
   * and never created here: a session not yet connected makes no directory (files, and their
   * directories, come with audio). Its deepest level that exists is checked: a directory that can
   * be written (what the recording will create under it is then creatable), not a link to outside
   * the recordings directory, with the space.
   */
  async checkUsable(sub = ''): Promise<void> {
    const dir = sub === '' ? this.dir : join(this.dir, sub);
    let code: string;
    try {
      await makeDirectory(this.dir);
      if (!(await stat(this.dir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      const existing = sub === '' ? this.dir : await this.#deepestInside(sub);
      if (!(await stat(existing)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      await access(existing, constants.W_OK);
      const fs = await statfs(existing);
      const free = fs.bavail * fs.bsize;
      if (free >= this.minFreeBytes) return;
      code = `ENOSPC (${formatBytes(free)} free, ${formatBytes(this.minFreeBytes)} needed)`;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // mkdir on a path that exists as a file says EEXIST; what the operator must fix is "not a directory".
      const link = (err as { link?: string }).link;
      code = err.code === 'EEXIST' ? 'ENOTDIR' : err.code === 'ELINKOUT' ? `ELINKOUT ("${link}" in it is a link to a directory outside the recordings directory)` : (err.code ?? err.message);
    }
    throw errors.RECORDINGS_DIR_UNWRITABLE(dir, code);
  }

  /**
   * The deepest level of `sub` (directory names inside the recordings directory, joined as they are)
   * that exists. A level that is a link to a directory outside the recordings directory throws
   * ELINKOUT (with `link`, the level's name): recordings are written, as they are served, only inside it.
   */
  async #deepestInside(sub: string): Promise<string> {
    const root = await realpath(this.dir);
    let deepest = this.dir;
    const parts = sub.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const link = parts.slice(0, i).join('/');
      const path = join(this.dir, link);
      // A level that does not exist yet (or a file in the way, which the caller finds) ends the walk.
      const real = await realpath(path).catch(() => undefined);
      if (real === undefined) break;
      if (!isInside(real, root)) throw Object.assign(new Error(`${path} is a link to a directory outside the recordings directory`), { code: 'ELINKOUT', link });
      deepest = path;
    }
    return deepest;
  }

  /**
   * Validates a user-given name (optionally `dir/…/file`) and returns it with
   * its suffix: `ext` appended unless the name ends with it; without `ext`,
   * a name ending in a recording suffix (".wav", ".opus") keeps it and any
   * other gets ".wav".
   */
  static checkName(name: string, ext?: RecordingExtension): string {
    if (typeof name !== 'string') throw errors.RECORDING_NAME_INVALID(String(name), `it is not a string. ${RECORDING_NAME_RULE}`);
    const lower = name.toLowerCase();
    const has = ext !== undefined ? lower.endsWith(ext) : RECORDING_EXTENSIONS.some((e) => lower.endsWith(e));
    const withExt = has ? name : `${name}${ext ?? '.wav'}`;
    const problem = recordingNameProblem(withExt);
    if (problem) throw errors.RECORDING_NAME_INVALID(name, `${problem.message}. ${RECORDING_NAME_RULE}`);
    return withExt;
  }

  /**
   * `checkName` for a name a caller chose (`POST /peers/:peer/recording`): one that says the other
   * format ("x.opus" for a WAV recording, which would be x.opus.wav) is refused too. Not for generated
   * names: a peer may be called "x.opus", and a template's name is no caller's to fix.
   */
  static checkChosenName(name: string, ext: RecordingExtension): string {
    const other = typeof name === 'string' ? RECORDING_EXTENSIONS.find((e) => e !== ext && name.toLowerCase().endsWith(e)) : undefined;
    if (other !== undefined) {
      throw errors.RECORDING_NAME_INVALID(name, `it ends in ${other}, but this recording is ${ext === '.wav' ? 'WAV' : 'Ogg Opus'} (${ext}): give the name without an extension, or with ${ext}. ${RECORDING_NAME_RULE}`);
    }
    return RecordingsStore.checkName(name, ext);
  }

  /** Whether a recording of this name (checked, with its suffix) exists in the directory. */
  async exists(name: string): Promise<boolean> {
    try {
      await access(join(this.dir, RecordingsStore.checkName(name)));
      return true;
    } catch (e) {
      if (isEarshotError(e)) throw e;
      return false;
    }
  }

  pathOf(name: string): string {
    return join(this.dir, RecordingsStore.checkName(name));
  }

  /**
   * Creates the subdirectories a recording name needs (no-op for a top-level
   * name). A recording is never written outside the directory, as none is
   * served from outside it: a subdirectory that is a link to a directory
   * elsewhere fails with code `ELINKOUT` and `link`, the name up to that link.
   */
  async prepare(name: string): Promise<void> {
    const dir = dirname(this.pathOf(name));
    if (dir === this.dir) return;
    // Checked before anything is made: a link's target must not get new directories either.
    await this.#deepestInside(RecordingsStore.checkName(name).split('/').slice(0, -1).join('/'));
    await makeDirectory(dir);
  }

  /** A name not yet used in the directory, from a base like `demo-alice-20261124-101500`, with suffix `ext`. */
  async freeName(base: string, ext: RecordingExtension = '.wav'): Promise<string> {
    for (let i = 1; i < 1000; i++) {
      const name = RecordingsStore.checkName(i === 1 ? base : `${base}-${i}`, ext);
      try {
        await access(join(this.dir, name));
      } catch {
        return name;
      }
    }
    throw errors.RECORDING_EXISTS(base);
  }

  /**
   * Every recording's name, subdirectories included (up to 4 levels), sorted.
   * Only directory reads: cheap even for thousands of files. Concurrent calls
   * share one walk, so a burst of listings reads the directory once.
   */
  names(): Promise<string[]> {
    this.#walking ??= this.#walk().finally(() => {
      this.#walking = undefined;
    });
    return this.#walking;
  }

  async #walk(): Promise<string[]> {
    const names: string[] = [];
    const walk = async (prefix: string, depth: number) => {
      const entries = await readdir(join(this.dir, prefix), { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (!SEGMENT.test(e.name)) continue;
        const name = prefix ? `${prefix}/${e.name}` : e.name;
        if (e.isDirectory() && depth < MAX_DEPTH) await walk(name, depth + 1);
        else if (e.isFile() && RECORDING_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x))) names.push(name);
      }
    };
    await walk('', 0);
    return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * One page of recordings, at most `limit`, after `cursor` (a previous page's
   * `next`). In name order by default: only directory reads, and only the
   * page's files are opened. `newest`: by modification time, newest first
   * (then by name), which reads every recording's time (one `lstat` each, no
   * open) — what a list that shows the latest recordings needs once there are
   * more than a page of them. A recording being written moves to the front
   * as it is written; a cursor stays valid (it names a time and a name, not a
   * position).
   */
  async page(options: { limit: number; cursor?: string; order?: RecordingOrder }): Promise<{ recordings: RecordingEntry[]; next: string | null; total: number }> {
    const names = await this.names();
    const { slice, more } = options.order === 'newest' ? await this.#newestAfter(names, options.cursor, options.limit) : nameOrderAfter(names, options.cursor, options.limit);
    const entries = await Promise.all(slice.map((key) => this.describe(key.name).catch(() => undefined)));
    return {
      recordings: entries.filter((e): e is RecordingEntry => e !== undefined),
      next: more && slice.length > 0 ? slice[slice.length - 1].cursor : null,
      total: names.length,
    };
  }

  async #newestAfter(names: string[], cursor: string | undefined, limit: number): Promise<{ slice: PageKey[]; more: boolean }> {
    const timed = await Promise.all(names.map(async (name) => ({ name, ms: Math.floor((await lstat(join(this.dir, name)).catch(() => undefined))?.mtimeMs ?? 0) })));
    const newerFirst = (a: { name: string; ms: number }, b: { name: string; ms: number }) => b.ms - a.ms || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    timed.sort(newerFirst);
    let from = 0;
    if (cursor !== undefined) {
      const at = /^(\d{1,16}):(.+)$/.exec(cursor);
      const after = at ? { ms: Number(at[1]), name: at[2] } : { ms: Number.MAX_SAFE_INTEGER, name: '' };
      from = timed.findIndex((t) => newerFirst(after, t) < 0);
      if (from < 0) from = timed.length;
    }
    const slice = timed.slice(from, from + limit).map((t) => ({ name: t.name, cursor: `${t.ms}:${t.name}` }));
    return { slice, more: from + limit < timed.length };
  }

  /** The first of `name`'s parent names that is a file, not a directory (a recording in the way of a subdirectory), if any. */
  async fileInTheWay(name: string): Promise<string | undefined> {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const info = await lstat(this.pathOf(parent)).catch(() => undefined);
      if (info && !info.isDirectory()) return parent;
    }
    return undefined;
  }

  /** Every recording, described, sorted by name (opens every file: prefer `page()` for large directories). */
  async list(): Promise<RecordingEntry[]> {
    const entries = await Promise.all((await this.names()).map((n) => this.describe(n).catch(() => undefined)));
    return entries.filter((e): e is RecordingEntry => e !== undefined);
  }

  /** `asked`: the name as the caller gave it (before `checkName` added its suffix), for the 404's message. */
  async describe(name: string, asked?: string): Promise<RecordingEntry> {
    const path = this.pathOf(name);
    let info;
    try {
      // A regular file inside the directory, never through a symbolic link: one placed in the
      // recordings volume (or a linked subdirectory) must not serve a file from elsewhere.
      info = await lstat(path);
      if (!info.isFile() || !isInside(await realpath(path), await realpath(this.dir))) throw new Error('not a recording');
    } catch {
      throw errors.RECORDING_NOT_FOUND(name, asked);
    }
    const checked = RecordingsStore.checkName(name);
    const base = { name: checked, bytes: info.size, modifiedAt: info.mtime.toISOString() };
    if (checked.toLowerCase().endsWith('.opus')) {
      const ogg = await readOggOpusSummary(path, info.size);
      return { ...base, format: 'ogg-opus', seconds: ogg?.seconds ?? 0, sampleRate: ogg?.inputSampleRate ?? 0, channels: ogg?.channels ?? 0 };
    }
    const header = await readWavHeader(path);
    return { ...base, format: 'wav', seconds: header ? header.dataBytes / header.byteRate : 0, sampleRate: header?.sampleRate ?? 0, channels: header?.channels ?? 0 };
  }
}

/** How `page()` orders recordings: by name (the default), or newest first. */
export type RecordingOrder = 'name' | 'newest';

/** A recording of a page, and the cursor that resumes after it. */
interface PageKey {
  name: string;
  cursor: string;
}

/** The names after `cursor` in name order (a binary search: `names` is sorted by code units). */
function nameOrderAfter(names: string[], cursor: string | undefined, limit: number): { slice: PageKey[]; more: boolean } {
  let from = 0;
  if (cursor !== undefined) {
    let lo = 0;
    let hi = names.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (names[mid] <= cursor) lo = mid + 1;
      else hi = mid;
    }
    from = lo;
  }
  return { slice: names.slice(from, from + limit).map((name) => ({ name, cursor: name })), more: from + limit < names.length };
}

function isInside(path: string, dir: string): boolean {
  return path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${Math.round((n / 1024 / 1024) * 10) / 10} MiB` : `${Math.round(n / 1024)} KiB`;
}

/** The header of a WAV file (RIFF or RF64, first 4 KiB). */
async function readWavHeader(path: string): Promise<WavHeaderInfo | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return readWavHeaderInfo(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}
