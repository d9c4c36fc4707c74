/**
 * Loading of custom worker stages: an ES module whose default export is a stage
 * definition `{ type, create, outputFormat? }` or an array of them — the same
 * contract as the built-ins (`create(options, inputFormat) → Stage`, and the
 * format it outputs for an input format, as each built-in's definition says).
 * Imported in every worker (and checked once when registered), so a bad
 * module is a clear error at registration, never a dead worker.
 */
import { errors } from '../errors.js';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatText, sameFormat } from '../dsp/stage-type.js';
import type { Stage, StageFactory, StageSpec } from '../dsp/types.js';
import type { AudioFormat } from '../media/frames.js';

/** What a stage module exports (default export: one of these, or an array of them). */
export interface CustomStage {
  /** Stage type used in pipelines: lower case letters, digits and "-", not a built-in name. */
  type: string;
  /** Creates the stage for one stream; throw TypeError/RangeError for bad options. */
  create: StageFactory;
  /**
   * The format the stage outputs for `input` with these options, e.g.
   * `{ ...input, sampleRate: 16000 }` for a resampler. Optional: without it,
   * the stage's own `output` is the format. With it, a stage whose `output`
   * says otherwise is an error when the stream starts, and a stage without
   * `output` gets this one. Either way the worker reports each branch's real
   * output format when a stream starts, and recordings are written in it.
   */
  outputFormat?(options: StageSpec, input: AudioFormat): AudioFormat;
}

/** Identity helper that gives a stage module's default export its type. */
export function defineStage(definition: CustomStage): CustomStage {
  return definition;
}

/** A file path (relative to the working directory) or a `file:` URL → the URL workers import. */
export function stageModuleUrl(pathOrUrl: string | URL): string {
  if (pathOrUrl instanceof URL) return pathOrUrl.href;
  // From JavaScript anything may come: said as the module's problem, not a TypeError from startsWith.
  if (typeof pathOrUrl !== 'string' || pathOrUrl.length === 0) throw errors.STAGE_MODULE_INVALID(String(pathOrUrl), 'it is neither a file path nor a file: URL (a string or a URL object)');
  if (pathOrUrl.startsWith('file:')) return new URL(pathOrUrl).href;
  return pathToFileURL(isAbsolute(pathOrUrl) ? pathOrUrl : resolve(pathOrUrl)).href;
}

/** Imports a stage module and checks the shape of its export. */
export async function loadStageModule(url: string): Promise<CustomStage[]> {
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (e) {
    throw new Error(`import failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const exported = mod.default;
  if (exported === undefined) throw new Error('it has no default export');
  const list = Array.isArray(exported) ? exported : [exported];
  if (list.length === 0) throw new Error('its default export is an empty array');
  return list.map((d, i) => {
    const where = Array.isArray(exported) ? `default export [${i}]` : 'default export';
    if (typeof d !== 'object' || d === null) throw new Error(`${where} is not an object`);
    const { type, create } = d as Partial<CustomStage>;
    if (typeof type !== 'string' || !/^[a-z][a-z0-9-]*$/.test(type)) throw new Error(`${where}.type must be a lower-case name like "dc-blocker", got ${JSON.stringify(type)}`);
    if (typeof create !== 'function') throw new Error(`${where}.create must be a function (options, format) => stage`);
    const { outputFormat } = d as Partial<CustomStage>;
    if (outputFormat !== undefined && typeof outputFormat !== 'function') throw new Error(`${where}.outputFormat must be a function (options, format) => format`);
    return outputFormat ? { type, create, outputFormat } : { type, create };
  });
}

/**
 * The factory a worker registers for a custom stage: `create`, held to the
 * stage's declared `outputFormat` when it has one (see `CustomStage`).
 */
export function declaredFactory(definition: CustomStage): StageFactory {
  const { type, create, outputFormat } = definition;
  if (!outputFormat) return create;
  return (spec: StageSpec, input: AudioFormat): Stage => {
    const declared = outputFormat(spec, input);
    if (!isFormat(declared)) throw new TypeError(`${type}: outputFormat() must return { sampleRate, channels, sampleFormat? }, got ${JSON.stringify(declared) ?? String(declared)}`);
    const stage = create(spec, input);
    const made = (stage as Partial<Stage>).output;
    if (made === undefined) return Object.assign(stage, { output: declared });
    if (!sameFormat(made, declared)) {
      stage.close();
      throw new TypeError(`${type}: create() made a stage whose output is ${formatText(made)}, but outputFormat() declares ${formatText(declared)}`);
    }
    return stage;
  };
}

function isFormat(f: unknown): f is AudioFormat {
  if (typeof f !== 'object' || f === null) return false;
  const { sampleRate, channels, sampleFormat } = f as Partial<AudioFormat>;
  return Number.isInteger(sampleRate) && Number.isInteger(channels) && (sampleFormat === undefined || sampleFormat === 'f32' || sampleFormat === 's16');
}
