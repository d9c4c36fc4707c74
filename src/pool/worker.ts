/**
 * Pool worker entry. Loads every WASM module once, then hosts many streams'
 * state (Opus decoder, RNNoise, resampler) inside those modules. The handler is
 * synchronous so that two batches never interleave: frames of one stream are
 * processed in order (DESIGN.md invariant 1).
 */
import { threadId } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { loadDspModules, StreamProcessor } from '../dsp/stream-processor.js';
import type { BatchItemResult, BatchResult, BatchTask } from './protocol.js';

await loadDspModules();
warmUp();

/**
 * Runs every built-in stage once on silence so that JIT compilation and
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

export default function processBatch(task: BatchTask): BatchResult {
  const started = performance.now();
  const items: BatchItemResult[] = [];
  for (const item of task.items) {
    let stream = streams.get(item.streamId);
    try {
      if (item.setup) {
        stream?.close();
        stream = new StreamProcessor(item.setup);
        streams.set(item.streamId, stream);
      }
      if (!stream) {
        // Nothing to process and the state is already gone: the close is done.
        if (item.close && item.frames.length === 0) items.push({ streamId: item.streamId, outputs: [] });
        else items.push({ streamId: item.streamId, outputs: [], missing: true });
        continue;
      }
      const outputs = stream.process(item.frames);
      items.push({ streamId: item.streamId, outputs, counters: { ...stream.counters } });
    } catch (e) {
      // One stream's failure must not take the batch (or the worker) down.
      stream?.close();
      streams.delete(item.streamId);
      items.push({ streamId: item.streamId, outputs: [], error: e instanceof Error ? e.message : String(e) });
      continue;
    }
    if (item.close) {
      stream.close();
      streams.delete(item.streamId);
    }
  }
  return { threadId, items, busyMs: performance.now() - started };
}
