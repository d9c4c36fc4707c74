/**
 * The one debounced "speaking" decision, from each frame's voice-activity
 * verdict: the peer statistics (`audio.speaking`, `speechSegments`) and the
 * speech events of WebSocket audio (`speech-start` / `speech-end`) both use
 * it, so a turn starts and ends at the same frame everywhere.
 *
 * Debounced in frames: 3 speech frames in a row to start (60 ms of 20 ms
 * frames: a cough is not a turn), 15 without to stop (300 ms: a breath
 * between words does not end one).
 */

/** Speech frames in a row before speaking starts, and non-speech frames before it stops. */
export const SPEECH_ON_FRAMES = 3;
export const SPEECH_OFF_FRAMES = 15;

/** Where a tracker stands: what another tracker of the same frames starts from (a listener joining mid-stream). */
export interface SpeakingState {
  speaking: boolean | null;
  /** Consecutive frames so far that disagree with `speaking` (a turn about to start or end). */
  run: number;
}

export class SpeakingTracker {
  /** Speaking now; null until the first frame with a voice-activity verdict. */
  speaking: boolean | null = null;
  /** Silent → speaking transitions so far. */
  segments = 0;
  #run = 0; // consecutive frames disagreeing with `speaking`

  /** Where it stands now. */
  state(): SpeakingState {
    return { speaking: this.speaking, run: this.#run };
  }

  /** Starts from another tracker's state, so that both decide a turn's start and end at the same frame. */
  resume(state: SpeakingState): void {
    this.speaking = state.speaking;
    this.#run = state.run;
  }

  /** Adds one frame's verdict; returns the transition it completed, if any. */
  update(speech: boolean): 'start' | 'end' | undefined {
    if (this.speaking === null) this.speaking = false;
    if (speech === this.speaking) {
      this.#run = 0;
      return undefined;
    }
    this.#run++;
    if (speech && this.#run >= SPEECH_ON_FRAMES) {
      this.speaking = true;
      this.segments++;
      this.#run = 0;
      return 'start';
    }
    if (!speech && this.#run >= SPEECH_OFF_FRAMES) {
      this.speaking = false;
      this.#run = 0;
      return 'end';
    }
    return undefined;
  }
}
