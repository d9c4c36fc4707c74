/**
 * Main-thread operators on processed frames: cheap bookkeeping on the levels
 * and voice activity the workers already measured (no per-sample work here:
 * the main thread never touches samples). Marble-tested for ordering, completion and errors.
 */
import type { OperatorFunction } from 'rxjs';
import type { AudioFrame } from './operators.js';
import { liftOperator } from './lift-operator.js';
import { errors } from '../errors.js';

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

/** The numeric options and their ranges (a threshold in dBFS, durations in ms). */
const SPEECH_SEGMENTS_RANGES: Readonly<Record<Exclude<keyof SpeechSegmentsOptions, 'by'>, [number, number, string]>> = {
  thresholdDb: [-120, 0, ' dBFS'],
  minSpeechMs: [0, 60_000, ' ms'],
  hangoverMs: [0, 60_000, ' ms'],
};

function checkSpeechSegmentsOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw errors.OPTION_INVALID('options', 'must be an object (the options of speechSegments())');
  const given = options as Record<string, unknown>;
  const names = ['by', ...Object.keys(SPEECH_SEGMENTS_RANGES)];
  for (const key of Object.keys(given)) {
    if (names.includes(key)) continue;
    const near = names.find((n) => n.toLowerCase().startsWith(key.toLowerCase()) || key.toLowerCase().startsWith(n.toLowerCase()));
    throw errors.OPTION_INVALID(key, `is not an option of speechSegments()${near ? ` (did you mean ${near}?)` : ''}; its options: ${names.join(', ')}`);
  }
  if (given.by !== undefined && given.by !== 'energy' && given.by !== 'vad') throw errors.OPTION_INVALID('by', `must be one of energy, vad, got ${shown(given.by)}`);
  for (const [name, [min, max, unit]] of Object.entries(SPEECH_SEGMENTS_RANGES)) {
    const v = given[name];
    if (v !== undefined && (typeof v !== 'number' || !(v >= min && v <= max))) throw errors.OPTION_INVALID(name, `must be a number from ${min} to ${max}${unit}, got ${shown(v)}`);
  }
}

/** A value as a refusal quotes it; never throws (JSON.stringify does for a BigInt). */
function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 40));
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'bigint') return `${v}n (a BigInt)`;
  return v === null ? 'null' : `a ${typeof v}`;
}

/**
 * Turns frames into speech-start / speech-end events with debouncing. A stream
 * that completes while speaking emits a final `speech-end` at its last sample;
 * an error is forwarded at once (after no further events).
 */
export function speechSegments(options: SpeechSegmentsOptions = {}): OperatorFunction<AudioFrame, SpeechEvent> {
  // As every option of the library: a misspelt name or a value out of range is EARSHOT_OPTION_INVALID, naming it.
  checkSpeechSegmentsOptions(options);
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
