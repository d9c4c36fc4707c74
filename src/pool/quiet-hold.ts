/**
 * Which frames may wait for their worker (`quietHoldMs`): the comfort-noise
 * updates of a talker who has been silent a while.
 *
 * A DTX sender (RFC 7587 `usedtx=1`) stops sending while its user is silent.
 * libopus still makes an update every ~400 ms (comfort noise for a quiet room,
 * a silence frame for digital silence), which libwebrtc sends followed by one
 * DTX frame. Each update is a frame after a gap in media time, and each would
 * wake a worker for ~20 ms of near-silence. An update after a gap whose encoder
 * marked it as no voice (`opusPacketInactive`) may be held if the stream's
 * previous update was one too, and so may the DTX frame after it. So the first
 * update of a pause (where the pause becomes known downstream, e.g. to an
 * end-of-turn detector) and any frame with voice in it are never held.
 */
import type { EncodedFrame } from '../media/frames.js';
import { opusPacketInactive } from '../media/opus-toc.js';

/** A stream's state for the rule, kept by the pool per stream. */
export interface QuietState {
  /** Media position just past the stream's last frame; −1 before the first. */
  end: number;
  /** The last update (frame after a gap) was a no-voice one, and only DTX frames followed it. */
  quiet: boolean;
}

export function newQuietState(): QuietState {
  return { end: -1, quiet: false };
}

/**
 * Notes `frame` in `state` and says whether it may be held: a no-voice frame
 * after a gap that follows another, or a DTX frame (≤ 2 bytes: what a DTX
 * encoder emits as a pause begins, and a browser sends once after each
 * update) that follows one.
 */
export function quietUpdate(state: QuietState, frame: EncodedFrame): boolean {
  const payload = frame.payload;
  const afterGap = state.end >= 0 && frame.position > state.end;
  state.end = frame.position + frame.samples;
  if (payload !== null && payload.length <= 2 && !afterGap) return state.quiet; // a DTX frame leaves the run as it was
  const quiet = afterGap && payload !== null && opusPacketInactive(payload);
  const held = quiet && state.quiet;
  state.quiet = quiet;
  return held;
}
