/**
 * Opus encoding of a branch's processed audio, in the worker that processed
 * it (the libopus build that decodes is already loaded there): for Ogg Opus
 * recordings of branches with stages, and for listeners (WHEP). One encoder
 * per stream and branch, however many consumers read its packets.
 *
 * Branch frames can have any length (a `reframe` stage makes 512-sample
 * frames, a sender 10 or 60 ms ones); Opus takes 2.5–60 ms frames. So the
 * encoder gathers samples and codes 20 ms packets, each placed at its media
 * position in 48 kHz samples (Ogg granule and RTP clock units, whatever the
 * branch rate). A branch's frames are contiguous in the worker (gaps are
 * filled with silence before the stages), so packets are too; should a frame
 * ever not follow the previous one, the partial packet is dropped and coding
 * restarts at the new position.
 *
 * A pause is coded once it settles, not for its whole length. Fed zeros,
 * libopus soon codes each 20 ms the same 3 bytes (after 2–15 packets at 16
 * and 48 kHz, 32 kbit/s); from the second identical packet of silence on,
 * the encoder hands out those bytes again without coding, until sound
 * returns, and marks them as repeats (`EncodedRun.repeat`). The decoder gets
 * the packets coding would have given it (the same bytes for the 200 settled
 * packets checked); the encoder keeps the settled state it had, and the
 * sound after the pause codes as well as when every packet was coded (within
 * 1 dB SNR; test/dsp/opus-encode.test.ts). A repeat decodes to zeros and
 * leaves the decoder as it was: one that skips the repeats decodes what
 * follows bit for bit as one that got them, which is why listeners are not
 * sent them. Sending CELT silence packets instead and resetting the encoder
 * was tried: the decoder, whose state then differs from the encoder's, made
 * the first 60 ms after the pause about 20 dB worse.
 */
import type { AudioFrame, BranchFormat } from '../media/frames.js';
import { isSilence } from '../media/shared-zeros.js';
import { OPUS_INPUT_RATES, OpusEncoder } from '../../wasm/opus.js';

export { OPUS_INPUT_RATES };

/** Packet duration: 20 ms, what WebRTC senders use and players expect. */
export const ENCODED_FRAME_MS = 20;
/** libopus complexity of the branch encoders (see `BranchEncoderOptions.complexity`). */
export const DEFAULT_COMPLEXITY = 5;
/** Packet duration in 48 kHz samples. */
export const ENCODED_FRAME_SAMPLES_48K = 960;
/**
 * libopus's lookahead in 48 kHz samples at every input rate (2.5 ms + 4 ms):
 * a decoder's output lags the encoder's input by it, which is the Ogg pre-skip
 * of a file of these packets.
 */
export const ENCODER_LOOKAHEAD_48K = 312;

export interface BranchEncoderOptions {
  /** Target bitrate, bits per second. Default: 32000 mono, 64000 stereo (browsers' voice defaults). */
  bitrate?: number;
  /**
   * libopus complexity 0–10. Default 5, as WebRTC uses on mobile: measured
   * here (20 ms frames of 16 kHz voice at 32 kbit/s) ~6× cheaper than 10,
   * whose SILK search dominated a worker's time, for the same bitrate.
   */
  complexity?: number;
}

/** Packets a frame completed: consecutive 20 ms packets starting at `position` (48 kHz samples). */
export interface EncodedRun {
  position: number;
  packets: Uint8Array[];
  /**
   * Per packet, whether it repeats a settled pause's packet without coding
   * (the same bytes as the packet before it, the same array in this run);
   * absent when none does.
   */
  repeat?: boolean[];
  /** Set by `flush`: the media position (48 kHz samples) just past the stream's last sample; the run's packets code zeros past it. */
  end?: number;
}

/** Whether Opus can code a branch of this format; the reason if not. */
export function opusEncodable(format: { sampleRate: number; channels: number }): string | null {
  if (!(OPUS_INPUT_RATES as readonly number[]).includes(format.sampleRate)) {
    return `Opus codes audio at ${OPUS_INPUT_RATES.map((r) => r / 1000).join(', ')} kHz, not ${format.sampleRate} Hz`;
  }
  if (format.channels !== 1 && format.channels !== 2) return `Opus codes 1 or 2 channels, not ${format.channels}`;
  return null;
}

export class BranchOpusEncoder {
  readonly #encoder: OpusEncoder;
  readonly #channels: number;
  /** Samples per channel in one packet at the branch rate. */
  readonly #frameSamples: number;
  /** 48 kHz samples per branch-rate sample (an integer: every Opus rate divides 48000). */
  readonly #scale: number;
  /** Interleaved samples gathered for the next packet. */
  readonly #pending: Float32Array;
  #filled = 0;
  /** Branch-rate position of the first gathered sample; undefined before the first frame. */
  #start: number | undefined;
  /** Packets coded so far (repeated silence included). */
  packets = 0;
  /** Whether every sample gathered for the next packet is zero. */
  #pendingSilent = true;
  /** The last packet coded from zeros, while the packets before it were zeros too. */
  #lastSilent: Uint8Array | undefined;
  /** Whether libopus's packets for zeros have settled: the last two were identical, so `#lastSilent` stands for the next ones. */
  #settled = false;

  constructor(format: BranchFormat, options: BranchEncoderOptions = {}) {
    const refused = opusEncodable(format);
    if (refused) throw new RangeError(refused);
    this.#channels = format.channels;
    this.#frameSamples = (format.sampleRate * ENCODED_FRAME_MS) / 1000;
    this.#scale = 48000 / format.sampleRate;
    this.#pending = new Float32Array(this.#frameSamples * this.#channels);
    this.#encoder = new OpusEncoder({
      sampleRate: format.sampleRate,
      channels: format.channels as 1 | 2,
      bitrate: options.bitrate ?? (format.channels === 2 ? 64000 : 32000),
      // Nobody retransmits these: FEC would only cost bits.
      fec: false,
      complexity: options.complexity ?? DEFAULT_COMPLEXITY,
    });
  }

  /** Gathers a frame's samples; returns the packets it completed, or undefined. */
  push(frame: AudioFrame): EncodedRun | undefined {
    const perChannel = frame.data.length / this.#channels;
    if (this.#start === undefined || frame.position !== this.#start + this.#filled / this.#channels) {
      this.#start = frame.position;
      this.#filled = 0;
      this.#pendingSilent = true;
    }
    const data = frame.data;
    const scale = data instanceof Int16Array ? 1 / 32768 : 1;
    // A frame of zeros (a pause, a gate that closed) is known at once. Other frames are checked as
    // they are copied, packet by packet: a pause often starts inside a frame (a resampler's or a
    // filter's tail, then zeros).
    const silent = isSilence(frame.peak, data);
    let run: EncodedRun | undefined;
    let i = 0;
    const total = perChannel * this.#channels;
    while (i < total) {
      const n = Math.min(total - i, this.#pending.length - this.#filled);
      if (silent) this.#pending.fill(0, this.#filled, this.#filled + n);
      else {
        let sound = false;
        for (let k = 0; k < n; k++) {
          const v = data[i + k] * scale;
          this.#pending[this.#filled + k] = v;
          if (v !== 0) sound = true;
        }
        if (sound) this.#pendingSilent = false;
      }
      this.#filled += n;
      i += n;
      if (this.#filled === this.#pending.length) {
        run ??= { position: this.#start * this.#scale, packets: [] };
        const repeat = this.#pendingSilent && this.#settled;
        run.packets.push(repeat ? this.#lastSilent! : this.#code());
        if (repeat) (run.repeat ??= new Array<boolean>(run.packets.length - 1).fill(false)).push(true);
        else run.repeat?.push(false);
        this.packets++;
        this.#start += this.#frameSamples;
        this.#filled = 0;
        this.#pendingSilent = true;
      }
    }
    return run;
  }

  /**
   * At the end of the stream: codes what is gathered, padded with zeros, and
   * packets of zeros after it until the encoder's lookahead is covered, so
   * that a decoder's output reaches the last sample pushed. Returns those
   * packets with `end`, the media position just past that sample (48 kHz);
   * undefined if nothing was pushed. The encoder is not used afterwards.
   */
  flush(): EncodedRun | undefined {
    if (this.#start === undefined) return undefined;
    const end = (this.#start + this.#filled / this.#channels) * this.#scale;
    const run: EncodedRun = { position: this.#start * this.#scale, packets: [], end };
    while (this.#start * this.#scale < end + ENCODER_LOOKAHEAD_48K) {
      this.#pending.fill(0, this.#filled);
      run.packets.push(this.#code());
      this.packets++;
      this.#start += this.#frameSamples;
      this.#filled = 0;
      this.#pendingSilent = true;
    }
    return run;
  }

  /** Codes the gathered samples; for zeros, notes whether libopus's packets for them have settled. */
  #code(): Uint8Array {
    const packet = this.#encoder.encode(this.#pending);
    if (!this.#pendingSilent) {
      this.#lastSilent = undefined;
      this.#settled = false;
      return packet;
    }
    const last = this.#lastSilent;
    this.#settled = last !== undefined && last.length === packet.length && last.every((b, k) => b === packet[k]);
    this.#lastSilent = packet;
    return packet;
  }

  close(): void {
    this.#encoder.close();
  }
}
