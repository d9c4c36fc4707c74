/**
 * For tests that drive a `PeerPipeline` directly against a real worker pool:
 * one pool (one thread, no spare worker), a temporary
 * recordings directory, and a fixture's first frames as Opus. `usePipelineRig`
 * registers the setup and teardown hooks where it is called (a file or a
 * `describe`); the rig's fields are set once its `beforeAll` has run.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { EncodedFrame } from '../../src/media/frames.js';
import { PeerPipeline } from '../../src/pipeline/peer-pipeline.js';
import type { Pipeline } from '../../src/pipeline/pipeline.js';
import { WorkerPool } from '../../src/pool/worker-pool.js';
import { ProcessorRegistry } from '../../src/sinks/processors.js';
import type { RecordingInfo } from '../../src/sinks/recorder.js';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';
import { encodeOpusFrames } from './audio.js';
import { readFixture } from './fixtures.js';

export interface PipelineRig {
  pool: WorkerPool;
  /** The recordings of pipeline `name` go to `<dir>/<name>`. */
  dir: string;
  /** The fixture's first frames, 20 ms of Opus each. */
  frames: EncodedFrame[];
  /**
   * A PeerPipeline named `name` (room `r`, session `session0`). Pipeline
   * errors and sink failures go to `problems` if given; otherwise `feed`
   * asserts there were none.
   */
  open(name: string, pipeline: Pipeline, options?: { processors?: ProcessorRegistry; problems?: string[] }): Promise<PeerPipeline>;
  /** Pushes every frame, `gapMs` apart (default 1: faster than real time, the pool batches them), running `at(i)` before frame i; then closes the pipeline. */
  feed(p: PeerPipeline, options?: { at?(i: number): void; gapMs?: number }): Promise<RecordingInfo[]>;
  /** The one WAV pipeline `name` recorded. */
  recording(name: string): Promise<Buffer>;
}

export function usePipelineRig(options: { fixture: string; frames: number }): PipelineRig {
  const own = new Map<PeerPipeline, string[]>();
  const rig: PipelineRig = {
    pool: undefined as unknown as WorkerPool,
    dir: '',
    frames: [],
    async open(name, pipeline, { processors = new ProcessorRegistry(), problems } = {}) {
      const store = new RecordingsStore(join(rig.dir, name));
      await store.init();
      const seen = problems ?? [];
      const p = new PeerPipeline({
        pool: rig.pool,
        store,
        pipeline,
        room: 'r',
        peer: name,
        session: 'session0',
        processors,
        onProcessorEvent: () => {},
        onPipelineError: (m) => seen.push(m),
        onSinkError: (sink, e) => seen.push(`${sink}: ${e.message}`),
        onProcessorStageError: (processor, branch, stage, e) => seen.push(`processor stage ${processor} (${branch}/${stage}): ${e.message}`),
      });
      if (!problems) own.set(p, seen);
      return p;
    },
    async feed(p, { at, gapMs = 1 } = {}) {
      for (let i = 0; i < rig.frames.length; i++) {
        at?.(i);
        p.push({ ...rig.frames[i], arrival: performance.now() });
        await new Promise((r) => setTimeout(r, gapMs));
      }
      const infos = await p.close();
      const problems = own.get(p);
      if (problems) expect(problems).toEqual([]);
      return infos;
    },
    async recording(name) {
      const files = (await readdir(join(rig.dir, name))).filter((f) => f.endsWith('.wav'));
      expect(files).toHaveLength(1);
      return readFile(join(rig.dir, name, files[0]));
    },
  };
  beforeAll(async () => {
    rig.pool = new WorkerPool({ threads: 1, spareWorker: false });
    await rig.pool.start();
    rig.dir = await mkdtemp(join(tmpdir(), 'earshot-pipeline-rig-'));
    rig.frames = encodeOpusFrames((await readFixture(options.fixture)).channels[0].subarray(0, 960 * options.frames)).map((f) => ({ ...f, samples: 960 }));
  });
  afterAll(async () => {
    await rig.pool?.close();
    if (rig.dir) await rm(rig.dir, { recursive: true, force: true });
  });
  return rig;
}
