/**
 * A stage type, defined once: its options (a TypeBox schema, which is also
 * the pipeline schema of the stage and types its RxJS operator), the format
 * it outputs for a given input format, the checks of its options that depend
 * on that input (a filter frequency below half the rate it gets), and how it
 * is built. Pipeline validation, the RxJS operators and the worker's stage
 * factories all read the same definition, so they cannot disagree.
 *
 * Option checks run when a stage is created or a pipeline validated, never
 * while audio flows; those that need no input format (the schema, and rules
 * across options: `checkOptions`) also when an RxJS operator or a facade
 * class is built. Every error names the stage and the option
 * (piscina's convention): TypeError for a missing or mistyped option or an
 * unknown key, RangeError for a value of the right type out of range.
 */
import type { Static, TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { AudioFormat } from '../media/frames.js';
import { jsonType, optionWords, typesOf, type Schema } from './schema-words.js';
import type { Stage, StageSpec } from './types.js';

/** An option check that depends on the input format, worded for people (pipeline validation shows it as is). */
export interface StageInputProblem {
  /** The option at fault; absent when the stage as a whole can't take the input or its options conflict. */
  option?: string;
  /** The whole sentence, e.g. `12000 is not allowed; use a number above 0 and below 11025 (half the 22050 Hz this stage gets)`. */
  message: string;
  found?: unknown;
  allowed?: string;
  hint?: string;
  /** `type`: options that don't fit together or one that is missing (a TypeError); otherwise a value out of range here (a RangeError). */
  kind?: 'type' | 'range';
}

/** A stage option that breaks its schema. */
export interface StageOptionProblem {
  option: string;
  /** `unknown`: not an option of the stage; `type`: missing or of the wrong JSON type; `range`: the right type, out of range. */
  kind: 'unknown' | 'type' | 'range';
  /** `must be a number from 0 to 1, got 1.5`, `is required (…)`, `unknown option "x"; allowed: a, b`. */
  text: string;
}

/**
 * The definition of one stage type. `O` is the options as the stage sees
 * them: the schema's, with every default filled in.
 */
export interface StageTypeDefinition<S extends TObject = TObject, O = Static<S>> {
  /** The pipeline `type`, the `const` of the schema's `type` property. */
  readonly type: string;
  /** The stage's pipeline schema: `type` and every option, with ranges, defaults and descriptions. */
  readonly schema: S;
  /** The format the stage outputs for `input`, given valid options. */
  outputFormat(options: O, input: AudioFormat): AudioFormat;
  /**
   * Problems of options the schema accepts one by one but not together,
   * whatever the input (bandpass: one form, not both; the high edge above the
   * low one). Checked before `checkInput`, and also where no input format is
   * known yet: when a stage operator (`bandpass({…})`) or a facade class is
   * built. `given` is the options as given, before defaults, for a rule about
   * what was written (bandpass: "q" belongs to the centre form).
   */
  checkOptions?(options: O, given: Readonly<Record<string, unknown>>): StageInputProblem[];
  /**
   * Problems of valid options with this input (none: the stage can be built).
   * `given`: as for `checkOptions`.
   */
  checkInput?(options: O, input: AudioFormat, given: Readonly<Record<string, unknown>>): StageInputProblem[];
  /** Builds the stage for one stream; `output` is `outputFormat(options, input)`. */
  build(options: O, input: AudioFormat, output: AudioFormat): Stage;
}

/**
 * Gives a stage definition its type: `O` defaults to the schema's options
 * with every optional one filled (each has a default in the schema).
 */
export function defineStageType<S extends TObject, O = Required<Static<S>>>(definition: Omit<StageTypeDefinition<S, O>, 'type'>): StageTypeDefinition<S, O> {
  const type = (definition.schema.properties.type as unknown as { const?: unknown }).const;
  if (typeof type !== 'string') throw new TypeError('a stage schema needs a literal "type"');
  return { type, ...definition };
}

/** Every problem of `spec`'s options against the stage's schema (empty: valid). */
export function optionProblems(schema: TObject, spec: Record<string, unknown>): StageOptionProblem[] {
  const properties = schema.properties as unknown as Record<string, Schema>;
  const names = Object.keys(properties).filter((k) => k !== 'type');
  const problems: StageOptionProblem[] = [];
  for (const key of Object.keys(spec)) {
    if (key === 'type' || Object.hasOwn(properties, key)) continue;
    const allowed = names.length ? `; allowed: ${names.join(', ')}` : '; it takes no options';
    problems.push({ option: key, kind: 'unknown', text: `unknown option "${key}"${allowed}` });
  }
  const required = new Set(schema.required ?? []);
  for (const key of names) {
    const property = properties[key];
    const v = spec[key];
    const words = optionWords(property);
    if (v === undefined) {
      if (required.has(key)) problems.push({ option: key, kind: 'type', text: `is required (${words})` });
      continue;
    }
    if (Value.Check(property as never, v)) continue;
    const types = typesOf(property);
    const kind = types && !types.has(jsonType(v)) ? 'type' : 'range';
    problems.push({ option: key, kind, text: `must be ${words}, got ${describe(v)}` });
  }
  return problems;
}

/**
 * Every problem of `spec`'s options without an input format: the schema's,
 * then (when the schema has none) the definition's rules across options
 * (`checkOptions`), worded as the schema's are. Empty: the options are valid.
 */
export function stageOptionProblems<S extends TObject, O>(definition: StageTypeDefinition<S, O>, spec: Record<string, unknown>): StageOptionProblem[] {
  const problems = optionProblems(definition.schema, spec);
  if (problems.length > 0 || !definition.checkOptions) return problems;
  return definition.checkOptions(withDefaults(definition.schema, spec) as O, spec).map((p) => ({
    option: p.option ?? '',
    kind: p.kind ?? 'range',
    text: p.message,
  }));
}

/** The error a stage factory throws for an option problem: `gain: option "db" must be …`. */
export function optionError(type: string, p: StageOptionProblem): TypeError | RangeError {
  const message = p.kind === 'unknown' ? `${type}: ${p.text}` : `${type}: option "${p.option}" ${p.text}`;
  return p.kind === 'range' ? new RangeError(message) : new TypeError(message);
}

/** The error a stage factory throws for an input problem: `highpass: option "frequency": 12000 is not allowed; …`. */
export function inputError(type: string, p: StageInputProblem): TypeError | RangeError {
  const message = p.option !== undefined ? `${type}: option "${p.option}": ${p.message}` : p.message;
  return p.kind === 'type' ? new TypeError(message) : new RangeError(message);
}

/** `spec`'s options with the schema's defaults filled in for the absent ones (a new object; `spec` is not changed). */
export function withDefaults(schema: TObject, spec: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...spec };
  for (const [key, property] of Object.entries(schema.properties as unknown as Record<string, Schema>)) {
    if (out[key] === undefined && property.default !== undefined) out[key] = property.default;
  }
  return out;
}

/**
 * Checks the input format a factory received: a positive integer sample rate
 * and channel count. Formats come from the previous stage or the stream spec,
 * so a bad one is a bug upstream, reported here before any audio flows.
 */
export function checkInputFormat(type: string, input: AudioFormat): void {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${type}: input format must be an object { sampleRate, channels }`);
  if (!Number.isInteger(input.sampleRate) || input.sampleRate < 1) {
    throw new RangeError(`${type}: input sample rate must be a positive integer, got ${describe(input.sampleRate)}`);
  }
  if (!Number.isInteger(input.channels) || input.channels < 1) {
    throw new RangeError(`${type}: input channels must be a positive integer, got ${describe(input.channels)}`);
  }
}

/**
 * Creates a stage from its definition: options checked against the schema
 * and filled with its defaults, the input format checked, then the checks
 * that depend on it; the first problem is thrown. The stage's `output` is the
 * definition's `outputFormat`.
 */
export function createStageOf<S extends TObject, O>(definition: StageTypeDefinition<S, O>, spec: StageSpec, input: AudioFormat): Stage {
  const [problem] = optionProblems(definition.schema, spec);
  if (problem) throw optionError(definition.type, problem);
  checkInputFormat(definition.type, input);
  // The schema guarantees the shape: every option valid, every optional one with a default filled.
  const options = withDefaults(definition.schema, spec) as O;
  const [inputProblem] = [...(definition.checkOptions?.(options, spec) ?? []), ...(definition.checkInput?.(options, input, spec) ?? [])];
  if (inputProblem) throw inputError(definition.type, inputProblem);
  return definition.build(options, input, definition.outputFormat(options, input));
}

/** The input format with the given fields changed; `sampleFormat` carries over unless changed. */
export function derivedFormat(input: AudioFormat, changes: Partial<AudioFormat> = {}): AudioFormat {
  const out: AudioFormat = { sampleRate: input.sampleRate, channels: input.channels };
  const sampleFormat = changes.sampleFormat ?? input.sampleFormat;
  if (changes.sampleRate !== undefined) out.sampleRate = changes.sampleRate;
  if (changes.channels !== undefined) out.channels = changes.channels;
  // Left out when absent (= 'f32'), so formats compare equal to plain { sampleRate, channels }.
  if (sampleFormat !== undefined) out.sampleFormat = sampleFormat;
  return out;
}

/** Whether two formats describe the same audio (an absent `sampleFormat` is 'f32'). */
export function sameFormat(a: AudioFormat, b: AudioFormat): boolean {
  return a.sampleRate === b.sampleRate && a.channels === b.channels && (a.sampleFormat ?? 'f32') === (b.sampleFormat ?? 'f32');
}

/** `16000 Hz × 1 (f32)`: a format for a message. */
export function formatText(f: AudioFormat): string {
  return `${f.sampleRate} Hz × ${f.channels} (${f.sampleFormat ?? 'f32'})`;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v); // JSON.stringify would print NaN and Infinity as null
  return `${JSON.stringify(v) ?? String(v)} (${typeof v})`;
}
