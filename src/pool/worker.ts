/**
 * Pool worker entry. Loads every WASM module once, then hosts many streams'
 * state (Opus decoder, RNNoise, resampler, filters, custom stages). Tasks come
 * from Piscina (the first of a slot, which opens the slot's lane) and then
 * through the lane (task-lane.ts); the main thread sends a slot one task at a
 * time whichever way, and the handler only awaits when it must import a stage
 * module before the batch, so batches never interleave and a stream's frames
 * are processed in order (a stream's state lives in one worker and is used in order).
 *
 * While it runs, the worker records in the task's shared marker which item
 * (stream) and which custom stage it is in, and when it last made progress:
 * the pool's watchdog reads it to replace a worker stuck in a stage, and to
 * blame a worker's death on the stream that was running (see protocol.ts).
 */
import { threadId, type MessagePort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { registerStageFactory } from '../dsp/registry.js';
import { loadDspModules, StageFailure, StreamProcessor, type PcmInput } from '../dsp/stream-processor.js';
import type { PcmChunk, Stage, StageFactory, StageSpec } from '../dsp/types.js';
import { branchFormatOf, type AudioFrame, type BranchFormat, type EncodedFrame } from '../media/frames.js';
import { BranchOpusEncoder, type EncodedRun } from '../dsp/opus-encode.js';
import { declaredFactory, loadStageModule } from './stage-module.js';
import { currentThreadTid } from './thread-cpu.js';
import { checkMarker, MARKER_IDLE, MARKER_LENGTH, MarkerField, markerClock, stageCode } from './protocol.js';
import type { BatchResult, BatchTask, ModuleLoadResult, StreamSetup } from './protocol.js';
import { ItemFlag, ItemStatus, unpackInput, type UnpackedInput } from './batch-codec.js';
import { packOutput, type OutputItem } from './batch-output.js';
import { SpareOutputs } from './spare-outputs.js';
import type { LaneReply } from './task-lane.js';

await loadDspModules();
warmUp();

/**
 * Runs the built-in stages once on silence so that JIT compilation and
 * first-use allocations happen now, not in the first real stream's frames
 * (that first stream otherwise saw ~60 ms extra latency).
 */
function warmUp(): void {
  const probe = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }] }, { stages: [] }] });
  const silence = new Uint8Array([0xf8, 0xff, 0xfe]); // a valid 20 ms CELT silence frame
  for (let i = 0; i < 50; i++) probe.process([{ position: i * 960, payload: i % 10 === 9 ? null : silence, samples: 960, arrival: 0 }]);
  probe.close();
}

/** This thread's Linux id, told to the watchdog through the marker (see thread-cpu.ts). */
const tid = currentThreadTid();

/** Streams by the pool's numeric key. */
const streams = new Map<number, StreamProcessor>();
/** Opus encoders of the streams' branches that the main thread asked to encode (index = branch). */
const encoders = new Map<number, Array<BranchOpusEncoder | undefined>>();
const modules = new Map<string, ModuleLoadResult>();
/** The slot's shared marker once a task brought it; a private stand-in before (nobody watches warm-up). */
let marker: Int32Array = new Int32Array(MARKER_LENGTH);
/**
 * Position code of each stage spec of the setup being built. A custom stage's
 * factory receives its spec object itself, so it can learn where in the setup
 * it sits and name itself in the marker.
 */
const building = new Map<StageSpec, number>();

/**
 * A result whose packed output is transferred to the main thread, not cloned
 * (Piscina's "movable" protocol: the value, and what to transfer with it).
 */
type Movable = { [transferableSymbol]: ArrayBuffer[]; [valueSymbol]: BatchResult };

/**
 * Piscina's entry: a slot's first task (the warm-up, or the first after its
 * worker was replaced), which opens the slot's lane; every later task of the
 * slot, batches and control tasks alike, arrives through the lane.
 */
export default function handleTask(task: BatchTask): BatchResult | Movable | Promise<BatchResult | Movable> {
  if (task.lane) openLane(task.lane);
  const result = serve(task);
  return result instanceof Promise ? result.then(movable) : movable(result);
}

function movable(result: BatchResult): BatchResult | Movable {
  return result.output ? (move({ [transferableSymbol]: [result.output], [valueSymbol]: result } as unknown as ArrayBuffer) as unknown as Movable) : result;
}

/** Runs a task of either channel: imports the stage modules it needs first, if any. */
function serve(task: BatchTask, early?: (partial: BatchResult) => void): BatchResult | Promise<BatchResult> {
  const missing = task.modules?.filter((url) => !modules.has(url)) ?? [];
  if (missing.length === 0) return runTask(task, [], early);
  return importModules(missing).then((loaded) => runTask(task, loaded, early));
}

/** The slot's lane (task-lane.ts), once the main thread opened one: batches arrive here, one at a time. */
let lane: MessagePort | undefined;

function openLane(port: MessagePort): void {
  lane?.close();
  lane = port;
  const reply = (result: BatchResult) => port.postMessage(result, result.output ? [result.output] : undefined);
  const fail = (e: unknown) => port.postMessage({ failed: e instanceof Error ? e.message : String(e) } satisfies LaneReply);
  port.on('message', (task: BatchTask) => {
    try {
      const result = serve(task, reply);
      if (result instanceof Promise) result.then(reply, fail);
      else reply(result);
    } catch (e) {
      fail(e);
    }
  });
}

/** The module each custom stage type of this worker came from. */
const stageOwners = new Map<string, string>();

/**
 * Imports stage modules and registers their stages; a failing module is
 * reported, never thrown. A module with a stage type another module already
 * provides registers none of its stages (the main thread refuses it too: the
 * workers must keep the first module's stage, as replacement workers do).
 */
async function importModules(urls: string[]): Promise<ModuleLoadResult[]> {
  const results: ModuleLoadResult[] = [];
  for (const url of urls) {
    let result: ModuleLoadResult;
    try {
      const definitions = await loadStageModule(url);
      const taken = definitions.find((d) => stageOwners.has(d.type) && stageOwners.get(d.type) !== url);
      if (taken) throw new Error(`stage type "${taken.type}" is already provided by ${stageOwners.get(taken.type)}`);
      for (const d of definitions) {
        registerStageFactory(d.type, watched(declaredFactory(d)));
        stageOwners.set(d.type, url);
      }
      result = { url, types: definitions.map((d) => d.type) };
    } catch (e) {
      result = { url, types: [], error: e instanceof Error ? e.message : String(e) };
    }
    modules.set(url, result);
    results.push(result);
  }
  return results;
}

/**
 * Runs one task. `early`, given for tasks that came on a lane, posts a
 * partial result while the batch goes on (see `BatchTask.earlyOutputMs`).
 */
function runTask(task: BatchTask, loaded: ModuleLoadResult[], early?: (partial: BatchResult) => void): BatchResult {
  const started = performance.now();
  if (task.marker) marker = task.marker;
  Atomics.store(marker, MarkerField.TID, tid);
  Atomics.store(marker, MarkerField.MARK, markerClock());
  Atomics.store(marker, MarkerField.ITEM, MARKER_IDLE);
  Atomics.store(marker, MarkerField.STAGE, 0);
  // Last: once the watchdog sees this task's seq, the fields above are this task's.
  Atomics.store(marker, MarkerField.SEQ, task.seq ?? 0);
  const result: BatchResult = { threadId, busyMs: 0 };
  if (task.input) {
    const items = unpackInput(task.input);
    const outputs: ItemOutcome[] = [];
    // Items [first, outputs.length) are finished and not yet posted.
    let first = 0;
    let since = started;
    if (task.spares) spareOutputs.keep(task.spares);
    if (task.pcm) unaliasPcm(task.pcm);
    const every = early ? task.earlyOutputMs : undefined;
    for (let i = 0; i < items.length; i++) {
      outputs.push(processItem(items[i], i, task));
      if (every === undefined || i === items.length - 1) continue;
      const now = performance.now();
      if (now - since < every) continue;
      // Long batch: hand back what is done so far (the main thread delivers it while the rest runs).
      // Between items while packing: a death now is not the finished (delivered) item's fault.
      Atomics.store(marker, MarkerField.ITEM, MARKER_IDLE);
      const part: BatchResult = { threadId, busyMs: 0, partial: true, first };
      packResults(part, outputs, first);
      early!(part);
      first = outputs.length;
      since = now;
    }
    if (first > 0) result.first = first;
    packResults(result, outputs, first);
  }
  // Probes (tasks without items) report every module they asked for, loaded now or before.
  if (!task.input && task.modules) result.loaded = task.modules.map((url) => modules.get(url)!);
  else if (loaded.length > 0) result.loaded = loaded;
  if (task.checks) result.checks = task.checks.map(checkSetup);
  Atomics.store(marker, MarkerField.ITEM, MARKER_IDLE);
  result.busyMs = performance.now() - started;
  return result;
}

/** Output buffers the main thread gave back, for the next packs. */
const spareOutputs = new SpareOutputs();

/** Packs `outputs[first..]` into `result` (errors and formats by batch item index). */
function packResults(result: BatchResult, outputs: readonly ItemOutcome[], first: number): void {
  for (let i = first; i < outputs.length; i++) {
    const { error, formats, processed } = outputs[i];
    if (error !== undefined) (result.errors ??= {})[i] = error;
    if (processed) (result.processed ??= {})[i] = processed;
    if (formats !== undefined) (result.formats ??= {})[i] = formats;
  }
  result.output = packOutput(first === 0 ? outputs : outputs.slice(first), spareOutputs.take);
}

/** Records that the worker starts on `item` (an index, or `checkMarker(i)`): progress, and whom to blame if it stops here. */
function enterItem(item: number): void {
  Atomics.store(marker, MarkerField.MARK, markerClock());
  Atomics.store(marker, MarkerField.STAGE, 0);
  Atomics.store(marker, MarkerField.ITEM, item);
}

/** Builds a setup's stages, letting custom stages learn their position (see `building`). */
function buildProcessor(setup: StreamSetup): StreamProcessor {
  const branches = Array.isArray(setup?.branches) ? setup.branches : [];
  branches.forEach((b, bi) => {
    if (Array.isArray(b?.stages)) b.stages.forEach((spec, si) => building.set(spec, stageCode(bi, si)));
  });
  try {
    return new StreamProcessor(setup);
  } finally {
    building.clear();
  }
}

/**
 * Wraps a custom stage factory so that creating the stage and each of its
 * calls are marked: the watchdog then names the stage that hung or crashed the
 * worker, not only the stream. No allocation per call: three Atomics stores
 * and a clock read.
 */
function watched(create: StageFactory): StageFactory {
  return (spec: StageSpec, input) => {
    const code = building.get(spec) ?? 0;
    enterStage(code);
    const stage = create(spec, input);
    leaveStage();
    const wrapped: Stage = {
      get output() {
        return stage.output;
      },
      process(chunk) {
        enterStage(code);
        const out = stage.process(chunk);
        leaveStage();
        return out;
      },
      close() {
        enterStage(code);
        stage.close();
        leaveStage();
      },
    };
    // The optional parts of the contract are passed on only if the stage has them (StreamProcessor looks for them).
    if (typeof stage.skipSilence === 'function') {
      const skip = stage.skipSilence;
      wrapped.skipSilence = (chunk) => {
        // A silent chunk's data is zeros every stream of this worker shares (media-timeline.ts): a
        // custom stage that broke the contract and wrote to it would put noise into all of them, so
        // it gets zeros of its own; what it may set (vad, speech) is passed back.
        const own: PcmChunk = { ...chunk, data: new Float32Array(chunk.data.length) };
        enterStage(code);
        const skipped = skip.call(stage, own);
        leaveStage();
        if (own.vad !== undefined) chunk.vad = own.vad;
        if (own.speech !== undefined) chunk.speech = own.speech;
        return skipped;
      };
    }
    if (typeof stage.framesSkippedSilent === 'number') Object.defineProperty(wrapped, 'framesSkippedSilent', { get: () => stage.framesSkippedSilent });
    if (typeof stage.flush === 'function') {
      const flush = stage.flush;
      wrapped.flush = () => {
        enterStage(code);
        const out = flush.call(stage);
        leaveStage();
        return out;
      };
    }
    return wrapped;
  };
}

/** Marks progress and that custom stage `code` runs from now (whom the watchdog blames if it stops here). */
function enterStage(code: number): void {
  Atomics.store(marker, MarkerField.MARK, markerClock());
  Atomics.store(marker, MarkerField.STAGE, code);
}

/** The custom stage returned: no stage to blame. */
function leaveStage(): void {
  Atomics.store(marker, MarkerField.STAGE, 0);
}

/**
 * Gives every PCM frame of a task samples of its own. Structured cloning
 * keeps identity: operator streams fed the same frame objects (two
 * subscriptions to one source, or two chains on one shared stream) arrive
 * here sharing one array, and stages work in place, so the second stream
 * processed what the first had made of it (a gain of -6 dB came out at -12).
 */
function unaliasPcm(pcm: Record<number, PcmInput[]>): void {
  const seen = new Set<PcmInput['data']>();
  for (const frames of Object.values(pcm)) {
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      if (!seen.has(f.data)) seen.add(f.data);
      else frames[i] = { ...f, data: f.data.slice() };
    }
  }
}

/** An item's outcome: what is packed, plus what travels beside the buffer (an error, the formats of a stream just built). */
type ItemOutcome = OutputItem & { error?: string; formats?: BranchFormat[]; processed?: number };

function processItem(item: UnpackedInput, index: number, task: BatchTask): ItemOutcome {
  enterItem(index);
  const out: ItemOutcome = { key: item.key, status: ItemStatus.OK, outputs: [], f32Mask: item.f32Mask, pcm16Mask: item.pcm16Mask };
  const close = (item.flags & ItemFlag.CLOSE) !== 0;
  const setup = task.setups?.[index];
  const frames = item.flags & ItemFlag.PCM ? (task.pcm?.[index] ?? []) : item.frames;
  let stream = streams.get(item.key);
  // Frames every branch finished: set once the item's frames went through (a drain may still fail).
  let processed = 0;
  try {
    if (setup) {
      stream?.close();
      stream = undefined;
      streams.delete(item.key);
      closeEncoders(item.key);
      stream = buildProcessor(setup);
      streams.set(item.key, stream);
      out.formats = stream.outputs.map(branchFormatOf);
    }
    if (!stream) {
      // Nothing to process and the state is already gone: the close is done.
      if (!(close && frames.length === 0)) out.status = ItemStatus.MISSING;
      return out;
    }
    out.outputs = stream.pcmInput ? stream.processPcm(frames as PcmInput[]) : stream.process(frames as EncodedFrame[]);
    processed = frames.length;
    // The stream ends: what stages still hold (a reframe's partial frame) follows its last frames.
    if (close) stream.drain().forEach((tail, b) => out.outputs[b]?.push(...tail));
    out.counters = stream.counters;
    if (item.opusMask !== 0 || encoders.has(item.key)) out.encoded = encode(item.key, stream, out.outputs, item.opusMask);
    if (close) finishEncoders(item.key, stream, out);
    if (close) {
      stream.close();
      streams.delete(item.key);
      closeEncoders(item.key);
    }
    return out;
  } catch (e) {
    // One stream's failure must not take the batch (or the worker) down.
    try {
      stream?.close();
    } catch {
      // already failing; the first error is the one reported
    }
    streams.delete(item.key);
    closeEncoders(item.key);
    out.status = ItemStatus.ERROR;
    // What the stages finished before one threw goes out ahead of the error (in order); the
    // rest of the item is lost. Anything else (a setup that failed to build, a drain) delivers nothing.
    if (e instanceof StageFailure) {
      out.outputs = e.outputs;
      processed = Math.min(e.processed, frames.length);
    } else if (processed === 0) {
      out.outputs = [];
      delete out.formats;
    }
    out.processed = processed;
    delete out.encoded;
    out.error = e instanceof Error ? e.message : String(e);
    return out;
  }
}

/**
 * Opus-encodes the branches in `mask` (bit = branch): an encoder starts with
 * the first batch that asks for its branch, at that batch's first frame, and
 * is freed with the first batch that no longer asks.
 */
function encode(key: number, stream: StreamProcessor, outputs: AudioFrame[][], mask: number): Array<Array<EncodedRun | undefined> | undefined> {
  let list = encoders.get(key);
  const runs: Array<Array<EncodedRun | undefined> | undefined> = [];
  for (let b = 0; b < stream.outputs.length; b++) {
    const wanted = b < 30 && ((mask >>> b) & 1) === 1;
    let encoder = list?.[b];
    if (!wanted) {
      if (encoder) {
        encoder.close();
        list![b] = undefined;
      }
      continue;
    }
    if (!encoder) {
      // The main thread asks only for branches Opus can code (rates it takes); a stray bit codes nothing.
      try {
        encoder = new BranchOpusEncoder(branchFormatOf(stream.outputs[b]));
      } catch {
        continue;
      }
      list ??= [];
      encoders.set(key, list);
      list[b] = encoder;
    }
    const frames = outputs[b] ?? [];
    const branchRuns: Array<EncodedRun | undefined> = new Array(frames.length);
    for (let k = 0; k < frames.length; k++) branchRuns[k] = encoder.push(frames[k]);
    runs[b] = branchRuns;
  }
  if (list && list.every((e) => e === undefined)) encoders.delete(key);
  return runs;
}

/**
 * The stream ends: each encoder codes what it still holds and its lookahead
 * (`BranchOpusEncoder.flush`), and those packets ride with the branch's last
 * frame of this batch, or, when the batch has none, with a frame of no
 * samples that only carries them (the main thread hands its packets on and
 * the frame to no one).
 */
function finishEncoders(key: number, stream: StreamProcessor, out: ItemOutcome): void {
  const list = encoders.get(key);
  if (!list) return;
  list.forEach((encoder, b) => {
    const run = encoder?.flush();
    if (!run) return;
    const frames = (out.outputs[b] ??= []);
    const runs = ((out.encoded ??= [])[b] ??= new Array<EncodedRun | undefined>(frames.length));
    const last = frames.length - 1;
    const before = last >= 0 ? runs[last] : undefined;
    if (before) {
      // The flush's packets (coded, none a repeat) follow the last frame's: one run.
      before.repeat?.push(...new Array<boolean>(run.packets.length).fill(false));
      before.packets.push(...run.packets);
      before.end = run.end;
      return;
    }
    if (last >= 0) {
      runs[last] = run;
      return;
    }
    const format = stream.outputs[b];
    frames.push({ position: Math.round((run.end! * format.sampleRate) / 48000), sampleRate: format.sampleRate, channels: format.channels, sampleFormat: 'f32', data: new Float32Array(0), rms: 0, peak: 0, arrival: performance.now() });
    runs[0] = run;
  });
}

function closeEncoders(key: number): void {
  for (const e of encoders.get(key) ?? []) e?.close();
  encoders.delete(key);
}

function checkSetup(setup: StreamSetup, index: number): string | null {
  enterItem(checkMarker(index));
  try {
    buildProcessor(setup).close();
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
