/**
 * The pipelines a server knows, by name: every `*.json` of the pipelines
 * directory, loaded at start and reloaded when a file changes on disk, plus
 * pipelines added over HTTP (written to that directory) or in code.
 *
 * A pipeline is known by its `name`, which must match its file name
 * (`voice-agent.json` holds `"name": "voice-agent"`), so a file, a URL and a
 * name always mean the same thing. Each load makes a new immutable `Pipeline`:
 * a running stream keeps the version it started with, new streams get the
 * newest. A file edited into something invalid keeps the previous version and
 * reports the problems (`onReloadError`); a deleted file unloads its pipeline.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { EarshotError, errors, isEarshotError } from '../errors.js';
import { loadPipelineFile, parsePipeline, type Pipeline, type ValidateOptions } from './pipeline.js';
import { replaceFile } from './replace-file.js';

export interface PipelineRegistryOptions {
  /** The pipelines directory; without one the registry lives in memory (PUT and DELETE don't touch disk). */
  dir?: string;
  /**
   * The directory is loaded and watched but never written: PUT and DELETE
   * throw `EARSHOT_PIPELINES_READ_ONLY` (409). For the bundled pipelines,
   * which belong to the installed package (a reinstall would undo a change).
   */
  readOnly?: boolean;
  /** Custom stage types valid at the moment (registered stage modules). */
  customStages?: () => readonly string[];
  /** Called when a file changed on disk could not be loaded (the previous version stays). */
  onReloadError?(file: string, error: EarshotError): void;
  /** Called after a file changed on disk was (re)loaded or removed. */
  onReload?(name: string, change: 'loaded' | 'removed'): void;
  /**
   * Why a pipeline may not be unloaded (it is the default, or bound to rooms),
   * or undefined. Its file removed on disk, such a pipeline stays loaded (as
   * `DELETE` refuses it, 409), and `onRemovedInUse` says so.
   */
  inUse?(name: string): string | undefined;
  /** A file was removed whose pipeline stays loaded because it is in use (`inUse`). */
  onRemovedInUse?(file: string, name: string, use: string): void;
  /**
   * Called when the directory cannot be watched, at start or later (the system's
   * inotify limits reached, the directory removed): the pipelines loaded so far
   * stay and keep working; only reloading on file changes stops.
   */
  onWatchError?(error: NodeJS.ErrnoException): void;
  /**
   * Given, a file that fails to load at start does not stop the start: it is
   * reported in `fileProblems()` as one edited into something invalid while
   * running, and the document given here under its file name, if any, is
   * loaded instead. For an engine process that `--processes` restarts: its
   * siblings ran on while the file was broken, and it must start (a broken
   * file must not take an engine's share of the machine away) and run their
   * last good version. Left out, the first invalid file is thrown.
   */
  previousVersions?: Readonly<Record<string, unknown>>;
}

/** Files in the pipelines directory that are not pipelines (rooms.json: the room bindings, core/room-bindings-file.ts). */
export const NOT_PIPELINES: ReadonlySet<string> = new Set(['pipeline.schema.json', 'package.json', 'rooms.json']);

/** Whether `file` (a name in the pipelines directory) is read as a pipeline: `*.json`, not hidden (editors' lock and temporary files), not one of NOT_PIPELINES. */
export function isPipelineFile(file: string): boolean {
  return file.endsWith('.json') && !file.startsWith('.') && !NOT_PIPELINES.has(file);
}

/** Whether pipeline `name` could not be saved as a file that is read back (`package` is package.json, `rooms` the room bindings). */
function reservedPipelineName(name: string): boolean {
  return !isPipelineFile(`${name}.json`);
}

/** Changes to one file within this window are read once (editors write in several steps). */
const RELOAD_DEBOUNCE_MS = 100;
/** The debounce key of a full rescan (no file name can be empty). */
const RESCAN = '';

/** A pipeline file of the directory that changed on disk and could not be loaded. */
export interface PipelineFileProblem {
  /** The file's name in the pipelines directory. */
  file: string;
  /** The pipeline it would be (its file name); its last good version, if any, still runs. */
  pipeline: string;
  /** Whether an earlier version of that pipeline is loaded and runs instead. */
  previousVersionLoaded: boolean;
  code: string;
  detail: string;
  /** Each problem found, where validation gives them. */
  problems?: unknown;
  /** When it was found (ISO 8601). */
  since: string;
}

export class PipelineRegistry {
  readonly dir: string | undefined;
  readonly #pipelines = new Map<string, Pipeline>();
  readonly #options: PipelineRegistryOptions;
  #watcher: FSWatcher | undefined;
  readonly #pending = new Map<string, NodeJS.Timeout>();
  /** Names whose pipeline came from (or went to) a file of the directory, not from code (`add`). */
  readonly #fromFiles = new Set<string>();
  /** Pipelines given in code or as a file outside the directory (`add`): a file of the directory may not take their name. */
  readonly #fromCode = new Set<string>();
  /** Each name's PUT or DELETE in progress: the next waits for it, so the reply, memory and file agree. */
  readonly #changing = new Map<string, Promise<unknown>>();
  /** Files that changed on disk into something that cannot be loaded, until they load, go or are replaced. */
  readonly #fileProblems = new Map<string, PipelineFileProblem>();

  private constructor(options: PipelineRegistryOptions) {
    this.#options = options;
    this.dir = options.dir === undefined ? undefined : resolve(options.dir);
  }

  /** A registry without a directory, holding the given pipelines. */
  static inMemory(pipelines: Pipeline[], options: Omit<PipelineRegistryOptions, 'dir'> = {}): PipelineRegistry {
    const registry = new PipelineRegistry(options);
    for (const p of pipelines) registry.#set(p);
    return registry;
  }

  /**
   * Loads every pipeline file of `options.dir`. Throws if any is invalid: a
   * server should not start with a pipeline it cannot run (unless
   * `previousVersions` is given). One invalid file: its error, with every
   * problem of that file; several: an error of the first one's code whose
   * message tells of every file, and whose `files` holds each one's problem
   * document. A missing directory is an error too.
   */
  static async load(options: PipelineRegistryOptions): Promise<PipelineRegistry> {
    const registry = new PipelineRegistry(options);
    const dir = registry.dir;
    if (dir === undefined) return registry;
    let files: string[];
    try {
      files = (await readdir(dir)).filter(isPipelineFile).sort();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw errors.PIPELINE_FILE_UNREADABLE(dir, code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'it is not a directory' : (code ?? (e as Error).message), true);
    }
    // Every file is read before a start is refused, so that one attempt tells of every broken file.
    const broken: Array<{ file: string; error: EarshotError }> = [];
    for (const file of files) {
      try {
        registry.#setFromFile(await registry.#loadFile(file));
      } catch (e) {
        const previous = options.previousVersions;
        if (!isEarshotError(e)) throw e;
        if (previous === undefined) {
          broken.push({ file, error: e });
          continue;
        }
        // Checked as any document is: a version the siblings run is valid there, with the same stage modules.
        if (Object.hasOwn(previous, file)) registry.#setFromFile(parsePipeline(previous[file], join(dir, file), registry.#validateOptions()));
        registry.#fileProblem(file, e);
      }
    }
    if (broken.length === 1) throw broken[0].error;
    if (broken.length > 1) {
      // The first file's code (each is a documented one); the message tells of every file.
      const [{ error }] = broken;
      const each = broken.map((b) => `${b.file}: ${b.error.message.replace(/\n/g, '\n  ')} [${b.error.code}]`).join('\n');
      // Only `files` beside the message: the first file's own extensions (its `problems`) would read as the whole list.
      throw new EarshotError(error.code, error.statusCode, error.title, `${broken.length} pipeline files in ${dir} have problems:\n${each}`, { files: broken.map((b) => ({ file: b.file, ...b.error.toProblem() })) }, { cause: error });
    }
    return registry;
  }

  /** Names of the loaded pipelines, sorted. */
  names(): string[] {
    return [...this.#pipelines.keys()].sort();
  }

  list(): Pipeline[] {
    return this.names().map((n) => this.#pipelines.get(n)!);
  }

  has(name: string): boolean {
    return this.#pipelines.has(name);
  }

  /** The current version of a pipeline, or `EARSHOT_PIPELINE_NOT_FOUND` (404). */
  get(name: string): Pipeline {
    const p = this.#pipelines.get(name);
    if (!p) {
      // The bundled pipelines are read-only: "PUT /pipelines/x adds one" would get 409; a reserved name 400.
      const adding = reservedPipelineName(name)
        ? `GET /pipelines lists them. "${name}" cannot be a pipeline's name: ${name}.json in the pipelines directory is not read as a pipeline.`
        : this.writable
          ? undefined
          : 'GET /pipelines lists them. The bundled pipelines are read-only: start the server with --pipelines DIR (pipelinesDir in code), a directory of your own, to add one.';
      throw errors.PIPELINE_NOT_FOUND(name, this.names(), adding);
    }
    return p;
  }

  /**
   * Adds or replaces a pipeline in memory only (e.g. one given to `createServer` in code). From
   * then on a PUT of its name is refused, and a file of its name appearing in the directory is not
   * loaded: either would put a second pipeline of that name in its place, and the next start
   * would refuse the two (createServer checks the name against the directory).
   */
  add(pipeline: Pipeline): void {
    this.#set(pipeline);
    this.#fromCode.add(pipeline.name);
  }

  #givenInCode(name: string): EarshotError {
    return errors.PIPELINE_IN_USE(name, `it was given to the server as a file outside its pipelines directory, or in code, and a file ${name}.json here would replace it, which the next start would refuse; give the new pipeline another name`);
  }

  /**
   * Validates `doc` as pipeline `name` and saves it as `<dir>/<name>.json`
   * (replace-file.ts: the watcher never reads half a file, and a crash or a
   * power cut leaves the old file or the new one). Throws `EARSHOT_PIPELINES_READ_ONLY` (409) for a read-only
   * directory, `EARSHOT_PIPELINE_INVALID` (422, every problem) before
   * touching anything. Returns the new version and whether it replaced one.
   * `options.processors` (the server's registry) also checks that processor
   * stages name processors registered as stages.
   */
  async put(name: string, doc: unknown, options: Pick<ValidateOptions, 'processors'> = {}): Promise<{ pipeline: Pipeline; created: boolean }> {
    this.checkWritable();
    if (reservedPipelineName(name)) throw errors.BODY_INVALID(`Pipeline name "${name}" is reserved: ${name}.json in the pipelines directory is not read as a pipeline.`);
    const withName = typeof doc === 'object' && doc !== null && !Array.isArray(doc) && !('name' in doc) ? { name, ...doc } : doc;
    const pipeline = parsePipeline(withName, name, { ...this.#validateOptions(), ...options });
    if (pipeline.name !== name) throw errors.PIPELINE_NAME_MISMATCH(`The body of PUT /pipelines/${name}`, pipeline.name);
    if (this.#fromCode.has(name)) throw this.#givenInCode(name);
    return this.#oneAtATime(name, async () => {
      const created = !this.#pipelines.has(name);
      if (this.dir === undefined) {
        this.#set(pipeline);
        return { pipeline, created };
      }
      const file = join(this.dir, `${name}.json`);
      try {
        await replaceFile(file, `${JSON.stringify(pipeline.toJSON(), null, 2)}\n`);
      } catch (e) {
        throw errors.PIPELINE_WRITE_FAILED(file, (e as NodeJS.ErrnoException).code ?? (e as Error).message);
      }
      this.#setFromFile(pipeline);
      this.#fileProblems.delete(`${name}.json`);
      return { pipeline, created };
    });
  }

  /** Unloads a pipeline and deletes its file. The caller checks it is not in use. */
  async delete(name: string): Promise<void> {
    this.get(name);
    this.checkWritable();
    await this.#oneAtATime(name, async () => {
      this.get(name); // a PUT or DELETE before this one may have changed it
      const dir = this.dir;
      if (dir !== undefined) {
        await unlink(join(dir, `${name}.json`)).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw errors.PIPELINE_WRITE_FAILED(join(dir, `${name}.json`), e.code ?? e.message);
        });
      }
      this.#pipelines.delete(name);
      this.#fromFiles.delete(name);
      this.#fileProblems.delete(`${name}.json`);
    });
  }

  /** Runs `change` after the PUT or DELETE of `name` before it has finished, however that ended. */
  #oneAtATime<T>(name: string, change: () => Promise<T>): Promise<T> {
    const before = this.#changing.get(name) ?? Promise.resolve();
    const run = before.then(change, change);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#changing.set(name, settled);
    void settled.then(() => {
      if (this.#changing.get(name) === settled) this.#changing.delete(name);
    });
    return run;
  }

  /**
   * Pipeline files edited on disk into something that cannot be loaded (the
   * previous version of each, if there was one, still runs), by file name.
   * A file leaves the list once it loads, is removed, or a PUT replaces it.
   */
  fileProblems(): PipelineFileProblem[] {
    return [...this.#fileProblems.values()].sort((a, b) => a.file.localeCompare(b.file));
  }

  /** Whether PUT and DELETE may change the directory (`readOnly`: the bundled pipelines). */
  get writable(): boolean {
    return this.#options.readOnly !== true;
  }

  /** Throws `EARSHOT_PIPELINES_READ_ONLY` (409) if PUT and DELETE may not change the directory. */
  checkWritable(): void {
    if (this.dir !== undefined && this.#options.readOnly) throw errors.PIPELINES_READ_ONLY(this.dir);
  }

  /**
   * Starts reloading files changed on disk. Idempotent. Never throws: a watch
   * the system refuses (EMFILE/ENOSPC when inotify instances or watches run
   * out, which other programs on the machine share) is reported through
   * `onWatchError` and the server goes on with the pipelines it has.
   */
  watch(): void {
    if (this.#watcher || this.dir === undefined) return;
    try {
      this.#watcher = watch(this.dir, { persistent: false }, (_event, filename) => this.#changed(filename?.toString()));
    } catch (e) {
      this.#options.onWatchError?.(e as NodeJS.ErrnoException);
      return;
    }
    this.#watcher.on('error', (e: NodeJS.ErrnoException) => {
      this.close();
      this.#options.onWatchError?.(e);
    });
  }

  #changed(file: string | undefined): void {
    if (file && NOT_PIPELINES.has(file)) return;
    // Anything else that changes (no name given, a directory or link such as Kubernetes' `..data`
    // swapped to a new version of every file): read every pipeline file again.
    if (!file || !isPipelineFile(file)) {
      if (file?.startsWith('.') && file.endsWith('.tmp')) return; // our own PUT's temporary file
      this.#schedule(RESCAN, () => this.#rescan());
      return;
    }
    this.#schedule(file, () => this.#reload(file));
  }

  /** Runs `action` once `key` has had no change for RELOAD_DEBOUNCE_MS. */
  #schedule(key: string, action: () => Promise<void>): void {
    clearTimeout(this.#pending.get(key));
    this.#pending.set(
      key,
      setTimeout(() => {
        this.#pending.delete(key);
        void action();
      }, RELOAD_DEBOUNCE_MS),
    );
  }

  /** Reloads every pipeline file of the directory, and unloads (or keeps, if in use) those whose file is gone. */
  async #rescan(): Promise<void> {
    let files: string[];
    try {
      files = (await readdir(this.dir!)).filter(isPipelineFile);
    } catch {
      return; // the directory itself went away: the watcher reports that
    }
    const gone = [...this.#fromFiles].filter((n) => !files.includes(`${n}.json`));
    for (const file of [...files, ...gone.map((n) => `${n}.json`)]) await this.#reload(file);
  }

  /** Stops watching. */
  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
  }

  async #reload(file: string): Promise<void> {
    const name = basename(file, '.json');
    if (this.#fromCode.has(name)) {
      // Listed as a file that cannot be loaded (GET /pipelines invalidFiles), and logged.
      if (existsSync(join(this.dir ?? '', file))) {
        const error = this.#givenInCode(name);
        this.#fileProblem(file, error);
        this.#options.onReloadError?.(join(this.dir ?? '', file), error);
      } else this.#fileProblems.delete(file);
      return;
    }
    try {
      const pipeline = await this.#loadFile(file);
      this.#fileProblems.delete(file);
      const current = this.#pipelines.get(name);
      // Our own PUT wrote exactly this: nothing changed.
      if (current && JSON.stringify(current.toJSON()) === JSON.stringify(pipeline.toJSON())) return;
      this.#setFromFile(pipeline);
      this.#options.onReload?.(name, 'loaded');
    } catch (e) {
      const error = isEarshotError(e) ? e : errors.INTERNAL((e as Error).message);
      if (error.code === errors.PIPELINE_FILE_UNREADABLE.code && /ENOENT/.test(error.message)) {
        this.#fileProblems.delete(file);
        // The default (or a room's) pipeline must not vanish under new sessions: it stays, as an invalid edit keeps the last version.
        const use = this.#pipelines.has(name) ? this.#options.inUse?.(name) : undefined;
        if (use !== undefined) this.#options.onRemovedInUse?.(join(this.dir ?? '', file), name, use);
        else if (this.#pipelines.delete(name)) {
          this.#fromFiles.delete(name);
          this.#options.onReload?.(name, 'removed');
        }
        return;
      }
      this.#fileProblem(file, error);
      this.#options.onReloadError?.(join(this.dir ?? '', file), error);
    }
  }

  /** Records `file` as one that cannot be loaded, until it loads, goes or is replaced. */
  #fileProblem(file: string, error: EarshotError): void {
    const name = basename(file, '.json');
    const known = this.#fileProblems.get(file);
    this.#fileProblems.set(file, {
      file,
      pipeline: name,
      previousVersionLoaded: this.#pipelines.has(name),
      code: error.code,
      detail: error.message,
      ...(error.extensions.problems !== undefined ? { problems: error.extensions.problems } : {}),
      // The same file still broken by a later save: since the first time.
      since: known?.since ?? new Date().toISOString(),
    });
  }

  async #loadFile(file: string): Promise<Pipeline> {
    const path = join(this.dir ?? '', file);
    const pipeline = await loadPipelineFile(path, this.#validateOptions());
    if (pipeline.name !== basename(file, '.json')) throw errors.PIPELINE_NAME_MISMATCH(path, pipeline.name);
    return pipeline;
  }

  #set(pipeline: Pipeline): void {
    this.#pipelines.set(pipeline.name, pipeline);
  }

  #setFromFile(pipeline: Pipeline): void {
    this.#set(pipeline);
    this.#fromFiles.add(pipeline.name);
  }

  #validateOptions(): ValidateOptions {
    return { customStages: this.#options.customStages?.() ?? [] };
  }
}
