/**
 * The pipeline language's single source of truth: TypeBox schemas give the
 * TypeScript types, the runtime validator and the published JSON Schema.
 * Every property carries a `description` so the docs can be generated from it.
 * The built-in stages' schemas are their definitions' (src/dsp, one file per
 * stage); this file puts them together with the sinks, branches and pipeline.
 */
import { Type, type Static } from '@sinclair/typebox';

import { BUILTIN_STAGE_DEFINITIONS, BUILTIN_STAGE_TYPES } from '../dsp/registry.js';

export { BUILTIN_STAGE_TYPES } from '../dsp/registry.js';

/** Every built-in stage's schema, from its definition in src/dsp, in the order of BUILTIN_STAGE_TYPES. */
export const BuiltinStageSchemas = BUILTIN_STAGE_DEFINITIONS.map((d) => d.schema);

/** The stage type of a main-thread processor placed in a branch's stages (not a worker stage: see ProcessorStageSchema). */
export const PROCESSOR_STAGE_TYPE = 'processor';

/**
 * A stage from a custom worker module (`pool.registerStageModule()` /
 * `--stage-module`): any lower-case type that is not a built-in, with its own
 * options. Whether the type exists is checked against the registered modules
 * when the pipeline is validated for a server; its options are checked by the
 * module's `create()` before any peer uses the pipeline.
 */
export const CustomStageSchema = Type.Object(
  {
    type: Type.String({
      pattern: `^(?!(${[...BUILTIN_STAGE_TYPES, PROCESSOR_STAGE_TYPE].join('|')})$)[a-z][a-z0-9-]*$`,
      description: 'Stage type registered by a custom worker stage module.',
    }),
  },
  { additionalProperties: true, description: 'A custom worker stage; its options are passed to the module.' },
);

/**
 * A main-thread processor as a stage: its output replaces the branch's audio
 * for the later stages and the sinks (the recording included). It runs on
 * the main thread, after every worker stage of its branch.
 */
export const ProcessorStageSchema = Type.Object(
  {
    type: Type.Literal(PROCESSOR_STAGE_TYPE, {
      description:
        'Run a main-thread processor registered as a stage (registerProcessor(name, factory, { stage: true })); the frames it emits become the branch output. Processor stages come after every worker stage of their branch. Its time counts against the main thread, which also carries WebRTC: put per-sample work in a worker stage module instead.',
    }),
    name: Type.String({ minLength: 1, maxLength: 64, description: 'Registered processor name. An unregistered name, or one not registered as a stage, is an error when a stream starts, before any audio flows (and at PUT /pipelines).' }),
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'Passed to the processor factory as context.options.' })),
  },
  { additionalProperties: false },
);

export const StageSchema = Type.Union([...BuiltinStageSchemas, ProcessorStageSchema, CustomStageSchema]);
export type StageDefinition = Static<typeof StageSchema>;
/** @deprecated use BUILTIN_STAGE_TYPES */
export const STAGE_TYPES = BUILTIN_STAGE_TYPES;

/** Placeholders a record sink's `directory` and `template` may use. */
export const RECORD_PLACEHOLDERS = ['room', 'peer', 'date', 'time', 'session', 'branch', 'pipeline'] as const;

export const RecordSinkSchema = Type.Object(
  {
    type: Type.Literal('record', { description: 'Write the branch output to a streaming WAV or Ogg Opus file in the recordings directory.' }),
    format: Type.Optional(
      Type.Union([Type.Literal('wav'), Type.Literal('ogg-opus')], {
        default: 'wav',
        description:
          'Container format. "wav": the branch output as PCM (".wav"). "ogg-opus": Opus in an Ogg Opus file (RFC 7845, ".opus"), about 20× smaller than 48 kHz s16 WAV: on a branch without stages the packets as received, not re-encoded; on a branch with stages their output, encoded to 20 ms Opus packets in the worker (the branch must output 8, 12, 16, 24 or 48 kHz). Media time is kept across loss (concealed by the player) and DTX (silence); pre-skip 312. A file encoded in the worker ends at the media\'s last sample when the stream ends: the encoder\'s lookahead is coded and the file end-trimmed there. Not with "sampleFormat".',
      }),
    ),
    sampleFormat: Type.Optional(
      Type.Union([Type.Literal('s16'), Type.Literal('f32')], {
        default: 's16',
        description: 'Sample encoding of the file: "s16" (16-bit PCM) or "f32" (32-bit float). Frames a "format" stage made s16 are written as they are. A recording that passes 4 GiB (48 kHz: 12.4 h of s16 mono, 3.1 h of f32 stereo) goes on as an RF64 file (EBU Tech 3306), which tools that read RF64 read whole.',
      }),
    ),
    directory: Type.Optional(
      Type.String({
        default: '',
        maxLength: 200,
        pattern: '^(?!/)(?!.*(^|/)\\.\\.?(/|$))[A-Za-z0-9_{}./-]*$',
        description:
          'Subdirectory of the recordings directory for this sink\'s files (created on demand), e.g. "calls/{room}". Relative only: no leading "/", no "." or ".." segments. Placeholders as in "template". Default: the recordings directory itself.',
      }),
    ),
    template: Type.Optional(
      Type.String({
        default: '{room}-{peer}-{date}',
        minLength: 1,
        maxLength: 200,
        pattern: '^[A-Za-z0-9_{}.-]+$',
        description:
          'File name without its suffix (".wav", or ".opus" for "ogg-opus"): text and placeholders {room}, {peer}, {date} (UTC, YYYYMMDD-HHMMSS), {time} (UTC, HHMMSS), {session} (first 8 characters of the session id), {branch}, {pipeline}. A pipeline with several branches appends "-{branch}" unless the template uses {branch}. An existing name gets "-2", "-3", … Directory and file names must start with a letter, digit, "_" or "-" and have at most 128 characters, with at most 4 directory levels: a directory or template that breaks this for any session is refused when the pipeline is validated; a name that long room or peer names push past 120 characters is shortened.',
      }),
    ),
    autoStart: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          'Record every stream (true) or only on POST /peers/:peer/recording (false). The file is created when the first audio arrives, so a session that never carries audio leaves none; POST /peers/:peer/recording creates it at once. A POST starts the branches not recording and leaves the others\' files alone, so one branch can archive every call while another records on demand.',
      }),
    ),
    required: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Refuse a session (WHIP POST → 507 EARSHOT_RECORDING_UNAVAILABLE) when the recordings directory cannot take a recording now: not writable, or less than 16 MiB free. Without it, such sessions start and their stats (recording.state "failed", error) and a "recording-failed" event say why nothing is recorded.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const StatsSinkSchema = Type.Object(
  { type: Type.Literal('stats', { description: 'Feed audio levels and voice activity of this branch into the peer statistics. A peer has one set of statistics: the first branch (in the pipeline\'s order) with a stats sink is the one measured, and a stats sink on a later branch adds nothing, so put it on the branch whose audio the figures should describe (one with denoise, for voice activity).' }) },
  { additionalProperties: false },
);

export const ProcessorSinkSchema = Type.Object(
  {
    type: Type.Literal('processor', { description: 'Hand the branch output to a main-thread processor registered with registerProcessor().' }),
    name: Type.String({ minLength: 1, maxLength: 64, description: 'Registered processor name. An unregistered name is an error when a stream starts, before any audio flows.' }),
    options: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { default: {}, description: 'Passed to the processor factory as context.options.' })),
  },
  { additionalProperties: false },
);

export const WebSocketSinkSchema = Type.Object(
  {
    type: Type.Literal('websocket', {
      description:
        'Stream the branch output live to a WebSocket server (speech recognition, voice agents): a JSON "start" message, then one binary message of raw PCM per frame, JSON speech events, and a JSON "end" message when the session ends. See docs/websocket.md.',
    }),
    url: Type.String({ maxLength: 2000, pattern: '^wss?://[^\\s]+$', description: 'Server to connect to when a stream starts: ws:// or wss://.' }),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$" }), Type.String({ maxLength: 4000 }), {
        // Without this a header name the pattern refuses would be an unchecked extra member.
        additionalProperties: false,
        default: {},
        description:
          'HTTP headers of the connection request, e.g. {"Authorization": "Bearer ${EARSHOT_SINK_ASR_TOKEN}"}. "${NAME}" is replaced by the environment variable NAME of the earshot process when a stream starts (a stream whose variable is not set is refused, EARSHOT_SINK_ENV_MISSING). Only variables meant for sinks may be named: EARSHOT_SINK_… and those listed in EARSHOT_SINK_ENV (earshot serve --sink-env), since pipelines may arrive over HTTP. Put secrets in the environment, not in the pipeline: header values never appear in statistics, events or logs.',
      }),
    ),
    format: Type.Optional(
      Type.Union([Type.Literal('s16'), Type.Literal('f32')], {
        default: 's16',
        description: 'Sample encoding of the binary messages: "s16" (16-bit signed integers) or "f32" (32-bit floats, −1..1), little-endian, interleaved; rate and channels are the branch\'s.',
      }),
    ),
    queueFrames: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 30000,
        default: 250,
        description:
          'Frames kept while the server is slow or unreachable, 1–30000 (250 = 5 s of 20 ms frames; a run of silence, however long, waits as its length and takes one place). When full, the oldest frame is dropped and counted (statistics "websockets[].droppedFrames"); the stream and the other sinks never wait.',
      }),
    ),
    reconnectDelayMs: Type.Optional(
      Type.Integer({ minimum: 10, maximum: 600000, default: 500, description: 'Wait in ms before the first reconnection attempt after the connection failed or dropped, 10–600000; doubled after each failed attempt.' }),
    ),
    reconnectMaxDelayMs: Type.Optional(
      Type.Integer({ minimum: 10, maximum: 600000, default: 10000, description: 'Longest wait in ms between reconnection attempts, 10–600000; at least reconnectDelayMs.' }),
    ),
  },
  { additionalProperties: false },
);

export const SinkSchema = Type.Union([RecordSinkSchema, StatsSinkSchema, ProcessorSinkSchema, WebSocketSinkSchema]);
export type SinkDefinition = Static<typeof SinkSchema>;
export const SINK_TYPES = ['record', 'stats', 'processor', 'websocket'] as const;

export const BranchSchema = Type.Object(
  {
    stages: Type.Array(StageSchema, { default: [], description: 'Stages applied in order to the decoded 48 kHz audio: worker stages, then any "processor" stages (main thread).' }),
    sinks: Type.Array(SinkSchema, { default: [], description: 'Where the branch output goes: at least one sink, at most one "record".' }),
  },
  { additionalProperties: false, description: 'One chain of worker stages and the sinks that take its output.' },
);

export const PipelineSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'Path or URL of pipeline.schema.json, for editors.' })),
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*$', description: 'Pipeline name: letters, digits, "_" and "-".' }),
    description: Type.Optional(Type.String({ description: 'What the pipeline is for.' })),
    channels: Type.Optional(
      Type.Union([Type.Literal(1), Type.Literal(2)], {
        default: 1,
        description: 'Channels to decode the Opus stream to: 1 (mono, default) or 2 (stereo; the answer asks the sender for stereo=1, RFC 7587). A mono sender decoded as stereo gives two equal channels.',
      }),
    ),
    dtx: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          'Ask the sender for discontinuous transmission (RFC 7587 usedtx=1): browsers then send no packets while the speaker is silent, and earshot records that silence at its media time without processing it. false: ask for continuous packets.',
      }),
    ),
    stages: Type.Optional(Type.Array(StageSchema, { description: 'Single-chain form: stages (use either stages+sinks or branches).' })),
    sinks: Type.Optional(Type.Array(SinkSchema, { description: 'Single-chain form: sinks.' })),
    branches: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*$' }), BranchSchema, {
        // Without this a key the pattern refuses would be an unchecked extra member (JSON Schema's default).
        additionalProperties: false,
        description: 'Named branches sharing one decode; each has its own stages and sinks. Names: letters, digits, "_" and "-".',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'An earshot pipeline: what happens to each decoded audio stream. Either one chain ("stages" + "sinks") or named "branches".',
  },
);
export type PipelineDocument = Static<typeof PipelineSchema>;
