/** Pipeline documents: validation reports every problem with its path, what was found, what is allowed and a hint; valid ones normalize. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPipelineFile, parsePipeline, validatePipeline, type PipelineProblem } from '../../src/pipeline/pipeline.js';
import { resolveHeaders } from '../../src/sinks/websocket-sink.js';
import { fixturePath } from '../helpers/fixtures.js';

const byPath = (problems: PipelineProblem[]) => Object.fromEntries(problems.map((p) => [p.path, p.message]));
const chain = (stages: unknown[], sinks: unknown[] = [{ type: 'stats' }]) => ({ name: 'x', stages, sinks });

describe('pipeline validation', () => {
  it('accepts the shipped default pipeline: denoise, then record and stats', async () => {
    const p = await loadPipelineFile(join(import.meta.dirname, '..', '..', 'pipelines', 'default.json'));
    expect(p.name).toBe('default');
    expect(p.branches).toHaveLength(1);
    expect(p.branches[0].stages).toEqual([{ type: 'denoise' }]);
    expect(p.branches[0].sinks.map((s) => s.type)).toEqual(['record', 'stats']);
    expect(p.branches[0].sampleRate).toBe(48000);
    const doc = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'pipelines', 'default.json'), 'utf8'));
    expect(p.toJSON()).toEqual(doc);
  });

  it('reports every problem at once, each with its JSON path and a hint', () => {
    const { problems } = validatePipeline({
      name: 'bad name',
      stages: [{ type: 'denoize' }, { type: 'resample', sampleRate: 100, speed: 1 }],
      sinks: [{ type: 'record', sampleFormat: 'u8' }],
    });
    expect(byPath(problems)).toEqual({
      '/name': '"bad name" is not allowed; use a string of 1–64 characters: letters, digits, "_" and "-", starting with a letter or digit',
      '/stages/0/type': expect.stringMatching(/^"denoize" is not a stage type; use one of passthrough, denoise, resample, .* \(did you mean "denoise"\?\); custom stages need their module registered first \(earshot serve --stage-module, earshot validate --stage-types; in code: the stageModules option, or customStages of validatePipeline\)$/),
      '/stages/1/sampleRate': '100 is not allowed; use an integer from 8000 to 48000',
      '/stages/1/speed': 'unknown option "speed" for stage "resample"; allowed: sampleRate, quality',
      '/sinks/0/sampleFormat': '"u8" is not allowed; use "s16" or "f32"',
    });
  });

  it('words a value out of range with the range from the schema, and keeps found and allowed as fields', () => {
    const { problems } = validatePipeline({ name: 'x', branches: { asr: { stages: [{ type: 'denoise' }, { type: 'highpass', frequency: 80 }, { type: 'resample', sampleRate: 100 }], sinks: [{ type: 'stats' }] } } });
    expect(problems).toEqual([
      { path: '/branches/asr/stages/2/sampleRate', message: '100 is not allowed; use an integer from 8000 to 48000', found: 100, allowed: 'an integer from 8000 to 48000' },
    ]);
  });

  it('words a missing required option with the stage that needs it and what it takes', () => {
    expect(validatePipeline(chain([{ type: 'denoise' }, { type: 'resample' }])).problems).toEqual([
      { path: '/stages/1/sampleRate', message: 'missing; "resample" needs "sampleRate" (an integer from 8000 to 48000)', allowed: 'an integer from 8000 to 48000' },
    ]);
    expect(byPath(validatePipeline({ stages: [], sinks: [{ type: 'processor' }] }).problems)).toEqual({
      '/name': 'missing; a pipeline needs "name" (a string of 1–64 characters: letters, digits, "_" and "-", starting with a letter or digit)',
      '/sinks/0/name': 'missing; "processor" needs "name" (a string of 1–64 characters)',
    });
  });

  it("refuses a websocket sink whose first reconnection wait is longer than its longest, the default of either counting", () => {
    const ws = (extra: Record<string, unknown>) => validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'websocket', url: 'ws://127.0.0.1:9/asr', ...extra }] }).problems;
    expect(ws({ reconnectDelayMs: 5000, reconnectMaxDelayMs: 100 })).toEqual([
      expect.objectContaining({ path: '/sinks/0/reconnectDelayMs', message: 'the first reconnection wait (reconnectDelayMs, 5000 ms) is longer than the longest (reconnectMaxDelayMs, 100 ms)' }),
    ]);
    expect(ws({ reconnectMaxDelayMs: 100 })).toEqual([expect.objectContaining({ path: '/sinks/0/reconnectMaxDelayMs', allowed: 'at least reconnectDelayMs (500 ms)' })]);
    expect(ws({ reconnectDelayMs: 100, reconnectMaxDelayMs: 100 })).toEqual([]);
  });

  it('lets a websocket sink header name only variables meant for sinks: EARSHOT_SINK_…, or those listed in EARSHOT_SINK_ENV', () => {
    const ws = (headers: Record<string, string>) => validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'websocket', url: 'ws://127.0.0.1:9/asr', headers }] }).problems;
    expect(ws({ Authorization: 'Bearer ${EARSHOT_SINK_ASR_TOKEN}', 'X-Plain': 'no variable' })).toEqual([]);
    expect(ws({ Authorization: 'Bearer ${EARSHOT_ADMIN_TOKEN}', 'X-Two': '${AWS_SECRET_ACCESS_KEY}:${EARSHOT_SINK_OK}' })).toEqual([
      expect.objectContaining({
        path: '/sinks/0/headers/Authorization',
        found: '${EARSHOT_ADMIN_TOKEN}',
        message: '${EARSHOT_ADMIN_TOKEN} is not a variable sink headers may read: name it EARSHOT_SINK_…, or list it in EARSHOT_SINK_ENV (earshot serve --sink-env EARSHOT_ADMIN_TOKEN)',
      }),
      expect.objectContaining({ path: '/sinks/0/headers/X-Two', found: '${AWS_SECRET_ACCESS_KEY}' }),
    ]);
    // The prefix alone is not a name meant for sinks.
    expect(ws({ A: '${EARSHOT_SINK_}' })).toHaveLength(1);
    process.env.EARSHOT_SINK_ENV = ' ASR_TOKEN , DEEPGRAM_KEY';
    try {
      expect(ws({ A: '${ASR_TOKEN}', B: '${DEEPGRAM_KEY}' })).toEqual([]);
      expect(ws({ A: '${ASR_TOKEN_2}' })).toHaveLength(1);
    } finally {
      delete process.env.EARSHOT_SINK_ENV;
    }
    // Where the header is filled in (a stream's start), the same rule, as a typed error naming the variable only.
    process.env.EARSHOT_TEST_SECRET = 'not-for-sinks';
    try {
      expect(() => resolveHeaders({ X: '${EARSHOT_TEST_SECRET}' }, { pipeline: 'x', path: '/sinks/0' })).toThrow(expect.objectContaining({ code: 'EARSHOT_SINK_ENV_NOT_ALLOWED', extensions: { path: '/sinks/0/headers/X', variable: 'EARSHOT_TEST_SECRET' } }));
    } finally {
      delete process.env.EARSHOT_TEST_SECRET;
    }
  });

  it('refuses a websocket sink header value HTTP cannot carry, or a "${" that names no variable, without quoting the value (it may be a secret)', () => {
    const ws = (headers: Record<string, string>) => validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'websocket', url: 'ws://127.0.0.1:9/asr', headers }] }).problems;
    // Spaces, tabs and Latin-1 are a header value's; these connected before and every attempt then failed.
    expect(ws({ A: 'Bearer x\ty', B: 'naïve' })).toEqual([]);
    expect(ws({ 'X-Nl': 'secret\nmore', 'X-Emoji': 'a🙂' })).toEqual([
      { path: '/sinks/0/headers/X-Nl', message: 'has a character an HTTP header value cannot hold (character 7, U+000A: a line break, another control character, or one beyond Latin-1)' },
      { path: '/sinks/0/headers/X-Emoji', message: 'has a character an HTTP header value cannot hold (character 2, U+1F642: a line break, another control character, or one beyond Latin-1)' },
    ]);
    expect(ws({ A: 'Bearer ${EARSHOT_SINK_A', B: '${EARSHOT_SINK_OK}' })).toEqual([
      { path: '/sinks/0/headers/A', message: 'has "${" that does not name a variable: write ${NAME}, with a name of letters, digits and "_" and the closing "}" (it would be sent as it is)' },
    ]);
  });

  it('names the type of a value of the wrong type', () => {
    expect(byPath(validatePipeline(chain([{ type: 'resample', sampleRate: '16000' }, { type: 'gain', db: true }], [{ type: 'record', autoStart: 'yes' }])).problems)).toEqual({
      '/stages/0/sampleRate': '"16000" (a string) is not allowed; use an integer from 8000 to 48000',
      '/stages/1/db': 'true (a boolean) is not allowed; use a number from -60 to 60',
      '/sinks/0/autoStart': '"yes" (a string) is not allowed; use true or false',
    });
  });

  it('hints the nearest option name and lists the allowed ones for an unknown option', () => {
    const [problem] = validatePipeline(chain([{ type: 'resample', samplerate: 16000 }])).problems.filter((p) => p.path === '/stages/0/samplerate');
    expect(problem).toEqual({
      path: '/stages/0/samplerate',
      message: 'unknown option "samplerate" for stage "resample"; allowed: sampleRate, quality (did you mean "sampleRate"?)',
      found: 'samplerate',
      allowed: 'sampleRate, quality',
      hint: 'did you mean "sampleRate"?',
    });
    expect(byPath(validatePipeline({ ...chain([{ type: 'passthrough', x: 1 }]), stage: [] }).problems)).toEqual({
      '/stages/0/x': 'unknown option "x" for stage "passthrough", which takes no options',
      '/stage': 'unknown property "stage" of a pipeline; allowed: $schema, name, description, channels, dtx, stages, sinks, branches (did you mean "stages"?)',
    });
  });

  it('words enumerations, open ranges and string patterns from the schema', () => {
    expect(byPath(validatePipeline({ ...chain([{ type: 'reframe', durationMs: 25 }, { type: 'highpass', frequency: 0 }, { type: 'format', sampleFormat: 'S16' }]), channels: 3 }).problems)).toEqual({
      '/channels': '3 is not allowed; use 1 or 2',
      '/stages/0/durationMs': '25 is not allowed; use one of 10, 20, 30, 40, 60',
      '/stages/1/frequency': '0 is not allowed; use a number above 0',
      '/stages/2/sampleFormat': '"S16" is not allowed; use "f32" or "s16" (did you mean "s16"?)',
    });
    expect(byPath(validatePipeline({ name: 'x', branches: { 'a b': { stages: [], sinks: [{ type: 'stats' }] } } }).problems)).toEqual({
      '/branches/a b': '"a b" is not allowed as a branch name; use a string: letters, digits, "_" and "-", starting with a letter or digit',
    });
  });

  it('names unknown stage and sink types with the nearest known one', () => {
    expect(byPath(validatePipeline(chain([{ type: 'Denoise' }, 7, {}], [{ type: 'recrod' }])).problems)).toEqual({
      '/stages/0/type': expect.stringMatching(/^"Denoise" is not a stage type; use one of passthrough, .* \(did you mean "denoise"\?\), or a registered custom stage \(lower-case letters, digits, "-"\)$/),
      '/stages/1': '7 (a number) is not allowed; use a stage object such as { "type": "denoise" }',
      '/stages/2/type': expect.stringMatching(/^missing; a stage needs "type" \(one of passthrough, denoise, /),
      '/sinks/0/type': '"recrod" is not a sink type; use one of record, stats, processor, websocket (did you mean "record"?)',
    });
  });

  it('accepts custom stage types only when they are registered, without checking their options', () => {
    const doc = chain([{ type: 'dc-blocker', cutoff: 5 }]);
    expect(validatePipeline(doc).problems).toEqual([{ path: '/stages/0/type', message: expect.stringMatching(/"dc-blocker" is not a stage type; .*; custom stages need their module registered first \(earshot serve --stage-module, earshot validate --stage-types; in code: the stageModules option, or customStages of validatePipeline\)$/), found: 'dc-blocker', allowed: expect.any(String) }]);
    expect(validatePipeline(doc, { customStages: ['dc-blocker'] }).pipeline?.branches[0].stages).toEqual([{ type: 'dc-blocker', cutoff: 5 }]);
    // What follows a custom stage is assumed, and says so; a branch of built-in stages is known.
    const after = validatePipeline(chain([{ type: 'resample', sampleRate: 16000 }, { type: 'dc-blocker' }]), { customStages: ['dc-blocker'] }).pipeline!.branches[0];
    expect([after.sampleRate, after.formatKnown]).toEqual([16000, false]);
    expect(validatePipeline(chain([{ type: 'resample', sampleRate: 16000 }])).pipeline!.branches[0].formatKnown).toBe(true);
    expect(validatePipeline(chain([{ type: 'dc-bloker' }]), { customStages: ['dc-blocker'] }).problems[0].message).toMatch(/use one of passthrough, .*, normalize, processor, dc-blocker \(did you mean "dc-blocker"\?\)$/);
  });

  it('refuses denoise after a stage that leaves 48 kHz, naming the fix', () => {
    const { problems } = validatePipeline({ name: 'x', stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'denoise' }], sinks: [{ type: 'stats' }] });
    expect(problems).toEqual([
      {
        path: '/stages/1',
        message: 'denoise needs 48000 Hz audio but gets 16000 Hz here; move "denoise" before any "resample" stage',
        found: 16000,
        allowed: '48000 Hz input',
        hint: 'move "denoise" before any "resample" stage',
      },
    ]);
  });

  it('checks what the stages would refuse at the rate they get: filter frequencies below Nyquist, whole-sample frames, bandpass forms', () => {
    const { problems } = validatePipeline(
      chain([
        { type: 'resample', sampleRate: 22050 },
        { type: 'highpass', frequency: 12000 },
        { type: 'reframe', durationMs: 10 },
        { type: 'bandpass' },
        { type: 'bandpass', frequency: 100, lowFrequency: 50 },
        { type: 'bandpass', lowFrequency: 3000, highFrequency: 300 },
        { type: 'bandpass', highFrequency: 300 },
        // A value the schema refuses is still the form given: one problem, not also "it got neither".
        { type: 'bandpass', frequency: 0 },
        { type: 'bandpass', lowFrequency: 0, highFrequency: 3000 },
      ]),
    );
    expect(byPath(problems)).toEqual({
      '/stages/1/frequency': '12000 is not allowed; use a number above 0 and below 11025 (half the 22050 Hz this stage gets)',
      '/stages/2/durationMs': '10 ms is 220.5 samples at the 22050 Hz this stage gets, not a whole number; use one of 20, 40, 60',
      '/stages/3': '"bandpass" needs either "frequency" (and optionally "q"), or "lowFrequency" and "highFrequency"; it got neither',
      '/stages/4': '"bandpass" needs either "frequency" (and optionally "q"), or "lowFrequency" and "highFrequency"; it got both forms',
      '/stages/5/highFrequency': '300 is not allowed; use a number above "lowFrequency" (3000)',
      '/stages/6/lowFrequency': 'missing; "bandpass" with "highFrequency" needs "lowFrequency" too',
      '/stages/7/frequency': '0 is not allowed; use a number above 0',
      '/stages/8/lowFrequency': '0 is not allowed; use a number above 0',
    });
    expect(problems).toHaveLength(8);
    expect(validatePipeline(chain([{ type: 'highpass', frequency: 12000 }, { type: 'reframe', durationMs: 10 }])).problems).toEqual([]);
  });

  it('reports the chain and sink rules with the schema problems, not after them', () => {
    expect(byPath(validatePipeline({ name: 'x', stages: [{ type: 'gain', db: 99 }], sinks: [{ type: 'record' }, { type: 'record' }] }).problems)).toEqual({
      '/stages/0/db': '99 is not allowed; use a number from -60 to 60',
      '/sinks': 'at most one "record" sink per branch; add a branch for a second recording',
    });
    expect(byPath(validatePipeline({ name: 'x', stages: [] }).problems)).toEqual({ '/sinks': 'a branch needs at least one sink ("record", "stats", "processor" or "websocket")' });
    expect(byPath(validatePipeline({ name: 'x' }).problems)).toEqual({ '': 'a pipeline needs "stages" and "sinks", or "branches"' });
    expect(byPath(validatePipeline({ name: 'x', branches: {} }).problems)).toEqual({ '/branches': 'needs at least one branch' });
    expect(byPath(validatePipeline({ name: 'x', branches: { a: { stages: 'x' } } }).problems)).toEqual({
      '/branches/a/stages': '"x" (a string) is not allowed; use a list of stages, e.g. [{ "type": "denoise" }]',
      '/branches/a/sinks': 'missing; branch "a" needs "sinks" (a list of sinks, e.g. [{ "type": "stats" }])',
    });
  });

  it('normalizes branches and tracks each branch output rate, channels and sample format', () => {
    const p = parsePipeline({
      name: 'two',
      channels: 2,
      branches: {
        archive: { stages: [], sinks: [{ type: 'record' }] },
        asr: { stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }, { type: 'downmix' }, { type: 'format', sampleFormat: 's16' }], sinks: [{ type: 'stats' }] },
      },
    });
    expect(p.branches.map((b) => [b.name, b.sampleRate, b.channels, b.sampleFormat])).toEqual([['archive', 48000, 2, 'f32'], ['asr', 16000, 1, 's16']]);
  });

  it('throws a typed 422 error listing the problems', () => {
    // Not try/catch: there the assertion error of a missing throw would land in the catch block.
    expect(() => parsePipeline({ name: 'x', stages: [], sinks: [], branches: {} })).toThrow(
      expect.objectContaining({ code: 'EARSHOT_PIPELINE_INVALID', statusCode: 422, message: expect.stringMatching(/\/branches: use either/) }),
    );
  });

  it('reports a file that is not JSON with its name and the line and column', async () => {
    await expect(loadPipelineFile(fixturePath('tone-1k-48k.wav'))).rejects.toMatchObject({ code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringContaining('tone-1k-48k.wav') });
    await expect(loadPipelineFile('/nonexistent/p.json')).rejects.toMatchObject({ code: 'EARSHOT_PIPELINE_FILE_UNREADABLE' });
  });
});

describe('validation of values JSON cannot hold', () => {
  const problemsOf = (doc: unknown) => {
    const result = validatePipeline(doc);
    expect(result.pipeline).toBeUndefined();
    return byPath(result.problems);
  };

  it('answers anything that is not an object with one problem at the root', () => {
    for (const doc of [null, undefined, 5, 'x', [], true]) {
      expect(Object.keys(problemsOf(doc))).toEqual(['']);
    }
    expect(problemsOf([])['']).toBe('[] (an array) is not allowed; use a pipeline object: { "name": …, "stages": […], "sinks": […] } or { "name": …, "branches": { … } }');
  });

  it('reports functions, NaN, bigints, class instances and cycles at their path instead of throwing', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(problemsOf(chain([{ type: 'gain', db: Number.NaN }], [{ type: 'processor', name: 'p', options: { f: () => 1, big: 1n, when: new Date(0), loop: cyclic } }]))).toEqual({
      '/stages/0/db': 'NaN is not a JSON number; use a finite number',
      '/sinks/0/options/f': 'a function is not a JSON value; use a string, number, boolean, null, array or object',
      '/sinks/0/options/big': '1n (a bigint) is not a JSON number; use a number',
      '/sinks/0/options/when': 'a Date is not a plain JSON object; use { … } with JSON values',
      '/sinks/0/options/loop/self': 'a circular reference (the value contains itself) is not JSON',
    });
  });

  it('bounds nesting depth, huge strings and huge numbers of problems', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = { a: deep };
    expect(Object.values(problemsOf(chain([], [{ type: 'processor', name: 'p', options: { deep } }])))[0]).toMatch(/nested more than 64 levels deep/);

    const huge = 'x'.repeat(5_000_000);
    const started = performance.now();
    const problems = problemsOf({ name: huge, stages: [{ type: huge }], sinks: [{ type: 'stats' }] });
    expect(problems["/name"]).toMatch(/^"x{37}…" \(a string of 5000000 characters\) is not allowed; use a string of 1–64 characters/);
    expect(problems['/stages/0/type']).toMatch(/^"x{59}…" is not a stage type/);

    const many = validatePipeline(chain(Array.from({ length: 100_000 }, () => ({ type: 'gain' })))).problems;
    expect(many).toHaveLength(101);
    expect(many[100]).toEqual({ path: '', message: '99900 more problems not listed (the first 100 are)' });
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('turns a getter that throws into a problem', () => {
    const doc = { name: 'x', sinks: [{ type: 'stats' }], get stages(): unknown[] { throw new Error('boom'); } };
    expect(problemsOf(doc)).toEqual({ '': 'cannot be validated: boom' });
    expect(() => parsePipeline(new Proxy({}, { ownKeys: () => { throw new Error('trap'); } }))).toThrow(/cannot be validated: trap/);
  });

  it('drops undefined members as JSON does, and reports holes in arrays', () => {
    const p = parsePipeline({ name: 'x', description: undefined, stages: [{ type: 'denoise', mix: undefined }], sinks: [{ type: 'stats' }] });
    expect(p.toJSON()).toStrictEqual({ name: 'x', stages: [{ type: 'denoise' }], sinks: [{ type: 'stats' }] });
    // eslint-disable-next-line no-sparse-arrays
    expect(problemsOf(chain([{ type: 'denoise' }, , { type: 'downmix' }]))).toEqual({ '/stages/1': 'undefined is not a JSON value; remove the item or use null' });
  });

  it('keeps a "__proto__" key from JSON.parse as an ordinary unknown key', () => {
    expect(problemsOf(JSON.parse('{"name":"x","stages":[],"sinks":[{"type":"stats"}],"__proto__":{"name":"y"}}'))).toEqual({
      '/__proto__': expect.stringMatching(/^unknown property "__proto__" of a pipeline; allowed: /),
    });
  });
  it('checks record sink placeholders and names the nearest one', () => {
    const { problems } = validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'record', directory: 'calls/{rom}', template: '{peer}-{dat}-{branch}' }] });
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ['/sinks/0/directory', expect.stringMatching(/^\{rom\} is not a placeholder; use \{room\}, .*did you mean "room"/)],
      ['/sinks/0/template', expect.stringMatching(/^\{dat\} is not a placeholder.*did you mean "date"/)],
    ]);
    expect(validatePipeline({ name: 'x', stages: [], sinks: [{ type: 'record', directory: 'calls/{room}', template: '{peer}-{date}-{session}' }] }).problems).toEqual([]);
  });
});
