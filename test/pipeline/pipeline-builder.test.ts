/** Pipelines in code and round trips: JSON → pipeline → JSON is unchanged, and code builds what its JSON builds. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inWorkers, stage } from '../../src/pipeline/operators.js';
import { definePipeline, pipelineDocument, processorSink, recordSink, statsSink, type PipelineDefinition } from '../../src/pipeline/pipeline-builder.js';
import { parsePipeline, type Pipeline } from '../../src/pipeline/pipeline.js';
import { denoise, format, highpass, reframe, resample } from '../../src/pipeline/stage-operators.js';

const PIPELINES = join(import.meta.dirname, '..', '..', 'pipelines');

/** What a pipeline is, without its toJSON function. */
const shape = (p: Pipeline) => ({ name: p.name, description: p.description, channels: p.channels, branches: p.branches });

describe('toJSON', () => {
  it('gives back every shipped pipeline file as written: same keys, same order, no defaults filled in', async () => {
    const files = (await readdir(PIPELINES)).filter((f) => f.endsWith('.json') && f !== 'pipeline.schema.json');
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      const text = await readFile(join(PIPELINES, file), 'utf8');
      const p = parsePipeline(JSON.parse(text), file);
      expect(JSON.stringify(p.toJSON()), file).toBe(JSON.stringify(JSON.parse(text)));
      const again = parsePipeline(p.toJSON());
      expect(shape(again), file).toEqual(shape(p));
      expect(again.toJSON(), file).toEqual(p.toJSON());
    }
  });

  it('returns a fresh copy that changes to the input or the output do not reach', () => {
    const doc = { name: 'x', stages: [{ type: 'gain', db: 6 }], sinks: [{ type: 'stats' }] };
    const p = parsePipeline(doc);
    doc.stages[0].db = 12;
    (p.toJSON().stages![0] as { db: number }).db = 24;
    expect(p.toJSON()).toEqual({ name: 'x', stages: [{ type: 'gain', db: 6 }], sinks: [{ type: 'stats' }] });
    expect(p.branches[0].stages).toEqual([{ type: 'gain', db: 6 }]);
  });
});

describe('definePipeline', () => {
  it('builds from stage operators and sink helpers the same pipeline as the JSON document', () => {
    const p = definePipeline({
      name: 'voice-agent',
      description: 'archive and ASR',
      branches: {
        archive: { sinks: [recordSink({ template: '{room}-{peer}' })] },
        asr: {
          stages: [inWorkers(denoise({ vadThreshold: 0.6 }), highpass({ frequency: 80 })), resample({ sampleRate: 16000 }), reframe({ durationMs: 20 }), format({ sampleFormat: 's16' })],
          sinks: [statsSink(), processorSink('transcriber', { language: 'en' })],
        },
      },
    });
    const json = {
      name: 'voice-agent',
      description: 'archive and ASR',
      branches: {
        archive: { stages: [], sinks: [{ type: 'record', template: '{room}-{peer}' }] },
        asr: {
          stages: [
            { type: 'denoise', vadThreshold: 0.6 },
            { type: 'highpass', frequency: 80 },
            { type: 'resample', sampleRate: 16000 },
            { type: 'reframe', durationMs: 20 },
            { type: 'format', sampleFormat: 's16' },
          ],
          sinks: [{ type: 'stats' }, { type: 'processor', name: 'transcriber', options: { language: 'en' } }],
        },
      },
    };
    expect(p.toJSON()).toStrictEqual(json);
    expect(shape(p)).toEqual(shape(parsePipeline(json)));
    expect(p.branches.map((b) => [b.name, b.sampleRate, b.sampleFormat])).toEqual([['archive', 48000, 'f32'], ['asr', 16000, 's16']]);
    expect(shape(parsePipeline(p.toJSON()))).toEqual(shape(p));
  });

  it('takes plain stage objects too, and the single-chain form', () => {
    const p = definePipeline({ name: 'plain', channels: 2, stages: [{ type: 'denoise' }, { type: 'downmix' }], sinks: [{ type: 'record', sampleFormat: 'f32' }] });
    expect(p.toJSON()).toStrictEqual({ name: 'plain', channels: 2, stages: [{ type: 'denoise' }, { type: 'downmix' }], sinks: [{ type: 'record', sampleFormat: 'f32' }] });
    expect(p.branches[0]).toMatchObject({ name: 'main', channels: 1 });
  });

  it('throws EARSHOT_PIPELINE_INVALID with every problem and its path, like a file', () => {
    expect(() => definePipeline({ name: 'bad', stages: [resample({ sampleRate: 16000 }), denoise()], sinks: [] })).toThrow(
      expect.objectContaining({
        code: 'EARSHOT_PIPELINE_INVALID',
        extensions: {
          problems: [
            expect.objectContaining({ path: '/stages/1', message: expect.stringMatching(/^denoise needs 48000 Hz/) }),
            expect.objectContaining({ path: '/sinks', message: expect.stringMatching(/at least one sink/) }),
          ],
        },
      }),
    );
  });

  it('accepts custom stages when told their types', () => {
    const def = { name: 'custom', stages: [stage('dc-blocker', { cutoff: 5 })], sinks: [statsSink()] };
    expect(() => definePipeline(def)).toThrow(/"dc-blocker" is not a stage type/);
    expect(definePipeline(def, { customStages: ['dc-blocker'] }).toJSON().stages).toEqual([{ type: 'dc-blocker', cutoff: 5 }]);
  });

  it('documents what it would validate with pipelineDocument(), adding nothing but empty branch stages', () => {
    expect(pipelineDocument({ name: 'd', branches: { a: { sinks: [statsSink()] } } })).toStrictEqual({ name: 'd', branches: { a: { stages: [], sinks: [{ type: 'stats' }] } } });
    expect(pipelineDocument({ name: 'd', sinks: [statsSink()] })).toStrictEqual({ name: 'd', stages: [], sinks: [{ type: 'stats' }] });
  });

  it('names a member a pipeline does not have, as a pipeline file\'s would be, instead of dropping it (a JavaScript caller\'s misspelt "sink")', () => {
    const misspelt = { name: 'typo', stages: [denoise()], sink: [recordSink()] } as unknown as PipelineDefinition;
    expect(pipelineDocument(misspelt)).toStrictEqual({ name: 'typo', stages: [{ type: 'denoise' }], sink: [{ type: 'record' }] });
    expect(() => definePipeline(misspelt)).toThrow(expect.objectContaining({ code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringMatching(/\/sink/) }));
    // A member named __proto__ (JSON.parse makes one) stays a member, not the document's prototype.
    const parsed = JSON.parse('{"name":"p","stages":[],"sinks":[],"__proto__":{"sinks":[{"type":"record"}]}}') as PipelineDefinition;
    expect(Object.getPrototypeOf(pipelineDocument(parsed))).toBe(Object.prototype);
    expect(() => definePipeline(parsed)).toThrow(expect.objectContaining({ code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringMatching(/__proto__/) }));
    // What a pipeline file may say beyond a definition's members is kept too.
    expect(definePipeline({ $schema: 'https://example.com/pipeline.schema.json', name: 'ok', sinks: [statsSink()] }).name).toBe('ok');
  });
});

describe('sink helpers', () => {
  it('build the sink objects of the JSON language', () => {
    expect(recordSink()).toStrictEqual({ type: 'record' });
    expect(recordSink({ sampleFormat: 'f32', autoStart: false })).toStrictEqual({ type: 'record', sampleFormat: 'f32', autoStart: false });
    expect(statsSink()).toStrictEqual({ type: 'stats' });
    expect(processorSink('vad')).toStrictEqual({ type: 'processor', name: 'vad' });
    expect(processorSink('vad', { threshold: 0.5 })).toStrictEqual({ type: 'processor', name: 'vad', options: { threshold: 0.5 } });
  });

  it('check their options at composition with the wording of validation', () => {
    expect(() => recordSink({ sampleFormat: 'u8' as 's16' })).toThrow(new TypeError('recordSink(): sampleFormat: "u8" is not allowed; use "s16" or "f32"'));
    expect(() => recordSink({ autostart: false } as never)).toThrow(/recordSink\(\): autostart: unknown option "autostart" for sink "record"; .*did you mean "autoStart"/);
    expect(() => processorSink('')).toThrow(new TypeError('processorSink(): name: "" is not allowed; use a string of 1–64 characters'));
  });
});
