/**
 * One stream's processing inside a worker: decode once, then run each branch's
 * stage chain in the same hop, and measure the output levels. Positions of the
 * output are counted in output samples from the stream's first position, so a
 * stream rebuilt on another worker continues at the right media time.
 */
import { loadOpus } from '../../wasm/opus.js';
import { loadRnnoise } from '../../wasm/rnnoise.js';
import { loadSpeex } from '../../wasm/speex.js';
import { measureLevels } from './levels.js';
import { OpusStreamDecoder, type DecodedChunk } from './opus-decode.js';
import { createStage } from './registry.js';
import type { AudioFormat, DecodeCounters, EncodedInput, ProcessedFrame, Stage, StageSpec } from './types.js';

export interface StreamSpec {
  /** Channels to decode to. */
  channels: 1 | 2;
  branches: Array<{ stages: StageSpec[] }>;
}

/** Loads the WASM modules once per thread; call before creating processors. */
export async function loadDspModules(): Promise<void> {
  loadOpus();
  await Promise.all([loadRnnoise(), loadSpeex()]);
}

interface BranchChain {
  stages: Stage[];
  output: AudioFormat;
  /** Output position of the next sample, at the branch's output rate. */
  next: number | undefined;
}

export class StreamProcessor {
  readonly #decoder: OpusStreamDecoder;
  readonly #branches: BranchChain[] = [];
  #closed = false;

  constructor(spec: StreamSpec) {
    this.#decoder = new OpusStreamDecoder(spec.channels);
    try {
      spec.branches.forEach((b, bi) => {
        let format: AudioFormat = { sampleRate: 48000, channels: spec.channels };
        const stages: Stage[] = [];
        this.#branches.push({ stages, output: format, next: undefined });
        b.stages.forEach((s, si) => {
          try {
            const stage = createStage(s, format);
            stages.push(stage);
            format = stage.output;
          } catch (e) {
            throw new (e instanceof RangeError ? RangeError : TypeError)(`branch ${bi}, stage ${si} (${s.type}): ${(e as Error).message}`);
          }
        });
        this.#branches[bi].output = format;
      });
    } catch (e) {
      this.close();
      throw e;
    }
  }

  get counters(): DecodeCounters {
    return this.#decoder.counters;
  }

  process(frames: EncodedInput[]): ProcessedFrame[][] {
    const chunks = this.#decoder.decode(frames);
    const shared = this.#branches.length === 1;
    return this.#branches.map((branch) => {
      const out: ProcessedFrame[] = [];
      for (const chunk of chunks) {
        const produced = runChain(branch.stages, shared ? chunk.data : chunk.data.slice());
        if (!produced) continue;
        branch.next ??= Math.round((chunk.position * branch.output.sampleRate) / 48000);
        out.push(frameOf(branch, produced.data, produced.vad, chunk));
      }
      return out;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of this.#branches) for (const s of b.stages) s.close();
    this.#decoder.close();
  }
}

function runChain(stages: Stage[], data: Float32Array): { data: Float32Array; vad?: number } | null {
  let chunk: { data: Float32Array; vad?: number } | null = { data };
  for (const stage of stages) {
    chunk = stage.process(chunk);
    if (!chunk) return null;
  }
  return chunk;
}

function frameOf(branch: BranchChain, data: Float32Array, vad: number | undefined, source: DecodedChunk): ProcessedFrame {
  const { rms, peak } = measureLevels(data);
  const position = branch.next!;
  branch.next = position + data.length / branch.output.channels;
  return {
    position,
    sampleRate: branch.output.sampleRate,
    channels: branch.output.channels,
    data,
    ...(vad !== undefined ? { vad } : {}),
    rms,
    peak,
    arrival: source.arrival,
  };
}
