/**
 * The frames audio travels in, from the RTP ingest to the sinks: one
 * vocabulary for every folder. An `EncodedFrame` is an Opus packet placed at
 * media time (rtc makes it, the pool carries it, the worker's decoder takes
 * it); an `AudioFrame` is processed PCM leaving a worker (the pool carries
 * it back, pipelines, operators, sinks and processors take it). An
 * `AudioFormat` says what a stream of PCM is, wherever it is described: a
 * stage's input and output, a branch's output, a recording. `DecodeCounters`
 * count what became of a stream's encoded frames on the way.
 */

/** Sample encoding of a stream: 32-bit float (−1..1) or 16-bit integer. */
export type SampleFormat = 'f32' | 's16';

/** Sample rate, channel count and sample encoding of a PCM stream. */
export interface AudioFormat {
  /** Samples per second per channel. */
  sampleRate: number;
  /** 1 (mono) or 2 (stereo, interleaved L R). */
  channels: number;
  /**
   * Encoding the branch delivers: absent or 'f32' for floats, 's16' after a
   * `format` stage asked for 16-bit. Stages always work on floats (an s16
   * stream's floats lie on the 1/32768 grid); StreamProcessor packs the data
   * to Int16Array only at the end of the branch. Stages copy it from their
   * input format unless they change it.
   */
  sampleFormat?: SampleFormat;
}

/** One encoded Opus frame, placed at media time: from the RTP ingest to a worker's decoder. */
export interface EncodedFrame {
  /** Media position of the frame's first sample, in 48 kHz samples since the stream started. */
  position: number;
  /** Opus payload; null for a packet known to be lost (concealed with Opus PLC). */
  payload: Uint8Array | null;
  /**
   * Duration in 48 kHz samples: from the TOC for received packets, from RTP
   * timestamps for lost ones; 0 when unknown, in which case the decoder's
   * output length is used.
   */
  samples: number;
  /** `performance.now()` on the main thread when the packet arrived (for latency). */
  arrival: number;
  /**
   * Set on packets earshot encoded (`PeerPipeline.encodedAudio$`): true for a
   * packet repeated without coding, the same bytes as the packet before it,
   * once a pause's silence has settled. Such a packet decodes to digital
   * silence, and a decoder that never gets it decodes the packets after it
   * exactly as one that does, so a sender may skip it, as a DTX sender would:
   * WHEP listeners get none.
   */
  repeat?: boolean;
  /**
   * Set on the last packet earshot encoded for a stream that ended: the media
   * position (48 kHz samples) just past the stream's last sample. Encoding
   * ends by coding zeros past it, for the encoder's lookahead (6.5 ms) and the
   * last packet's rest, so that a decoder's output reaches that sample; a
   * recording ends there (an Ogg file by end trimming, RFC 7845 §4.4).
   */
  end?: number;
}

/** One processed PCM frame leaving a worker for the sinks, processors and subscribers of a branch. */
export interface AudioFrame {
  /** Media position of the first sample, in samples at `sampleRate` since the stream started. */
  position: number;
  sampleRate: number;
  channels: number;
  /** Encoding of `data`: 'f32' (Float32Array) or 's16' (Int16Array, after a `format` stage asking for it). */
  sampleFormat: SampleFormat;
  /** Interleaved samples: Float32Array −1..1 for 'f32', Int16Array −32768..32767 for 's16'. */
  data: Float32Array | Int16Array;
  /** Voice activity probability 0..1 when the branch denoises. */
  vad?: number;
  /** `vad` judged against the denoise stage's `vadThreshold`, when the branch denoises. */
  speech?: boolean;
  /** RMS of the samples, linear 0..1 (measured on the floats, before any packing to s16). */
  rms: number;
  /** Largest absolute sample, linear 0..1 (measured before any packing to s16). */
  peak: number;
  /** Samples at or beyond 16-bit full scale in this frame (see `CLIP_LEVEL`). */
  clipped?: number;
  /** Arrival time of the packet that completed this frame (`performance.now()`, main thread). */
  arrival: number;
}

/**
 * Counters a stream's decoder keeps; forwarded to the main thread with every
 * batch. A PCM-input stream (`StreamSpec.input`) keeps the same counters:
 * `decoded` counts PCM frames accepted, `silenceSamples` is at the input rate,
 * `corrupt` counts frames that held samples that are not finite numbers
 * (NaN, ±Infinity: made 0), and `concealed` stays 0.
 */
export interface DecodeCounters {
  /** Packets decoded normally (PCM input: frames accepted). */
  decoded: number;
  /** Frames produced by Opus packet-loss concealment (lost or corrupt packets). */
  concealed: number;
  /** Packets libopus rejected as corrupt (also counted in `concealed`); PCM input: frames with non-finite samples, made 0. */
  corrupt: number;
  /** Samples (48 kHz; PCM input: at the input rate) of silence inserted for gaps with no packets (DTX, or loss beyond concealment). */
  silenceSamples: number;
  /** Packets (or PCM frames) dropped because their media position was already played out (late or duplicate). */
  late: number;
  /**
   * Work skipped on silence: RNNoise frames (10 ms of one channel) the `denoise`
   * stages of the stream's branches did not run because the audio was digitally
   * silent (DTX gaps, muted or silent senders; see `denoise`), summed over
   * branches and channels. Set by StreamProcessor (0 when nothing skips);
   * absent from a bare decoder's counters.
   */
  framesSkippedSilent?: number;
}

/** The format a branch delivers, as a worker reports it when the stream starts: every field known. */
export interface BranchFormat {
  sampleRate: number;
  channels: number;
  sampleFormat: SampleFormat;
}

/** `format` with its sample encoding spelt out ('f32' when absent). */
export function branchFormatOf(format: AudioFormat): BranchFormat {
  return { sampleRate: format.sampleRate, channels: format.channels, sampleFormat: format.sampleFormat ?? 'f32' };
}

/** @deprecated The same frame as `EncodedFrame`; use that name. */
export type EncodedInput = EncodedFrame;
/** @deprecated The same frame as `EncodedFrame`; use that name. */
export type IngestFrame = EncodedFrame;
/** @deprecated The same frame as `AudioFrame`; use that name. */
export type ProcessedFrame = AudioFrame;
