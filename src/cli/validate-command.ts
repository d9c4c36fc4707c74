/**
 * `earshot validate <file...>`: checks pipeline files offline, exactly as the
 * server would, and prints every problem of every file, one per line as
 * `<file>: <path>: <message>` (for editors and CI). A directory's room
 * bindings (rooms.json) are checked too: their form, and that each names a
 * pipeline of the directory. Exit code 1 if any file is invalid or
 * unreadable, 0 if all are valid.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Command, Option } from 'commander';
import { isEarshotError } from '../errors.js';
import { RoomBindingsFile, ROOM_BINDINGS_FILE } from '../core/room-bindings-file.js';
import { validatePipeline, type ValidateOptions } from '../pipeline/pipeline.js';
import { parseJsonText } from '../pipeline/json-text.js';
import { isPipelineFile, NOT_PIPELINES } from '../pipeline/pipeline-registry.js';

/** `--stage-types a, b`: the custom stage types named (validate's and pipelines' option). */
export function stageTypesOf(list: string | undefined): string[] {
  return (list ?? '').split(',').map((t) => t.trim()).filter(Boolean);
}

export function registerValidateCommand(program: Command): void {
  program
    .command('validate')
    .description('check pipeline JSON files (or every *.json of a directory, its room bindings included) and print each problem with its JSON path')
    .argument('<file...>', 'pipeline files or directories')
    .addOption(new Option('--stage-types <list>', 'comma-separated custom stage types to accept (those of your stage modules)'))
    .action(async (paths: string[], opts: { stageTypes?: string }) => {
      const options: ValidateOptions = { customStages: stageTypesOf(opts.stageTypes) };
      let failed = false;
      const { files, inDirectory, skipped, bindings, problems } = await expand(paths);
      for (const file of skipped) process.stdout.write(`skip  ${file}  (not a pipeline)\n`);
      if (problems.length > 0) {
        failed = true;
        process.stdout.write(problems.map((line) => `${line}\n`).join(''));
      }
      for (const file of files) {
        const result = await validateFile(file, { ...options, directory: inDirectory.has(file) });
        if ('problems' in result) {
          failed = true;
          process.stdout.write(result.problems.map((line) => `${line}\n`).join(''));
        } else process.stdout.write(`${result.ok}\n`);
      }
      for (const file of bindings) {
        const result = await validateRoomBindings(file);
        if ('problems' in result) {
          failed = true;
          process.stdout.write(result.problems.map((line) => `${line}\n`).join(''));
        } else process.stdout.write(`${result.ok}\n`);
      }
      if (failed) process.exitCode = 1;
    });
}

/**
 * The files to check: files as given, except the schema and package.json
 * (skipped, saying so, so that `validate pipelines/*.json` checks what
 * `validate pipelines` does), and the pipeline files of directories; room
 * bindings (rooms.json, given or in a directory given) apart. A directory that cannot be
 * read, or holds no pipeline file, is a problem of its own.
 */
async function expand(paths: string[]): Promise<{ files: string[]; inDirectory: Set<string>; skipped: string[]; bindings: string[]; problems: string[] }> {
  const files: string[] = [];
  const inDirectory = new Set<string>();
  const skipped: string[] = [];
  const bindings: string[] = [];
  const problems: string[] = [];
  for (const p of paths) {
    const isDir = await stat(p).then((s) => s.isDirectory(), () => false);
    if (!isDir) {
      if (basename(p) === ROOM_BINDINGS_FILE) bindings.push(p);
      else if (NOT_PIPELINES.has(basename(p))) skipped.push(p);
      else files.push(p);
      continue;
    }
    let entries: string[];
    try {
      entries = await readdir(p);
    } catch (e) {
      problems.push(`${p}: cannot read: ${(e as Error).message}`);
      continue;
    }
    // What the server reads from a pipelines directory: not the schema, package.json or hidden files.
    const found = entries.filter(isPipelineFile).sort();
    if (found.length === 0) problems.push(`${p}: no pipeline files (*.json) in this directory`);
    for (const f of found) {
      files.push(join(p, f));
      inDirectory.add(join(p, f));
    }
    if (entries.includes(ROOM_BINDINGS_FILE)) bindings.push(join(p, ROOM_BINDINGS_FILE));
  }
  return { files, inDirectory, skipped, bindings, problems };
}

/**
 * `ok  <file>  (room bindings: <room> → <pipeline>, …)`, or a line per problem: the file
 * as the server would refuse it at start, or a room bound to a pipeline its directory does
 * not hold (the server starts, and that room's streams get 404).
 */
export async function validateRoomBindings(file: string): Promise<{ ok: string } | { problems: string[] }> {
  let rooms: Record<string, string>;
  try {
    rooms = await new RoomBindingsFile(file).read();
  } catch (e) {
    return { problems: [`${file}: ${isEarshotError(e) ? e.message : (e as Error).message}`] };
  }
  const pipelines = new Set((await readdir(dirname(file)).catch(() => [] as string[])).filter(isPipelineFile).map((f) => basename(f, '.json')));
  const problems = Object.entries(rooms)
    .filter(([, pipeline]) => !pipelines.has(pipeline))
    .map(([room, pipeline]) => `${file}: /rooms/${room}: pipeline "${pipeline}" is not in this directory; the room's streams would get 404`);
  if (problems.length > 0) return { problems };
  const list = Object.entries(rooms).map(([room, pipeline]) => `${room} → ${pipeline}`);
  return { ok: `ok  ${file}  (room bindings: ${list.join(', ') || 'none'})` };
}

/**
 * `ok  <file>  (<name>: <branches>)`, or one `<file>: <path>: <message>` line per problem.
 * `directory`: the file was found in a directory named, which the server loads as a pipelines
 * directory, where a pipeline must be named after its file (a single file may also be a
 * `--pipeline` file, named anything).
 */
export async function validateFile(file: string, options: ValidateOptions & { directory?: boolean } = {}): Promise<{ ok: string } | { problems: string[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return { problems: [`${file}: cannot read: ${(e as Error).message}`] };
  }
  const parsed = parseJsonText(text);
  if ('notJson' in parsed) return { problems: [`${file}: /: ${parsed.notJson}`] };
  const result = validatePipeline(parsed.value, options);
  // Keys given twice (which JSON.parse resolved by keeping the last) with the document's own problems.
  const problems = [...parsed.repeatedKeys, ...result.problems];
  const own = basename(file, '.json');
  if (result.pipeline && options.directory && result.pipeline.name !== own) {
    problems.push({ path: '/name', message: `"${result.pipeline.name}" is not this file's name; in a pipelines directory a pipeline is loaded only from a file named after it: rename the file to ${result.pipeline.name}.json, or set "name": "${own}"` });
  }
  if (result.pipeline && problems.length === 0) {
    // Processors are registered in code, which an offline check cannot see: say which this pipeline
    // needs (a server refuses it at PUT /pipelines, or a stream when it starts, without them).
    const processors = new Set<string>();
    for (const b of result.pipeline.branches) {
      for (const x of [...b.stages, ...b.sinks]) if (x.type === 'processor' && 'name' in x && typeof x.name === 'string') processors.add(x.name);
    }
    const needs = processors.size > 0 ? `; needs the processor${processors.size > 1 ? 's' : ''} ${[...processors].join(', ')} registered in code` : '';
    return { ok: `ok  ${file}  (${result.pipeline.name}: ${result.pipeline.branches.map((b) => b.name).join(', ')}${needs})` };
  }
  return { problems: problems.map((p) => `${file}: ${p.path || '/'}: ${p.message}`) };
}
