/** Small helpers for stages: replacing a chunk's data, skipping silence. */
import type { PcmChunk } from './types.js';

/**
 * A new chunk holding `data` with the voice-activity fields of `from`. Fields
 * `from` lacks stay absent (not `undefined`), so frames compare and serialize
 * the same whichever stages made them.
 */
export function chunkWith(from: PcmChunk, data: Float32Array): PcmChunk {
  const out: PcmChunk = { data };
  if (from.vad !== undefined) out.vad = from.vad;
  if (from.speech !== undefined) out.speech = from.speech;
  return out;
}

/**
 * `Stage.skipSilence` of a stage with no state whose output for zeros is the
 * same zeros (passthrough, gain, format): always skip.
 */
export function silenceStaysSilence(): boolean {
  return true;
}
