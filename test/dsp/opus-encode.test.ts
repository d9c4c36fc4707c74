/**
 * Opus encoding of processed audio in the worker: packets of 20 ms at their
 * media position whatever the branch's frame size and rate, decoding back to
 * the same tone, and carried through the batch format to the main thread. A
 * pause is coded until libopus's packets for it settle, then repeated and
 * marked as repeats, which a decoder may skip without changing what follows.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { BranchOpusEncoder, DEFAULT_COMPLEXITY, opusEncodable, type EncodedRun } from '../../src/dsp/opus-encode.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import type { AudioFrame, EncodedFrame } from '../../src/media/frames.js';
import { ItemStatus } from '../../src/pool/batch-codec.js';
import { OutputReader, packOutput } from '../../src/pool/batch-output.js';
import { OpusDecoder, OpusEncoder, OPUS_MAX_FRAME_SAMPLES } from '../../wasm/opus.js';
import { concat, dominantFrequency, encodeOpusFrames, rmsDb } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

let tone: Float32Array;
let toneFrames: EncodedFrame[];

beforeAll(async () => {
  await loadDspModules();
  tone = (await readFixture('tone-1k-48k.wav')).channels[0].subarray(0, 48000);
  toneFrames = encodeOpusFrames(tone);
});

/** Decodes packets to 48 kHz mono. */
function decodeAll(packets: readonly Uint8Array[]): Float32Array {
  const decoder = new OpusDecoder(1);
  const out = new Float32Array(OPUS_MAX_FRAME_SAMPLES);
  const parts = packets.map((p) => out.slice(0, decoder.decode(p, out)));
  decoder.close();
  return concat(parts);
}

/** Cuts `samples` into frames of `size` at `rate`, starting at media position `from`. */
function framesOf(samples: Float32Array, size: number, rate: number, from = 0): AudioFrame[] {
  const frames: AudioFrame[] = [];
  for (let i = 0; i + size <= samples.length; i += size) {
    frames.push({ position: from + i, sampleRate: rate, channels: 1, sampleFormat: 'f32', data: samples.subarray(i, i + size), rms: 0, peak: 0, arrival: 0 });
  }
  return frames;
}

describe('BranchOpusEncoder', () => {
  it('codes frames of any length into consecutive 20 ms packets at their 48 kHz media position', () => {
    const encoder = new BranchOpusEncoder({ sampleRate: 16000, channels: 1, sampleFormat: 'f32' });
    const at16k = new Float32Array(16000);
    for (let i = 0; i < at16k.length; i++) at16k[i] = 0.5 * Math.sin((2 * Math.PI * 1000 * i) / 16000);
    // 512-sample frames (a reframe stage's), starting 1 s into the stream.
    const runs = framesOf(at16k, 512, 16000, 16000).map((f) => encoder.push(f)).filter((r): r is EncodedRun => r !== undefined);
    encoder.close();
    const packets = runs.flatMap((r) => r.packets);
    expect(packets).toHaveLength(Math.floor((31 * 512) / 320)); // 31 whole frames of 512 → 49 packets of 320
    expect(runs[0].position).toBe(48000);
    for (let i = 1; i < runs.length; i++) expect(runs[i].position).toBe(runs[i - 1].position + 960 * runs[i - 1].packets.length);
    const decoded = decodeAll(packets);
    expect(decoded.length).toBe(packets.length * 960);
    expect(dominantFrequency(decoded.subarray(4800), 48000)).toBeCloseTo(1000, -1);
    expect(rmsDb(decoded.subarray(4800))).toBeGreaterThan(rmsDb(at16k) - 1.5);
  });

  it('flushes at the end: a decoder\'s output, less the lookahead, reaches the last sample pushed', () => {
    for (const rate of [16000, 48000]) {
      const encoder = new BranchOpusEncoder({ sampleRate: rate, channels: 1, sampleFormat: 'f32' });
      // 1 s and 7 ms of tone in 512-sample frames, from media position 2 s: the last packet is partial.
      const n = rate + (7 * rate) / 1000;
      const samples = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / rate));
      const frames = framesOf(samples, 512, rate, 2 * rate);
      const last = frames.at(-1)!;
      const rest = samples.subarray(last.position - 2 * rate + 512);
      if (rest.length > 0) frames.push({ ...last, position: last.position + 512, data: rest });
      const runs = frames.map((f) => encoder.push(f)).filter((r): r is EncodedRun => r !== undefined);
      const end = encoder.flush()!;
      encoder.close();
      const label = `${rate} Hz`;
      // The media position just past the last sample, and packets that follow the ones before.
      expect(end.end, label).toBe(2 * 48000 + (n * 48000) / rate);
      expect(end.position, label).toBe(runs.at(-1)!.position + 960 * runs.at(-1)!.packets.length);
      const packets = [...runs.flatMap((r) => r.packets), ...end.packets];
      // Enough to cover the media and the 312-sample lookahead, not a packet more.
      const media = (n * 48000) / rate;
      expect(packets.length * 960, label).toBeGreaterThanOrEqual(media + 312);
      expect(packets.length * 960 - 960, label).toBeLessThan(media + 312);
      // Decoded, less the pre-skip: the tone runs to the media's last sample.
      const decoded = decodeAll(packets).subarray(312, 312 + media);
      expect(rmsDb(decoded.subarray(media - 240)), label).toBeGreaterThan(rmsDb(samples) - 2);
    }
  });

  it('restarts at the new position when a frame does not follow the previous one', () => {
    const encoder = new BranchOpusEncoder({ sampleRate: 48000, channels: 1, sampleFormat: 'f32' });
    const [a, , c] = framesOf(tone.subarray(0, 3 * 700), 700, 48000);
    expect(encoder.push(a)).toBeUndefined(); // 700 of 960 gathered
    const run = encoder.push(c); // a jump: the 700 gathered are dropped
    expect(run).toBeUndefined();
    const next = encoder.push({ ...c, position: c.position + 700 });
    expect(next?.position).toBe(c.position);
    encoder.close();
  });

  it('codes a 10 s pause until its packets settle and repeats them: the same stream, the tone after it coded as well', () => {
    // The worker's frames: 0.5 s of tone, a 10 s gap the stream fills with silence, 0.5 s of tone.
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    const gap = 480000;
    const frames = p.process([...toneFrames.slice(0, 25), ...toneFrames.slice(25, 50).map((f) => ({ ...f, position: f.position + gap }))])[0];
    p.close();
    const coding = vi.spyOn(OpusEncoder.prototype, 'encode');
    try {
      const encode = (list: AudioFrame[]) => {
        const encoder = new BranchOpusEncoder({ sampleRate: 48000, channels: 1, sampleFormat: 'f32' });
        coding.mockClear();
        const runs = list.map((f) => encoder.push(f)).filter((r): r is EncodedRun => r !== undefined);
        encoder.close();
        const repeat = runs.flatMap((r) => r.packets.map((_, i) => r.repeat?.[i] === true));
        return { packets: runs.flatMap((r) => r.packets), repeat, coded: coding.mock.calls.length };
      };
      const repeated = encode(frames);
      // The reference codes every packet: libopus itself, set up as the branch encoder is, fed 20 ms at a time.
      const input = concat(frames.map((f) => f.data as Float32Array));
      const libopus = new OpusEncoder({ sampleRate: 48000, channels: 1, bitrate: 32000, fec: false, complexity: DEFAULT_COMPLEXITY });
      const everyPacket = { packets: [] as Uint8Array[] };
      for (let i = 0; i + 960 <= input.length; i += 960) everyPacket.packets.push(Uint8Array.from(libopus.encode(input.subarray(i, i + 960))));
      libopus.close();
      const total = (48000 + gap) / 960;
      expect(repeated.packets).toHaveLength(total);
      expect(everyPacket.packets).toHaveLength(total);
      // The pause's 500 packets: coded until two in a row were the same (15-16 here), then repeated.
      expect(repeated.coded).toBeLessThan(total - 450);
      const hex = (x: Uint8Array) => Buffer.from(x).toString('hex');
      const pause = repeated.packets.slice(25, 25 + gap / 960).map(hex);
      expect(new Set(pause.slice(30)).size).toBe(1);
      expect(repeated.packets.slice(0, 40).map(hex)).toEqual(everyPacket.packets.slice(0, 40).map(hex));
      // Every packet not coded is marked a repeat, and is the packet before it again.
      expect(repeated.repeat.filter(Boolean)).toHaveLength(total - repeated.coded);
      repeated.repeat.forEach((r, i) => r && expect(repeated.packets[i]).toBe(repeated.packets[i - 1]));
      // A decoder that skips the repeats (a WHEP player gets none) decodes the tone after the pause
      // exactly as one that got them all; and they decode to silence.
      const skipping = decodeAll(repeated.packets.filter((_, i) => !repeated.repeat[i]));
      const all = decodeAll(repeated.packets);
      const after = repeated.repeat.lastIndexOf(true) + 1;
      expect(skipping.subarray(skipping.length - (total - after) * 960)).toEqual(all.subarray(after * 960));
      const firstRepeat = repeated.repeat.indexOf(true);
      expect(all.subarray(firstRepeat * 960, after * 960).every((v) => v === 0)).toBe(true);
      // Decoded: the pause as quiet as the reference's, the tone after it as close to what went in.
      const a = decodeAll(repeated.packets);
      const b = decodeAll(everyPacket.packets);
      const peakOf = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const quiet = [48000, 24000 + gap - 4800] as const;
      expect(peakOf(a.subarray(...quiet))).toBeLessThanOrEqual(peakOf(b.subarray(...quiet)) + 1e-4);
      const delay = 312; // the encoder's lookahead and the decoder's delay (Ogg Opus pre-skip)
      const snr = (x: Float32Array, from: number, to: number) => {
        let e = 0;
        let s = 0;
        for (let i = from; i < to; i++) {
          const d = x[i + delay] - input[i];
          e += d * d;
          s += input[i] * input[i];
        }
        return 10 * Math.log10(s / e);
      };
      const resume = 24000 + gap;
      for (const [from, to] of [[resume, resume + 2880], [resume, input.length - delay]]) {
        expect(snr(b, from, to)).toBeGreaterThan(10);
        expect(snr(a, from, to)).toBeGreaterThan(snr(b, from, to) - 1);
      }
    } finally {
      coding.mockRestore();
    }
  });

  it('says which formats it cannot code', () => {
    expect(opusEncodable({ sampleRate: 44100, channels: 1 })).toMatch(/not 44100 Hz/);
    expect(opusEncodable({ sampleRate: 16000, channels: 3 })).toMatch(/1 or 2 channels/);
    expect(opusEncodable({ sampleRate: 24000, channels: 2 })).toBeNull();
    expect(() => new BranchOpusEncoder({ sampleRate: 22050, channels: 1, sampleFormat: 'f32' })).toThrow(RangeError);
  });
});

describe('encoded packets in the batch format', () => {
  it('travel with the frame that completed them and decode to the processed tone', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'resample', sampleRate: 16000 }] }, { stages: [] }] });
    const outputs = p.process(toneFrames.slice(0, 25));
    const format = p.outputs[0];
    p.close();
    const encoder = new BranchOpusEncoder({ sampleRate: format.sampleRate, channels: 1, sampleFormat: 'f32' });
    const encoded = [outputs[0].map((f) => encoder.push(f))];
    encoder.close();
    const buffer = packOutput([{ key: 1, status: ItemStatus.OK, outputs, f32Mask: 0, pcm16Mask: 0b11, encoded }]);
    const reader = new OutputReader(buffer);
    const got: Array<{ branch: number; position: number; packets: Uint8Array[] }> = [];
    for (let k = reader.frameCount(0); k > 0; k--) {
      reader.next();
      if (reader.opus) got.push({ branch: reader.branch, position: reader.opusPosition, packets: reader.opus.map((x) => x.slice()) });
    }
    // Only the encoded branch carries packets: one per 20 ms frame here, at 960-sample steps.
    expect(got.every((g) => g.branch === 0)).toBe(true);
    expect(got.map((g) => g.position)).toEqual(encoded[0].filter(Boolean).map((r) => r!.position));
    expect(got.flatMap((g) => g.packets.map((x) => Array.from(x)))).toEqual(encoded[0].flatMap((r) => r?.packets.map((x) => Array.from(x)) ?? []));
    const decoded = decodeAll(got.flatMap((g) => g.packets));
    expect(dominantFrequency(decoded.subarray(4800), 48000)).toBeCloseTo(1000, -1);
  });
});
