/**
 * Streaming Ogg Opus writer (RFC 7845 over RFC 3533): Opus packets as they
 * are, no re-encoding. The file opens with the OpusHead and OpusTags pages;
 * audio packets are gathered into pages that are written asynchronously,
 * appended one after the other. Every page on disk is complete and final, so
 * a copy of the file taken at any moment is a playable Ogg Opus stream of
 * everything written so far (only the end-of-stream flag is missing until
 * `close()`).
 *
 * Granule positions count samples at 48 kHz (RFC 7845 §4): the granule of a
 * page is the samples of every packet completed on it and before it; players
 * drop the first `preSkip` of them, so a file plays for granule − pre-skip. The caller keeps media time by appending packets for gaps too
 * (see ogg-opus-recorder.ts); the writer only adds up what it is given.
 *
 * Pages are flushed at least every `flushIntervalMs`. One packet is held back
 * at each periodic flush, so the final page, which must carry the
 * end-of-stream flag, always has a packet to end on. Its granule may be set
 * lower than its packets add up to (`close(finalGranule)`), for packets coded
 * past the audio's end: players stop there (end trimming, RFC 7845 §4.4).
 *
 * Errors mirror the WAV writer: only bytes the system reports written count;
 * when a write fails the file is cut back to its last complete page (a
 * playable stream without its end flag), the writer stops, and `onError` is
 * called once. A file whose header pages cannot be written is removed.
 * Memory is bounded: when more than `maxPendingBytes` wait for the disk, new
 * packets are replaced by zero-length frames (decoders conceal them, RFC 6716
 * §3.2.1), so the timeline stays right and the loss is counted in `droppedBytes`.
 */
import { randomInt } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { opusPacketSamples } from '../media/opus-toc.js';
import { writeAll, type RecordingFileHandle } from './file-writes.js';
import { sharedClock } from '../media/periodic-clock.js';

/** The file handle the writer uses: the same subset of `FileHandle` as the WAV writer's. */
export type OggFileHandle = RecordingFileHandle;

export interface OggOpusWriterOptions {
  /** Channels in OpusHead (1 or 2): what decoders output. Stereo packets in a mono file are downmixed, mono packets in a stereo file duplicated. */
  channels: 1 | 2;
  /**
   * OpusHead pre-skip: samples at 48 kHz that players drop from the start (the
   * encoder's delay). Default `DEFAULT_PRE_SKIP` (312). The packets come from an
   * encoder we don't control, so the real value is unknown; 312 is the delay of
   * libopus, the encoder of every browser and of earshot's own sender, so the
   * decoded audio lines up with what the sender captured. Decoders then output
   * the media duration less 6.5 ms. (0 would keep every sample, but opusinfo
   * rejects a pre-skip that low as implausible.)
   */
  preSkip?: number;
  /**
   * OpusHead's input sample rate (RFC 7845 §5.1: the rate of the audio before
   * encoding; informational, players decode at 48 kHz). Default 48000: packets
   * recorded as received come from WebRTC senders' 48 kHz. A branch the worker
   * encodes at 16 kHz says 16000.
   */
  inputSampleRate?: number;
  /** OpusTags vendor string. Default "earshot". */
  vendor?: string;
  /** Comments for OpusTags, "KEY=value" each (RFC 7845 §5.2). */
  comments?: readonly string[];
  /** Periodic page flush, ms. Default 1000. Writers with the same period share one timer (media/periodic-clock.ts). */
  flushIntervalMs?: number;
  /** Body bytes at which a page is closed without waiting for the flush. Default 4096. */
  pageBytes?: number;
  /** Bytes allowed to wait for the disk before new packets are replaced by zero-length frames. Default 1 MiB. */
  maxPendingBytes?: number;
  /** Ogg bitstream serial number. Default random (RFC 3533 asks for a unique one per stream). */
  serial?: number;
  /** Called once when a write fails, after the file was cut back to whole pages. */
  onError?(error: Error): void;
  /** Creates the file, failing if it exists. Default `fs.promises.open(path, 'wx')`. */
  openFile?(path: string): Promise<OggFileHandle>;
}

/** Pre-skip of libopus at 48 kHz (2.5 ms delay compensation + 4 ms look-ahead): what browsers' files and packets carry. */
export const DEFAULT_PRE_SKIP = 312;
/** Opus always counts granule positions at 48 kHz (RFC 7845 §4). */
export const OPUS_GRANULE_RATE = 48000;
const MAX_SEGMENTS = 255;
const HEADER_FLAG_BOS = 0x02;
const HEADER_FLAG_EOS = 0x04;

/** CRC-32 of Ogg pages (RFC 3533 §6): polynomial 0x04C11DB7, initial 0, MSB first, no final XOR. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

export function oggCrc(data: Uint8Array, crc = 0): number {
  for (let i = 0; i < data.length; i++) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ data[i]) & 0xff]) >>> 0;
  return crc >>> 0;
}

/** One complete Ogg page with the given whole packets (none may be continued). */
export function oggPage(packets: readonly Uint8Array[], granule: bigint, serial: number, sequence: number, flags: number): Buffer {
  const lacing: number[] = [];
  let body = 0;
  for (const p of packets) {
    for (let left = p.length; ; left -= 255) {
      if (left >= 255) lacing.push(255);
      else {
        lacing.push(left); // a packet that is a multiple of 255 bytes ends with a 0
        break;
      }
    }
    body += p.length;
  }
  if (lacing.length > MAX_SEGMENTS) throw new RangeError(`an Ogg page holds at most ${MAX_SEGMENTS} segments, got ${lacing.length}`);
  const page = Buffer.alloc(27 + lacing.length + body);
  page.write('OggS', 0, 'ascii');
  page[4] = 0; // version
  page[5] = flags;
  page.writeBigInt64LE(granule, 6);
  page.writeUInt32LE(serial >>> 0, 14);
  page.writeUInt32LE(sequence >>> 0, 18);
  // CRC (22..25) is computed with the field zeroed.
  page[26] = lacing.length;
  for (let i = 0; i < lacing.length; i++) page[27 + i] = lacing[i];
  let o = 27 + lacing.length;
  for (const p of packets) {
    page.set(p, o);
    o += p.length;
  }
  page.writeUInt32LE(oggCrc(page), 22);
  return page;
}

function segmentsOf(packet: Uint8Array): number {
  return Math.floor(packet.length / 255) + 1;
}

/** OpusHead, RFC 7845 §5.1, channel mapping family 0 (mono or stereo). */
function opusHead(channels: number, preSkip: number, inputSampleRate: number): Buffer {
  const h = Buffer.alloc(19);
  h.write('OpusHead', 0, 'ascii');
  h[8] = 1; // version
  h[9] = channels;
  h.writeUInt16LE(preSkip, 10);
  h.writeUInt32LE(inputSampleRate, 12); // informational: what was encoded; decoders output 48 kHz
  h.writeInt16LE(0, 16); // output gain
  h[18] = 0; // mapping family 0
  return h;
}

/** OpusTags, RFC 7845 §5.2. */
function opusTags(vendor: string, comments: readonly string[]): Buffer {
  const parts = [Buffer.from('OpusTags', 'ascii')];
  const v = Buffer.from(vendor, 'utf8');
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  parts.push(u32(v.length), v, u32(comments.length));
  for (const c of comments) {
    const b = Buffer.from(c, 'utf8');
    parts.push(u32(b.length), b);
  }
  return Buffer.concat(parts);
}

export class OggOpusWriter {
  readonly channels: 1 | 2;
  readonly preSkip: number;
  readonly inputSampleRate: number;
  readonly serial: number;
  /** Granule position after every packet appended: their samples, the pre-skip among them. */
  granule: number;
  /** Packets appended (written, pending, or replaced because the disk fell behind). */
  packetsAppended = 0;
  /** Bytes on disk in complete pages (headers included). */
  bytesWritten = 0;
  /** Packet bytes replaced by zero-length frames (the disk could not keep up) or never written after a failure. */
  droppedBytes = 0;
  error: Error | undefined;

  readonly #fh: OggFileHandle;
  readonly #pageBytes: number;
  readonly #maxPending: number;
  readonly #onError?: (e: Error) => void;
  /** Packets of the page being gathered. */
  #packets: Uint8Array[] = [];
  /** Durations (48 kHz samples) of the gathered packets. */
  #durations: number[] = [];
  #packetBytes = 0;
  #segments = 0;
  /** Page sequence number of the next page. */
  #sequence = 0;
  readonly #pending: Array<{ page: Buffer; granule: number }> = [];
  #pendingBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  #writeActive = false;
  /** Bytes the system reported written, maybe ending inside a page after a failure. */
  #onDisk = 0;
  /** Granule of the last complete page on disk. */
  #granuleOnDisk: number;
  #stopFlushing: (() => void) | undefined;
  #closed = false;

  private constructor(fh: OggFileHandle, options: OggOpusWriterOptions) {
    this.#fh = fh;
    this.channels = options.channels;
    this.preSkip = options.preSkip ?? DEFAULT_PRE_SKIP;
    this.inputSampleRate = options.inputSampleRate ?? OPUS_GRANULE_RATE;
    this.serial = options.serial ?? randomInt(0, 2 ** 32 - 1);
    this.granule = 0;
    this.#granuleOnDisk = 0;
    this.#pageBytes = options.pageBytes ?? 4096;
    this.#maxPending = options.maxPendingBytes ?? 1024 * 1024;
    this.#onError = options.onError;
  }

  /** Creates the file (failing if it exists) with its two header pages; removes it again if they cannot be written. */
  static async create(path: string, options: OggOpusWriterOptions): Promise<OggOpusWriter> {
    if (options.channels !== 1 && options.channels !== 2) throw new RangeError(`channels must be 1 or 2, got ${String(options.channels)}`);
    const preSkip = options.preSkip ?? DEFAULT_PRE_SKIP;
    if (!Number.isInteger(preSkip) || preSkip < 0 || preSkip > 0xffff) throw new RangeError(`preSkip must be an integer 0–65535, got ${preSkip}`);
    const rate = options.inputSampleRate ?? OPUS_GRANULE_RATE;
    if (!Number.isInteger(rate) || rate < 1 || rate > 0xffffffff) throw new RangeError(`inputSampleRate must be a positive integer, got ${rate}`);
    const interval = options.flushIntervalMs ?? 1000;
    if (!(interval > 0) || !Number.isFinite(interval)) throw new RangeError(`flushIntervalMs must be a positive number, got ${interval}`);
    const fh = await (options.openFile ?? ((p: string) => open(p, 'wx')))(path);
    const writer = new OggOpusWriter(fh, options);
    try {
      // RFC 7845 §3: OpusHead alone on the first page (beginning of stream), OpusTags on the next, audio on fresh pages.
      const head = oggPage([opusHead(writer.channels, writer.preSkip, writer.inputSampleRate)], 0n, writer.serial, writer.#sequence++, HEADER_FLAG_BOS);
      const tags = oggPage([opusTags(options.vendor ?? 'earshot', options.comments ?? [])], 0n, writer.serial, writer.#sequence++, 0);
      await writer.#writeFully(Buffer.concat([head, tags]));
      writer.bytesWritten = writer.#onDisk;
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw e;
    }
    // One timer for every recording's flushes, each in a slot of the period (media/periodic-clock.ts).
    writer.#stopFlushing = sharedClock(interval).add(() => writer.#periodic());
    return writer;
  }

  /** Seconds players decode from what was appended (granule minus pre-skip); once writing failed, from what the file holds. */
  get durationSeconds(): number {
    return Math.max(0, (this.error ? this.#granuleOnDisk : this.granule) - this.preSkip) / OPUS_GRANULE_RATE;
  }

  /**
   * Appends one Opus packet lasting `samples` (48 kHz, per channel). The
   * packet is copied: the caller may reuse its buffer.
   */
  appendPacket(packet: Uint8Array, samples: number): void {
    if (this.#closed) return;
    // After a write failure nothing more reaches the disk: counted as dropped.
    if (this.error) {
      this.droppedBytes += packet.length;
      return;
    }
    if (packet.length === 0) throw new RangeError('an Opus packet has at least its TOC byte');
    let data: Uint8Array = packet;
    if (this.#pendingBytes > this.#maxPending && packet.length > 2) {
      // The disk fell behind: keep the timeline with zero-length frames, as many as the packet
      // had (code 0: the TOC alone; more frames: code 3, constant bitrate, empty frames).
      const frames = samples / (opusPacketSamples(Uint8Array.of(packet[0] & 0xfc)) || samples);
      data = frames === 1 ? Uint8Array.of(packet[0] & 0xfc) : Uint8Array.of(packet[0] | 0x03, frames);
      this.droppedBytes += packet.length - data.length;
    } else {
      data = Uint8Array.from(packet);
    }
    const segments = segmentsOf(data);
    if (this.#segments + segments > MAX_SEGMENTS || (this.#packets.length > 0 && this.#packetBytes + data.length > this.#pageBytes)) this.#closePage(this.#packets.length);
    this.#packets.push(data);
    this.#durations.push(samples);
    this.#packetBytes += data.length;
    this.#segments += segments;
    this.granule += samples;
    this.packetsAppended++;
  }

  /**
   * Writes every packet appended in pages, the last one flagged end of
   * stream, then closes the file. `finalGranule`, for packets that code
   * zeros past the audio's end: the last page's granule, lower than the
   * packets' samples add up to, so that players stop there (end trimming,
   * RFC 7845 §4.4). It is kept within the last page's packets.
   */
  async close(finalGranule?: number): Promise<void> {
    if (this.#closed) return this.#writing;
    this.#closed = true;
    this.#stopFlushing?.();
    if (!this.error) {
      if (this.#packets.length > 0 && finalGranule !== undefined) {
        // Not below the page before it: trimming only takes samples of the last page's packets.
        const onLastPage = this.#durations.reduce((n, d) => n + d, 0);
        this.granule = Math.min(this.granule, Math.max(this.granule - onLastPage, finalGranule));
      }
      if (this.#packets.length > 0) this.#closePage(this.#packets.length, HEADER_FLAG_EOS);
      // No audio at all (an explicit start that got none; pages are otherwise closed only with a
      // packet left over). Players refuse a stream without packets, so it gets one silent frame,
      // end-trimmed (RFC 7845 §4.4) by a final granule equal to the pre-skip: it plays for 0 s.
      else this.#queuePage(oggPage([Uint8Array.of(0xf8 | (this.channels === 2 ? 0x04 : 0), 0xff, 0xfe)], BigInt(this.preSkip), this.serial, this.#sequence++, HEADER_FLAG_EOS), this.preSkip);
    }
    await this.#drained();
    await this.#fh.close().catch(() => {});
  }

  #periodic(): void {
    if (this.#closed || this.error) return;
    // All but the last packet: the end-of-stream page needs one (see the module comment).
    if (this.#packets.length > 1) this.#closePage(this.#packets.length - 1);
  }

  /** Closes a page of the first `count` gathered packets and queues it for the disk. */
  #closePage(count: number, flags = 0): void {
    if (count === 0) return;
    let restSamples = 0;
    for (let i = count; i < this.#durations.length; i++) restSamples += this.#durations[i];
    const granule = this.granule - restSamples;
    this.#queuePage(oggPage(this.#packets.slice(0, count), BigInt(granule), this.serial, this.#sequence++, flags), granule);
    this.#packets = this.#packets.slice(count);
    this.#durations = this.#durations.slice(count);
    this.#packetBytes = this.#packets.reduce((n, p) => n + p.length, 0);
    this.#segments = this.#packets.reduce((n, p) => n + segmentsOf(p), 0);
  }

  #queuePage(page: Buffer, granule: number): void {
    this.#pending.push({ page, granule });
    this.#pendingBytes += page.length;
    this.#pump();
  }

  /** Writes pending pages, one write at a time, in order. */
  #pump(): void {
    if (this.#writeActive || this.#pending.length === 0 || this.error) return;
    this.#writeActive = true;
    this.#writing = this.#writing.then(async () => {
      try {
        while (this.#pending.length > 0 && !this.error) {
          const { page, granule } = this.#pending[0];
          await this.#writeFully(page);
          this.#pending.shift();
          this.#pendingBytes -= page.length;
          this.bytesWritten = this.#onDisk;
          this.#granuleOnDisk = granule;
        }
      } catch (e) {
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

  /** Appends all of `buf` at the end of what is on disk (file-writes.ts). */
  #writeFully(buf: Buffer): Promise<void> {
    return writeAll(this.#fh, buf, this.#onDisk, (n) => (this.#onDisk += n));
  }


  #fail(e: Error): void {
    if (this.error) return;
    this.error = e;
    for (const { page } of this.#pending) this.droppedBytes += page.length;
    this.droppedBytes += this.#packetBytes;
    this.#pending.length = 0;
    this.#pendingBytes = 0;
    this.#packets = [];
    this.#durations = [];
    this.#packetBytes = 0;
    this.#segments = 0;
    this.#stopFlushing?.();
    // Cut a partly written page off (truncating only shrinks, so it works on a full disk), then report.
    this.#writing = this.#writing
      .then(() => this.#fh.truncate(this.bytesWritten).catch(() => {}))
      .then(() => {
        this.#onDisk = this.bytesWritten;
        try {
          this.#onError?.(e);
        } catch {
          // the listener's failure must not break the clean-up chain
        }
      });
  }
}
