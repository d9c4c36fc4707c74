/**
 * earshot's public API. Everything a program needs is exported from here; the
 * folders behind it are internal.
 *
 * @packageDocumentation
 */
export { createServer, type CreateServerOptions, type EarshotServer } from './server/create-server.js';
export { createCluster, type ClusterOptions, type EarshotCluster } from './cluster/cluster-server.js';
export type { ClusterNodeOptions } from './cluster/cluster-node.js';
export type { EarshotCore, ServerStats, StreamHandle, StreamInfo, ProcessorScope, SessionEvent } from './core/earshot-core.js';
export type { PeerStatsSnapshot, PeerTotals } from './core/peer-registry.js';
export type { ClientChannelStats, ClientChannelState } from './rtc/data-channel.js';
export type { AdmissionOptions, AdmissionState } from './core/admission.js';
export type { LogLevel } from './core/option-checks.js';
export { EarshotError, errors, isEarshotError, type EarshotErrorCode, type ErrorFactory, type ProblemDetails } from './errors.js';
export { parsePipeline, validatePipeline, loadPipelineFile, type Pipeline, type PipelineProblem, type Branch, type ValidateOptions, type ValidationResult } from './pipeline/pipeline.js';
export {
  definePipeline,
  pipelineDocument,
  recordSink,
  statsSink,
  processorSink,
  processorStage,
  type PipelineDefinition,
  type PipelineSource,
  type BranchDefinition,
  type StageInput,
  type RecordSink,
  type RecordSinkOptions,
  type StatsSink,
  type ProcessorSink,
  type ProcessorStage,
} from './pipeline/pipeline-builder.js';
export { publishedSchema, PIPELINE_SCHEMA_ID } from './pipeline/schema-docs.js';
export { PipelineSchema, type PipelineDocument, type StageDefinition, type SinkDefinition } from './pipeline/schema.js';
export type { PeerPipeline, BranchOutput, AttachedProcessor, PcmListener } from './pipeline/peer-pipeline.js';
export type { DropCounts } from './pipeline/loss-accounting.js';
export type { ProcessorNames } from './pipeline/processor-stages.js';
export type { ProcessorStageStats } from './pipeline/processor-stage-chain.js';
export type { AudioFormat, SampleFormat, AudioFrame, EncodedFrame, BranchFormat, DecodeCounters, ProcessedFrame, EncodedInput, IngestFrame } from './media/frames.js';
export type { Stage, StageOutput, StageSpec, StageFactory, PcmChunk } from './dsp/types.js';
export type { PcmInput } from './dsp/pcm-input.js';
export type { RecordingInfo, RecordingFormat, DroppedFrames } from './sinks/recorder.js';
export type { WavSampleFormat } from './sinks/wav-file-writer.js';
export type { RecordingEntry } from './sinks/recordings-store.js';
export type { AudioStats, ProcessingStats } from './sinks/peer-stats.js';
export type { WebSocketSinkStats, WebSocketSinkState } from './sinks/websocket-sink.js';
export type { RtpReceiveStats } from './rtc/rtp-ingest.js';
export type { SessionEndReason, SessionState } from './rtc/peer-session.js';
export {
  WorkerPool,
  type WorkerPoolOptions,
  type WorkerPoolStats,
  type WorkerPoolHealth,
  type QuarantinedStream,
  type PoolStream,
  type PoolStreamHandlers,
} from './pool/worker-pool.js';
export type { StreamSetup, StreamInput } from './pool/protocol.js';
export { defineStage, type CustomStage } from './pool/stage-module.js';
export {
  registerProcessor,
  defaultProcessors,
  ProcessorRegistry,
  type ProcessorFactory,
  type ProcessorContext,
  type ProcessorInstance,
  type ProcessorEvent,
  type ProcessorStageContext,
  type ProcessorStageFactory,
  type ProcessorStageFormat,
  type ProcessorStageInstance,
  type ProcessorStageOptions,
  type RegisterProcessorOptions,
} from './sinks/processors.js';
export {
  inWorkers,
  stage,
  stagesOf,
  isStageOperator,
  setDefaultPool,
  getDefaultPool,
  closeDefaultPool,
  type StageOperator,
  type InWorkersOptions,
} from './pipeline/operators.js';
export * from './pipeline/stage-operators.js';
export { speechSegments, type SpeechEvent, type SpeechSegmentsOptions } from './pipeline/frame-operators.js';
export { WebRTCHandler, type WebRTCHandlerOptions, type ProcessedAudio } from './facade/webrtc-handler.js';
export {
  AudioProcessor,
  DefaultAudioProcessor,
  AudioTranscoder,
  AudioFilter,
  type AudioTranscoderOptions,
  type AudioFilterOptions,
  type BiquadSetting,
} from './facade/audio-processor.js';
export { sendAudio, sendMany, encodeSource, type SendOptions, type SendResult, type SendProgress, type EncodedSource, type ReceiverReport } from './client/audio-sender.js';
export { type PcmSource } from './client/wav-source.js';
export { readWavSource } from './client/wav-stream.js';
export { WhipClient, WhipRequestError, type WhipPublishResult, type WhipClientOptions } from './client/whip-client.js';
