/**
 * Stages that change how samples are laid out or encoded, not what they sound
 * like: `downmix` (to mono), `upmix` (to stereo) and `format` (f32 ↔ s16).
 *
 * `downmix` and `upmix` change the array length, so they return a new array:
 * the output goes downstream and possibly to sinks of this batch, so it can't
 * be a buffer the stage reuses, and a view into the input would make the
 * worker's postMessage clone the whole input buffer with every frame.
 */
import { Type } from '@sinclair/typebox';
import type { AudioFormat, SampleFormat } from '../media/frames.js';
import { quantizeSample } from '../media/pcm16.js';
import { chunkWith, silenceStaysSilence } from './chunk.js';
import { createStageOf, defineStageType, derivedFormat } from './stage-type.js';
import type { ChunkStage, PcmChunk, StageSpec } from './types.js';

export const DownmixStageSchema = Type.Object(
  { type: Type.Literal('downmix', { description: 'Stereo to mono: the mean of left and right. Mono input passes through unchanged.' }) },
  { additionalProperties: false, description: 'Mix down to mono.' },
);

export const UpmixStageSchema = Type.Object(
  { type: Type.Literal('upmix', { description: 'Mono to stereo: the same samples on left and right. Stereo input passes through unchanged.' }) },
  { additionalProperties: false, description: 'Duplicate mono into stereo.' },
);

export const FormatStageSchema = Type.Object(
  {
    type: Type.Literal('format', { description: 'Choose the sample encoding the branch delivers.' }),
    sampleFormat: Type.Union([Type.Literal('f32'), Type.Literal('s16')], {
      description:
        '"s16": quantize to 16-bit (stages after this see the quantized floats) and deliver Int16Array frames; "f32": deliver Float32Array frames.',
    }),
  },
  { additionalProperties: false, description: 'Convert between 32-bit float and 16-bit integer samples.' },
);

/** Options of the `downmix` stage: none. */
export interface DownmixOptions extends StageSpec {
  type: 'downmix';
}

/** Options of the `upmix` stage: none. */
export interface UpmixOptions extends StageSpec {
  type: 'upmix';
}

/** Options of the `format` stage. */
export interface FormatOptions extends StageSpec {
  type: 'format';
  /**
   * Encoding the branch delivers. Required. 's16': samples are quantized to
   * the 16-bit grid (round(x·32768), clipped to −32768..32767, ÷32768) and the
   * branch's frames arrive as Int16Array; stages after this one still see
   * floats, already quantized. 'f32': frames arrive as Float32Array; the
   * samples are not touched (an earlier quantization stays).
   */
  sampleFormat: SampleFormat;
}

const identity = (chunk: PcmChunk): PcmChunk => chunk;

/**
 * Mono from stereo: the mean of L and R (−6 dB per channel, so two equal
 * full-scale channels stay at full scale and never clip). Mono input passes
 * through unchanged, so one pipeline works whether the stream was decoded to
 * one channel or two. More than two channels are averaged the same way.
 */
export const downmixStage = defineStageType({
  schema: DownmixStageSchema,
  outputFormat: (_options, input) => derivedFormat(input, { channels: 1 }),
  build(_options, input, output): ChunkStage {
    const channels = input.channels;
    if (channels === 1) return { output, process: identity, close() {} };
    const scale = 1 / channels;
    return {
      output,
      process(chunk: PcmChunk): PcmChunk {
        const data = chunk.data;
        const frames = Math.floor(data.length / channels);
        const mono = new Float32Array(frames);
        if (channels === 2) {
          for (let i = 0, j = 0; i < frames; i++, j += 2) mono[i] = (data[j] + data[j + 1]) * 0.5;
        } else {
          for (let i = 0, j = 0; i < frames; i++) {
            let sum = 0;
            for (let c = 0; c < channels; c++) sum += data[j++];
            mono[i] = sum * scale;
          }
        }
        return chunkWith(chunk, mono);
      },
      close() {},
    };
  },
});

export function createDownmixStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(downmixStage, spec, input) as ChunkStage;
}

/**
 * Stereo from mono: each sample duplicated into L and R. Input that already
 * has two (or more) channels passes through unchanged.
 */
export const upmixStage = defineStageType({
  schema: UpmixStageSchema,
  outputFormat: (_options, input) => derivedFormat(input, input.channels === 1 ? { channels: 2 } : {}),
  build(_options, input, output): ChunkStage {
    if (input.channels !== 1) return { output, process: identity, close() {} };
    return {
      output,
      process(chunk: PcmChunk): PcmChunk {
        const data = chunk.data;
        const stereo = new Float32Array(data.length * 2);
        for (let i = 0, j = 0; i < data.length; i++, j += 2) stereo[j] = stereo[j + 1] = data[i];
        return chunkWith(chunk, stereo);
      },
      close() {},
    };
  },
});

export function createUpmixStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(upmixStage, spec, input) as ChunkStage;
}

/** Quantizes one float to the s16 grid: the exact value the Int16 packing will hold, as a float. */
export function quantizeS16(x: number): number {
  return quantizeSample(x) / 32768;
}

export const formatStage = defineStageType({
  schema: FormatStageSchema,
  outputFormat: ({ sampleFormat }, input) => derivedFormat(input, { sampleFormat }),
  build({ sampleFormat }, _input, output): ChunkStage {
    if (sampleFormat === 'f32') return { output, process: identity, skipSilence: silenceStaysSilence, close() {} };
    return {
      output,
      process(chunk: PcmChunk): PcmChunk {
        // Quantized here rather than only at packing, so stages after `format`
        // (levels, a custom stage) see exactly the values the frames will carry.
        const data = chunk.data;
        for (let i = 0; i < data.length; i++) data[i] = quantizeSample(data[i]) / 32768;
        return chunk;
      },
      // 0 is on the 16-bit grid.
      skipSilence: silenceStaysSilence,
      close() {},
    };
  },
});

export function createFormatStage(spec: StageSpec, input: AudioFormat): ChunkStage {
  return createStageOf(formatStage, spec, input) as ChunkStage;
}
