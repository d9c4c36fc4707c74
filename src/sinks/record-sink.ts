/**
 * A branch's record sink: starts and stops recordings at runtime, keeps frames
 * that arrive while a file is being opened, and remembers the last recording so
 * the stats can report it after it stopped.
 *
 * Auto-started recordings are *armed*, not opened: the file is created when
 * the first frame arrives (that frame and the ones after it wait in the
 * bounded backlog while it opens). A session that never carries audio, such
 * as an offer that never connects, leaves no file behind. An explicit start
 * (`POST /peers/:peer/recording`, `startRecording()`) creates the file at
 * once: the caller asked for it and gets the answer (name taken, disk full)
 * in the response.
 *
 * A recording that cannot start, or whose writes fail, is never silent: its
 * info says `state: 'failed'` with the reason, and `onFailed` reports it.
 *
 * Format "ogg-opus" records the received Opus packets (`writeEncoded`, fed
 * before the worker) instead of the branch's PCM (`write`, which it ignores);
 * see ogg-opus-recorder.ts.
 */
import { basename, dirname, resolve } from 'node:path';
import type { AudioFrame, EncodedFrame } from '../media/frames.js';
import { errors, isEarshotError, type EarshotError } from '../errors.js';
import { OggOpusRecorder } from './ogg-opus-recorder.js';
import { opusPacketIsStereo } from '../media/opus-toc.js';
import { droppedTotal, Recorder, type DroppedFrames, type RecordingFormat, type RecordingInfo } from './recorder.js';
import { GENERATED_NAME_MAX } from './recording-names.js';
import { RecordingsStore, type RecordingExtension } from './recordings-store.js';
import type { WavSampleFormat } from './wav-file-writer.js';

export interface RecordSinkOptions {
  store: RecordingsStore;
  peer: string;
  /** Base of generated file names, e.g. `demo-alice-20261124-101500`. */
  baseName: string;
  /** Rate and channels of the branch as the pipeline expects them; written as they are unless `reportedFormat` is given. */
  sampleRate: number;
  channels: number;
  /**
   * The branch's format as its worker reports it when the stream starts
   * (what the stages really output, custom ones included). When given, a
   * recording waits for it before creating its file and is written in it.
   */
  reportedFormat?: Promise<{ sampleRate: number; channels: number }>;
  sampleFormat: WavSampleFormat;
  /** "wav" (default): the branch's PCM; "ogg-opus": the received Opus packets, given to `writeEncoded`. */
  format?: RecordingFormat;
  /** For "ogg-opus": the packets are the worker's coding of the branch (after its stages), not the received ones, so loss on the way to the worker reaches them. */
  coded?: boolean;
  /**
   * A recording could not start (not for a name the caller chose badly: that
   * error goes to the caller), or its writes failed. Called once per recording.
   */
  onFailed(error: EarshotError, info: RecordingInfo): void;
  /** A recording's file was created and it records (automatic or asked for). */
  onStarted?(info: RecordingInfo): void;
  /** A recording stopped and its file is final (asked for, or at the end of the session). */
  onStopped?(info: RecordingInfo): void;
}

const MAX_BACKLOG = 250; // frames kept while a file opens (5 s of 20 ms frames)

/** Errors about the name a caller chose: answered to that caller, not a failure of the recording. */
const CALLER_ERRORS = new Set<string>([errors.RECORDING_EXISTS.code, errors.RECORDING_NAME_INVALID.code, errors.RECORDING_ACTIVE.code]);

/** What the sink keeps while a file opens: a PCM frame (with its 16-bit copy) or a received packet. */
type Kept = { frame: AudioFrame; pcm16: Int16Array | undefined } | { encoded: EncodedFrame };

export class RecordSink {
  #recorder: Recorder | OggOpusRecorder | undefined;
  #starting: Promise<RecordingInfo> | undefined;
  /** Armed: a recording starts with the first frame; `fromStreamStart` anchors it at position 0. */
  #armed: { fromStreamStart: boolean } | undefined;
  /** Frames (with their 16-bit copies) or packets that arrived while the file was being opened. */
  #backlog: Kept[] = [];
  /** Loss reported while armed or opening, handed to the recorder once it exists. */
  #pendingLoss: { dropped: DroppedFrames; silence: number } | undefined;
  #failure: EarshotError | undefined;
  #last: RecordingInfo | undefined;
  /** Every recording this sink stopped (a session can record, stop and record again): what the session leaves on disk. */
  readonly #stopped: RecordingInfo[] = [];
  /** The format files are written in: the options', until the worker's report replaces it. */
  #format: { sampleRate: number; channels: number };

  constructor(private readonly options: RecordSinkOptions) {
    this.#format = { sampleRate: options.sampleRate, channels: options.channels };
  }

  /** The container this sink writes. */
  get format(): RecordingFormat {
    return this.options.format ?? 'wav';
  }

  /** File name suffix of this sink's recordings. */
  get extension(): RecordingExtension {
    return this.format === 'ogg-opus' ? '.opus' : '.wav';
  }

  /** A recording is armed, opening or running. */
  get active(): boolean {
    return this.#recorder !== undefined || this.#starting !== undefined || this.#armed !== undefined;
  }

  /** A file is opening or being written (an armed recording, with no file yet, is not). */
  get running(): boolean {
    return this.#recorder !== undefined || this.#starting !== undefined;
  }

  /** Armed and waiting for its first frame: no file exists yet. */
  get armed(): boolean {
    return this.#armed !== undefined && this.#starting === undefined && this.#recorder === undefined;
  }

  /**
   * Arms a recording with a generated name that starts when the first frame
   * arrives. `fromStreamStart` places it at media position 0, so audio lost
   * before the first frame is accounted for (silence, counted in `gapFrames`).
   */
  arm(fromStreamStart = true): void {
    if (this.active) return;
    this.#armed = { fromStreamStart };
    this.#pendingLoss = emptyLoss();
  }

  /** Cancels an armed recording that has not started; false if none was armed. */
  disarm(): boolean {
    if (!this.armed) return false;
    this.#armed = undefined;
    this.#pendingLoss = undefined;
    return true;
  }

  /**
   * Whether `start(name)` would be refused for its name or for a recording already running, without
   * starting anything: throws the error `start` would (`EARSHOT_RECORDING_ACTIVE`, a name that is not
   * valid, `EARSHOT_RECORDING_EXISTS`). For starting several sinks together all or none.
   */
  async checkStart(name?: string): Promise<void> {
    if (this.#starting) throw errors.RECORDING_ACTIVE(this.options.peer, 'a new file');
    if (this.#recorder) throw errors.RECORDING_ACTIVE(this.options.peer, this.#recorder.name);
    if (name !== undefined) await this.#freeChosenName(name);
  }

  /** A name the caller chose, with this sink's extension as it writes it ("a.WAV" is a.wav); refused when not valid or taken. */
  async #freeChosenName(name: string): Promise<string> {
    const ext = this.extension;
    const file = `${RecordingsStore.checkChosenName(name, ext).slice(0, -ext.length)}${ext}`;
    if (await this.options.store.exists(file)) throw errors.RECORDING_EXISTS(file);
    return file;
  }

  /**
   * Starts a recording now; `name` is user-chosen (validated: a bare file name in
   * the recordings directory) or generated. `path` (programmatic API only, never
   * from HTTP) records to that file instead, wherever it is. An armed recording
   * that has not started yet is replaced by this one.
   */
  start(name?: string, fromStreamStart = false, path?: string): Promise<RecordingInfo> {
    if (this.#starting) return Promise.reject(errors.RECORDING_ACTIVE(this.options.peer, 'a new file'));
    if (this.#recorder) return Promise.reject(errors.RECORDING_ACTIVE(this.options.peer, this.#recorder.name));
    const armed = this.#armed;
    this.#armed = undefined;
    return this.#open(name, fromStreamStart || (armed?.fromStreamStart ?? false), path, false).catch((e: EarshotError) => {
      // A name the caller got wrong must not cost the session its automatic recording.
      if (armed && !this.active && CALLER_ERRORS.has(e.code)) this.arm(armed.fromStreamStart);
      throw e;
    });
  }

  #open(name: string | undefined, fromStreamStart: boolean, path: string | undefined, automatic: boolean): Promise<RecordingInfo> {
    const { store } = this.options;
    this.#pendingLoss ??= emptyLoss();
    this.#starting = (async () => {
      let file = path !== undefined ? basename(path) : (name ?? this.options.baseName);
      let recorder: Recorder | OggOpusRecorder;
      // The writer reports a failure after the sink may have let go of the recorder (stop() in progress).
      const self: { recorder?: Recorder | OggOpusRecorder } = {};
      const ext = this.extension;
      try {
        // A `path` is recorded where the caller said, as given; names go through the store.
        if (path === undefined && name !== undefined) {
          file = await this.#freeChosenName(name);
        } else if (path === undefined) {
          file = await store.freeName(fitBase(this.options.baseName, ext), ext);
        }
        // Packets recorded as received need no report of the worker's output; a WAV file, and Opus the
        // worker codes after the branch's stages, are written at the rate the stages really make
        // (a custom stage's may differ from what the pipeline's validation could tell).
        if (this.options.reportedFormat && (this.format === 'wav' || this.options.coded)) {
          const { sampleRate, channels } = await this.options.reportedFormat;
          this.#format = { sampleRate, channels };
        }
        for (let attempt = 1; ; attempt++) {
          if (path === undefined) await prepareDirectory(store, file, name !== undefined);
          try {
            const target = path !== undefined ? resolve(path) : store.pathOf(file);
            const startPosition = fromStreamStart ? 0 : undefined;
            const opened = file;
            const onError = (e: Error) => this.#writeFailed(opened, e, self.recorder);
            recorder =
              this.format === 'ogg-opus'
                ? await OggOpusRecorder.start({ path: target, name: file, channels: this.#oggChannels(), inputSampleRate: this.#format.sampleRate, startPosition, coded: this.options.coded, onError })
                : await Recorder.start({
                    path: target,
                    name: file,
                    sampleRate: this.#format.sampleRate,
                    channels: this.#format.channels,
                    sampleFormat: this.options.sampleFormat,
                    startPosition,
                    onError,
                  });
            self.recorder = recorder;
            break;
          } catch (e) {
            if (isEarshotError(e)) throw e;
            const code = (e as NodeJS.ErrnoException).code;
            // A generated name another session (or branch) took between the check and the file's
            // creation (the file is created exclusively): the next free one, as it would have had.
            if (code === 'EEXIST' && path === undefined && name === undefined && attempt < NAME_ATTEMPTS) {
              file = await store.freeName(fitBase(this.options.baseName, ext), ext);
              continue;
            }
            if (code === 'EEXIST') throw errors.RECORDING_EXISTS(file);
            // A path given as is is written where the caller said: its directory is the one to name.
            // So is the one a generated or chosen name's file goes to (a sink's own directory, not always the root).
            throw errors.RECORDINGS_DIR_UNWRITABLE(dirname(path !== undefined ? resolve(path) : store.pathOf(file)), describeErrno(e as NodeJS.ErrnoException));
          }
        }
      } catch (e) {
        const error = isEarshotError(e) ? e : errors.INTERNAL((e as Error).message);
        // A name the caller chose is the caller's to fix; anything else means this recording is lost.
        if (automatic || !CALLER_ERRORS.has(error.code)) {
          this.#last = this.#failedInfo(file, error);
          this.options.onFailed(error, this.#last);
        }
        throw error;
      }
      this.#failure = undefined;
      this.#recorder = recorder;
      const loss = this.#pendingLoss;
      this.#pendingLoss = undefined;
      if (loss) recorder.noteLoss(loss.dropped, loss.silence);
      for (const b of this.#backlog) {
        if ('encoded' in b) (recorder as OggOpusRecorder).write(b.encoded);
        else (recorder as Recorder).write(b.frame, b.pcm16);
      }
      this.#backlog = [];
      const info = this.info()!;
      this.#notify(this.options.onStarted, info);
      return info;
    })().finally(() => {
      this.#starting = undefined;
      this.#pendingLoss = undefined;
      this.#backlog = [];
    });
    return this.#starting;
  }

  /**
   * Writes a frame (with its 16-bit copy, see `Recorder.write`) to the
   * running recording, or keeps it while the file opens. Kept frames are
   * copied: the caller's buffers may be reused once this returns.
   */
  write(frame: AudioFrame, pcm16?: Int16Array): void {
    if (this.format !== 'wav') return;
    if (this.#recorder) {
      (this.#recorder as Recorder).write(frame, pcm16);
      return;
    }
    this.#keep(() => keep(frame, pcm16));
  }

  /**
   * Writes a received Opus packet (or a lost one, `payload` null) to an
   * ogg-opus recording; ignored by a WAV one. Kept packets are copied.
   */
  writeEncoded(frame: EncodedFrame): void {
    if (this.format !== 'ogg-opus') return;
    if (this.#recorder) {
      (this.#recorder as OggOpusRecorder).write(frame);
      return;
    }
    this.#keep(() => ({ encoded: { ...frame, payload: frame.payload?.slice() ?? null } }));
  }

  /** Keeps what arrived while the file opens; the first arrival opens an armed recording's file. */
  #keep(kept: () => Kept): void {
    if (this.armed) {
      const { fromStreamStart } = this.#armed!;
      this.#armed = undefined;
      this.#backlog.push(kept());
      // Reported through onFailed (and the info) already; nobody awaits an automatic start.
      this.#open(undefined, fromStreamStart, undefined, true).catch(() => undefined);
      return;
    }
    if (!this.#starting) return;
    if (this.#backlog.length < MAX_BACKLOG) this.#backlog.push(kept());
    else this.#pendingLoss!.dropped.backlog++;
  }

  /**
   * Channels of an Ogg Opus file: the branch's, or stereo when the first
   * packet is coded stereo (the sender sent stereo whatever was negotiated;
   * a stereo file keeps it, a mono file would downmix it).
   */
  #oggChannels(): 1 | 2 {
    const first = this.#backlog[0];
    const stereo = first !== undefined && 'encoded' in first && first.encoded.payload !== null && opusPacketIsStereo(first.encoded.payload);
    return stereo || this.#format.channels >= 2 ? 2 : 1;
  }

  /**
   * Loss that happened before the frames got here (see `Recorder.noteLoss`):
   * counted in the running recording, or kept for the one that is armed or
   * opening; ignored while nothing records.
   */
  noteLoss(dropped: Partial<DroppedFrames>, workerSilenceSamples = 0): void {
    if (this.#recorder) {
      this.#recorder.noteLoss(dropped, workerSilenceSamples);
      return;
    }
    const pending = this.#pendingLoss;
    if (!pending || !(this.#armed || this.#starting)) return;
    for (const key of Object.keys(pending.dropped) as Array<keyof DroppedFrames>) pending.dropped[key] += dropped[key] ?? 0;
    pending.silence += workerSilenceSamples;
  }

  /**
   * Stops and finalizes the recording; throws if none is running (an armed
   * one is only disarmed). `mediaEnd`: see `Recorder.stop`.
   */
  async stop(mediaEnd?: number): Promise<RecordingInfo> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    const recorder = this.#recorder;
    if (!recorder) {
      this.disarm();
      throw errors.RECORDING_NOT_ACTIVE(this.options.peer);
    }
    this.#recorder = undefined;
    await recorder.stop(mediaEnd);
    this.#last = this.#withFailure(recorder.info());
    this.#stopped.push(this.#last);
    this.#notify(this.options.onStopped, this.#last);
    return this.#last;
  }

  /**
   * The files this sink made, in order: each stopped recording, then the
   * running one. Not one that failed before its file existed.
   */
  made(): RecordingInfo[] {
    return this.#recorder ? [...this.#stopped, this.#withFailure(this.#recorder.info())] : [...this.#stopped];
  }

  #notify(listener: ((info: RecordingInfo) => void) | undefined, info: RecordingInfo): void {
    try {
      listener?.(info);
    } catch {
      // a listener's failure is not the recording's
    }
  }

  /**
   * Stops if recording, disarms if armed; never throws (used on session end,
   * with where the stream's media ends: see `Recorder.stop`).
   */
  async finalize(mediaEnd?: number): Promise<RecordingInfo | undefined> {
    this.disarm();
    if (!this.active) return this.#last;
    return this.stop(mediaEnd).catch(() => this.#last);
  }

  info(): RecordingInfo | undefined {
    return this.#recorder ? this.#withFailure(this.#recorder.info()) : this.#last;
  }

  #writeFailed(file: string, e: Error, recorder: Recorder | OggOpusRecorder | undefined): void {
    const failure = errors.RECORDING_WRITE_FAILED(file, describeErrno(e as NodeJS.ErrnoException));
    this.#failure = failure;
    this.options.onFailed(failure, recorder ? this.#withFailure(recorder.info()) : this.#failedInfo(file, failure));
  }

  /** The recorder's info with the typed reason of a write failure instead of the raw system error. */
  #withFailure(info: RecordingInfo): RecordingInfo {
    return this.#failure && info.state === 'failed' ? { ...info, error: this.#failure.message, code: this.#failure.code } : info;
  }

  #failedInfo(name: string, error: EarshotError): RecordingInfo {
    const at = new Date().toISOString();
    const loss = this.#pendingLoss ?? emptyLoss();
    const d = loss.dropped;
    const ext = this.extension;
    return {
      name: name.toLowerCase().endsWith(ext) ? name : `${name}${ext}`,
      format: this.format,
      state: 'failed',
      startedAt: at,
      stoppedAt: at,
      seconds: 0,
      bytes: 0,
      sampleRate: this.format === 'ogg-opus' && !this.options.coded ? 48000 : this.#format.sampleRate,
      channels: this.#format.channels,
      sampleFormat: this.format === 'ogg-opus' ? 's16' : this.options.sampleFormat,
      gapFrames: 0,
      gapSeconds: 0,
      droppedFrames: droppedTotal(d),
      droppedBy: { ...d },
      droppedBytes: 0,
      error: error.message,
      code: error.code,
    };
  }
}

/**
 * Creates the directories a recording name needs. A file where one of them
 * should be fails with EEXIST. For a name the client chose (`chosen`), that
 * is the client's conflict (409 `EARSHOT_RECORDING_EXISTS`, naming the file
 * in the way); for a generated one, the directory cannot be written (the
 * template and the files disagree: the operator's to fix).
 */
async function prepareDirectory(store: RecordingsStore, file: string, chosen: boolean): Promise<void> {
  try {
    await store.prepare(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { link?: string };
    if (err.code === 'ELINKOUT') {
      // Recordings are written, as they are served, only inside the recordings directory.
      const why = `"${err.link}" in it is a link to a directory outside the recordings directory`;
      if (chosen) throw errors.RECORDING_NAME_INVALID(file, `${why}; choose a name without it.`);
      throw errors.RECORDINGS_DIR_UNWRITABLE(store.dir, `${why} (recordings are written only inside it; make it a directory, or remove the link)`);
    }
    const blocked = err.code === 'EEXIST' || err.code === 'ENOTDIR';
    const inTheWay = blocked && chosen ? await store.fileInTheWay(file) : undefined;
    if (inTheWay !== undefined) throw errors.RECORDING_EXISTS(file, inTheWay);
    const dir = dirname(store.pathOf(file));
    throw errors.RECORDINGS_DIR_UNWRITABLE(dir, blocked ? `ENOTDIR (a file is where a directory should be, in ${dir})` : describeErrno(err));
  }
}


/** Names tried for a generated recording whose name others keep taking first (each try re-reads the directory). */
const NAME_ATTEMPTS = 50;

/**
 * A generated base name cut to leave room for `ext` and a "-999": names are
 * generated to fit ".wav" (GENERATED_NAME_MAX), and ".opus" is one longer.
 */
function fitBase(base: string, ext: string): string {
  const cut = GENERATED_NAME_MAX - (ext.length - '.wav'.length);
  const slash = base.lastIndexOf('/');
  const file = base.slice(slash + 1);
  return file.length > cut ? base.slice(0, slash + 1) + file.slice(0, cut) : base;
}

/** A frame and its 16-bit copy, detached from the buffers they came in (the backlog outlives the delivery). */
function keep(frame: AudioFrame, pcm16: Int16Array | undefined): { frame: AudioFrame; pcm16: Int16Array | undefined } {
  const copy = pcm16?.slice();
  // A frame sent without its floats has the 16-bit copy as its data: one copy serves both.
  return { frame: { ...frame, data: frame.data === pcm16 ? copy! : frame.data.slice() }, pcm16: copy };
}

function emptyLoss(): { dropped: DroppedFrames; silence: number } {
  return { dropped: { queueFull: 0, late: 0, workerRestart: 0, stageFailed: 0, backlog: 0, processorStage: 0 }, silence: 0 };
}

/** "ENOSPC (no space left on device)" from a system error, so the reason is readable and its errno leads (the error hints key on it). */
function describeErrno(e: NodeJS.ErrnoException): string {
  if (!e.code) return e.message;
  const detail = /^[A-Z]+: ([^,]+)/.exec(e.message)?.[1];
  return detail ? `${e.code} (${detail})` : e.code;
}
