/** `earshot validate`: the real CLI, spawned: every shipped pipeline passes; a broken file prints path-prefixed problems and exits 1. */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EARSHOT_BIN, runEarshot } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

const earshot = (...args: string[]) => runEarshot(args);

describe('earshot validate', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'earshot-validate-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes every shipped pipeline with one ok line each, naming its branches, and exits 0', async () => {
    const files = (await readdir(join(ROOT, 'pipelines'))).filter((f) => f.endsWith('.json') && f !== 'pipeline.schema.json').map((f) => join('pipelines', f));
    const { code, stdout, stderr } = await earshot('validate', ...files);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(files.length);
    expect(lines).toContain('ok  pipelines/default.json  (default: main)');
    // Processors are registered in code, which validate cannot see: it says which the pipeline needs.
    expect(lines).toContain('ok  pipelines/voice-agent.json  (voice-agent: main; needs the processor asr registered in code)');
    for (const [i, file] of files.entries()) expect(lines[i]).toMatch(new RegExp(`^ok  ${file}  \\([A-Za-z0-9_-]+: [A-Za-z0-9_, -]+(; needs the processors? [a-z0-9, -]+ registered in code)?\\)$`));
  }, 60_000);

  it('prints every problem as <file>: <path>: <message>, reports JSON errors with the file name, and exits 1', async () => {
    const bad = join(dir, 'bad.json');
    const broken = join(dir, 'broken.json');
    const good = join(dir, 'good.json');
    await writeFile(bad, JSON.stringify({ name: 'bad', stages: [{ type: 'denoize' }, { type: 'resample', sampleRate: 100 }, { type: 'dc-blocker' }], sinks: [] }));
    await writeFile(broken, '{\n  "name": "x",\n}\n');
    await writeFile(good, JSON.stringify({ name: 'good', branches: { a: { stages: [], sinks: [{ type: 'stats' }] }, b: { stages: [{ type: 'denoise' }], sinks: [{ type: 'record' }] } } }));
    const { code, stdout } = await earshot('validate', bad, broken, good, join(dir, 'missing.json'));
    expect(code).toBe(1);
    expect(stdout.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^${bad}: /stages/0/type: "denoize" is not a stage type; use one of passthrough, .*\\(did you mean "denoise"\\?\\)`)),
      `${bad}: /stages/1/sampleRate: 100 is not allowed; use an integer from 8000 to 48000`,
      expect.stringMatching(new RegExp(`^${bad}: /stages/2/type: "dc-blocker" is not a stage type; .*custom stages need their module registered first \\(earshot serve --stage-module, earshot validate --stage-types; in code: the stageModules option, or customStages of validatePipeline\\)$`)),
      `${bad}: /sinks: a branch needs at least one sink ("record", "stats", "processor" or "websocket")`,
      expect.stringMatching(new RegExp(`^${broken}: /: not valid JSON: .*\\(line 3, column 1\\); JSON allows no comma after the last item of an array or object$`)),
      `ok  ${good}  (good: a, b)`,
      expect.stringMatching(new RegExp(`^${join(dir, 'missing.json')}: cannot read: ENOENT`)),
    ]);
  }, 60_000);

  it('keeps every problem on one line, skips the schema when it is named, and calls an empty directory a problem', async () => {
    const quoted = join(dir, 'quoted.json');
    // V8's message for this quotes the text, newline and all.
    await writeFile(quoted, 'hello\nworld\n');
    const empty = join(dir, 'empty');
    await mkdir(empty, { recursive: true });
    const { code, stdout } = await earshot('validate', quoted, join(ROOT, 'pipelines', 'pipeline.schema.json'), empty);
    expect(code).toBe(1);
    expect(stdout.trim().split('\n')).toEqual([
      `skip  ${join(ROOT, 'pipelines', 'pipeline.schema.json')}  (not a pipeline)`,
      `${empty}: no pipeline files (*.json) in this directory`,
      `${quoted}: /: not valid JSON: Unexpected token 'h' (line 1, column 1)`,
    ]);
  }, 60_000);

  it('in a directory, refuses a pipeline not named after its file, as the server does; a file named alone may be any name (a --pipeline file)', async () => {
    const sub = join(dir, 'named');
    await rm(sub, { recursive: true, force: true });
    await mkdir(sub);
    const file = join(sub, 'mismatch.json');
    await writeFile(file, JSON.stringify({ name: 'other', stages: [], sinks: [{ type: 'stats' }] }));
    const inDir = await earshot('validate', sub);
    expect(inDir.stdout).toBe(`${file}: /name: "other" is not this file's name; in a pipelines directory a pipeline is loaded only from a file named after it: rename the file to other.json, or set "name": "mismatch"\n`);
    expect(inDir.code).toBe(1);
    // The server agrees: it does not start with that directory.
    const serve = await earshot('serve', '--port', '0', '--pipelines', sub, '--pipeline', 'other');
    expect(serve.code).not.toBe(0);
    expect(serve.stderr).toMatch(/EARSHOT_PIPELINE_NAME_MISMATCH/);
    const alone = await earshot('validate', file);
    expect(alone.stdout).toBe(`ok  ${file}  (other: main)\n`);
    expect(alone.code).toBe(0);
  }, 60_000);

  it('checks a directory\'s room bindings (rooms.json): their form, and that each names a pipeline of the directory', async () => {
    const sub = join(dir, 'rooms');
    await rm(sub, { recursive: true, force: true });
    await mkdir(sub);
    await writeFile(join(sub, 'phone.json'), JSON.stringify({ name: 'phone', stages: [], sinks: [{ type: 'stats' }] }));
    await writeFile(join(sub, 'rooms.json'), JSON.stringify({ rooms: { pstn: 'phone', lobby: 'gone' } }));
    const missing = await earshot('validate', sub);
    expect(missing.stdout.trim().split('\n')).toEqual([`ok  ${join(sub, 'phone.json')}  (phone: main)`, `${join(sub, 'rooms.json')}: /rooms/lobby: pipeline "gone" is not in this directory; the room's streams would get 404`]);
    expect(missing.code).toBe(1);
    await writeFile(join(sub, 'rooms.json'), JSON.stringify({ rooms: { pstn: 'phone' } }));
    const named = await earshot('validate', join(sub, 'rooms.json'));
    expect(named.stdout).toBe(`ok  ${join(sub, 'rooms.json')}  (room bindings: pstn → phone)\n`);
    expect(named.code).toBe(0);
    // What the server refuses to start with.
    await writeFile(join(sub, 'rooms.json'), JSON.stringify({ pstn: 'phone' }));
    const form = await earshot('validate', sub);
    expect(form.stdout).toContain(`${join(sub, 'rooms.json')}: The room bindings file ${join(sub, 'rooms.json')} must be {"rooms": {"<room>": "<pipeline>", …}}.`);
    expect(form.code).toBe(1);
  }, 60_000);

  it('reads a file that starts with a UTF-8 byte order mark, as some editors write it', async () => {
    const file = join(dir, 'bom.json');
    await writeFile(file, `\uFEFF${JSON.stringify({ name: 'bom', stages: [], sinks: [{ type: 'stats' }] }, null, 2)}`);
    const { code, stdout } = await earshot('validate', file);
    expect(stdout).toBe(`ok  ${file}  (bom: main)\n`);
    expect(code).toBe(0);
  }, 60_000);

  it('ends quietly when its reader stops early (`| head -1`)', async () => {
    // A pipe whose reading end is closed before the output is written: EPIPE, which is not an error of the command.
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [EARSHOT_BIN, 'validate', join(ROOT, 'pipelines')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, 60_000);

  it('accepts the custom stage types named with --stage-types, and validates every *.json of a directory', async () => {
    const sub = join(dir, 'custom');
    await rm(sub, { recursive: true, force: true });
    await mkdir(sub);
    await writeFile(join(sub, 'custom.json'), JSON.stringify({ name: 'custom', stages: [{ type: 'dc-blocker', cutoff: 5 }, { type: 'my-vad' }], sinks: [{ type: 'stats' }] }));
    await writeFile(join(sub, 'pipeline.schema.json'), '{}');
    const { code, stdout } = await earshot('validate', '--stage-types', 'dc-blocker, my-vad', sub);
    expect(stdout).toBe(`ok  ${join(sub, 'custom.json')}  (custom: main)\n`);
    expect(code).toBe(0);
  }, 60_000);

  it('refuses a key given twice, which JSON would resolve silently by keeping the last, with the file\'s other problems; a syntax error says its line and column', async () => {
    const twice = join(dir, 'twice.json');
    // A branch copied and pasted under the same name, an option written twice, and a problem of the document itself.
    await writeFile(twice, '{\n  "name": "twice",\n  "branches": {\n    "a": { "sinks": [{ "type": "record" }] },\n    "a": { "stages": [{ "type": "gain", "db": -6, "db": 60 }], "sinks": [{ "type": "stats" }] },\n    "b": { "stages": [{ "type": "gian" }], "sinks": [{ "type": "stats" }] }\n  }\n}\n');
    const comma = join(dir, 'comma.json');
    await writeFile(comma, '{\n  "name": "comma",\n  "stages": [{ "type": "gain", "db": -6 }, ],\n  "sinks": [{ "type": "stats" }]\n}\n');
    const { code, stdout } = await earshot('validate', twice, comma);
    expect(code).toBe(1);
    expect(stdout.trim().split('\n')).toEqual([
      `${twice}: /branches/a: is given twice in its object (lines 4 and 5); JSON keeps only the last, so the first would be lost: rename or remove one`,
      `${twice}: /branches/a/stages/0/db: is given twice in its object (line 5, columns 41 and 51); JSON keeps only the last, so the first would be lost: rename or remove one`,
      expect.stringMatching(new RegExp(`^${twice}: /branches/b/stages/0/type: "gian" is not a stage type`)),
      expect.stringMatching(new RegExp(`^${comma}: /: not valid JSON: .*\\(line 3, column 44\\); JSON allows no comma after the last item of an array or object$`)),
    ]);
  }, 60_000);
});
