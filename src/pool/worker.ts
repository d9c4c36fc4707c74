/**
 * Pool worker entry. Loads every WASM module once, then hosts many streams'
 * state (Opus decoder, RNNoise, resampler, filters, custom stages). Piscina
 * gives each worker one task at a time (`concurrentTasksPerWorker: 1`) and the
 * handler only awaits when it must import a stage module before the batch, so
 * batches never interleave and a stream's frames are processed in order
 * (DESIGN.md invariant 1).
 */
import { threadId } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { registerStageFactory } from '../dsp/registry.js';
import { loadDspModules, StreamProcessor, type PcmInput } from '../dsp/stream-processor.js';
import type { EncodedInput } from '../dsp/types.js';
import { loadStageModule } from './stage-module.js';
import type { BatchItemResult, BatchResult, BatchTask, ModuleLoadResult, StreamSetup } from './protocol.js';

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

const streams = new Map<string, StreamProcessor>();
const modules = new Map<string, ModuleLoadResult>();

export default function handleTask(task: BatchTask): BatchResult | Promise<BatchResult> {
  const missing = task.modules?.filter((url) => !modules.has(url)) ?? [];
  if (missing.length === 0) return runTask(task, []);
  return importModules(missing).then((loaded) => runTask(task, loaded));
}

/** Imports stage modules and registers their stages; a failing module is reported, never thrown. */
async function importModules(urls: string[]): Promise<ModuleLoadResult[]> {
  const results: ModuleLoadResult[] = [];
  for (const url of urls) {
    let result: ModuleLoadResult;
    try {
      const definitions = await loadStageModule(url);
      for (const d of definitions) registerStageFactory(d.type, d.create);
      result = { url, types: definitions.map((d) => d.type) };
    } catch (e) {
      result = { url, types: [], error: e instanceof Error ? e.message : String(e) };
    }
    modules.set(url, result);
    results.push(result);
  }
  return results;
}

function runTask(task: BatchTask, loaded: ModuleLoadResult[]): BatchResult {
  const started = performance.now();
  const items = task.items.map(processItem);
  const result: BatchResult = { threadId, items, busyMs: performance.now() - started };
  // Probes (tasks without items) report every module they asked for, loaded now or before.
  if (task.items.length === 0 && task.modules) result.loaded = task.modules.map((url) => modules.get(url)!);
  else if (loaded.length > 0) result.loaded = loaded;
  if (task.checks) result.checks = task.checks.map(checkSetup);
  return result;
}

function processItem(item: BatchTask['items'][number]): BatchItemResult {
  let stream = streams.get(item.streamId);
  try {
    if (item.setup) {
      stream?.close();
      stream = undefined;
      streams.delete(item.streamId);
      stream = new StreamProcessor(item.setup);
      streams.set(item.streamId, stream);
    }
    if (!stream) {
      // Nothing to process and the state is already gone: the close is done.
      if (item.close && item.frames.length === 0) return { streamId: item.streamId, outputs: [] };
      return { streamId: item.streamId, outputs: [], missing: true };
    }
    const outputs = stream.pcmInput ? stream.processPcm(item.frames as PcmInput[]) : stream.process(item.frames as EncodedInput[]);
    const result: BatchItemResult = { streamId: item.streamId, outputs, counters: { ...stream.counters } };
    if (item.close) {
      stream.close();
      streams.delete(item.streamId);
    }
    return result;
  } catch (e) {
    // One stream's failure must not take the batch (or the worker) down.
    try {
      stream?.close();
    } catch {
      // already failing; the first error is the one reported
    }
    streams.delete(item.streamId);
    return { streamId: item.streamId, outputs: [], error: e instanceof Error ? e.message : String(e) };
  }
}

function checkSetup(setup: StreamSetup): string | null {
  try {
    new StreamProcessor(setup).close();
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
