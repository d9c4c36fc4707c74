/**
 * A batch's frames packed into one ArrayBuffer each way, transferred between
 * the main thread and a pool worker instead of cloned. A cloned batch costs
 * the main thread an object and a typed array (with its own backing store)
 * per frame, serialized on the way out and rebuilt on the way in; a packed one
 * is a few numbers per frame in a table, the bytes behind it, and one buffer
 * handed over. The main thread reads frames as views into the buffer.
 *
 * Input (main → worker): Opus frames of every item of the batch.
 *
 *     f64[0]                       item count
 *     f64 × IN_ITEM per item       stream key, frame count, flags, f32 mask, pcm16 mask, opus mask
 *     f64 × IN_FRAME per frame     position, samples, arrival, byte offset, byte length (−1: lost)
 *     bytes                        payloads
 *
 * Output (worker → main): every item's status and counters, then its frames.
 *
 *     f64[0]                       item count
 *     f64 × OUT_ITEM per item      stream key, status, frame count, counters (NaN: absent)
 *     f64 × OUT_FRAME per frame    see OutFrame
 *     bytes                        sample data, each block 4-byte aligned
 *
 * What a branch's frames carry is chosen per batch by the main thread (the
 * item's masks, bit = branch): float samples only for branches whose samples
 * someone on the main thread reads (subscribers, processors, an f32
 * recording), and a 16-bit copy quantized like recordings (media/pcm16.ts)
 * for branches with an s16 record sink, so the WAV writer only copies bytes.
 * A frame without float samples carries the 16-bit copy as its data (an
 * s16 frame). Branches from MASK_BITS on always get float samples.
 *
 * Branches in the item's opus mask are also Opus-encoded in the worker
 * (dsp/opus-encode.ts): a frame that completed 20 ms packets carries them in
 * a block (u16 count, u16 length per packet, then the packets' bytes) and
 * the first one's media position in 48 kHz samples; a stream's last packets,
 * coded past its end at its close (`BranchOpusEncoder.flush`), also carry
 * where the media ends. When the closing batch has no frame of the branch,
 * a frame of no samples carries them, and the main thread hands that frame
 * to no one. A packet that repeats a
 * settled pause's packet has the length's top bit (0x8000) set, and unless
 * it is the block's first, no bytes of its own (length 0: the packet before
 * it again), so a pause costs two bytes a packet, not the packet.
 *
 * A frame of zeros (peak 0) carries no sample bytes at all: its DATA and
 * PCM16 offsets are `ZEROS` where it would carry them, and the reader gives it
 * zeros of its length. A long gap is seconds of silence (an hour, with a long
 * media timeout); as bytes it would be a buffer of up to a gigabyte.
 *
 * This file holds the layout and the input side (`packInput` on the main
 * thread, `unpackInput` in the worker); the output side (`packOutput` in the
 * worker, `OutputReader` on the main thread) is batch-output.ts.
 */
import type { DecodeCounters, EncodedFrame } from '../media/frames.js';

/** Branches a mask can address; higher branches always carry float samples, never a 16-bit copy. */
export const MASK_BITS = 30;
/** A mask selecting every branch. */
export const ALL_BRANCHES = 2 ** MASK_BITS - 1;

export const IN_ITEM = 6;
export const IN_FRAME = 5;
/** Item flags. */
export const ItemFlag = { CLOSE: 1, PCM: 2 } as const;

/**
 * DecodeCounters fields, in the order they travel. A counter the worker
 * keeps that is not listed here does not reach the main thread (a test checks
 * the list against a stream's counters).
 */
export const COUNTER_KEYS = ['decoded', 'concealed', 'corrupt', 'silenceSamples', 'late', 'framesSkippedSilent'] as const satisfies ReadonlyArray<keyof DecodeCounters>;

/** Where each counter travels among an item's counters (from COUNTER_KEYS, so the two cannot disagree). */
export const Counter = {
  DECODED: COUNTER_KEYS.indexOf('decoded'),
  CONCEALED: COUNTER_KEYS.indexOf('concealed'),
  CORRUPT: COUNTER_KEYS.indexOf('corrupt'),
  SILENCE_SAMPLES: COUNTER_KEYS.indexOf('silenceSamples'),
  LATE: COUNTER_KEYS.indexOf('late'),
  SKIPPED_SILENT: COUNTER_KEYS.indexOf('framesSkippedSilent'),
} as const;

export const OUT_ITEM = 3 + COUNTER_KEYS.length;
/** Fields of an output frame. */
export const OutFrame = {
  BRANCH: 0,
  POSITION: 1,
  SAMPLE_RATE: 2,
  CHANNELS: 3,
  /** Samples in the frame (all channels). */
  LENGTH: 4,
  /** Byte offset of float (or, for an s16 branch, 16-bit) data; −1: none; `ZEROS`: all zeros, not sent. */
  DATA: 5,
  /** 1 when DATA holds Int16 (an s16 branch). */
  DATA_S16: 6,
  /** Byte offset of the 16-bit copy; −1: none; `ZEROS`: all zeros, not sent. */
  PCM16: 7,
  RMS: 8,
  PEAK: 9,
  /** NaN: absent. */
  VAD: 10,
  /** −1: absent, 0, 1. */
  SPEECH: 11,
  CLIPPED: 12,
  ARRIVAL: 13,
  /** Byte offset of the block of Opus packets this frame completed; −1: none. */
  OPUS: 14,
  /** Media position of the block's first packet, 48 kHz samples. */
  OPUS_POSITION: 15,
  /** The block's `EncodedRun.end` (a stream's last packets); NaN: absent. */
  OPUS_END: 16,
} as const;
export const OUT_FRAME = 17;
/** A DATA or PCM16 offset that stands for samples that are all zeros (none in the buffer). */
export const ZEROS = -2;

/** Item status in the output. */
export const ItemStatus = { OK: 0, MISSING: 1, ERROR: 2 } as const;

/** One item of a batch as the main thread packs it. */
export interface InputItem {
  key: number;
  /** Opus frames (ignored for a PCM item, whose frames travel beside the buffer). */
  frames: ReadonlyArray<EncodedFrame | { position: number; payload: Uint8Array | null; samples: number; arrival: number }>;
  flags: number;
  f32Mask: number;
  pcm16Mask: number;
  /** Branches to Opus-encode in the worker (bit = branch). */
  opusMask: number;
}

/** Packs the items' Opus frames into one buffer (see the module comment). */
export function packInput(items: readonly InputItem[]): ArrayBuffer {
  let frames = 0;
  let bytes = 0;
  for (const it of items) {
    if (it.flags & ItemFlag.PCM) continue;
    frames += it.frames.length;
    for (const f of it.frames) bytes += f.payload ? f.payload.length : 0;
  }
  const tableBytes = 8 * (1 + IN_ITEM * items.length + IN_FRAME * frames);
  const buffer = new ArrayBuffer(tableBytes + bytes);
  const t = new Float64Array(buffer, 0, tableBytes / 8);
  const u8 = new Uint8Array(buffer);
  t[0] = items.length;
  let ti = 1;
  let fi = 1 + IN_ITEM * items.length;
  let bo = tableBytes;
  for (const it of items) {
    const pcm = (it.flags & ItemFlag.PCM) !== 0;
    t[ti++] = it.key;
    t[ti++] = pcm ? 0 : it.frames.length;
    t[ti++] = it.flags;
    t[ti++] = it.f32Mask;
    t[ti++] = it.pcm16Mask;
    t[ti++] = it.opusMask;
    if (pcm) continue;
    for (const f of it.frames) {
      t[fi++] = f.position;
      t[fi++] = f.samples;
      t[fi++] = f.arrival;
      const p = f.payload;
      if (p) {
        u8.set(p, bo);
        t[fi++] = bo;
        t[fi++] = p.length;
        bo += p.length;
      } else {
        t[fi++] = 0;
        t[fi++] = -1;
      }
    }
  }
  return buffer;
}

/** One item as the worker reads it. */
export interface UnpackedInput {
  key: number;
  flags: number;
  f32Mask: number;
  pcm16Mask: number;
  opusMask: number;
  /** Opus frames (payloads are views into the buffer); empty for a PCM item. */
  frames: EncodedFrame[];
}

export function unpackInput(buffer: ArrayBuffer): UnpackedInput[] {
  const t = new Float64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
  const n = t[0];
  const items: UnpackedInput[] = new Array(n);
  let fi = 1 + IN_ITEM * n;
  for (let i = 0; i < n; i++) {
    const b = 1 + IN_ITEM * i;
    const count = t[b + 1];
    const frames: EncodedFrame[] = new Array(count);
    for (let k = 0; k < count; k++, fi += IN_FRAME) {
      const length = t[fi + 4];
      frames[k] = {
        position: t[fi],
        payload: length < 0 ? null : new Uint8Array(buffer, t[fi + 3], length),
        samples: t[fi + 1],
        arrival: t[fi + 2],
      };
    }
    items[i] = { key: t[b], flags: t[b + 2], f32Mask: t[b + 3], pcm16Mask: t[b + 4], opusMask: t[b + 5], frames };
  }
  return items;
}
