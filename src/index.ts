/**
 * earshot's public API. Everything a program needs is exported from here; the
 * folders behind it are internal.
 */
export { createServer, type CreateServerOptions, type EarshotServer } from './server/create-server.js';
export type { EarshotCore, ServerStats, StreamInfo } from './server/earshot-core.js';
export type { PeerStatsSnapshot } from './server/peer-registry.js';
export { EarshotError, errors, isEarshotError, type ProblemDetails } from './errors.js';
export { parsePipeline, validatePipeline, loadPipelineFile, type Pipeline, type PipelineProblem, type Branch } from './pipeline/pipeline.js';
export { PipelineSchema, type PipelineDocument, type StageDefinition, type SinkDefinition } from './pipeline/schema.js';
export type { PeerPipeline, BranchOutput } from './pipeline/peer-pipeline.js';
export type { AudioFormat, ProcessedFrame, DecodeCounters } from './dsp/types.js';
export type { RecordingInfo } from './sinks/recorder.js';
export type { RecordingEntry } from './sinks/recordings-store.js';
export type { AudioStats, ProcessingStats } from './sinks/peer-stats.js';
export type { RtpReceiveStats } from './rtc/rtp-ingest.js';
export { WorkerPool, type WorkerPoolOptions, type WorkerPoolStats } from './pool/worker-pool.js';
export { sendAudio, sendMany, encodeSource, type SendOptions, type SendResult, type SendProgress, type EncodedSource } from './client/audio-sender.js';
export { readWavSource, type PcmSource } from './client/wav-source.js';
export { WhipClient, WhipRequestError } from './client/whip-client.js';
