/**
 * Opus codec over the libopus WASM build that ships inside `opusscript`.
 *
 * Why not `opusscript`'s own class: it caches typed-array views of the WASM heap
 * when an instance is created, and those views detach as soon as the heap grows
 * (creating a few hundred decoders is enough), after which every older instance
 * throws. Here the module is loaded once per thread, every codec state lives in
 * its one heap, and views are re-read from the live heap on every call.
 *
 * The native wrapper's PCM layout is odd and undocumented: it exchanges PCM as
 * one *byte* per 16-bit heap slot (opusscript copies a Node Buffer into a
 * Uint16Array view, byte by byte). So little-endian int16 samples go in as
 * (low byte, high byte) slot pairs, with the length given in bytes, and come
 * out the same way.
 */
import { createRequire } from 'node:module';
import { quantizeSample } from '../src/media/pcm16.js';

interface OpusHandler {
  _encode(pcmPtr: number, pcmBytes: number, outPtr: number, frameSize: number): number;
  _decode(inPtr: number, inBytes: number, outPtr: number): number;
  _encoder_ctl(ctl: number, arg: number): number;
  _decoder_ctl(ctl: number, arg: number): number;
}

interface OpusNativeModule {
  OpusScriptHandler: {
    new (sampleRate: number, channels: number, application: number): OpusHandler;
    destroy_handler(handler: OpusHandler): void;
  };
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  HEAPU8: Uint8Array;
}

/** Largest frame libopus produces: 120 ms at 48 kHz (what packet-loss concealment emits). */
export const OPUS_MAX_FRAME_SAMPLES = 5760;
/** Largest Opus packet we accept (RFC 6716 §3.4: 1275 bytes per frame, up to 3 frames here). */
export const OPUS_MAX_PACKET_BYTES = 1276 * 3;

const OPUS_SET_BITRATE = 4002;
const OPUS_SET_INBAND_FEC = 4012;
const OPUS_SET_PACKET_LOSS_PERC = 4014;
const OPUS_SET_DTX = 4016;
const OPUS_SET_COMPLEXITY = 4010;

export const OpusApplication = { voip: 2048, audio: 2049, lowDelay: 2051 } as const;
export type OpusApplicationName = keyof typeof OpusApplication;

let nativeModule: OpusNativeModule | undefined;

function opusNative(): OpusNativeModule {
  if (!nativeModule) {
    const require = createRequire(import.meta.url);
    const factory = require('opusscript/build/opusscript_native_wasm.js') as () => OpusNativeModule;
    nativeModule = factory();
  }
  return nativeModule;
}

/** Loads and compiles libopus for this thread now (otherwise the first codec pays ~50 ms). */
export function loadOpus(): void {
  opusNative();
}

/** Scratch memory shared by every codec of this thread (calls are synchronous, so one is enough). */
interface Scratch { packetPtr: number; pcmPtr: number; pcmBytes: number }
let scratch: Scratch | undefined;
function scratchFor(channels: number): Scratch {
  const m = opusNative();
  // Stereo int16 at one byte per 16-bit slot: 4 heap bytes per sample, for the largest (PLC) frame.
  const pcmBytes = OPUS_MAX_FRAME_SAMPLES * 2 * 4;
  if (!scratch) scratch = { packetPtr: m._malloc(OPUS_MAX_PACKET_BYTES), pcmPtr: m._malloc(pcmBytes), pcmBytes };
  if (channels > 2) throw new RangeError(`Opus channels must be 1 or 2, got ${channels}`);
  return scratch;
}

/** Thrown for a packet libopus refuses (corrupt or truncated); the caller conceals it. */
export class OpusPacketError extends Error {
  constructor(readonly opusCode: number) {
    super(`libopus rejected the packet (error ${opusCode})`);
    this.name = 'OpusPacketError';
  }
}

export class OpusDecoder {
  readonly #handler: OpusHandler;
  #closed = false;

  /** @param channels output channels (1 or 2); Opus downmixes or upmixes the coded stream to this. */
  constructor(readonly channels: 1 | 2 = 1) {
    this.#handler = new (opusNative().OpusScriptHandler)(48000, channels, OpusApplication.audio);
  }

  /**
   * Decodes one packet into `out` (interleaved, −1..1) and returns samples per channel.
   * An empty `packet` asks libopus for packet-loss concealment: it fills up to
   * `OPUS_MAX_FRAME_SAMPLES`, so `out` must be at least that long per channel.
   */
  decode(packet: Uint8Array, out: Float32Array): number {
    if (this.#closed) throw new Error('OpusDecoder is closed');
    const m = opusNative();
    const s = scratchFor(this.channels);
    if (packet.length > OPUS_MAX_PACKET_BYTES) throw new OpusPacketError(-4);
    m.HEAPU8.set(packet, s.packetPtr);
    const samples = this.#handler._decode(s.packetPtr, packet.length, s.pcmPtr);
    if (samples < 0) throw new OpusPacketError(samples);
    const total = samples * this.channels;
    const slots = new Uint16Array(m.HEAPU8.buffer, s.pcmPtr, total * 2);
    const n = Math.min(total, out.length);
    for (let i = 0; i < n; i++) {
      const v = ((slots[2 * i + 1] << 8) | (slots[2 * i] & 0xff)) << 16 >> 16; // sign-extend int16
      out[i] = v / 32768;
    }
    return samples;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    opusNative().OpusScriptHandler.destroy_handler(this.#handler);
  }
}

/** Sample rates libopus encodes from (RFC 6716 §2). */
export const OPUS_INPUT_RATES = [8000, 12000, 16000, 24000, 48000] as const;

export interface OpusEncoderOptions {
  /** Rate of the samples given to `encode`: one of `OPUS_INPUT_RATES`. Default 48000. */
  sampleRate?: number;
  /** Input and coded channels (1 or 2). Default 1. */
  channels?: 1 | 2;
  /** Target bitrate in bits per second. Default 32000 (what WebRTC browsers use for mono voice). */
  bitrate?: number;
  /** Opus application. Default `audio`. */
  application?: OpusApplicationName;
  /** In-band forward error correction. Default true, as browsers send. */
  fec?: boolean;
  /** Discontinuous transmission (no packets in silence). Default false. */
  dtx?: boolean;
  /** libopus complexity 0–10 (CPU against quality). Default: libopus's own (10). */
  complexity?: number;
}

export class OpusEncoder {
  readonly channels: 1 | 2;
  readonly #handler: OpusHandler;
  #closed = false;

  readonly sampleRate: number;

  constructor(options: OpusEncoderOptions = {}) {
    this.channels = options.channels ?? 1;
    this.sampleRate = options.sampleRate ?? 48000;
    if (!(OPUS_INPUT_RATES as readonly number[]).includes(this.sampleRate)) {
      throw new RangeError(`Opus encodes from ${OPUS_INPUT_RATES.join(', ')} Hz, not ${this.sampleRate} Hz`);
    }
    this.#handler = new (opusNative().OpusScriptHandler)(this.sampleRate, this.channels, OpusApplication[options.application ?? 'audio']);
    this.#ctl(OPUS_SET_BITRATE, options.bitrate ?? 32000);
    this.#ctl(OPUS_SET_INBAND_FEC, options.fec === false ? 0 : 1);
    this.#ctl(OPUS_SET_PACKET_LOSS_PERC, options.fec === false ? 0 : 5);
    this.#ctl(OPUS_SET_DTX, options.dtx ? 1 : 0);
    if (options.complexity !== undefined) this.#ctl(OPUS_SET_COMPLEXITY, options.complexity);
  }

  #ctl(ctl: number, value: number): void {
    const rc = this.#handler._encoder_ctl(ctl, value);
    if (rc < 0) throw new RangeError(`Opus encoder rejected setting ${ctl}=${value} (error ${rc})`);
  }

  /**
   * Encodes one frame of interleaved samples at `sampleRate` (−1..1; 2.5–60 ms,
   * e.g. 960 samples per channel for 20 ms at 48 kHz) and returns a new packet.
   */
  encode(pcm: Float32Array): Uint8Array {
    if (this.#closed) throw new Error('OpusEncoder is closed');
    const frameSize = pcm.length / this.channels;
    const m = opusNative();
    const s = scratchFor(this.channels);
    const slots = new Uint16Array(m.HEAPU8.buffer, s.pcmPtr, pcm.length * 2);
    for (let i = 0; i < pcm.length; i++) {
      const v = quantizeSample(pcm[i]);
      slots[2 * i] = v & 0xff;
      slots[2 * i + 1] = (v >> 8) & 0xff;
    }
    const bytes = this.#handler._encode(s.pcmPtr, pcm.length * 2, s.packetPtr, frameSize);
    if (bytes < 0) throw new RangeError(`Opus encode failed (error ${bytes}) for a frame of ${frameSize} samples`);
    return m.HEAPU8.slice(s.packetPtr, s.packetPtr + bytes);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    opusNative().OpusScriptHandler.destroy_handler(this.#handler);
  }
}
