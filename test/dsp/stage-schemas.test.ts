/**
 * The pipeline schemas of the built-in stages (src/pipeline/stage-schemas.ts)
 * agree with the stages themselves: same types, same options, same defaults,
 * and every option documented.
 */
import { Value } from '@sinclair/typebox/value';
import type { TObject, TSchema } from '@sinclair/typebox';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUTTERWORTH_Q, NOTCH_DEFAULT_Q } from '../../src/dsp/biquad.js';
import { DENOISE_DEFAULTS } from '../../src/dsp/denoise.js';
import { GATE_DEFAULTS } from '../../src/dsp/gate.js';
import { LIMITER_DEFAULTS } from '../../src/dsp/limiter.js';
import { NORMALIZE_DEFAULTS } from '../../src/dsp/normalize.js';
import { builtinStages, createStage } from '../../src/dsp/registry.js';
import { RESAMPLE_DEFAULT_QUALITY } from '../../src/dsp/resample.js';
import { loadDspModules } from '../../src/dsp/stream-processor.js';
import type { StageSpec } from '../../src/dsp/types.js';
import { BUILTIN_STAGE_TYPES, BuiltinStageSchemas } from '../../src/pipeline/stage-schemas.js';

beforeAll(async () => {
  await loadDspModules();
});

/** A spec per type that sets every option the stage has (the bandpass in its centre form). */
const fullSpecs: Record<string, StageSpec> = {
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

/** The defaults the stages apply, as exported by their modules. */
const stageDefaults: Record<string, Record<string, unknown>> = {
  denoise: DENOISE_DEFAULTS,
  resample: { quality: RESAMPLE_DEFAULT_QUALITY },
  highpass: { q: Number(BUTTERWORTH_Q.toFixed(4)) },
  lowpass: { q: Number(BUTTERWORTH_Q.toFixed(4)) },
  bandpass: { q: Number(BUTTERWORTH_Q.toFixed(4)) },
  notch: { q: NOTCH_DEFAULT_Q },
  gate: GATE_DEFAULTS,
  limiter: LIMITER_DEFAULTS,
  normalize: NORMALIZE_DEFAULTS,
};

const typeOf = (schema: TObject) => (schema.properties.type as TSchema & { const: string }).const;
const schemaOf = (type: string) => BuiltinStageSchemas.find((s) => typeOf(s) === type) as TObject;

describe('built-in stage schemas', () => {
  it('cover exactly the registered built-in stages, in the same order', () => {
    expect([...BUILTIN_STAGE_TYPES]).toEqual([...builtinStages.keys()]);
    expect(BuiltinStageSchemas.map(typeOf)).toEqual([...BUILTIN_STAGE_TYPES]);
  });

  it('list the options each stage takes, and the stage accepts what the schema accepts', () => {
    for (const type of BUILTIN_STAGE_TYPES) {
      const schema = schemaOf(type);
      const spec = fullSpecs[type];
      const optionKeys = Object.keys(schema.properties).filter((k) => k !== 'type');
      const specKeys = Object.keys(spec).filter((k) => k !== 'type');
      if (type === 'bandpass') expect(optionKeys).toEqual(['frequency', 'q', 'lowFrequency', 'highFrequency']);
      else expect(optionKeys.sort(), type).toEqual(specKeys.sort());
      expect(Value.Check(schema, spec), type).toBe(true);
      createStage(spec, { sampleRate: 48000, channels: 1 }).close();
      // And both refuse an option neither knows.
      expect(Value.Check(schema, { ...spec, bogus: 1 }), type).toBe(false);
      expect(() => createStage({ ...spec, bogus: 1 }, { sampleRate: 48000, channels: 1 }), type).toThrow(`${type}: unknown option "bogus"`);
    }
    expect(Value.Check(schemaOf('bandpass'), { type: 'bandpass', lowFrequency: 300, highFrequency: 3400 })).toBe(true);
  });

  it('document every option, with the default the stage applies', () => {
    for (const schema of BuiltinStageSchemas) {
      const type = typeOf(schema);
      expect(schema.additionalProperties, type).toBe(false);
      for (const [key, property] of Object.entries(schema.properties as Record<string, TSchema>)) {
        expect(typeof property.description, `${type}.${key}`).toBe('string');
        const expected = stageDefaults[type]?.[key];
        if (expected !== undefined) expect(property.default, `${type}.${key}`).toBe(expected);
        else expect(property.default, `${type}.${key}`).toBeUndefined();
      }
    }
  });

  it('reject out-of-range values the stages reject', () => {
    const bad: StageSpec[] = [
      { type: 'gain', db: 61 },
      { type: 'reframe', durationMs: 25 },
      { type: 'format', sampleFormat: 's24' },
      { type: 'gate', floorDb: -121 },
      { type: 'limiter', ceilingDb: 0.5 },
      { type: 'normalize', rateDbPerSecond: 0 },
      { type: 'denoise', mix: 2 },
      { type: 'highpass', frequency: 0 },
      { type: 'notch', frequency: 50, q: 25 },
    ];
    for (const spec of bad) {
      expect(Value.Check(schemaOf(spec.type), spec), JSON.stringify(spec)).toBe(false);
      expect(() => createStage(spec, { sampleRate: 48000, channels: 1 }), JSON.stringify(spec)).toThrow(RangeError);
    }
  });
});
