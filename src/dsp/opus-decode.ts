/**
 * Turns a stream's encoded frames into contiguous 48 kHz PCM at media time
 * (a recording's duration equals the media duration). The decoder keeps the position its next sample will
 * have and lays every input out against it:
 *
 * - an input that starts before that position is late or a duplicate (ingest
 *   reorders, but a packet can still arrive after its slot was played out); it is
 *   dropped whole even when it only overlaps partly, because output already sent
 *   can't be rewritten;
 * - an input that starts after it leaves a gap no packet covered (DTX, or loss
 *   the ingest chose not to conceal): the gap becomes silence;
 * - a lost packet (`payload === null`) becomes Opus packet-loss concealment for
 *   exactly its duration, and so does a packet libopus rejects as corrupt.
 *
 * So the output duration always equals the media duration, which is what lets a
 * recording's length match the call's length under loss.
 */
import { OPUS_MAX_FRAME_SAMPLES, OpusDecoder, OpusPacketError } from '../../wasm/opus.js';
import { MediaTimeline, type TimedChunk } from './media-timeline.js';
import type { DecodeCounters, EncodedFrame } from '../media/frames.js';

/** A run of decoded PCM at media time. */
export type DecodedChunk = TimedChunk;

/**
 * Longest silence emitted as one chunk (1 s). Larger gaps are split so no single
 * array grows with the gap and downstream stages see chunks of bounded size.
 */
const MAX_SILENCE_CHUNK = 48000;

/** Frame length assumed for a lost or corrupt packet of unknown length before anything was decoded (20 ms). */
const DEFAULT_FRAME_SAMPLES = 960;

/** An empty packet asks libopus for concealment; one shared instance, so PLC allocates nothing. */
const PLC_PACKET = new Uint8Array(0);

export class OpusStreamDecoder {
  /** Live counters (the same object for the decoder's life; copy it to snapshot). */
  readonly counters: DecodeCounters = { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0 };
  readonly #decoder: OpusDecoder;
  /** libopus writes here; sized for the largest frame (PLC), allocated once. */
  readonly #scratch: Float32Array;
  readonly #timeline: MediaTimeline;
  /** Length of the last decoded packet: the best guess for a lost or corrupt one of unknown length. */
  #frameSamples = DEFAULT_FRAME_SAMPLES;
  #closed = false;

  /** @param channels channels to decode to (1 or 2); libopus downmixes or upmixes the coded stream. */
  constructor(readonly channels: 1 | 2) {
    if (channels !== 1 && channels !== 2) throw new RangeError(`OpusStreamDecoder: channels must be 1 or 2, got ${String(channels)}`);
    this.#decoder = new OpusDecoder(channels);
    this.#scratch = new Float32Array(OPUS_MAX_FRAME_SAMPLES * channels);
    this.#timeline = new MediaTimeline(this.counters, channels, MAX_SILENCE_CHUNK);
  }

  /** Media position (48 kHz) the next output sample will have; undefined before the first input. */
  get nextPosition(): number | undefined {
    return this.#timeline.next;
  }

  /**
   * Decodes `frames` (in media order) and appends the resulting chunks to `out`.
   * Never throws for bad input: late, corrupt and lost packets are counted and
   * handled as described above.
   */
  decode(frames: readonly EncodedFrame[], out: DecodedChunk[] = []): DecodedChunk[] {
    if (this.#closed) throw new Error('OpusStreamDecoder is closed');
    for (const f of frames) {
      if (!this.#timeline.admit(f.position, f.arrival, out)) continue;
      // An empty payload carries no audio, and libopus reads a zero-length packet as a loss anyway.
      const samples = f.payload === null || f.payload.length === 0 ? this.#conceal(f, out) : this.#decodePacket(f, f.payload, out);
      this.#timeline.advance(f.position, samples);
    }
    return out;
  }

  /** Frees the libopus state. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#decoder.close();
  }

  /** Decodes a received packet; returns the samples (per channel) it covered. */
  #decodePacket(f: EncodedFrame, payload: Uint8Array, out: DecodedChunk[]): number {
    let samples: number;
    try {
      samples = this.#decoder.decode(payload, this.#scratch);
    } catch (e) {
      if (!(e instanceof OpusPacketError)) throw e;
      this.counters.corrupt++;
      return this.#conceal(f, out);
    }
    this.counters.decoded++;
    // A packet with no audio (0 samples, e.g. an empty DTX keep-alive) advances nothing;
    // the next input's position fills the time it stood for with silence.
    if (samples === 0) return 0;
    this.#frameSamples = samples;
    out.push({ position: f.position, data: this.#scratch.slice(0, samples * this.channels), arrival: f.arrival });
    return samples;
  }

  /**
   * Opus PLC for the input's duration (or the last frame's length if unknown).
   * libopus conceals a fixed stretch (60–120 ms) per call; only the samples the
   * input stands for are kept, and anything beyond what PLC made is silence.
   */
  #conceal(f: EncodedFrame, out: DecodedChunk[]): number {
    const want = f.samples > 0 && Number.isFinite(f.samples) ? Math.floor(f.samples) : this.#frameSamples;
    let made = 0;
    try {
      made = this.#decoder.decode(PLC_PACKET, this.#scratch);
    } catch (e) {
      // libopus does not reject PLC today; if a build ever does, fall back to silence rather than fail the stream.
      if (!(e instanceof OpusPacketError)) throw e;
    }
    this.counters.concealed++;
    const kept = Math.min(made, want);
    if (kept > 0) out.push({ position: f.position, data: this.#scratch.slice(0, kept * this.channels), arrival: f.arrival });
    if (want > kept) this.#timeline.silence(f.position + kept, want - kept, f.arrival, out);
    return want;
  }
}
