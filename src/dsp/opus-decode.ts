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
 *   libopus is asked to conceal one frame of the last packet's length at a
 *   time (a packet of its TOC byte alone, RFC 6716 §3.2.1: a frame of length
 *   zero), not the 120 ms an empty packet makes it conceal: those 120 ms
 *   advance the decoder's state six frames for a 20 ms loss, so the frames
 *   after it came out 2–6 dB too quiet and a second loss in a row was a
 *   dropout (−74 dB) where concealment fades.
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

/**
 * TOC of a mono 20 ms CELT fullband packet (config 31, code 0): what a loss
 * before any packet was decoded is concealed as (libopus then gives silence).
 */
const DEFAULT_TOC = 0xf8;

/** The TOC byte with code 0 (one frame), config and stereo flag kept: a packet of it alone is one lost frame. */
const TOC_ONE_FRAME = 0xfc;

export class OpusStreamDecoder {
  /** Live counters (the same object for the decoder's life; copy it to snapshot). */
  readonly counters: DecodeCounters = { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0 };
  readonly #decoder: OpusDecoder;
  /** libopus writes here; sized for the largest frame (PLC), allocated once. */
  readonly #scratch: Float32Array;
  readonly #timeline: MediaTimeline;
  /** Length of the last decoded packet: the best guess for a lost or corrupt one of unknown length. */
  #frameSamples = DEFAULT_FRAME_SAMPLES;
  /** A packet of the last decoded packet's TOC alone, code 0: libopus conceals one frame of its length for it. */
  readonly #plcPacket = Uint8Array.of(DEFAULT_TOC);
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
   * handled as described above. `ends`, if given, gets `out.length` after each
   * frame: the chunks (a gap's silence included) that frame `i` accounts for
   * end there.
   */
  decode(frames: readonly EncodedFrame[], out: DecodedChunk[] = [], ends?: number[]): DecodedChunk[] {
    if (this.#closed) throw new Error('OpusStreamDecoder is closed');
    for (const f of frames) {
      if (this.#timeline.admit(f.position, f.arrival, out)) {
        // An empty payload carries no audio, and libopus reads a zero-length packet as a loss anyway.
        const samples = f.payload === null || f.payload.length === 0 ? this.#conceal(f, out) : this.#decodePacket(f, f.payload, out);
        this.#timeline.advance(f.position, samples);
      }
      ends?.push(out.length);
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
    this.#plcPacket[0] = payload[0] & TOC_ONE_FRAME;
    // A packet with no audio (0 samples, e.g. an empty DTX keep-alive) advances nothing;
    // the next input's position fills the time it stood for with silence.
    if (samples === 0) return 0;
    this.#frameSamples = samples;
    out.push({ position: f.position, data: this.#scratch.slice(0, samples * this.channels), arrival: f.arrival });
    return samples;
  }

  /**
   * Opus PLC for the input's duration (or the last frame's length if
   * unknown), one frame of the last packet's length per libopus call, so the
   * decoder's state advances by what was lost and no more. A last call that
   * makes more than is left keeps what is needed (a loss shorter than a
   * frame). Concealment stops at 120 ms, the longest Opus packet (by then it
   * has faded out), and if libopus makes nothing: the rest is silence.
   */
  #conceal(f: EncodedFrame, out: DecodedChunk[]): number {
    const want = f.samples > 0 && Number.isFinite(f.samples) ? Math.floor(f.samples) : this.#frameSamples;
    this.counters.concealed++;
    const concealed = Math.min(want, OPUS_MAX_FRAME_SAMPLES);
    let kept = 0;
    while (kept < concealed) {
      let made = 0;
      try {
        made = this.#decoder.decode(this.#plcPacket, this.#scratch);
      } catch (e) {
        // libopus does not reject PLC today; if a build ever does, fall back to silence rather than fail the stream.
        if (!(e instanceof OpusPacketError)) throw e;
      }
      if (made <= 0) break;
      const take = Math.min(made, concealed - kept);
      out.push({ position: f.position + kept, data: this.#scratch.slice(0, take * this.channels), arrival: f.arrival });
      kept += take;
    }
    if (want > kept) this.#timeline.silence(f.position + kept, want - kept, f.arrival, out);
    return want;
  }
}
