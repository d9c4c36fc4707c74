/**
 * A user's program, as test/package/installed-package.test.ts builds it: copied
 * into a fresh project that installed the packed tarball, type-checked strictly
 * with TypeScript against the package's own declarations, compiled and run with
 * node. Everything comes from `earshot` by name. It runs a real loopback
 * session against a server and one against the WebRTCHandler API, and prints
 * one JSON line the test checks.
 *
 *   node out/main.js <fixture.wav>
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AudioProcessor,
  createServer,
  definePipeline,
  denoise,
  errors,
  gain,
  inWorkers,
  recordSink,
  resample,
  sendAudio,
  statsSink,
  WebRTCHandler,
  type AudioFrame,
  type BandpassOptions,
  type CreateServerOptions,
  type DenoiseOptions,
  type DropCounts,
  type EarshotErrorCode,
  type EarshotServer,
  type LogLevel,
  type PeerStatsSnapshot,
  type PipelineDefinition,
  type ProcessedAudio,
  type ProcessorNames,
  type QuarantinedStream,
  type RecordingFormat,
  type ResampleOptions,
  type SendResult,
  type StreamHandle,
  type WorkerPoolHealth,
} from 'earshot';
import type { Observable } from 'rxjs';

const fixture = process.argv[2];
if (!fixture) throw new Error('usage: node out/main.js <fixture.wav>');

/** Seconds of audio in a WAV file, from its header (what a player would say). */
async function wavSeconds(file: string): Promise<number> {
  const buf = await readFile(file);
  let byteRate = 0;
  for (let offset = 12; offset + 8 <= buf.length; ) {
    const id = buf.toString('ascii', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    if (id === 'fmt ') byteRate = buf.readUInt32LE(offset + 16);
    if (id === 'data') return size / byteRate;
    offset += 8 + size + (size % 2);
  }
  throw new Error(`${file}: no data chunk`);
}

/** The pool's health types are exported for code that reads `/health` or `WorkerPool.health()`. */
function describeHealth(health: WorkerPoolHealth): string {
  const quarantined: readonly QuarantinedStream[] = health.quarantined;
  return `${health.status}, ${quarantined.length} quarantined`;
}

/** Options are typed as documented: a log level that does not exist does not compile. */
const quiet: LogLevel = 'silent';
// @ts-expect-error 'loud' is not a log level
const misspelt: CreateServerOptions = { logLevel: 'loud' };
void [quiet, misspelt];

/** A pipeline given inline is checked as one: a misspelt sink type does not compile. */
const inline: CreateServerOptions = { pipeline: { name: 'inline', stages: [denoise()], sinks: [statsSink()] } };
// @ts-expect-error 'recrod' is not a sink type
const badSink: CreateServerOptions = { pipeline: { name: 'typo', sinks: [{ type: 'recrod' }] } };
const kept: PipelineDefinition = { name: 'kept', stages: [{ type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'stats' }] };
// As a pipeline file begins, for editors.
const withSchema: CreateServerOptions = { pipeline: { $schema: './pipeline.schema.json', name: 'file-like', sinks: [{ type: 'stats' }] } };
void [inline, badSink, kept, withSchema];

/** Error codes are literals: a comparison offers them, and one that is not earshot's does not compile. */
const overloaded: EarshotErrorCode = errors.OVERLOADED.code;
// @ts-expect-error not one of earshot's codes
const notACode: EarshotErrorCode = 'EARSHOT_OVERLOADD';
void [overloaded, notACode];

/** The types options and results use can be named. */
const denoiseOptions: DenoiseOptions = {};
const resampleOptions: ResampleOptions = { sampleRate: 16000, quality: 5 };
const recordingFormat: RecordingFormat = 'ogg-opus';
const drops: Partial<DropCounts> = {};
const names: ProcessorNames = { has: () => false, isStage: () => false, stageNames: () => [] };
// Named as every stage operator's options are (it was only BandpassOperatorOptions).
const band: BandpassOptions = { lowFrequency: 300, highFrequency: 3400 };
void [denoiseOptions, resampleOptions, recordingFormat, drops, names, band];

/** An AudioProcessor: frames in, frames out. */
class PassThrough extends AudioProcessor {
  readonly name = 'pass-through';
  process(_peerId: string, frames$: Observable<AudioFrame>): Observable<AudioFrame> {
    return frames$;
  }
}

const recordings = await mkdtemp(join(tmpdir(), 'earshot-consumer-rec-'));
try {
  // 1. The server, with a pipeline built in code; stage operators on its streams.
  const pipeline = definePipeline({ name: 'consumer', stages: [denoise()], sinks: [recordSink({ sampleFormat: 's16' }), statsSink()] });
  const server: EarshotServer = await createServer({ host: '127.0.0.1', port: 0, recordingsDir: recordings, pipeline, logLevel: 'warn' });
  const url = await server.listen();
  const dashboard = (await fetch(`${url}/`)).status; // the static page ships with the package
  // The bundled pipelines belong to the installed package: the HTTP API reads them and changes none.
  const put = await fetch(`${url}/pipelines/mine`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'mine', sinks: [{ type: 'stats' }] }) });
  const listing = (await (await fetch(`${url}/pipelines`)).json()) as { writable: boolean };
  const bundledPipelines = { put: put.status, code: ((await put.json()) as { code?: string }).code, writable: listing.writable };
  let streams = 0;
  let frames = 0;
  let frames16k = 0;
  let samples16k = 0;
  let rate16k = 0;
  const firstFrame = new Promise<AudioFrame>((resolve) => {
    server.streams$.subscribe((stream: StreamHandle) => {
      streams++;
      stream.audio$.subscribe((frame) => {
        frames++;
        resolve(frame);
      });
      stream.audio$.pipe(inWorkers(resample({ sampleRate: 16000 }), gain({ db: -6 }))).subscribe((frame) => {
        frames16k++;
        samples16k += frame.data.length;
        rate16k = frame.sampleRate;
      });
    });
  });
  const sent: SendResult = await sendAudio({ url: `${url}/whip/room/peer`, source: fixture, seconds: 3 });
  const first = await firstFrame;
  await server.close(); // finalizes the recording
  const files = (await readdir(recordings)).filter((f) => f.endsWith('.wav'));
  const recordedSeconds = files.length === 1 ? await wavSeconds(join(recordings, files[0])) : null;

  // 2. The WebRTCHandler API, used at once (no ready()), with its bundled default pipeline.
  const handler = new WebRTCHandler({ recordingsDir: recordings, iceHostAddresses: ['127.0.0.1'], mediaTimeoutMs: 1000 });
  const processed: ProcessedAudio[] = [];
  handler.processedAudio$.subscribe((p) => processed.push(p));
  handler.registerCustomAudioProcessor('pass-through', new PassThrough());
  const pc = handler.createPeerConnection('room', 'facade-peer');
  // Signaling replaces the WHIP URL: none is given.
  const viaHandler = await sendAudio({
    source: fixture,
    seconds: 1,
    hostAddresses: ['127.0.0.1'],
    signaling: async (offer) => {
      await pc.setRemoteDescription({ type: 'offer', sdp: offer });
      await pc.setLocalDescription(await pc.createAnswer());
      while (pc.iceGatheringState !== 'complete') await new Promise((r) => setTimeout(r, 10));
      return pc.localDescription!.sdp;
    },
  });
  const handlerStats: PeerStatsSnapshot = handler.getAudioStatistics('facade-peer');
  await handler.close();

  console.log(
    JSON.stringify({
      dashboard,
      bundledPipelines,
      streams,
      frames,
      firstFrame: { sampleRate: first.sampleRate, channels: first.channels, samples: first.data.length },
      frames16k,
      samples16k,
      rate16k,
      sentSeconds: sent.mediaSeconds,
      packetsSent: sent.packetsSent,
      recordings: files.length,
      recordedSeconds,
      handler: {
        packetsSent: viaHandler.packetsSent,
        packetsReceived: handlerStats.rtp.packetsReceived,
        pipeline: handlerStats.pipeline,
        processed: processed.length,
      },
      health: describeHealth({ status: 'ok', reasons: [], workerRestarts: 0, lastRestartAt: null, quarantined: [] }),
    }),
  );
} finally {
  await rm(recordings, { recursive: true, force: true });
}
