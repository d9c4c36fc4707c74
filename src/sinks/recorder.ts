/**
 * Record sink: writes a branch's frames to a streaming WAV file, placing every
 * frame at its media position. Gaps (loss beyond concealment, dropped frames, a
 * worker restart) become silence and overlaps are trimmed, so the recording's
 * duration equals the media duration.
 *
 * Silence alone would make a damaged recording look complete, so the recording
 * also counts what it stands for: the silence it inserted itself, the silence
 * the worker inserted before the frames got here (the worker fills the media
 * timeline, so a stream whose frames were dropped on the way arrives gapless),
 * and the frames dropped on the way, by cause (`noteLoss`).
 */
import type { AudioFrame } from '../media/frames.js';
import { isSilence } from '../media/shared-zeros.js';
import { WavFileWriter, type WavFileHandle, type WavSampleFormat } from './wav-file-writer.js';

/** Frames dropped on the way into a recording, by cause. */
export interface DroppedFrames {
  /** Before processing: the stream's worker queue was full (the worker fell behind). */
  queueFull: number;
  /** At the worker: their media time had already been played out (late or duplicate packets). */
  late: number;
  /**
   * Lost to a worker fault: the batch a worker died or hung in; and once the
   * pool ended the stream for it (a hung stage, a stage that keeps crashing
   * its worker), the frames it had queued and those that came until the
   * session ended (counted as received).
   */
  workerRestart: number;
  /**
   * Lost to a stage that failed without taking its worker down (threw, or
   * could not be built): the frames of its batch from the one it failed on
   * (those before it are delivered); and, since that ends the stream, the
   * frames it had queued and those that came until the session ended
   * (counted as received). No worker restarts for it.
   */
  stageFailed: number;
  /** While the file was being opened, beyond the frames kept for it. */
  backlog: number;
  /**
   * Held by a processor stage when the stream ended and cut off after
   * `processorDrainTimeoutMs` (estimated from the media time they held; it
   * is silence in the file).
   */
  processorStage: number;
}

/** The rate of the decoded stream, the unit of worker-inserted silence. */
const DECODE_RATE = 48000;

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
  /** See WavFileWriterOptions.openFile. */
  openFile?(path: string): Promise<WavFileHandle>;
}

/** Container of a recording: streaming WAV of the branch's PCM, or the received Opus packets in Ogg (RFC 7845). */
export type RecordingFormat = 'wav' | 'ogg-opus';

export interface RecordingInfo {
  name: string;
  /** "wav", or "ogg-opus" for the received Opus packets as they are (a `.opus` file). */
  format: RecordingFormat;
  /** `failed`: it could not start, or writing failed; `error` says why and the file (if any) keeps what reached the disk. */
  state: 'recording' | 'stopped' | 'failed';
  startedAt: string;
  stoppedAt?: string;
  /** Media seconds recorded; once failed, the seconds the file holds. */
  seconds: number;
  /** Bytes on disk: header plus data. */
  bytes: number;
  sampleRate: number;
  channels: number;
  /** Sample encoding of a WAV file; "s16" for ogg-opus (what its decoders output). */
  sampleFormat: WavSampleFormat;
  /**
   * Sample frames of silence in the file standing for audio that did not
   * arrive or was dropped (DTX pauses included), whether the worker or the
   * recorder inserted it.
   */
  gapFrames: number;
  /** `gapFrames` in seconds. */
  gapSeconds: number;
  /** Audio frames (packets, typically 20 ms) dropped on the way into this recording; see `droppedBy`. */
  droppedFrames: number;
  droppedBy: DroppedFrames;
  /** Bytes dropped because the disk could not keep up (or never reached it after a failure). */
  droppedBytes: number;
  error?: string;
  /** Stable code of the failure (`EARSHOT_RECORDING_WRITE_FAILED`, `EARSHOT_RECORDINGS_DIR_UNWRITABLE`, …). */
  code?: string;
}

export class Recorder {
  readonly name: string;
  readonly startedAt = new Date();
  stoppedAt: Date | undefined;
  /** Silence the recorder inserted itself (sample frames at the file's rate). */
  gapFrames = 0;
  readonly dropped: DroppedFrames = { queueFull: 0, late: 0, workerRestart: 0, stageFailed: 0, backlog: 0, processorStage: 0 };
  /** Silence the worker inserted, in 48 kHz samples (converted when reported, so no rounding accumulates). */
  #workerSilence = 0;
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
      openFile: options.openFile,
    });
    return new Recorder(writer, options);
  }

  /**
   * Writes a frame at its media position. `pcm16`, when given, is the frame's
   * samples already quantized to 16 bits (by a pool worker, with the writer's
   * quantizer, media/pcm16.ts): an s16 file then takes it as it is.
   */
  write(frame: AudioFrame, pcm16?: Int16Array): void {
    if (this.#stopped) return;
    const ch = this.#writer.channels;
    const frames = frame.data.length / ch;
    const next = this.#nextPosition ?? frame.position;
    let data: Float32Array | Int16Array = pcm16 !== undefined && this.#writer.sampleFormat === 's16' ? pcm16 : frame.data;
    if (frame.position > next) {
      const gap = frame.position - next;
      this.#writer.appendSilence(gap);
      this.gapFrames += gap;
    } else if (frame.position < next) {
      const overlap = next - frame.position;
      if (overlap >= frames) return;
      data = data.subarray(overlap * ch);
    }
    // A frame of zeros (DTX, a long gap's silence, a closed gate) goes in by its length: the
    // writer places silence without copying it, and a long run without writing it.
    if (isSilence(frame.peak, data)) this.#writer.appendSilence(data.length / ch);
    else this.#writer.append(data);
    this.#nextPosition = frame.position + frames;
  }

  /**
   * Accounts for loss that happened before the frames got here: frames dropped
   * on the way, and silence (48 kHz samples) the worker put in their place.
   */
  noteLoss(dropped: Partial<DroppedFrames>, workerSilenceSamples = 0): void {
    if (this.#stopped) return;
    for (const key of Object.keys(this.dropped) as Array<keyof DroppedFrames>) this.dropped[key] += dropped[key] ?? 0;
    this.#workerSilence += workerSilenceSamples;
  }

  /** Error of the writer, once writing failed. */
  get error(): Error | undefined {
    return this.#writer.error;
  }

  /**
   * Stops and finalizes the file. `mediaEnd`, when given, is where the
   * stream's media ends (48 kHz samples): a recording short of it (frames
   * lost at the end of the stream, to a worker fault) is filled with silence
   * up to it, counted in `gapFrames`, so its duration is still the media's.
   */
  async stop(mediaEnd?: number): Promise<RecordingInfo> {
    if (!this.#stopped) {
      const next = this.#nextPosition;
      if (mediaEnd !== undefined && next !== undefined) {
        // Floor: a resampled branch's last sample is the last whole one before the media's end.
        const end = Math.floor((mediaEnd * this.#writer.sampleRate) / DECODE_RATE);
        if (end > next) {
          this.#writer.appendSilence(end - next);
          this.gapFrames += end - next;
          this.#nextPosition = end;
        }
      }
      this.#stopped = true;
      this.stoppedAt = new Date();
      await this.#writer.close();
    }
    return this.info();
  }

  info(): RecordingInfo {
    const w = this.#writer;
    const gapFrames = this.gapFrames + Math.round((this.#workerSilence * w.sampleRate) / DECODE_RATE);
    return recordingInfo(this, 'wav', this.#stopped, w, { bytes: w.headerBytes + w.dataBytesWritten, sampleRate: w.sampleRate, sampleFormat: w.sampleFormat, gapFrames });
  }

}

/**
 * What any recording reports (WAV or Ogg Opus): its state, from the recorder's
 * timestamps and counters and its writer's progress and error.
 */
export function recordingInfo(
  recorder: { name: string; startedAt: Date; stoppedAt: Date | undefined; dropped: DroppedFrames },
  format: RecordingFormat,
  stopped: boolean,
  writer: { error: Error | undefined; durationSeconds: number; droppedBytes: number; channels: number },
  file: { bytes: number; sampleRate: number; sampleFormat: WavSampleFormat; gapFrames: number },
): RecordingInfo {
  const d = recorder.dropped;
  const e = writer.error;
  return {
    name: recorder.name,
    format,
    state: e ? 'failed' : stopped ? 'stopped' : 'recording',
    startedAt: recorder.startedAt.toISOString(),
    ...(recorder.stoppedAt ? { stoppedAt: recorder.stoppedAt.toISOString() } : {}),
    seconds: writer.durationSeconds,
    bytes: file.bytes,
    sampleRate: file.sampleRate,
    channels: writer.channels,
    sampleFormat: file.sampleFormat,
    gapFrames: file.gapFrames,
    gapSeconds: Math.round((file.gapFrames / file.sampleRate) * 1000) / 1000,
    droppedFrames: droppedTotal(d),
    droppedBy: { ...d },
    droppedBytes: writer.droppedBytes,
    ...(e ? { error: e.message, code: (e as { code?: string }).code } : {}),
  };
}

/** Every frame a recording lost on the way, whatever the cause. */
export function droppedTotal(d: DroppedFrames): number {
  return d.queueFull + d.late + d.workerRestart + d.stageFailed + d.backlog + d.processorStage;
}
