/**
 * Each built-in stage is defined once (src/dsp, `StageTypeDefinition`): its
 * schema, its output format and its checks. These tests hold the behaviour
 * that follows from it: a bad option is refused in the same words, naming the
 * option, by the stage factory, the RxJS operator and pipeline validation;
 * the format a pipeline says a branch outputs is the one the stages build;
 * and every option is documented, with the default the stage applies.
 */
import type { TSchema } from '@sinclair/typebox';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_STAGE_DEFINITIONS, BUILTIN_STAGE_TYPES, builtinStages, createStage } from '../../src/dsp/registry.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { stage } from '../../src/pipeline/operators.js';
import { parsePipeline, validatePipeline } from '../../src/pipeline/pipeline.js';

beforeAll(async () => {
  await loadDspModules();
});

const mono48k = { sampleRate: 48000, channels: 1 };

/** A valid spec per type, so that one option at a time can be spoilt. */
const validSpecs: Record<string, StageSpec> = {
  passthrough: { type: 'passthrough' },
  denoise: { type: 'denoise', mix: 0.2, vadThreshold: 0.6 },
  resample: { type: 'resample', sampleRate: 16000, quality: 7 },
  downmix: { type: 'downmix' },
  upmix: { type: 'upmix' },
  format: { type: 'format', sampleFormat: 's16' },
  reframe: { type: 'reframe', durationMs: 10 },
  gain: { type: 'gain', db: -3.5 },
  highpass: { type: 'highpass', frequency: 80, q: 1 },
  lowpass: { type: 'lowpass', frequency: 8000, q: 0.5 },
  bandpass: { type: 'bandpass', frequency: 1000, q: 2 },
  notch: { type: 'notch', frequency: 50, q: 10 },
  gate: { type: 'gate', thresholdDb: -45, attackMs: 2, holdMs: 100, releaseMs: 200, floorDb: -60 },
  limiter: { type: 'limiter', ceilingDb: -2, releaseMs: 80 },
  normalize: { type: 'normalize', targetDb: -23, maxGainDb: 15, rateDbPerSecond: 3, silenceDb: -55 },
};

interface Range {
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  anyOf?: Array<{ const: unknown }>;
}

/** A value of the right type just outside what the option's schema allows. */
function outOfRange(property: Range): unknown {
  if (property.anyOf) return typeof property.anyOf[0].const === 'number' ? 25 : 'bogus';
  if (property.maximum !== undefined) return property.maximum + 1;
  if (property.exclusiveMinimum !== undefined) return property.exclusiveMinimum;
  return (property.minimum ?? 0) - 1;
}

describe('built-in stage definitions', () => {
  it('are the registered built-in stages, in the documented order', () => {
    expect(new Set(BUILTIN_STAGE_TYPES).size, 'each type defined once').toBe(BUILTIN_STAGE_DEFINITIONS.length);
    expect([...builtinStages.keys()]).toEqual([...BUILTIN_STAGE_TYPES]);
    for (const type of BUILTIN_STAGE_TYPES) {
      createStage(validSpecs[type], mono48k).close();
      expect(validatePipeline({ name: 'ok', stages: [validSpecs[type]], sinks: [{ type: 'stats' }] }).problems, type).toEqual([]);
    }
  });

  it('refuse an out-of-range option with the same words, naming the option, as a stage, an operator and in a pipeline', () => {
    for (const d of BUILTIN_STAGE_DEFINITIONS) {
      for (const [key, property] of Object.entries(d.schema.properties as Record<string, TSchema & Range>)) {
        if (key === 'type') continue;
        const bad = { ...validSpecs[d.type], [key]: outOfRange(property) };
        const what = `${d.type}.${key}`;
        let factoryError: Error | undefined;
        try {
          createStage(bad, mono48k).close();
        } catch (e) {
          factoryError = e as Error;
        }
        expect(factoryError, what).toBeInstanceOf(RangeError);
        const words = factoryError!.message.replace(`${d.type}: option "${key}" `, '');
        expect(factoryError!.message, what).toBe(`${d.type}: option "${key}" ${words}`);
        const { type: _type, ...options } = bad;
        expect(() => stage(d.type, options), what).toThrow(new TypeError(`${d.type}(): ${key}: ${words}`));
        const problems = validatePipeline({ name: 'bad', stages: [bad], sinks: [{ type: 'stats' }] }).problems;
        expect(problems.map((p) => p.path), what).toEqual([`/stages/0/${key}`]);
      }
    }
  });

  it('refuse an option of the wrong type with a TypeError, and an unknown one listing the allowed ones', () => {
    expect(() => createStage({ type: 'gain', db: '6' }, mono48k)).toThrow(new TypeError('gain: option "db" must be a number from -60 to 60, got "6" (string)'));
    expect(() => createStage({ type: 'limiter', ceiling: -1 }, mono48k)).toThrow(new TypeError('limiter: unknown option "ceiling"; allowed: ceilingDb, releaseMs'));
    expect(() => createStage({ type: 'downmix', channels: 1 }, mono48k)).toThrow(new TypeError('downmix: unknown option "channels"; it takes no options'));
  });

  it('document every option, and each optional one has the default the stage applies', () => {
    for (const d of BUILTIN_STAGE_DEFINITIONS) {
      expect(d.schema.additionalProperties, d.type).toBe(false);
      expect(typeof d.schema.description, d.type).toBe('string');
      const required = new Set<string>(d.schema.required ?? []);
      for (const [key, property] of Object.entries(d.schema.properties as Record<string, TSchema>)) {
        expect(typeof property.description, `${d.type}.${key}`).toBe('string');
        // bandpass: the options of its two forms have no default, by design (either form, not both).
        const formOption = d.type === 'bandpass' && key !== 'q';
        if (key !== 'type' && !required.has(key) && !formOption) expect(property.default, `${d.type}.${key}`).toBeDefined();
      }
    }
  });

  it('give a branch the format its stages really build, stage after stage', () => {
    const chains: Array<{ channels: 1 | 2; stages: StageSpec[]; expected: { sampleRate: number; channels: number; sampleFormat: string } }> = [
      { channels: 1, stages: [], expected: { sampleRate: 48000, channels: 1, sampleFormat: 'f32' } },
      { channels: 1, stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }], expected: { sampleRate: 16000, channels: 1, sampleFormat: 'f32' } },
      { channels: 2, stages: [{ type: 'downmix' }, { type: 'resample', sampleRate: 22050 }, { type: 'reframe', durationMs: 20 }], expected: { sampleRate: 22050, channels: 1, sampleFormat: 'f32' } },
      { channels: 1, stages: [{ type: 'upmix' }, { type: 'format', sampleFormat: 's16' }, { type: 'gain', db: -3 }], expected: { sampleRate: 48000, channels: 2, sampleFormat: 's16' } },
      { channels: 2, stages: [{ type: 'upmix' }, { type: 'resample', sampleRate: 8000 }, { type: 'format', sampleFormat: 's16' }, { type: 'format', sampleFormat: 'f32' }], expected: { sampleRate: 8000, channels: 2, sampleFormat: 'f32' } },
    ];
    for (const { channels, stages, expected } of chains) {
      const branch = parsePipeline({ name: 'p', channels, stages, sinks: [{ type: 'stats' }] }).branches[0];
      expect({ sampleRate: branch.sampleRate, channels: branch.channels, sampleFormat: branch.sampleFormat }, JSON.stringify(stages)).toEqual(expected);
      const built = new StreamProcessor({ channels, branches: [{ stages }] });
      const [out] = built.outputs;
      built.close();
      expect({ ...out, sampleFormat: out.sampleFormat ?? 'f32' }, JSON.stringify(stages)).toEqual(expected);
    }
  });

  it('judge the rate a stage gets at its place in the branch, in validation as when it is built', () => {
    const stages: StageSpec[] = [{ type: 'resample', sampleRate: 16000 }, { type: 'lowpass', frequency: 9000 }];
    const [problem] = validatePipeline({ name: 'p', stages, sinks: [{ type: 'stats' }] }).problems;
    expect(problem).toMatchObject({ path: '/stages/1/frequency', message: '9000 is not allowed; use a number above 0 and below 8000 (half the 16000 Hz this stage gets)' });
    expect(() => new StreamProcessor({ channels: 1, branches: [{ stages }] })).toThrow(`lowpass: option "frequency": ${problem.message}`);
  });

  it('judge nothing by the rate after a custom stage, whose output only its worker knows', () => {
    const doc = (stages: StageSpec[]) => ({ name: 'p', stages, sinks: [{ type: 'stats' }] });
    const custom = { customStages: ['to-16k'] };
    // Before the custom stage the rate is known and judged; after it, the worker judges when the stream starts.
    expect(validatePipeline(doc([{ type: 'resample', sampleRate: 16000 }, { type: 'denoise' }, { type: 'to-16k' }]), custom).problems.map((p) => p.path)).toEqual(['/stages/1']);
    expect(validatePipeline(doc([{ type: 'to-16k' }, { type: 'denoise' }, { type: 'lowpass', frequency: 20000 }]), custom).problems).toEqual([]);
  });
});
