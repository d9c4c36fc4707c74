/**
 * Pass-through Opus recording: the received packets, as they are, in an Ogg
 * Opus file (ogg-opus-writer.ts), each at its media position, so the file
 * decodes to exactly the media duration.
 *
 * Where no packet arrived the recorder writes packets for the gap itself,
 * because players decode packets one after another and take no notice of a
 * jump in granule positions (opusdec and ffmpeg both play such a file short):
 *
 * - a packet known to be lost (RTP sequence gap) becomes a zero-length frame
 *   with the TOC of the last packet received: decoders conceal it with Opus
 *   PLC (RFC 6716 §3.2.1), as earshot's own decoder does for the WAV;
 * - a gap with no packets at all (DTX, or loss too long to conceal) becomes
 *   CELT frames that decode to digital silence, as the worker fills it with
 *   silence for the WAV. They are counted in `gapFrames`.
 *
 * Gaps are filled in 20, 10, 5 and 2.5 ms frames; a remainder below 2.5 ms
 * (120 samples, impossible with WebRTC's whole-frame timestamps) is left out.
 */
import type { EncodedFrame } from '../media/frames.js';
import { opusPacketSamples } from '../media/opus-toc.js';
import { OggOpusWriter, OPUS_GRANULE_RATE, type OggFileHandle } from './ogg-opus-writer.js';
import { recordingInfo, type DroppedFrames, type RecordingInfo } from './recorder.js';

export interface OggOpusRecorderOptions {
  path: string;
  name: string;
  channels: 1 | 2;
  /** The rate of the audio encoded (OpusHead's input sample rate, and the listing's `sampleRate`). Default 48000. */
  inputSampleRate?: number;
  /** Media position (48 kHz samples) the file starts at. Default: the first packet's position. */
  startPosition?: number;
  /**
   * The packets are coded by the worker from the branch's stages' output,
   * not received: loss on the way to the worker reaches them (`noteLoss`
   * counts it, as a WAV recording does). Default false.
   */
  coded?: boolean;
  onError?(error: Error): void;
  openFile?(path: string): Promise<OggFileHandle>;
  /** Page flush period, ms (tests). Default 1000. */
  flushIntervalMs?: number;
}

/** CELT-only fullband TOC configurations by frame size: 20, 10, 5 and 2.5 ms (RFC 6716 §3.1). */
const CELT_FB = [
  { samples: 960, config: 31 },
  { samples: 480, config: 30 },
  { samples: 240, config: 29 },
  { samples: 120, config: 28 },
] as const;
/** CELT payload whose first symbol is the silence flag (RFC 6716 §4.3): the frame decodes to zeros. */
const CELT_SILENCE = [0xff, 0xfe] as const;

export class OggOpusRecorder {
  readonly name: string;
  readonly startedAt = new Date();
  stoppedAt: Date | undefined;
  /** Samples (48 kHz) of silence written for gaps with no packets. */
  gapFrames = 0;
  /** Packets known to be lost, written as zero-length frames for the decoder to conceal. */
  concealedPackets = 0;
  /** Frames dropped before they reached this recording (received packets: only while its file opened; coded ones: also on the way to the worker). */
  readonly dropped: DroppedFrames = { queueFull: 0, late: 0, workerRestart: 0, stageFailed: 0, backlog: 0, processorStage: 0 };
  #nextPosition: number | undefined;
  /** Where the media ends, once the stream's last coded packet said so (`EncodedFrame.end`): the file is end-trimmed there. */
  #end: number | undefined;
  /** The first packet's position: where the file starts in media time. */
  #startPosition: number | undefined;
  /** TOC of the last packet received, code 0: what concealment packets are made of. */
  #lastToc: number | undefined;
  readonly #writer: OggOpusWriter;
  readonly #stereoBit: number;
  readonly #coded: boolean;
  #stopped = false;

  private constructor(writer: OggOpusWriter, options: OggOpusRecorderOptions) {
    this.#writer = writer;
    this.name = options.name;
    this.#nextPosition = options.startPosition;
    this.#stereoBit = options.channels === 2 ? 0x04 : 0;
    this.#coded = options.coded === true;
  }

  static async start(options: OggOpusRecorderOptions): Promise<OggOpusRecorder> {
    const writer = await OggOpusWriter.create(options.path, {
      channels: options.channels,
      inputSampleRate: options.inputSampleRate,
      onError: options.onError,
      openFile: options.openFile,
      flushIntervalMs: options.flushIntervalMs,
    });
    return new OggOpusRecorder(writer, options);
  }

  /** Writes a received (or lost: `payload` null) packet at its media position. */
  write(frame: EncodedFrame): void {
    if (this.#stopped) return;
    const next = this.#nextPosition ?? frame.position;
    this.#startPosition ??= next;
    if (frame.end !== undefined) this.#end = frame.end;
    if (frame.position > next) this.#silence(frame.position - next);
    else if (frame.position < next) return; // already covered (a duplicate or overlap)
    if (frame.payload === null) {
      this.#conceal(frame.samples);
    } else {
      const samples = opusPacketSamples(frame.payload);
      if (samples === 0) return; // malformed: the next packet's position turns its time into a gap
      this.#writer.appendPacket(frame.payload, samples);
      this.#lastToc = frame.payload[0] & 0xfc;
      this.#nextPosition = frame.position + samples;
      return;
    }
    this.#nextPosition = frame.position + frame.samples;
  }

  /**
   * Loss before the packets got here. Received packets are recorded before
   * the worker, so only a backlog while the file opened reaches them; coded
   * ones come from the worker, so every cause does, and the silence the
   * worker put in place of lost audio (48 kHz samples) counts in `gapFrames`.
   */
  noteLoss(dropped: Partial<DroppedFrames>, workerSilenceSamples = 0): void {
    if (this.#stopped) return;
    if (!this.#coded) {
      this.dropped.backlog += dropped.backlog ?? 0;
      return;
    }
    for (const key of Object.keys(this.dropped) as Array<keyof DroppedFrames>) this.dropped[key] += dropped[key] ?? 0;
    this.gapFrames += workerSilenceSamples;
  }

  get error(): Error | undefined {
    return this.#writer.error;
  }

  /**
   * Stops and finalizes the file. `mediaEnd` (48 kHz samples), when given, is
   * where the stream's media ends: a recording of coded packets short of it
   * (the stream's last packets lost to a worker fault) is filled with silence
   * up to it, counted in `gapFrames`.
   */
  async stop(mediaEnd?: number): Promise<RecordingInfo> {
    if (!this.#stopped) {
      const next = this.#nextPosition;
      if (mediaEnd !== undefined && next !== undefined && mediaEnd > next) {
        this.#silence(mediaEnd - next);
        this.#nextPosition = mediaEnd;
      }
      this.#stopped = true;
      this.stoppedAt = new Date();
      // Packets coded past the media's end (the encoder's lookahead and its last packet's rest):
      // the final granule ends the file at the media's end (RFC 7845 §4.4), pre-skip included.
      const end = this.#end;
      const start = this.#startPosition;
      await this.#writer.close(end !== undefined && start !== undefined ? this.#writer.preSkip + Math.max(0, end - start) : undefined);
    }
    return this.info();
  }

  info(): RecordingInfo {
    const w = this.#writer;
    // Counted in Opus's 48 kHz samples; reported at the rate the info names (a 16 kHz branch's gap read 3× long).
    const gapFrames = Math.round((this.gapFrames * w.inputSampleRate) / OPUS_GRANULE_RATE);
    return recordingInfo(this, 'ogg-opus', this.#stopped, w, { bytes: w.bytesWritten, sampleRate: w.inputSampleRate, sampleFormat: 's16', gapFrames });
  }


  /** Lost packets lasting `samples`: zero-length frames of the last TOC if it divides them, else silence. */
  #conceal(samples: number): void {
    const toc = this.#lastToc;
    const per = toc === undefined ? 0 : opusPacketSamples(Uint8Array.of(toc));
    if (toc === undefined || per === 0 || samples % per !== 0) {
      this.#silence(samples);
      return;
    }
    const packet = Uint8Array.of(toc);
    for (let n = 0; n < samples; n += per) this.#writer.appendPacket(packet, per);
    this.concealedPackets += samples / per;
  }

  #silence(samples: number): void {
    let left = samples;
    for (const { samples: per, config } of CELT_FB) {
      if (left < per) continue;
      const packet = Uint8Array.of((config << 3) | this.#stereoBit, ...CELT_SILENCE);
      for (; left >= per; left -= per) this.#writer.appendPacket(packet, per);
    }
    this.gapFrames += samples - left;
  }
}
