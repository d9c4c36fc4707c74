/**
 * The output side of a batch (worker → main): `packOutput` writes every
 * item's status, counters and frames into one buffer in the worker;
 * `OutputReader` reads them on the main thread as views into it. The layout,
 * and which frames carry what, is described in batch-codec.ts.
 */
import type { EncodedRun } from '../dsp/opus-encode.js';
import type { AudioFrame, DecodeCounters } from '../media/frames.js';
import { quantizeS16 } from '../media/pcm16.js';
import { sharedZerosF32, sharedZerosS16 } from '../media/shared-zeros.js';
import { COUNTER_KEYS, Counter, MASK_BITS, OUT_FRAME, OUT_ITEM, OutFrame, ZEROS } from './batch-codec.js';

const align4 = (n: number) => (n + 3) & ~3;
/** Flag of a packet's length field in an Opus block: the packet repeats a settled pause's packet. */
const REPEAT = 0x8000;

/** One item's outcome as the worker packs it. */
export interface OutputItem {
  key: number;
  status: number;
  /** Frames per branch (index = branch). */
  outputs: AudioFrame[][];
  counters?: DecodeCounters;
  f32Mask: number;
  pcm16Mask: number;
  /** Opus packets completed by each frame (index = branch, then frame), for branches the worker encodes. */
  encoded?: Array<Array<EncodedRun | undefined> | undefined>;
}

/** Whether a block carries packet `i`'s bytes: all but a repeat of the packet before it in the block. */
function stored(run: EncodedRun, i: number): boolean {
  return i === 0 || run.repeat?.[i] !== true;
}

function opusBlockBytes(run: EncodedRun): number {
  let n = 2 + 2 * run.packets.length;
  run.packets.forEach((p, i) => {
    if (stored(run, i)) n += p.length;
  });
  return n;
}

function wantsF32(branch: number, f32Mask: number, pcm16Mask: number): boolean {
  // Without a 16-bit copy a frame needs its floats, whatever the mask says.
  return branch >= MASK_BITS || ((f32Mask >>> branch) & 1) === 1 || ((pcm16Mask >>> branch) & 1) === 0;
}

function wantsPcm16(branch: number, pcm16Mask: number): boolean {
  return branch < MASK_BITS && ((pcm16Mask >>> branch) & 1) === 1;
}

/**
 * Packs a batch's outcomes into one buffer (see the module comment): `spare`
 * if it is large enough (a buffer the main thread gave back, or what `spare`
 * returns when asked for that many bytes), else a new one with some
 * headroom, so that it can be given back and reused for the batches after
 * it. The frames are a StreamProcessor's: their `peak` is measured on their
 * samples, and a frame of peak 0 (every sample ±0, or NaN) is packed by its
 * length alone (`ZEROS`).
 */
export function packOutput(items: readonly OutputItem[], spare?: ArrayBuffer | ((bytes: number) => ArrayBuffer | undefined)): ArrayBuffer {
  let frames = 0;
  let bytes = 0;
  for (const it of items) {
    it.outputs.forEach((list, branch) => {
      const f32 = wantsF32(branch, it.f32Mask, it.pcm16Mask);
      const p16 = wantsPcm16(branch, it.pcm16Mask);
      for (const f of list) {
        frames++;
        if (f.peak === 0) continue; // zeros: no bytes
        const s16 = f.data instanceof Int16Array;
        if (s16 || f32) bytes += align4(f.data.byteLength);
        if (!s16 && p16) bytes += align4(f.data.length * 2);
      }
      const runs = it.encoded?.[branch];
      if (runs) for (const run of runs) if (run) bytes += align4(opusBlockBytes(run));
    });
  }
  const tableBytes = 8 * (1 + OUT_ITEM * items.length + OUT_FRAME * frames);
  const needed = tableBytes + bytes;
  const reused = typeof spare === 'function' ? spare(needed) : spare;
  const buffer = reused && reused.byteLength >= needed ? reused : new ArrayBuffer(Math.ceil((needed * 1.25) / 4096) * 4096);
  const t = new Float64Array(buffer, 0, tableBytes / 8);
  const u8 = new Uint8Array(buffer);
  t[0] = items.length;
  let fi = 1 + OUT_ITEM * items.length;
  let bo = tableBytes;
  items.forEach((it, i) => {
    const b = 1 + OUT_ITEM * i;
    t[b] = it.key;
    t[b + 1] = it.status;
    let count = 0;
    for (const list of it.outputs) count += list.length;
    t[b + 2] = count;
    const c = it.counters as unknown as Record<string, number | undefined> | undefined;
    for (let k = 0; k < COUNTER_KEYS.length; k++) t[b + 3 + k] = c?.[COUNTER_KEYS[k]] ?? NaN;
    it.outputs.forEach((list, branch) => {
      const f32 = wantsF32(branch, it.f32Mask, it.pcm16Mask);
      const p16 = wantsPcm16(branch, it.pcm16Mask);
      const runs = it.encoded?.[branch];
      list.forEach((f, k) => {
        const data = f.data;
        const s16 = data instanceof Int16Array;
        t[fi + OutFrame.BRANCH] = branch;
        t[fi + OutFrame.POSITION] = f.position;
        t[fi + OutFrame.SAMPLE_RATE] = f.sampleRate;
        t[fi + OutFrame.CHANNELS] = f.channels;
        t[fi + OutFrame.LENGTH] = data.length;
        t[fi + OutFrame.DATA_S16] = s16 ? 1 : 0;
        const zeros = f.peak === 0;
        if (!(s16 || f32)) t[fi + OutFrame.DATA] = -1;
        else if (zeros) t[fi + OutFrame.DATA] = ZEROS;
        else {
          u8.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), bo);
          t[fi + OutFrame.DATA] = bo;
          bo += align4(data.byteLength);
        }
        if (s16 || !p16) t[fi + OutFrame.PCM16] = -1;
        else if (zeros) t[fi + OutFrame.PCM16] = ZEROS;
        else {
          quantizeS16(data, new Int16Array(buffer, bo, data.length));
          t[fi + OutFrame.PCM16] = bo;
          bo += align4(data.length * 2);
        }
        t[fi + OutFrame.RMS] = f.rms;
        t[fi + OutFrame.PEAK] = f.peak;
        t[fi + OutFrame.VAD] = f.vad ?? NaN;
        t[fi + OutFrame.SPEECH] = f.speech === undefined ? -1 : f.speech ? 1 : 0;
        t[fi + OutFrame.CLIPPED] = f.clipped ?? 0;
        t[fi + OutFrame.ARRIVAL] = f.arrival;
        const run = runs?.[k];
        if (run) {
          t[fi + OutFrame.OPUS] = bo;
          t[fi + OutFrame.OPUS_POSITION] = run.position;
          t[fi + OutFrame.OPUS_END] = run.end ?? NaN;
          bo = writeOpusBlock(run, buffer, bo);
        } else {
          t[fi + OutFrame.OPUS] = -1;
        }
        fi += OUT_FRAME;
      });
    });
  });
  return buffer;
}

/** Writes a block of packets at `at`; returns the next aligned offset. */
function writeOpusBlock(run: EncodedRun, buffer: ArrayBuffer, at: number): number {
  const view = new DataView(buffer);
  const u8 = new Uint8Array(buffer);
  view.setUint16(at, run.packets.length, true);
  let bo = at + 2 + 2 * run.packets.length;
  run.packets.forEach((p, i) => {
    const repeat = run.repeat?.[i] === true ? REPEAT : 0;
    if (stored(run, i)) {
      view.setUint16(at + 2 + 2 * i, repeat | p.length, true);
      u8.set(p, bo);
      bo += p.length;
    } else {
      view.setUint16(at + 2 + 2 * i, repeat, true);
    }
  });
  return at + align4(bo - at);
}

/** Reads a packed output: the table, and views on it. */
export class OutputReader {
  readonly table: Float64Array;
  readonly items: number;
  readonly #buffer: ArrayBuffer;
  /** Index in `table` of the next item's first frame. */
  #frame: number;

  constructor(buffer: ArrayBuffer) {
    this.#buffer = buffer;
    this.table = new Float64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
    this.items = this.table[0];
    this.#frame = 1 + OUT_ITEM * this.items;
  }

  key(i: number): number {
    return this.table[1 + OUT_ITEM * i];
  }

  status(i: number): number {
    return this.table[1 + OUT_ITEM * i + 1];
  }

  frameCount(i: number): number {
    return this.table[1 + OUT_ITEM * i + 2];
  }

  /** Whether the worker sent counters for item `i` (not for a stream it no longer had). */
  hasCounters(i: number): boolean {
    return !Number.isNaN(this.table[1 + OUT_ITEM * i + 3]);
  }

  /** Copies item `i`'s counters into `into` (absent ones are left out). */
  counters(i: number, into: DecodeCounters): DecodeCounters {
    // Named stores, not a loop over the keys: this runs for every stream in every batch, and
    // keyed stores of a Float64Array's values into an object box each number on the heap.
    const t = this.table;
    const b = 1 + OUT_ITEM * i + 3;
    let v = t[b + Counter.DECODED];
    if (v === v) into.decoded = v;
    v = t[b + Counter.CONCEALED];
    if (v === v) into.concealed = v;
    v = t[b + Counter.CORRUPT];
    if (v === v) into.corrupt = v;
    v = t[b + Counter.SILENCE_SAMPLES];
    if (v === v) into.silenceSamples = v;
    v = t[b + Counter.LATE];
    if (v === v) into.late = v;
    v = t[b + Counter.SKIPPED_SILENT];
    if (v === v) into.framesSkippedSilent = v;
    return into;
  }

  /** Branch of the frame `next()` moved to. */
  branch = -1;
  /** The frame `next()` moved to (data: its samples, or for an incomplete frame the 16-bit copy). */
  frame: AudioFrame | undefined;
  /** Its 16-bit copy, if the worker made one. */
  pcm16: Int16Array | undefined;
  /** Whether it carries its own samples (floats were not left out). */
  complete = true;
  /** Opus packets the frame completed (views into the buffer; 20 ms each, consecutive), if its branch is encoded. */
  opus: Uint8Array[] | undefined;
  /** Media position of `opus[0]`, 48 kHz samples. */
  opusPosition = 0;
  /** Per packet of `opus`, whether it repeats a settled pause's packet (see `EncodedRun.repeat`); absent when none does. */
  opusRepeat: boolean[] | undefined;
  /** For a stream's last packets: the media position just past its last sample (see `EncodedRun.end`). */
  opusEnd: number | undefined;

  /**
   * Moves to the next frame, in item order (each item's frames follow the
   * previous item's: read items in order, `skip` the ones not read), and sets
   * `branch`, `frame`, `pcm16` and `complete`. With `sharedZeros`, a frame of
   * zeros whose floats were sent by length gets a view of shared zeros (read
   * only) as its data instead of an array of its own.
   */
  next(sharedZeros = false): void {
    const t = this.table;
    const buffer = this.#buffer;
    const f = this.#frame;
    this.#frame += OUT_FRAME;
    const length = t[f + OutFrame.LENGTH];
    const dataAt = t[f + OutFrame.DATA];
    const pcmAt = t[f + OutFrame.PCM16];
    const s16Data = t[f + OutFrame.DATA_S16] === 1;
    // Zeros sent by length: the 16-bit copy (for this thread's sinks, valid during delivery) is a
    // view of shared zeros; samples that anyone may keep and write to are an array of their own,
    // unless the caller will copy them for such code itself (`sharedZeros`).
    let pcm16: Int16Array | undefined;
    if (pcmAt >= 0) pcm16 = new Int16Array(buffer, pcmAt, length);
    else if (pcmAt === ZEROS) pcm16 = sharedZerosS16(length);
    let data: Float32Array | Int16Array;
    if (dataAt >= 0) data = s16Data ? new Int16Array(buffer, dataAt, length) : new Float32Array(buffer, dataAt, length);
    else if (dataAt === ZEROS && sharedZeros) data = s16Data ? sharedZerosS16(length) : sharedZerosF32(length);
    else if (dataAt === ZEROS) data = s16Data ? new Int16Array(length) : new Float32Array(length);
    else data = pcm16!;
    const frame: AudioFrame = {
      position: t[f + OutFrame.POSITION],
      sampleRate: t[f + OutFrame.SAMPLE_RATE],
      channels: t[f + OutFrame.CHANNELS],
      sampleFormat: data instanceof Int16Array ? 's16' : 'f32',
      data,
      rms: t[f + OutFrame.RMS],
      peak: t[f + OutFrame.PEAK],
      arrival: t[f + OutFrame.ARRIVAL],
    };
    const vad = t[f + OutFrame.VAD];
    if (!Number.isNaN(vad)) frame.vad = vad;
    const speech = t[f + OutFrame.SPEECH];
    if (speech >= 0) frame.speech = speech === 1;
    const clipped = t[f + OutFrame.CLIPPED];
    if (clipped > 0) frame.clipped = clipped;
    this.branch = t[f + OutFrame.BRANCH];
    this.frame = frame;
    this.pcm16 = pcm16;
    this.complete = dataAt >= 0 || dataAt === ZEROS;
    const opusAt = t[f + OutFrame.OPUS];
    if (opusAt >= 0) {
      const view = new DataView(buffer);
      const count = view.getUint16(opusAt, true);
      const packets: Uint8Array[] = new Array(count);
      let repeat: boolean[] | undefined;
      let bo = opusAt + 2 + 2 * count;
      for (let i = 0; i < count; i++) {
        const field = view.getUint16(opusAt + 2 + 2 * i, true);
        const length = field & ~REPEAT;
        // A repeat without bytes of its own is the packet before it again: the same view.
        packets[i] = length > 0 ? new Uint8Array(buffer, bo, length) : packets[i - 1];
        bo += length;
        if (field & REPEAT) (repeat ??= new Array<boolean>(count).fill(false))[i] = true;
      }
      this.opus = packets;
      this.opusRepeat = repeat;
      this.opusPosition = t[f + OutFrame.OPUS_POSITION];
      const end = t[f + OutFrame.OPUS_END];
      this.opusEnd = Number.isNaN(end) ? undefined : end;
    } else {
      this.opus = undefined;
      this.opusRepeat = undefined;
      this.opusEnd = undefined;
    }
  }

  /**
   * Calls `each` for every frame of item `i`, in order (see `next`): the
   * frame, its 16-bit copy if any, and whether it carries its own samples
   * (`complete`); an incomplete frame (floats left out) has the 16-bit copy
   * as its data and is for the main thread's own sinks only.
   */
  frames(i: number, each: (branch: number, frame: AudioFrame, pcm16: Int16Array | undefined, complete: boolean) => void): void {
    const count = this.frameCount(i);
    for (let k = 0; k < count; k++) {
      this.next();
      each(this.branch, this.frame!, this.pcm16, this.complete);
    }
  }

  /**
   * True when no frame of the batch keeps samples in the buffer (every one was
   * sent as a 16-bit copy only, `complete` false, or as zeros by length): then
   * nothing in the buffer may be kept past delivery, and it can be given back
   * to a worker to reuse.
   */
  onlyCopies(): boolean {
    const t = this.table;
    let f = 1 + OUT_ITEM * this.items;
    for (let i = 0; i < this.items; i++) {
      for (let k = this.frameCount(i); k > 0; k--, f += OUT_FRAME) if (t[f + OutFrame.DATA] >= 0) return false;
    }
    return true;
  }

  /** Skips item `i`'s frames (a stream that is gone). */
  skip(i: number): void {
    this.#frame += OUT_FRAME * this.frameCount(i);
  }
}
