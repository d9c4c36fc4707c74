/**
 * Main-thread operators on processed frames: cheap bookkeeping on the levels
 * and voice activity the workers already measured (no per-sample work here:
 * the main thread never touches samples). Marble-tested for ordering, completion and errors.
 */
import type { OperatorFunction } from 'rxjs';
import type { AudioFrame } from './operators.js';
import { liftOperator } from './lift-operator.js';
import { checkNumber, checkOneOf, checkOptionNames } from '../option-checks.js';

/** A change between speaking and silent. */
export interface SpeechEvent {
  type: 'speech-start' | 'speech-end';
  /** Media time of the change, seconds since the stream started. */
  time: number;
  /** For `speech-end`: seconds of speech the segment lasted. */
  duration?: number;
}

export interface SpeechSegmentsOptions {
  /**
   * What counts as speech in a frame:
   * - `energy` (default): RMS above `thresholdDb`;
   * - `vad`: the frame's `speech` flag from `denoise` (or `vad ≥ 0.5` without a flag).
   */
  by?: 'energy' | 'vad';
  /** RMS threshold in dBFS for `by: 'energy'`. Default −40. */
  thresholdDb?: number;
  /** Speech must last this long (ms) before `speech-start` is emitted. Default 60. */
  minSpeechMs?: number;
  /** Silence must last this long (ms) before `speech-end` is emitted. Default 300 (bridges pauses between words). */
  hangoverMs?: number;
}

const SPEECH_SEGMENTS_OPTIONS: Readonly<Record<keyof SpeechSegmentsOptions, true>> = { by: true, thresholdDb: true, minSpeechMs: true, hangoverMs: true };

/**
 * Turns frames into speech-start / speech-end events with debouncing. A stream
 * that completes while speaking emits a final `speech-end` at its last sample;
 * an error is forwarded at once (after no further events).
 */
export function speechSegments(options: SpeechSegmentsOptions = {}): OperatorFunction<AudioFrame, SpeechEvent> {
  // As every option of the library: a misspelt name or a value out of range is EARSHOT_OPTION_INVALID, naming it.
  checkOptionNames('speechSegments()', options, SPEECH_SEGMENTS_OPTIONS);
  checkOneOf('by', options.by, ['energy', 'vad']);
  if (options.thresholdDb !== undefined) checkNumber('thresholdDb', options.thresholdDb, -120, 0, ' dBFS');
  if (options.minSpeechMs !== undefined) checkNumber('minSpeechMs', options.minSpeechMs, 0, 60_000, ' ms');
  if (options.hangoverMs !== undefined) checkNumber('hangoverMs', options.hangoverMs, 0, 60_000, ' ms');
  const by = options.by ?? 'energy';
  const thresholdDb = options.thresholdDb ?? -40;
  const minSpeech = (options.minSpeechMs ?? 60) / 1000;
  const hangover = (options.hangoverMs ?? 300) / 1000;
  const threshold = 10 ** (thresholdDb / 20);

  return (source) =>
    // Through `lift`: a guarded source (a server's `audio$`) stays guarded (lift-operator.ts).
    liftOperator<AudioFrame, SpeechEvent>(source, (subscriber) => {
      // Arithmetic in samples (exact integers), seconds only on output.
      let rate = 0;
      let minSpeechSamples = 0;
      let hangoverSamples = 0;
      let speaking = false;
      let segmentStart = 0;
      /** Start of the current run of frames that disagree with `speaking`. */
      let runStart: number | undefined;
      let end = 0;
      return source.subscribe({
        next(f) {
          if (f.sampleRate !== rate) {
            // Positions count samples at each frame's rate: what is kept in the old rate's samples is rescaled.
            if (rate > 0) {
              const k = f.sampleRate / rate;
              segmentStart = Math.round(segmentStart * k);
              if (runStart !== undefined) runStart = Math.round(runStart * k);
            }
            rate = f.sampleRate;
            minSpeechSamples = Math.round(minSpeech * rate);
            hangoverSamples = Math.round(hangover * rate);
          }
          const start = f.position;
          end = start + f.data.length / f.channels;
          const isSpeech = by === 'energy' ? f.rms >= threshold : (f.speech ?? (f.vad ?? 0) >= 0.5);
          if (isSpeech === speaking) {
            runStart = undefined;
            return;
          }
          runStart ??= start;
          if (!speaking && end - runStart >= minSpeechSamples) {
            speaking = true;
            segmentStart = runStart;
            runStart = undefined;
            subscriber.next({ type: 'speech-start', time: segmentStart / rate });
          } else if (speaking && end - runStart >= hangoverSamples) {
            speaking = false;
            subscriber.next({ type: 'speech-end', time: runStart / rate, duration: (runStart - segmentStart) / rate });
            runStart = undefined;
          }
        },
        error(e) {
          subscriber.error(e);
        },
        complete() {
          if (speaking) subscriber.next({ type: 'speech-end', time: end / rate, duration: (end - segmentStart) / rate });
          subscriber.complete();
        },
      });
    });
}
