/**
 * Streaming WAV writer. Samples are appended as they arrive and written
 * asynchronously in chunks; the header's sizes are rewritten at least once per
 * second, so a copy of the file taken at any moment is a valid WAV holding
 * everything written so far. Memory is bounded: at most
 * `maxPendingBytes` wait for the disk; beyond that the oldest chunk is dropped
 * and counted (`droppedBytes`), and a hole of its length takes its place, so
 * the audio after it stays at its media time (it plays as silence).
 *
 * Silence is kept as a length until audio follows it or the file is flushed.
 * A run longer than the current chunk and one more is not written at all: the
 * file is extended over it (a hole the file system reads as zeros, and
 * stores in no blocks where it can), so an hour's pause costs neither memory
 * nor a pass over hundreds of megabytes of zeros, and never counts against
 * `maxPendingBytes`. So is any silence a flush finds with no audio before it
 * in the chunk: a pause that arrives a little at a time (a DTX talker's, a
 * few hundred ms per update) is extended over at each flush, not written as
 * zeros.
 *
 * The header never claims bytes the file does not hold. Only bytes the system
 * reports written are counted (a write to a full disk can be short: part of
 * the buffer lands, then ENOSPC), and when writing fails the header is
 * rewritten to the data actually on disk, cut to whole sample frames, and the
 * file truncated to match. A file that cannot get even its first header is
 * removed rather than left empty.
 *
 * A recording has no 4 GiB limit: below it the file is a plain WAV, past it
 * the header becomes RF64's, in place (wav-header.ts).
 */
import { open, unlink } from 'node:fs/promises';
import { writeAll, type RecordingFileHandle } from './file-writes.js';
import { quantizeS16 } from '../media/pcm16.js';
import { sharedChunkPool, type ChunkPool } from './chunk-pool.js';
import { sharedClock } from '../media/periodic-clock.js';
import { wavHeader, wavHeaderBytes, type WavSampleFormat } from './wav-header.js';

export type { WavSampleFormat } from './wav-header.js';

/** The part of `fs.promises.FileHandle` the writer uses (file-writes.ts). */
export type WavFileHandle = RecordingFileHandle;

export interface WavFileWriterOptions {
  sampleRate: number;
  channels: number;
  /** "s16" (16-bit PCM, default) or "f32" (32-bit IEEE float). */
  sampleFormat?: WavSampleFormat;
  /**
   * Bytes collected before a write is issued. Default: about 1.25 s of audio
   * (whole 4 KiB pages, 32 KiB–1 MiB), so that the header rewrite, which
   * flushes the current chunk every second, makes it one data write and one
   * header write per second.
   */
  chunkBytes?: number;
  /**
   * Header rewrite period in ms (also flushes the current chunk). Default 1000.
   * Writers with the same period share one timer and flush at a few fixed
   * moments of it (media/periodic-clock.ts), the first within one period.
   */
  headerIntervalMs?: number;
  /** Most bytes allowed to wait for the disk before the oldest chunk is dropped (silence placed as a hole does not count). Default 8 MiB. */
  maxPendingBytes?: number;
  /**
   * Called once when a write fails, after the file was made consistent: the
   * writer stops writing, and the file keeps what reached the disk (whole
   * sample frames) with a header that says so. `error` is set at once.
   */
  onError?(error: Error): void;
  /**
   * Where chunk buffers come from and go back to once written. Default: one
   * pool for the whole process, so a recording holds one chunk, not two
   * (sinks/chunk-pool.ts).
   */
  chunkPool?: ChunkPool;
  /** Creates the file, failing if it exists. Default `fs.promises.open(path, 'wx')`; tests pass a handle that fails like a full disk. */
  openFile?(path: string): Promise<WavFileHandle>;
}

/** What a closed writer holds instead of a chunk (nothing is appended after close). */
const NO_CHUNK = Buffer.from(new ArrayBuffer(0));

/** Where a chunk dropped for a slow disk was: a hole of its length, its bytes counted as dropped already. */
interface DroppedHole {
  dropped: number;
}

/** About 1.25 s of audio at `bytesPerSecond`, in whole 4 KiB pages, 32 KiB–1 MiB. */
function defaultChunkBytes(bytesPerSecond: number): number {
  const pages = Math.ceil((bytesPerSecond * 1.25) / 4096);
  return Math.min(1024 * 1024, Math.max(32 * 1024, pages * 4096));
}

export class WavFileWriter {
  readonly sampleRate: number;
  readonly channels: number;
  readonly sampleFormat: WavSampleFormat;
  readonly headerBytes: number;
  /** Sample frames appended (written, pending or dropped). */
  framesAppended = 0;
  /** Data bytes on disk and covered by the header (whole sample frames). */
  dataBytesWritten = 0;
  /** Data bytes dropped because the disk could not keep up. */
  droppedBytes = 0;
  error: Error | undefined;

  readonly #fh: WavFileHandle;
  readonly #bytesPerSample: number;
  readonly #blockAlign: number;
  readonly #chunkBytes: number;
  readonly #maxPending: number;
  readonly #onError?: (e: Error) => void;
  #chunk: Buffer = NO_CHUNK;
  /** The chunk as samples of the file's format: one view per chunk, not one per append. */
  #chunkSamples: Int16Array | Float32Array = new Int16Array(0);
  #chunkUsed = 0;
  /** Chunk buffers come from here and go back once written: no allocation per chunk in steady state. */
  readonly #chunks: ChunkPool;
  /** Chunks waiting for the disk, in order, and holes (a number: bytes of silence the file is extended by). */
  /** Chunks, holes of silence (a number of bytes), and holes where a dropped chunk was (counted in `droppedBytes` already). */
  readonly #pending: Array<Buffer | number | DroppedHole> = [];
  /** Bytes of the chunks in `#pending` (holes take no memory). */
  #pendingBytes = 0;
  /** Chunks in `#pending`. */
  #pendingChunks = 0;
  /** Silence appended and not yet placed in a chunk or a hole, bytes (whole sample frames). */
  #silence = 0;
  #writing: Promise<void> = Promise.resolve();
  #writeActive = false;
  #dataOnDisk = 0; // data bytes the system reported written (header may lag)
  #stopFlushing: (() => void) | undefined;
  #closed = false;

  private constructor(fh: WavFileHandle, options: WavFileWriterOptions) {
    this.#fh = fh;
    this.sampleRate = options.sampleRate;
    this.channels = options.channels;
    this.sampleFormat = options.sampleFormat ?? 's16';
    this.#bytesPerSample = this.sampleFormat === 's16' ? 2 : 4;
    this.#blockAlign = this.#bytesPerSample * this.channels;
    this.headerBytes = wavHeaderBytes(this.sampleFormat);
    this.#chunkBytes = options.chunkBytes ?? defaultChunkBytes(options.sampleRate * this.#blockAlign);
    this.#maxPending = options.maxPendingBytes ?? 8 * 1024 * 1024;
    this.#onError = options.onError;
    this.#chunks = options.chunkPool ?? sharedChunkPool;
    this.#useChunk(this.#newChunk());
  }

  /** A chunk buffer: a reused one, else a new one (its contents are overwritten before use). */
  #newChunk(): Buffer {
    return Buffer.from(this.#chunks.take(this.#chunkBytes));
  }

  /** Makes `buf` (a whole ArrayBuffer, offset 0, so the views are aligned) the chunk appended to. */
  #useChunk(buf: Buffer): void {
    this.#chunk = buf;
    this.#chunkSamples = this.#bytesPerSample === 2 ? new Int16Array(buf.buffer, buf.byteOffset, buf.length >> 1) : new Float32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
  }

  /** Gives a written (or dropped) chunk's buffer back for reuse. */
  #recycle(buf: Buffer): void {
    if (buf.buffer.byteLength === this.#chunkBytes && buf.byteOffset === 0) this.#chunks.give(buf.buffer as ArrayBuffer);
  }

  /**
   * Creates the file (failing if it exists) and writes an empty, valid header.
   * If the header cannot be written (a full disk), the file is removed again:
   * an empty file is not a recording.
   */
  static async create(path: string, options: WavFileWriterOptions): Promise<WavFileWriter> {
    if (!Number.isInteger(options.sampleRate) || options.sampleRate < 1) throw new RangeError(`sampleRate must be a positive integer, got ${options.sampleRate}`);
    if (!Number.isInteger(options.channels) || options.channels < 1) throw new RangeError(`channels must be a positive integer, got ${options.channels}`);
    const interval = options.headerIntervalMs ?? 1000;
    if (!(interval > 0) || !Number.isFinite(interval)) throw new RangeError(`headerIntervalMs must be a positive number, got ${interval}`);
    const fh = await (options.openFile ?? ((p: string) => open(p, 'wx')))(path);
    const writer = new WavFileWriter(fh, options);
    try {
      await writer.#writeFully(writer.#header(0), 0);
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw e;
    }
    // One timer for every recording's flushes, each in a slot of the period (media/periodic-clock.ts).
    writer.#stopFlushing = sharedClock(interval).add(() => writer.#periodic());
    return writer;
  }

  /** Seconds appended; once writing failed, the seconds the file holds. */
  get durationSeconds(): number {
    if (this.error) return this.dataBytesWritten / this.#blockAlign / this.sampleRate;
    return this.framesAppended / this.sampleRate;
  }

  /**
   * Appends interleaved samples: floats (−1..1) or 16-bit integers (frames of
   * an s16 branch, or floats already quantized by media/pcm16.ts). Int16
   * samples go into an s16 file as they are (a byte copy), and into an f32
   * file as ÷32768; floats go into an s16 file quantized by media/pcm16.ts.
   */
  append(samples: Float32Array | Int16Array): void {
    if (this.#closed) return;
    // After a write failure nothing more reaches the disk: counted as dropped, as the deployment guide says.
    if (this.error) {
      this.droppedBytes += (samples.length / this.channels) * this.#blockAlign;
      return;
    }
    if (this.#silence > 0) this.#placeSilence();
    this.framesAppended += samples.length / this.channels;
    const bps = this.#bytesPerSample;
    let i = 0;
    while (i < samples.length) {
      const room = (this.#chunkBytes - this.#chunkUsed) / bps;
      const n = Math.min(room, samples.length - i);
      // WAV is little-endian like every platform Node runs on. A frame that fits is copied
      // as it is: no view is made per append (this runs for every frame of every recording).
      const at = this.#chunkUsed / bps;
      const whole = i === 0 && n === samples.length;
      if (samples instanceof Int16Array) {
        if (bps === 2) (this.#chunkSamples as Int16Array).set(whole ? samples : samples.subarray(i, i + n), at);
        else {
          const out = this.#chunkSamples as Float32Array;
          for (let k = 0; k < n; k++) out[at + k] = samples[i + k] / 32768;
        }
      } else if (bps === 2) {
        // The project's one quantizer: round(x · 32768), clipped (media/pcm16.ts).
        quantizeS16(samples, this.#chunkSamples as Int16Array, i, at, n);
      } else {
        (this.#chunkSamples as Float32Array).set(whole ? samples : samples.subarray(i, i + n), at);
      }
      this.#chunkUsed += n * bps;
      i += n;
      if (this.#chunkUsed === this.#chunkBytes) this.#queueChunk();
    }
  }

  /**
   * Appends `frames` sample frames of silence (a gap, or a frame known to be
   * all zeros). Kept as a length until audio follows or the file is flushed,
   * so consecutive runs add up to one (see the module comment).
   */
  appendSilence(frames: number): void {
    if (this.#closed || !(frames > 0)) return;
    if (this.error) {
      this.droppedBytes += frames * this.#blockAlign;
      return;
    }
    this.framesAppended += frames;
    this.#silence += frames * this.#blockAlign;
  }

  /**
   * Puts the silence appended so far into the file's order: zeros in the
   * chunk, or, for a run that reaches past the current chunk and one more,
   * zeros to the end of the chunk and a hole for the rest.
   */
  #placeSilence(): void {
    let left = this.#silence;
    this.#silence = 0;
    const room = this.#chunkBytes - this.#chunkUsed;
    if (left > room + this.#chunkBytes) {
      this.#chunk.fill(0, this.#chunkUsed, this.#chunkBytes);
      this.#chunkUsed = this.#chunkBytes;
      this.#queueChunk(left - room);
      return;
    }
    // Zero is all-zero bytes in both formats: the chunk is zeroed in place, with no block of
    // silence allocated and copied.
    while (left > 0) {
      const n = Math.min(left, this.#chunkBytes - this.#chunkUsed);
      this.#chunk.fill(0, this.#chunkUsed, this.#chunkUsed + n);
      this.#chunkUsed += n;
      left -= n;
      if (this.#chunkUsed === this.#chunkBytes) this.#queueChunk();
    }
  }

  /**
   * Puts the silence appended so far into the file's order before a flush:
   * as a hole when no audio waits in the chunk (the flush would otherwise
   * write the zeros alone: a silent talker's pause, delivered a few hundred
   * ms at a time, would reach the disk as ~100 KB of zeros a second), else as
   * `#placeSilence` does (a short gap after audio goes into the same write).
   */
  #settleSilence(): void {
    if (this.#silence === 0) return;
    if (this.#chunkUsed > 0) return this.#placeSilence();
    const hole = this.#silence;
    this.#silence = 0;
    this.#queueChunk(hole);
  }

  /** Writes everything appended so far and the final header, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return this.#writing;
    if (!this.error) this.#settleSilence();
    this.#closed = true;
    this.#stopFlushing?.();
    this.#queueChunk();
    // The chunk that would have been filled next goes back to the pool unused.
    this.#recycle(this.#chunk);
    this.#useChunk(NO_CHUNK);
    this.#pump();
    await this.#drained();
    if (!this.error) await this.#writeHeader().catch((e) => this.#fail(e as Error));
    await this.#drained(); // the clean-up after a failure of that last header
    await this.#fh.close().catch(() => {});
  }

  #periodic(): void {
    if (this.#closed || this.error) return;
    this.#settleSilence();
    this.#queueChunk();
    this.#pump();
    // The header follows the data that is on disk, never ahead of it.
    this.#writing = this.#writing.then(() => (this.error ? undefined : this.#writeHeader())).catch((e) => this.#fail(e as Error));
  }

  /** Queues the current chunk for the disk (if it holds anything), then a hole of `hole` bytes (if any). */
  #queueChunk(hole = 0): void {
    if (this.#chunkUsed > 0) {
      const full = this.#chunk.subarray(0, this.#chunkUsed);
      this.#pending.push(full);
      this.#pendingBytes += full.length;
      this.#pendingChunks++;
      this.#useChunk(this.#closed ? NO_CHUNK : this.#newChunk());
      this.#chunkUsed = 0;
    }
    if (hole > 0) this.#pending.push(hole);
    while (this.#pendingBytes > this.#maxPending && this.#pendingChunks > 1) {
      // The oldest chunk, not a hole: a hole holds no memory. The chunk becomes a hole of its length:
      // the audio after it keeps its place in the file (cut out, everything later would move earlier).
      const at = this.#pending.findIndex((p) => Buffer.isBuffer(p));
      const dropped = this.#pending[at] as Buffer;
      this.#pending[at] = { dropped: dropped.length };
      this.#pendingBytes -= dropped.length;
      this.#pendingChunks--;
      this.droppedBytes += dropped.length;
      this.#recycle(dropped);
    }
    this.#pump();
  }

  /** Starts writing pending chunks, one write at a time, in order. */
  #pump(): void {
    if (this.#writeActive || this.#pending.length === 0 || this.error) return;
    this.#writeActive = true;
    this.#writing = this.#writing.then(async () => {
      let inFlight: { bytes: number; from: number } | undefined;
      try {
        while (this.#pending.length > 0 && !this.error) {
          const next = this.#pending.shift()!;
          const onDisk = this.#dataOnDisk;
          if (typeof next === 'number') {
            inFlight = { bytes: next, from: onDisk };
            await this.#extend(next);
            continue;
          }
          if (!Buffer.isBuffer(next)) {
            // Counted as dropped when its chunk was: a failure here loses nothing more.
            inFlight = undefined;
            await this.#extend(next.dropped);
            continue;
          }
          this.#pendingBytes -= next.length;
          this.#pendingChunks--;
          inFlight = { bytes: next.length, from: onDisk };
          await this.#writeFully(next, this.headerBytes, true);
          this.#recycle(next);
        }
        inFlight = undefined;
      } catch (e) {
        // The part of the chunk (or hole) that failed which never reached the disk is lost too.
        if (inFlight) this.droppedBytes += Math.max(0, inFlight.bytes - (this.#dataOnDisk - inFlight.from));
        this.#fail(e as Error);
      } finally {
        this.#writeActive = false;
      }
    });
  }

  async #drained(): Promise<void> {
    for (;;) {
      const current = this.#writing;
      await current;
      if (current === this.#writing && (this.#pending.length === 0 || this.error)) return;
      this.#pump();
    }
  }

  /**
   * Writes all of `buf` at `base` + (for data) the data already on disk.
   * Data bytes count as written as the system reports them, so a write that
   * fails halfway leaves `#dataOnDisk` true.
   */
  async #writeFully(buf: Buffer, base: number, data = false): Promise<void> {
    if (!data) return writeAll(this.#fh, buf, base);
    return writeAll(this.#fh, buf, base + this.#dataOnDisk, (n) => (this.#dataOnDisk += n));
  }


  /**
   * Extends the file by `bytes` of zeros without writing them (a hole), as
   * data on disk: truncating to a greater length zero-fills, and file systems
   * that can keep the range sparse do.
   */
  async #extend(bytes: number): Promise<void> {
    await this.#fh.truncate(this.headerBytes + this.#dataOnDisk + bytes);
    this.#dataOnDisk += bytes;
  }

  /** Data bytes on disk, cut to whole sample frames: what a header may claim. */
  #wholeFrames(bytes: number): number {
    return bytes - (bytes % this.#blockAlign);
  }

  async #writeHeader(): Promise<void> {
    const data = this.#wholeFrames(this.#dataOnDisk);
    await this.#writeFully(this.#header(data), 0);
    this.dataBytesWritten = data;
  }

  /**
   * After a failed write: make the file a valid WAV of exactly what reached
   * the disk. Rewriting the header overwrites bytes the file already has, and
   * truncating only shrinks it, so both work on a full disk. If the header
   * still cannot be written, the file is cut back to what the header on disk
   * already claims.
   */
  async #settle(): Promise<void> {
    const whole = this.#wholeFrames(this.#dataOnDisk);
    try {
      if (whole !== this.dataBytesWritten) await this.#writeFully(this.#header(whole), 0);
      this.dataBytesWritten = whole;
    } catch {
      // keep the previous header; the truncation below makes the file match it
    }
    this.#dataOnDisk = this.dataBytesWritten;
    await this.#fh.truncate(this.headerBytes + this.dataBytesWritten).catch(() => {});
  }

  #header(dataBytes: number): Buffer {
    return wavHeader(this, dataBytes);
  }

  #fail(e: Error): void {
    if (this.error) return;
    this.error = e;
    // Whatever waits for the disk now will never reach it, silence too: count it as dropped.
    this.droppedBytes += this.#pendingBytes + this.#chunkUsed + this.#silence;
    // None of them is being written (a write takes its chunk off the list first): they go back.
    for (const p of this.#pending) {
      // Silence holes only: a dropped chunk's hole was counted when it was dropped.
      if (typeof p === 'number') this.droppedBytes += p;
      else if (Buffer.isBuffer(p)) this.#recycle(p);
    }
    this.#pending.length = 0;
    this.#pendingBytes = 0;
    this.#pendingChunks = 0;
    this.#chunkUsed = 0;
    this.#silence = 0;
    this.#stopFlushing?.();
    // Runs after the write or header update that failed has returned; the report follows
    // the clean-up, so what it says about the file (seconds, bytes) is what the file holds.
    this.#writing = this.#writing
      .then(() => this.#settle())
      .then(() => {
        try {
          this.#onError?.(e);
        } catch {
          // the listener's failure must not break the clean-up chain
        }
      });
  }
}
