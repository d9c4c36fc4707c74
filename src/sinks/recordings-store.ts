/**
 * The recordings directory: checked writable at start, safe file names (no path
 * traversal), unique names for new recordings, and listing with durations read
 * from the WAV headers.
 */
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
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

const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

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

  /** Validates a user-given name and returns it with a `.wav` suffix. */
  static checkName(name: string): string {
    const withExt = name.toLowerCase().endsWith('.wav') ? name : `${name}.wav`;
    if (!NAME.test(withExt) || withExt.includes('..')) throw errors.RECORDING_NAME_INVALID(name);
    return withExt;
  }

  pathOf(name: string): string {
    return join(this.dir, RecordingsStore.checkName(name));
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

  async list(): Promise<RecordingEntry[]> {
    const names = (await readdir(this.dir)).filter((n) => NAME.test(n) && n.toLowerCase().endsWith('.wav'));
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
