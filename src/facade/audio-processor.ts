/**
 * The processor classes of the WebRTCHandler API: an `AudioProcessor` has a
 * `name` and turns a peer's frames into frames (`process(peerId, frames$)`).
 * `DefaultAudioProcessor` passes audio through; `AudioTranscoder` and
 * `AudioFilter` are built on the worker stages (one fused worker hop each, via
 * `inWorkers`), so their DSP never runs on the main thread.
 */
import type { Observable } from 'rxjs';
import { builtinStageDefinitions } from '../dsp/registry.js';
import { stageOptionProblems } from '../dsp/stage-type.js';
import type { StageSpec } from '../dsp/types.js';
import { inWorkers, stage, type AudioFrame, type StageOperator } from '../pipeline/operators.js';
import type { BandpassOptions } from '../pipeline/stage-operators.js';
import { WorkerPool } from '../pool/worker-pool.js';
import { errors } from '../errors.js';
import { checkOptionNames, failOption } from '../option-checks.js';

export abstract class AudioProcessor {
  /**
   * The processor's own name (for your logs; defaults below). What
   * `processedAudio$` and the statistics report is the name it is registered
   * under: the first argument of `registerCustomAudioProcessor(name, processor)`.
   */
  abstract readonly name: string;
  /** Processes one peer's frames; called once per stream. */
  abstract process(peerId: string, frames$: Observable<AudioFrame>): Observable<AudioFrame>;
}

/** Passes frames through unchanged (the default processor). */
export class DefaultAudioProcessor extends AudioProcessor {
  readonly name: string;
  constructor(name = 'default') {
    super();
    this.name = name;
  }
  process(_peerId: string, frames$: Observable<AudioFrame>): Observable<AudioFrame> {
    return frames$;
  }
}

/**
 * A stage a facade class builds, and the class option it came from: `option`
 * names it for a problem with one of the stage's options (`undefined`: the
 * stage as a whole), e.g. `notch.q` for the `q` of `{ notch: { frequency, q } }`.
 */
interface StageFromOption {
  spec: StageSpec;
  option(stageOption: string | undefined): string;
}

/** The class option `name` as a whole (a number, `true`, or an option made into several stage options). */
const whole = (name: string) => (): string => name;
/** The class option `name` whose object holds the stage's options: `name.stageOption`. */
const nested = (name: string) => (stageOption: string | undefined): string => (stageOption ? `${name}.${stageOption}` : name);

/** Base of processors that run a fixed list of worker stages in one hop. */
abstract class StageChainProcessor extends AudioProcessor {
  /** The worker stages this processor runs, as pipeline `stages` declarations. */
  readonly stages: readonly StageSpec[];
  readonly #operator: StageOperator | undefined;

  constructor(stages: StageFromOption[], pool: WorkerPool | undefined) {
    super();
    this.stages = Object.freeze(stages.map(({ spec }) => Object.freeze({ ...spec })));
    const operators = stages.map((s) => {
      try {
        return stage(s.spec.type, s.spec);
      } catch (e) {
        // A stage's option out of range (the stage names it): typed, as every option check is, and
        // naming the class option it came from (`gainDb`, `notch.q`), as the other option errors do.
        if (e instanceof TypeError || e instanceof RangeError) throw errors.OPTION_INVALID(faultyOption(s), `is refused by a stage: ${e.message}`);
        throw e;
      }
    });
    this.#operator = operators.length > 0 ? inWorkers({ pool }, ...operators) : undefined;
  }

  process(_peerId: string, frames$: Observable<AudioFrame>): Observable<AudioFrame> {
    return this.#operator ? frames$.pipe(this.#operator) : frames$;
  }
}

/** The class option behind the first problem of a stage's options (the one `stage()` reports first). */
function faultyOption(s: StageFromOption): string {
  const definition = builtinStageDefinitions.get(s.spec.type);
  const [problem] = definition ? stageOptionProblems(definition, s.spec) : [];
  return s.option(problem?.option || undefined);
}

export interface AudioTranscoderOptions {
  /** Processor name. Default `transcoder`. */
  name?: string;
  /** Output sample rate, 8000–48000 Hz (Speex resampler). Default: unchanged. */
  sampleRate?: number;
  /** Resampler quality 0–10. Default 5. */
  quality?: number;
  /** Output channels: 1 (downmix) or 2 (upmix). Default: unchanged. */
  channels?: 1 | 2;
  /** Output sample format; `s16` delivers Int16Array frames. Default: unchanged (f32). */
  sampleFormat?: 'f32' | 's16';
  /** Re-chunk to frames of this many ms: 10, 20, 30, 40 or 60. Default: unchanged. */
  frameDurationMs?: 10 | 20 | 30 | 40 | 60;
  /** Worker pool. Default: the default pool (the server's while one runs). */
  pool?: WorkerPool;
}

/**
 * Converts rate, channels, sample format and frame size — in that order (channel
 * changes before resampling, so a downmix halves the resampler's work).
 */
export class AudioTranscoder extends StageChainProcessor {
  readonly name: string;
  constructor(options: AudioTranscoderOptions = {}) {
    checkProcessorOptions('AudioTranscoder', options, TRANSCODER_OPTIONS);
    if (options.quality !== undefined && options.sampleRate === undefined) throw errors.OPTION_INVALID('quality', 'is the resampler\'s: it takes effect only with options.sampleRate');
    const stages: StageFromOption[] = [];
    if (options.channels === 1) stages.push({ spec: { type: 'downmix' }, option: whole('channels') });
    else if (options.channels === 2) stages.push({ spec: { type: 'upmix' }, option: whole('channels') });
    else if (options.channels !== undefined) failOption('channels', '1 or 2', options.channels);
    if (options.sampleRate !== undefined) {
      stages.push({
        spec: { type: 'resample', sampleRate: options.sampleRate, ...(options.quality !== undefined ? { quality: options.quality } : {}) },
        option: (o) => (o === 'quality' ? 'quality' : 'sampleRate'),
      });
    }
    if (options.frameDurationMs !== undefined) stages.push({ spec: { type: 'reframe', durationMs: options.frameDurationMs }, option: whole('frameDurationMs') });
    if (options.sampleFormat !== undefined) stages.push({ spec: { type: 'format', sampleFormat: options.sampleFormat }, option: whole('sampleFormat') });
    super(stages, options.pool);
    this.name = options.name ?? 'transcoder';
  }
}

/** Options of a biquad filter in `AudioFilter`: a frequency, or `{ frequency, q }`. */
export type BiquadSetting = number | { frequency: number; q?: number };

export interface AudioFilterOptions {
  /** Processor name. Default `filter`. */
  name?: string;
  /** RNNoise first (true, or its options `{ mix, vadThreshold }`). Needs 48 kHz input; delays the audio by 10 ms (see `denoise()`). */
  denoise?: boolean | { mix?: number; vadThreshold?: number };
  /** High-pass (e.g. 80 to remove rumble). */
  highpass?: BiquadSetting;
  /** Low-pass. */
  lowpass?: BiquadSetting;
  /** Band-pass: `{ lowFrequency, highFrequency }` or `{ frequency, q }` (not both). */
  bandpass?: BandpassOptions;
  /** Notch (e.g. 50 or 60 for mains hum). */
  notch?: BiquadSetting;
  /** Gain in dB. */
  gainDb?: number;
  /** Noise gate (true for defaults, or its options). */
  gate?: boolean | { thresholdDb?: number; attackMs?: number; holdMs?: number; releaseMs?: number; floorDb?: number };
  /** Slow AGC towards a loudness (true for defaults, or its options). */
  normalize?: boolean | { targetDb?: number; maxGainDb?: number; rateDbPerSecond?: number; silenceDb?: number };
  /** Peak limiter, last (true for defaults, or its options). */
  limiter?: boolean | { ceilingDb?: number; releaseMs?: number };
  /** Worker pool. Default: the default pool. */
  pool?: WorkerPool;
}

/**
 * A filter chain in a fixed, sensible order: denoise → highpass → lowpass →
 * bandpass → notch → gain → gate → normalize → limiter.
 */
export class AudioFilter extends StageChainProcessor {
  readonly name: string;
  constructor(options: AudioFilterOptions = {}) {
    checkProcessorOptions('AudioFilter', options, FILTER_OPTIONS);
    const stages: StageFromOption[] = [];
    // Each stage is named after the option it came from, which here is the stage's type.
    const biquad = (type: string, s: BiquadSetting | undefined) => {
      if (s === undefined) return;
      stages.push(typeof s === 'number' ? { spec: { type, frequency: s }, option: whole(type) } : { spec: { type, ...s }, option: nested(type) });
    };
    const optional = (type: string, s: boolean | object | undefined) => {
      if (s === undefined || s === false) return;
      stages.push(s === true ? { spec: { type }, option: whole(type) } : { spec: { type, ...s }, option: nested(type) });
    };
    optional('denoise', options.denoise);
    biquad('highpass', options.highpass);
    biquad('lowpass', options.lowpass);
    if (options.bandpass) stages.push({ spec: { type: 'bandpass', ...options.bandpass }, option: nested('bandpass') });
    biquad('notch', options.notch);
    if (options.gainDb !== undefined) stages.push({ spec: { type: 'gain', db: options.gainDb }, option: whole('gainDb') });
    optional('gate', options.gate);
    optional('normalize', options.normalize);
    optional('limiter', options.limiter);
    super(stages, options.pool);
    this.name = options.name ?? 'filter';
  }
}

/** Every option of each class, for the check of the names given (a new option must be added here: the type says so). */
const TRANSCODER_OPTIONS: Record<keyof AudioTranscoderOptions, true> = { name: true, sampleRate: true, quality: true, channels: true, sampleFormat: true, frameDurationMs: true, pool: true };
const FILTER_OPTIONS: Record<keyof AudioFilterOptions, true> = {
  name: true, denoise: true, highpass: true, lowpass: true, bandpass: true, notch: true, gainDb: true, gate: true, normalize: true, limiter: true, pool: true,
};

/**
 * `EARSHOT_OPTION_INVALID` for options that are not an object, a name the
 * class does not take (a misspelt one was ignored: a transcoder that did
 * nothing), a name that is not a non-empty string, or a pool that is not one.
 */
function checkProcessorOptions(what: string, options: unknown, known: Readonly<Record<string, unknown>>): void {
  checkOptionNames(what, options, known);
  if (options === undefined) return;
  const { name, pool } = options as { name?: unknown; pool?: unknown };
  if (name !== undefined && (typeof name !== 'string' || name === '')) failOption('name', 'a non-empty string', name);
  if (pool !== undefined && !(pool instanceof WorkerPool)) failOption('pool', 'a WorkerPool', pool);
}
