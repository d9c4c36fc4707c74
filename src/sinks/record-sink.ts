/**
 * A branch's record sink: starts and stops recordings at runtime, keeps frames
 * that arrive while a file is being opened, and remembers the last recording so
 * the stats can report it after it stopped.
 */
import { basename, resolve } from 'node:path';
import type { ProcessedFrame } from '../dsp/types.js';
import { errors, isEarshotError } from '../errors.js';
import { Recorder, type RecordingInfo } from './recorder.js';
import { RecordingsStore } from './recordings-store.js';
import type { WavSampleFormat } from './wav-file-writer.js';

export interface RecordSinkOptions {
  store: RecordingsStore;
  peer: string;
  /** Base of generated file names, e.g. `demo-alice-20261124-101500`. */
  baseName: string;
  sampleRate: number;
  channels: number;
  sampleFormat: WavSampleFormat;
  onError(error: Error): void;
}

const MAX_BACKLOG = 250; // frames kept while a file opens (5 s of 20 ms frames)

export class RecordSink {
  #recorder: Recorder | undefined;
  #starting: Promise<RecordingInfo> | undefined;
  #backlog: ProcessedFrame[] = [];
  #last: RecordingInfo | undefined;

  constructor(private readonly options: RecordSinkOptions) {}

  get active(): boolean {
    return this.#recorder !== undefined || this.#starting !== undefined;
  }

  /**
   * Starts a recording; `name` is user-chosen (validated: a bare file name in
   * the recordings directory) or generated. `path` (programmatic API only, never
   * from HTTP) records to that file instead, wherever it is.
   */
  start(name?: string, fromStreamStart = false, path?: string): Promise<RecordingInfo> {
    if (this.#starting) return Promise.reject(errors.RECORDING_ACTIVE(this.options.peer, 'a new file'));
    if (this.#recorder) return Promise.reject(errors.RECORDING_ACTIVE(this.options.peer, this.#recorder.name));
    const { store } = this.options;
    this.#starting = (async () => {
      let file: string;
      if (path !== undefined) {
        file = basename(path);
      } else if (name !== undefined) {
        file = RecordingsStore.checkName(name);
        if ((await store.freeName(file.replace(/\.wav$/i, ''))) !== file) throw errors.RECORDING_EXISTS(file);
      } else {
        file = await store.freeName(this.options.baseName);
      }
      let recorder: Recorder;
      try {
        if (path === undefined) await store.prepare(file);
        recorder = await Recorder.start({
          path: path !== undefined ? resolve(path) : store.pathOf(file),
          name: file,
          sampleRate: this.options.sampleRate,
          channels: this.options.channels,
          sampleFormat: this.options.sampleFormat,
          startPosition: fromStreamStart ? 0 : undefined,
          onError: (e) => this.options.onError(errors.RECORDING_WRITE_FAILED(file, e.message)),
        });
      } catch (e) {
        if (isEarshotError(e)) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw errors.RECORDING_EXISTS(file);
        throw errors.RECORDINGS_DIR_UNWRITABLE(store.dir, code ?? (e as Error).message);
      }
      this.#recorder = recorder;
      for (const f of this.#backlog) recorder.write(f);
      this.#backlog = [];
      return recorder.info();
    })().finally(() => {
      this.#starting = undefined;
      this.#backlog = [];
    });
    return this.#starting;
  }

  write(frame: ProcessedFrame): void {
    if (this.#recorder) this.#recorder.write(frame);
    else if (this.#starting && this.#backlog.length < MAX_BACKLOG) this.#backlog.push(frame);
  }

  /** Stops and finalizes the recording; throws if none is running. */
  async stop(): Promise<RecordingInfo> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    const recorder = this.#recorder;
    if (!recorder) throw errors.RECORDING_NOT_ACTIVE(this.options.peer);
    this.#recorder = undefined;
    this.#last = await recorder.stop();
    return this.#last;
  }

  /** Stops if recording; never throws (used on session end). */
  async finalize(): Promise<RecordingInfo | undefined> {
    if (!this.active) return this.#last;
    return this.stop().catch(() => this.#last);
  }

  info(): RecordingInfo | undefined {
    return this.#recorder?.info() ?? this.#last;
  }
}
