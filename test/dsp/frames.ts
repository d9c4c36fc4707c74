/**
 * Helpers for DSP tests that read AudioFrame data: a frame's data is a
 * Float32Array or (on an s16 branch) an Int16Array, and most analysis helpers
 * take floats.
 */
import type { PcmChunk, Stage, StageOutput } from '../../src/dsp/types.js';
import type { AudioFrame } from '../../src/media/frames.js';
import { concat } from '../helpers/audio.js';

/** The float samples of an f32 frame; throws for an s16 frame, so a test can't measure the wrong thing silently. */
export function floatData(frame: AudioFrame): Float32Array {
  if (!(frame.data instanceof Float32Array)) throw new TypeError(`expected an f32 frame, got ${frame.sampleFormat}`);
  return frame.data;
}

/** The samples of consecutive f32 frames joined. */
export function joinFrames(frames: readonly AudioFrame[]): Float32Array {
  return concat(frames.map(floatData));
}

/** A stage's result as a list of chunks (empty while it buffers). */
export function chunksOf(result: StageOutput): readonly PcmChunk[] {
  if (result === null) return [];
  return Array.isArray(result) ? result : [result as PcmChunk];
}

/**
 * Feeds interleaved `input` (of `channels` channels) to `stage` in chunks of
 * `chunkFrames` sample frames (copies, since stages work in place) and
 * returns everything it emitted, joined, plus the chunks themselves.
 */
export function runStage(stage: Stage, input: Float32Array, channels = 1, chunkFrames = 960): { out: Float32Array; chunks: PcmChunk[] } {
  const step = chunkFrames * channels;
  const chunks: PcmChunk[] = [];
  for (let i = 0; i < input.length; i += step) chunks.push(...chunksOf(stage.process({ data: input.slice(i, i + step) })));
  return { out: concat(chunks.map((c) => c.data)), chunks };
}

/** A sine of `seconds` at `frequency` Hz and peak `amplitude`, sampled at `sampleRate`. */
export function sine(frequency: number, sampleRate: number, seconds: number, amplitude = 0.5): Float32Array {
  return Float32Array.from({ length: Math.round(sampleRate * seconds) }, (_, i) => amplitude * Math.sin((2 * Math.PI * frequency * i) / sampleRate));
}
