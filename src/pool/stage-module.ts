/**
 * Loading of custom worker stages: an ES module whose default export is a stage
 * definition `{ type, create }` or an array of them — the same contract as the
 * built-ins (`create(options, inputFormat) → Stage`). Imported in every worker
 * (and checked once when registered), so a bad module is a clear error at
 * registration, never a dead worker.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StageFactory } from '../dsp/types.js';

/** What a stage module exports (default export: one of these, or an array of them). */
export interface CustomStage {
  /** Stage type used in pipelines: lower case letters, digits and "-", not a built-in name. */
  type: string;
  /** Creates the stage for one stream; throw TypeError/RangeError for bad options. */
  create: StageFactory;
}

/** Identity helper that gives a stage module's default export its type. */
export function defineStage(definition: CustomStage): CustomStage {
  return definition;
}

/** A file path (relative to the working directory) or a `file:` URL → the URL workers import. */
export function stageModuleUrl(pathOrUrl: string | URL): string {
  if (pathOrUrl instanceof URL) return pathOrUrl.href;
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
    return { type, create };
  });
}
