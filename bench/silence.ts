/**
 * What silence costs in a worker: the default chain (Opus decode → denoise →
 * levels, one StreamProcessor, as a worker runs it) on speech and on silence,
 * sent with and without DTX, in CPU µs per 20 ms of media.
 *
 * Scenarios (48 kHz mono, Opus 32 kb/s, 20 ms packets):
 * - `speech`: speech-noisy-48k.wav, every packet sent;
 * - `silence`: 10 s of digital silence, every packet sent (a client without DTX;
 *   Opus decodes it to ±1 LSB, not to exact zeros);
 * - `silence, DTX`: the same sent as a browser with `usedtx=1` does (libwebrtc
 *   sends the first ≤ 2-byte DTX packet of a run and then nothing until a real
 *   packet: the ingest leaves the gaps, the worker fills them with silence);
 * - `talk 50 %`: 2 s of speech-48k.wav, 2 s of silence, repeated (20 s), without
 *   and with DTX.
 *
 * Two chains per scenario, timed in the same run, alternating round by round
 * (so machine load hits both alike): `before`, a bench-only stage that runs
 * RNNoise on every 480-sample frame as `denoise` did before it skipped silence
 * (same RNNoise build, same copies), and `after`, the `denoise` stage.
 *
 * Each scenario is fed one packet per `process()` call (media positions from the
 * RTP timing, gaps implicit), timed as a whole, over `ROUNDS` fresh streams after
 * one untimed warm-up stream each; the figure is the median round's total divided
 * by the 20 ms frames of media. Also printed: the share of RNNoise frames the
 * denoise stage skipped as silent (`counters.framesSkippedSilent` ÷ 10 ms frames).
 *
 * Run: `node --import tsx bench/silence.ts`
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { OpusEncoder } from '../wasm/opus.js';
import { registerStageFactory } from '../src/dsp/registry.js';
import { loadDspModules, StreamProcessor } from '../src/dsp/stream-processor.js';
import type { PcmChunk, Stage } from '../src/dsp/types.js';
import type { AudioFormat, EncodedFrame } from '../src/media/frames.js';
import { RNNOISE_FRAME_SAMPLES, RnnoiseState } from '../wasm/rnnoise.js';
import { readWav } from '../test/helpers/audio.js';

const FRAME = 960;
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const fixture = (name: string) => join(fileURLToPath(new URL('.', import.meta.url)), '..', 'test', 'fixtures', name);

/** Encodes `pcm` as 20 ms packets; with `dtx`, drops what libwebrtc does not send (≤ 2-byte packets after the first of a run). */
function packetsOf(pcm: Float32Array, dtx: boolean): { packets: EncodedFrame[]; mediaFrames: number } {
  const encoder = new OpusEncoder({ bitrate: 32000, dtx });
  const packets: EncodedFrame[] = [];
  const mediaFrames = Math.floor(pcm.length / FRAME);
  let inDtx = false;
  for (let i = 0; i < mediaFrames; i++) {
    const payload = encoder.encode(pcm.subarray(i * FRAME, (i + 1) * FRAME));
    if (dtx && payload.length <= 2) {
      if (inDtx) continue;
      inDtx = true;
    } else inDtx = false;
    packets.push({ position: i * FRAME, payload, samples: FRAME, arrival: 0 });
  }
  encoder.close();
  return { packets, mediaFrames };
}

/**
 * `denoise` as it was before silence was skipped, for whole 480-sample frames
 * of mono (all these scenarios give): RNNoise on every frame, with the same
 * per-sample copy loops as the stage (git history: src/dsp/denoise.ts).
 */
class EveryFrameDenoise implements Stage {
  readonly #state = new RnnoiseState();
  readonly #frame = new Float32Array(RNNOISE_FRAME_SAMPLES);
  constructor(readonly output: AudioFormat) {}
  process(chunk: PcmChunk): PcmChunk {
    const out = chunk.data;
    const frame = this.#frame;
    const channels = this.output.channels;
    const blocks = out.length / RNNOISE_FRAME_SAMPLES;
    let vadSum = 0;
    for (let b = 0; b < blocks; b++) {
      const base = b * RNNOISE_FRAME_SAMPLES;
      for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) frame[i] = out[base + i * channels];
      vadSum += this.#state.processFrame(frame);
      for (let i = 0; i < RNNOISE_FRAME_SAMPLES; i++) out[base + i * channels] = frame[i];
    }
    chunk.vad = vadSum / blocks;
    chunk.speech = chunk.vad >= 0.5;
    return chunk;
  }
  close(): void {
    this.#state.close();
  }
}

export interface SilenceBenchRow {
  scenario: string;
  /** CPU µs per 20 ms of media, median round, RNNoise on every frame (before). */
  usBefore: number;
  /** CPU µs per 20 ms of media, median round, the `denoise` stage (after). */
  usPerFrame: number;
  /** Share of RNNoise frames skipped as silent (0..1); 0 where the stage does not count. */
  skippedShare: number;
  /** Packets sent per 20 ms of media. */
  packetShare: number;
}

export async function benchSilence(): Promise<SilenceBenchRow[]> {
  await loadDspModules();
  registerStageFactory('denoise-every-frame', (_spec, input) => new EveryFrameDenoise(input));
  const speechNoisy = (await readWav(fixture('speech-noisy-48k.wav'))).channels[0];
  const speech = (await readWav(fixture('speech-48k.wav'))).channels[0];
  const silence = new Float32Array(48000 * 10);
  const talk = new Float32Array(48000 * 20);
  for (let t = 0; t < talk.length; t += 48000 * 4) talk.set(speech.subarray(t % (speech.length - 96000), (t % (speech.length - 96000)) + 96000), t);

  const scenarios: Array<[string, Float32Array, boolean]> = [
    ['speech', speechNoisy, false],
    ['silence', silence, false],
    ['silence, DTX', silence, true],
    ['talk 50 %', talk, false],
    ['talk 50 %, DTX', talk, true],
  ];
  const rows: SilenceBenchRow[] = [];
  for (const [scenario, pcm, dtx] of scenarios) {
    const { packets, mediaFrames } = packetsOf(pcm, dtx);
    const totals = { before: [] as number[], after: [] as number[] };
    let skipped = 0;
    for (let r = 0; r <= ROUNDS; r++) {
      for (const variant of ['before', 'after'] as const) {
        const processor = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: variant === 'before' ? 'denoise-every-frame' : 'denoise' }] }] });
        let ns = 0n;
        for (const p of packets) {
          const t0 = process.hrtime.bigint();
          processor.process([p]);
          ns += process.hrtime.bigint() - t0;
        }
        if (variant === 'after') skipped = processor.counters.framesSkippedSilent ?? 0;
        processor.close();
        if (r > 0) totals[variant].push(Number(ns) / 1000); // round 0 warms up
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] / mediaFrames;
    rows.push({ scenario, usBefore: med(totals.before), usPerFrame: med(totals.after), skippedShare: skipped / (mediaFrames * 2), packetShare: packets.length / mediaFrames });
  }
  return rows;
}

export function printSilence(rows: SilenceBenchRow[]): void {
  console.log(`\nDefault chain (decode → denoise → levels), CPU µs per 20 ms of media, one thread, median of ${ROUNDS} rounds`);
  console.log(
    '  scenario'.padEnd(20) + 'packets'.padStart(8) + 'before'.padStart(9) + '÷speech'.padStart(9) + 'after'.padStart(9) + '÷speech'.padStart(9) + 'after÷before'.padStart(14) + 'RNNoise skipped'.padStart(17),
  );
  const speech = rows.find((r) => r.scenario === 'speech') ?? rows[0];
  for (const r of rows) {
    console.log(
      `  ${r.scenario}`.padEnd(20) +
        `${(r.packetShare * 100).toFixed(0)} %`.padStart(8) +
        r.usBefore.toFixed(1).padStart(9) +
        (r.usBefore / speech.usBefore).toFixed(3).padStart(9) +
        r.usPerFrame.toFixed(1).padStart(9) +
        (r.usPerFrame / speech.usPerFrame).toFixed(3).padStart(9) +
        (r.usPerFrame / r.usBefore).toFixed(3).padStart(14) +
        `${(r.skippedShare * 100).toFixed(1)} %`.padStart(17),
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) printSilence(await benchSilence());
