/**
 * Property-based tests (fast-check): random valid pipelines validate, build and
 * round-trip, in JSON and in code; random mutations of them, and arbitrary
 * values, get problems with a path and a message — validation never throws and
 * never misses a schema rule.
 */
import { Value } from '@sinclair/typebox/value';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stage } from '../../src/pipeline/operators.js';
import { definePipeline } from '../../src/pipeline/pipeline-builder.js';
import { parsePipeline, validatePipeline, type Pipeline, type PipelineProblem } from '../../src/pipeline/pipeline.js';
import { PipelineSchema } from '../../src/pipeline/schema.js';

const RUNS = Number(process.env.FC_RUNS ?? 400);
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,20}$/;

// ---------------------------------------------------------------------------
// Valid pipelines
// ---------------------------------------------------------------------------

/** A stage depends on the rate it gets (filter frequencies, frame durations): arbitraries yield a recipe for a rate. */
type Recipe = (rate: number) => Record<string, unknown> | undefined;

const opt = <T extends Record<string, fc.Arbitrary<unknown>>>(model: T) => fc.record(model, { requiredKeys: [] });
const num = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
const fraction = fc.double({ min: 0.001, max: 0.999, noNaN: true });
const q = num(0.1, 20);
const DURATIONS = [10, 20, 30, 40, 60];

const recipes: fc.Arbitrary<Recipe> = fc.oneof(
  fc.constant<Recipe>(() => ({ type: 'passthrough' })),
  opt({ mix: num(0, 1), vadThreshold: num(0, 1) }).map<Recipe>((o) => (rate) => (rate === 48000 ? { type: 'denoise', ...o } : undefined)),
  fc.record({ sampleRate: fc.integer({ min: 8000, max: 48000 }) }).chain((r) => opt({ quality: fc.integer({ min: 0, max: 10 }) }).map<Recipe>((o) => () => ({ type: 'resample', ...r, ...o }))),
  fc.constantFrom<Recipe>(() => ({ type: 'downmix' }), () => ({ type: 'upmix' })),
  fc.constantFrom('f32', 's16').map<Recipe>((f) => () => ({ type: 'format', sampleFormat: f })),
  fc.nat().map<Recipe>((i) => (rate) => {
    const whole = DURATIONS.filter((ms) => Number.isInteger((ms * rate) / 1000));
    return whole.length ? { type: 'reframe', durationMs: whole[i % whole.length] } : undefined;
  }),
  num(-60, 60).map<Recipe>((db) => () => ({ type: 'gain', db })),
  fc.tuple(fc.constantFrom('highpass', 'lowpass', 'notch'), fraction, opt({ q })).map<Recipe>(([type, f, o]) => (rate) => ({ type, frequency: (f * rate) / 2, ...o })),
  fc.tuple(fraction, opt({ q })).map<Recipe>(([f, o]) => (rate) => ({ type: 'bandpass', frequency: (f * rate) / 2, ...o })),
  fc.tuple(fraction, fraction).map<Recipe>(([a, b]) => (rate) => {
    // Distinct fractions can still round to the same frequency: such a pair is no valid band.
    const low = (Math.min(a, b) * rate) / 2;
    const high = (Math.max(a, b) * rate) / 2;
    return low < high ? { type: 'bandpass', lowFrequency: low, highFrequency: high } : undefined;
  }),
  opt({ thresholdDb: num(-100, 0), attackMs: num(0, 100), holdMs: num(0, 2000), releaseMs: num(1, 5000), floorDb: num(-120, 0) }).map<Recipe>((o) => () => ({ type: 'gate', ...o })),
  opt({ ceilingDb: num(-30, 0), releaseMs: num(1, 2000) }).map<Recipe>((o) => () => ({ type: 'limiter', ...o })),
  opt({ targetDb: num(-40, -3), maxGainDb: num(0, 40), rateDbPerSecond: num(0.5, 60), silenceDb: num(-90, -30) }).map<Recipe>((o) => () => ({ type: 'normalize', ...o })),
);

/** Stages that respect the rules checked beyond the schema: denoise at 48 kHz, frequencies below Nyquist, whole-sample frames. */
const stages = fc.array(recipes, { maxLength: 8 }).map((list) => {
  let rate = 48000;
  const out: Array<Record<string, unknown>> = [];
  for (const recipe of list) {
    const s = recipe(rate);
    if (!s) continue;
    out.push(s);
    if (s.type === 'resample') rate = s.sampleRate as number;
  }
  return out;
});

/** Text with valid placeholders: literal runs (no braces) and {room}, {peer}, … */
const placeholder = fc.constantFrom('{room}', '{peer}', '{date}', '{time}', '{session}', '{branch}', '{pipeline}');
const literal = fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,6}$/);
const segment = fc.array(fc.oneof(literal, placeholder), { minLength: 1, maxLength: 3 }).map((parts) => parts.join(''));
const recordSink = fc.record(
  {
    type: fc.constant('record'),
    format: fc.constant('wav'),
    sampleFormat: fc.constantFrom('s16', 'f32'),
    directory: fc.array(segment, { maxLength: 3 }).map((parts) => parts.join('/')),
    template: fc.array(fc.oneof(literal, placeholder), { minLength: 1, maxLength: 4 }).map((parts) => parts.join('')),
    autoStart: fc.boolean(),
  },
  { requiredKeys: ['type'] },
);
const otherSink = fc.oneof(
  fc.constant({ type: 'stats' }),
  fc.record({ type: fc.constant('processor'), name: fc.string({ minLength: 1, maxLength: 64 }), options: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }) }, { requiredKeys: ['type', 'name'] }),
);
const sinks = fc
  .tuple(fc.option(recordSink, { nil: undefined }), fc.array(otherSink, { maxLength: 3 }), fc.nat())
  .map(([record, others, at]) => {
    const list: Array<Record<string, unknown>> = [...others];
    if (record) list.splice(at % (list.length + 1), 0, record);
    return list.length ? list : [{ type: 'stats' }];
  });

const header = fc.record(
  { $schema: fc.constant('./pipeline.schema.json'), name: fc.stringMatching(NAME), description: fc.string({ maxLength: 40 }), channels: fc.constantFrom(1, 2) },
  { requiredKeys: ['name'] },
);
const singleChain = fc.tuple(header, stages, sinks).map(([h, st, si]) => ({ ...h, stages: st, sinks: si }));
const branched = fc
  .tuple(header, fc.dictionary(fc.stringMatching(NAME), fc.record({ stages, sinks }), { minKeys: 1, maxKeys: 3 }))
  .map(([h, branches]) => ({ ...h, branches }));
const validPipeline = fc.oneof(singleChain, branched);

const shape = (p: Pipeline) => ({ name: p.name, description: p.description, channels: p.channels, branches: p.branches });
const viaJsonText = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('valid pipelines (property-based)', () => {
  it('validate, build and round-trip: toJSON gives the document back, and what it builds is equal and idempotent', () => {
    fc.assert(
      fc.property(validPipeline, (doc) => {
        const result = validatePipeline(doc);
        expect(result.problems).toEqual([]);
        expect(Value.Check(PipelineSchema, viaJsonText(doc))).toBe(true);
        const p = result.pipeline!;
        expect(p.toJSON()).toEqual(doc);
        const again = parsePipeline(viaJsonText(p.toJSON()));
        expect(shape(again)).toEqual(viaJsonText(shape(p)));
        expect(again.toJSON()).toEqual(viaJsonText(p.toJSON()));
      }),
      { numRuns: RUNS },
    );
  });

  it('built in code with stage operators, serialize to JSON that builds the same pipeline', () => {
    const asOperators = (list: unknown) => (list as Array<Record<string, unknown>>).map(({ type, ...options }) => stage(type as string, options));
    fc.assert(
      fc.property(validPipeline, (doc) => {
        const d = doc as unknown as Record<string, unknown> & { stages?: unknown; sinks?: never; branches?: Record<string, { stages: unknown; sinks: never }> };
        const { $schema: _, ...rest } = d;
        const p = definePipeline({
          ...(rest as { name: string }),
          ...(d.stages ? { stages: asOperators(d.stages) } : {}),
          ...(d.branches ? { branches: Object.fromEntries(Object.entries(d.branches).map(([n, b]) => [n, { stages: asOperators(b.stages), sinks: b.sinks }])) } : {}),
        });
        expect(shape(parsePipeline(viaJsonText(p.toJSON())))).toEqual(viaJsonText(shape(parsePipeline(doc))));
      }),
      { numRuns: RUNS / 2 },
    );
  });
});

// ---------------------------------------------------------------------------
// Mutations and garbage
// ---------------------------------------------------------------------------

type Path = Array<string | number>;

const isPlain = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));

function pathsOf(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => pathsOf(x, [...at, i], out));
  else if (isPlain(v)) for (const k of Object.keys(v)) pathsOf(v[k], [...at, k], out);
  return out;
}

/** Copies plain arrays and objects (what mutations edit), shares everything else (functions, typed arrays, …). */
function copy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copy);
  if (!isPlain(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: copy(v[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

let nested: unknown = 'bottom';
for (let i = 0; i < 200; i++) nested = i % 2 ? [nested] : { x: nested };

/** Values of every kind, JSON or not. */
const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.anything({ maxDepth: 2, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true, withBoxedValues: true }),
  fc.constantFrom<unknown>(Number.NaN, Infinity, -Infinity, undefined, () => 1, Symbol('s'), 10n, nested, 'x'.repeat(100_000), -1e12, 1e12, 0.5, -0),
);

type Mutation = { kind: 'delete' | 'replace' | 'add-key' | 'rename-type' | 'scale' | 'nest'; pick: number; value: unknown; key: string; factor: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('delete', 'replace', 'add-key', 'rename-type', 'scale', 'nest'),
  pick: fc.nat(),
  value: anyValue,
  key: fc.oneof(fc.string(), fc.constantFrom('type', 'name', 'sampleRate', 'stages', 'sinks', 'branches', '__proto__', 'constructor', 'a/b~c')),
  factor: fc.constantFrom(-1, 1000, 1e-6, 1e9, 0.5),
});

function mutate(doc: unknown, m: Mutation): unknown {
  const root = { doc: copy(doc) };
  const paths = pathsOf(root.doc).map((p) => ['doc', ...p] as Path);
  const path = paths[m.pick % paths.length];
  const parent = path.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], root) as Record<string | number, unknown> | unknown[];
  const key = path[path.length - 1];
  const target = (parent as Record<string | number, unknown>)[key];
  switch (m.kind) {
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string | number, unknown>)[key];
      break;
    case 'replace':
      (parent as Record<string | number, unknown>)[key] = m.value;
      break;
    case 'add-key':
      if (isPlain(target)) Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
      else (parent as Record<string | number, unknown>)[key] = { [m.key]: m.value };
      break;
    case 'rename-type': {
      const typed = paths.filter((p) => p[p.length - 1] === 'type');
      if (typed.length === 0) break;
      const tp = typed[m.pick % typed.length];
      const owner = tp.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], root) as Record<string, unknown>;
      owner.type = typeof m.value === 'string' ? m.value : `${String(owner.type)}x`;
      break;
    }
    case 'scale':
      (parent as Record<string | number, unknown>)[key] = typeof target === 'number' ? target * m.factor : m.factor;
      break;
    case 'nest':
      (parent as Record<string | number, unknown>)[key] = { x: [target, nested] };
      break;
  }
  return root.doc;
}

function expectWellFormed(problems: PipelineProblem[]): void {
  expect(problems.length).toBeGreaterThanOrEqual(1);
  expect(problems.length).toBeLessThanOrEqual(101);
  for (const p of problems) {
    expect(p.path).toMatch(/^(\/.*)?$/s);
    expect(typeof p.message).toBe('string');
    expect(p.message.length).toBeGreaterThan(0);
    // The schema walk words every rule itself: the TypeBox fallback ("is not allowed: Expected …") never speaks.
    expect(p.message).not.toMatch(/ is not allowed: /);
  }
}

describe('invalid pipelines (property-based)', () => {
  it('a mutated valid pipeline either validates (and then passes the schema) or gets well-formed problems; validation never throws', () => {
    fc.assert(
      fc.property(validPipeline, fc.array(mutation, { minLength: 1, maxLength: 3 }), (doc, ms) => {
        const bad = ms.reduce((d, m) => mutate(d, m), doc as unknown);
        const started = performance.now();
        const result = validatePipeline(bad);
        expect(performance.now() - started).toBeLessThan(1000);
        if (result.pipeline) {
          expect(result.problems).toEqual([]);
          expect(Value.Check(PipelineSchema, viaJsonText(bad))).toBe(true);
          expect(shape(parsePipeline(result.pipeline.toJSON()))).toEqual(shape(result.pipeline));
        } else {
          expectWellFormed(result.problems);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('any value at all gets a pipeline or well-formed problems, never an exception', () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        const result = validatePipeline(value);
        if (!result.pipeline) expectWellFormed(result.problems);
      }),
      { numRuns: RUNS },
    );
  });
});
