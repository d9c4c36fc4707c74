/**
 * The pipeline language's single source of truth: TypeBox schemas give the
 * TypeScript types, the runtime validator and (later) the published JSON Schema.
 * Every property carries a `description` so the docs can be generated from it.
 */
import { Type, type Static } from '@sinclair/typebox';

export const SAMPLE_RATES = [8000, 12000, 16000, 22050, 24000, 32000, 44100, 48000] as const;

export const DenoiseStageSchema = Type.Object(
  { type: Type.Literal('denoise', { description: 'RNNoise noise suppression at 48 kHz; reports a voice-activity probability per frame.' }) },
  { additionalProperties: false, description: 'Remove background noise (RNNoise). Needs 48 kHz input.' },
);

export const ResampleStageSchema = Type.Object(
  {
    type: Type.Literal('resample', { description: 'Change the sample rate (Speex resampler).' }),
    sampleRate: Type.Integer({ minimum: 8000, maximum: 48000, description: 'Output sample rate in Hz, 8000–48000.' }),
    quality: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, default: 5, description: 'Speex quality 0 (fastest) … 10 (best). Default 5.' })),
  },
  { additionalProperties: false, description: 'Resample to another rate.' },
);

export const StageSchema = Type.Union([DenoiseStageSchema, ResampleStageSchema]);
export type StageDefinition = Static<typeof StageSchema>;
export const STAGE_TYPES = ['denoise', 'resample'] as const;

export const RecordSinkSchema = Type.Object(
  {
    type: Type.Literal('record', { description: 'Write the branch output to a streaming WAV file in the recordings directory.' }),
    format: Type.Optional(Type.Literal('wav', { default: 'wav', description: 'Container format. Only "wav".' })),
    sampleFormat: Type.Optional(
      Type.Union([Type.Literal('s16'), Type.Literal('f32')], { default: 's16', description: 'Sample encoding: "s16" (16-bit PCM) or "f32" (32-bit float).' }),
    ),
    autoStart: Type.Optional(Type.Boolean({ default: true, description: 'Start recording when the stream starts (true) or only on POST /peers/:peer/recording (false).' })),
  },
  { additionalProperties: false },
);

export const StatsSinkSchema = Type.Object(
  { type: Type.Literal('stats', { description: 'Feed audio levels and voice activity of this branch into the peer statistics.' }) },
  { additionalProperties: false },
);

export const SinkSchema = Type.Union([RecordSinkSchema, StatsSinkSchema]);
export type SinkDefinition = Static<typeof SinkSchema>;
export const SINK_TYPES = ['record', 'stats'] as const;

export const BranchSchema = Type.Object(
  {
    stages: Type.Array(StageSchema, { default: [], description: 'Worker stages applied in order to the decoded 48 kHz audio.' }),
    sinks: Type.Array(SinkSchema, { default: [], description: 'Where the branch output goes.' }),
  },
  { additionalProperties: false },
);

export const PipelineSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'Path or URL of pipeline.schema.json, for editors.' })),
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*$', description: 'Pipeline name: letters, digits, "_" and "-".' }),
    description: Type.Optional(Type.String({ description: 'What the pipeline is for.' })),
    channels: Type.Optional(
      Type.Union([Type.Literal(1), Type.Literal(2)], { default: 1, description: 'Channels to decode the Opus stream to: 1 (mono, default) or 2 (stereo).' }),
    ),
    stages: Type.Optional(Type.Array(StageSchema, { description: 'Single-chain form: stages (use either stages+sinks or branches).' })),
    sinks: Type.Optional(Type.Array(SinkSchema, { description: 'Single-chain form: sinks.' })),
    branches: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*$' }), BranchSchema, {
        description: 'Named branches sharing one decode; each has its own stages and sinks.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type PipelineDocument = Static<typeof PipelineSchema>;
