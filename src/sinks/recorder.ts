/**
 * Record sink: writes a branch's frames to a streaming WAV file, placing every
 * frame at its media position. Gaps (loss beyond concealment, dropped frames, a
 * worker restart) become silence and overlaps are trimmed, so the recording's
 * duration equals the media duration (invariant 5).
 */
import type { ProcessedFrame } from '../dsp/types.js';
import { WavFileWriter, type WavSampleFormat } from './wav-file-writer.js';

export interface RecorderOptions {
  path: string;
  name: string;
  sampleRate: number;
  channels: number;
  sampleFormat?: WavSampleFormat;
  /**
   * Media position (samples at `sampleRate`) the file starts at. Default: the
   * first frame's position. Auto-started recordings pass 0 so that audio lost at
   * the very start is still accounted for.
   */
  startPosition?: number;
  onError?(error: Error): void;
}

export interface RecordingInfo {
  name: string;
  state: 'recording' | 'stopped' | 'failed';
  startedAt: string;
  stoppedAt?: string;
  seconds: number;
  /** Bytes on disk: header plus data. */
  bytes: number;
  sampleRate: number;
  channels: number;
  sampleFormat: WavSampleFormat;
  /** Sample frames of silence inserted for gaps. */
  gapFrames: number;
  /** Bytes dropped because the disk could not keep up. */
  droppedBytes: number;
  error?: string;
}

export class Recorder {
  readonly name: string;
  readonly startedAt = new Date();
  stoppedAt: Date | undefined;
  gapFrames = 0;
  #nextPosition: number | undefined;
  readonly #writer: WavFileWriter;
  #stopped = false;

  private constructor(writer: WavFileWriter, options: RecorderOptions) {
    this.#writer = writer;
    this.name = options.name;
    this.#nextPosition = options.startPosition;
  }

  static async start(options: RecorderOptions): Promise<Recorder> {
    const writer = await WavFileWriter.create(options.path, {
      sampleRate: options.sampleRate,
      channels: options.channels,
      sampleFormat: options.sampleFormat,
      onError: options.onError,
    });
    return new Recorder(writer, options);
  }

  write(frame: ProcessedFrame): void {
    if (this.#stopped) return;
    const ch = this.#writer.channels;
    const frames = frame.data.length / ch;
    const next = this.#nextPosition ?? frame.position;
    let data = frame.data;
    if (frame.position > next) {
      const gap = frame.position - next;
      this.#writer.appendSilence(gap);
      this.gapFrames += gap;
    } else if (frame.position < next) {
      const overlap = next - frame.position;
      if (overlap >= frames) return;
      data = data.subarray(overlap * ch);
    }
    this.#writer.append(data);
    this.#nextPosition = frame.position + frames;
  }

  async stop(): Promise<RecordingInfo> {
    if (!this.#stopped) {
      this.#stopped = true;
      this.stoppedAt = new Date();
      await this.#writer.close();
    }
    return this.info();
  }

  info(): RecordingInfo {
    const w = this.#writer;
    return {
      name: this.name,
      state: w.error ? 'failed' : this.#stopped ? 'stopped' : 'recording',
      startedAt: this.startedAt.toISOString(),
      ...(this.stoppedAt ? { stoppedAt: this.stoppedAt.toISOString() } : {}),
      seconds: w.durationSeconds,
      bytes: w.headerBytes + w.dataBytesWritten,
      sampleRate: w.sampleRate,
      channels: w.channels,
      sampleFormat: w.sampleFormat,
      gapFrames: this.gapFrames,
      droppedBytes: w.droppedBytes,
      ...(w.error ? { error: w.error.message } : {}),
    };
  }
}
