/**
 * The recordings directory: checked writable at start, safe names (no path
 * traversal), unique names for new recordings, and listing with durations read
 * from the WAV headers. A name is a file name, optionally under subdirectories
 * (`calls/demo/alice-20261125-101500.wav`, from a record sink's `directory`):
 * every segment is a plain name, never `.`, `..` or absolute.
 */
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { errors } from '../errors.js';

export interface RecordingEntry {
  name: string;
  bytes: number;
  /** Seconds of audio the header covers (a recording in progress may be slightly ahead of it). */
  seconds: number;
  sampleRate: number;
  channels: number;
  modifiedAt: string;
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** Subdirectory levels a name may have (and `list()` descends). */
const MAX_DEPTH = 4;

export class RecordingsStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  /** Creates the directory if needed and checks that it is writable. */
  async init(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      await access(this.dir, constants.W_OK);
    } catch (e) {
      throw errors.RECORDINGS_DIR_UNWRITABLE(this.dir, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
    }
  }

  /** Validates a user-given name (optionally `dir/…/file`) and returns it with a `.wav` suffix. */
  static checkName(name: string): string {
    if (typeof name !== 'string') throw errors.RECORDING_NAME_INVALID(String(name));
    const withExt = name.toLowerCase().endsWith('.wav') ? name : `${name}.wav`;
    const segments = withExt.split('/');
    // A segment starts with a letter, digit, "_" or "-", so "." and ".." (traversal) can't be one.
    if (segments.length > MAX_DEPTH + 1 || segments.some((s) => !SEGMENT.test(s))) throw errors.RECORDING_NAME_INVALID(name);
    return withExt;
  }

  pathOf(name: string): string {
    return join(this.dir, RecordingsStore.checkName(name));
  }

  /** Creates the subdirectories a recording name needs (no-op for a top-level name). */
  async prepare(name: string): Promise<void> {
    const dir = dirname(this.pathOf(name));
    if (dir !== this.dir) await mkdir(dir, { recursive: true });
  }

  /** A name not yet used in the directory, from a base like `demo-alice-20261124-101500`. */
  async freeName(base: string): Promise<string> {
    for (let i = 1; i < 1000; i++) {
      const name = RecordingsStore.checkName(i === 1 ? base : `${base}-${i}`);
      try {
        await access(join(this.dir, name));
      } catch {
        return name;
      }
    }
    throw errors.RECORDING_EXISTS(base);
  }

  /** Every recording, subdirectories included (up to 4 levels), sorted by name. */
  async list(): Promise<RecordingEntry[]> {
    const names: string[] = [];
    const walk = async (prefix: string, depth: number) => {
      const entries = await readdir(join(this.dir, prefix), { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (!SEGMENT.test(e.name)) continue;
        const name = prefix ? `${prefix}/${e.name}` : e.name;
        if (e.isDirectory() && depth < MAX_DEPTH) await walk(name, depth + 1);
        else if (e.isFile() && e.name.toLowerCase().endsWith('.wav')) names.push(name);
      }
    };
    await walk('', 0);
    const entries = await Promise.all(names.map((n) => this.describe(n).catch(() => undefined)));
    return entries.filter((e): e is RecordingEntry => e !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  async describe(name: string): Promise<RecordingEntry> {
    const path = this.pathOf(name);
    let info;
    try {
      info = await stat(path);
    } catch {
      throw errors.RECORDING_NOT_FOUND(name);
    }
    if (!info.isFile()) throw errors.RECORDING_NOT_FOUND(name);
    const header = await readWavHeader(path);
    return {
      name: RecordingsStore.checkName(name),
      bytes: info.size,
      seconds: header ? header.dataBytes / header.byteRate : 0,
      sampleRate: header?.sampleRate ?? 0,
      channels: header?.channels ?? 0,
      modifiedAt: info.mtime.toISOString(),
    };
  }
}

interface WavHeader {
  sampleRate: number;
  channels: number;
  byteRate: number;
  dataBytes: number;
}

/** Reads the fmt and data chunk sizes of a WAV file (first 4 KiB). */
async function readWavHeader(path: string): Promise<WavHeader | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') return undefined;
    let o = 12;
    let fmt: Omit<WavHeader, 'dataBytes'> | undefined;
    while (o + 8 <= bytesRead) {
      const id = buf.toString('ascii', o, o + 4);
      const size = buf.readUInt32LE(o + 4);
      if (id === 'fmt ' && o + 24 <= bytesRead) {
        fmt = { channels: buf.readUInt16LE(o + 10), sampleRate: buf.readUInt32LE(o + 12), byteRate: buf.readUInt32LE(o + 16) };
      } else if (id === 'data') {
        return fmt && fmt.byteRate > 0 ? { ...fmt, dataBytes: size } : undefined;
      }
      o += 8 + size + (size & 1);
    }
    return undefined;
  } finally {
    await fh.close();
  }
}
