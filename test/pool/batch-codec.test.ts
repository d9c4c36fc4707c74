/**
 * The packed batch format between the main thread and pool workers: what
 * goes in comes out, every field of a frame survives the trip, and a branch
 * gets float samples, a 16-bit copy, or both, as the masks ask.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BranchOpusEncoder } from '../../src/dsp/opus-encode.js';
import { loadDspModules, StreamProcessor } from '../../src/dsp/stream-processor.js';
import { branchFormatOf, type AudioFrame, type EncodedFrame } from '../../src/media/frames.js';
import { ALL_BRANCHES, COUNTER_KEYS, ItemFlag, ItemStatus, packInput, unpackInput } from '../../src/pool/batch-codec.js';
import { OutputReader, packOutput, type OutputItem } from '../../src/pool/batch-output.js';
import { quantizeS16 } from '../../src/media/pcm16.js';
import { isSharedZeros } from '../../src/media/shared-zeros.js';
import { encodeOpusFrames } from '../helpers/audio.js';
import { readFixture } from '../helpers/fixtures.js';

let frames: EncodedFrame[];

beforeAll(async () => {
  await loadDspModules();
  frames = encodeOpusFrames((await readFixture('speech-noisy-48k.wav')).channels[0].subarray(0, 960 * 25));
});

/** Every frame of every item, read back as (branch, frame, pcm16, complete). */
function readAll(buffer: ArrayBuffer) {
  const r = new OutputReader(buffer);
  const items: Array<{ key: number; status: number; frames: Array<{ branch: number; frame: AudioFrame; pcm16?: Int16Array; complete: boolean }> }> = [];
  for (let i = 0; i < r.items; i++) {
    const got: (typeof items)[number]['frames'] = [];
    r.frames(i, (branch, frame, pcm16, complete) => got.push({ branch, frame, pcm16, complete }));
    items.push({ key: r.key(i), status: r.status(i), frames: got });
  }
  return items;
}

describe('batch codec', () => {
  it('carries Opus frames, lost ones included, in order per item', () => {
    const a = frames.slice(0, 5).map((f, i) => (i === 2 ? { ...f, payload: null } : f));
    const b = frames.slice(5, 8);
    const buffer = packInput([
      { key: 7, frames: a, flags: 0, f32Mask: ALL_BRANCHES, pcm16Mask: 0, opusMask: 0 },
      { key: 9, frames: [], flags: ItemFlag.CLOSE | ItemFlag.PCM, f32Mask: 1, pcm16Mask: 2, opusMask: 0 },
      { key: 11, frames: b, flags: ItemFlag.CLOSE, f32Mask: 0, pcm16Mask: 1, opusMask: 0 },
    ]);
    const items = unpackInput(buffer);
    expect(items.map((i) => [i.key, i.flags, i.f32Mask, i.pcm16Mask, i.frames.length])).toEqual([
      [7, 0, ALL_BRANCHES, 0, 5],
      [9, ItemFlag.CLOSE | ItemFlag.PCM, 1, 2, 0],
      [11, ItemFlag.CLOSE, 0, 1, 3],
    ]);
    const sent = [...a, ...b];
    const got = [...items[0].frames, ...items[2].frames];
    got.forEach((f, i) => {
      expect(f.position).toBe(sent[i].position);
      expect(f.samples).toBe(sent[i].samples);
      expect(f.arrival).toBe(sent[i].arrival);
      if (sent[i].payload === null) expect(f.payload).toBeNull();
      else expect(Array.from(f.payload!)).toEqual(Array.from(sent[i].payload!));
    });
  });

  it('brings back every field of a frame a denoising stream produced, and the counters', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }, { stages: [{ type: 'format', sampleFormat: 's16' }] }] });
    const outputs = p.process(frames);
    const counters = { ...p.counters };
    p.close();
    const item: OutputItem = { key: 3, status: ItemStatus.OK, outputs, counters, f32Mask: ALL_BRANCHES, pcm16Mask: 0 };
    const [back] = readAll(packOutput([item]));
    const sent = outputs.flatMap((list, branch) => list.map((frame) => ({ branch, frame })));
    expect(back.frames).toHaveLength(sent.length);
    back.frames.forEach((g, i) => {
      const s = sent[i];
      expect(g.branch).toBe(s.branch);
      expect(g.complete).toBe(true);
      // Every field the worker produced, nothing more, nothing less.
      expect(Object.keys(g.frame).sort()).toEqual(Object.keys(s.frame).sort());
      const { data, ...rest } = g.frame;
      const { data: sentData, ...sentRest } = s.frame;
      expect(rest).toEqual(sentRest);
      expect(data.constructor).toBe(sentData.constructor);
      expect(Array.from(data)).toEqual(Array.from(sentData));
    });
    const reader = new OutputReader(packOutput([item]));
    expect(reader.hasCounters(0)).toBe(true);
    expect(reader.counters(0, { decoded: 0, concealed: 0, corrupt: 0, silenceSamples: 0, late: 0 })).toEqual(counters);
  });

  it('lists every counter a stream keeps', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [{ type: 'denoise' }] }] });
    p.process(frames.slice(0, 3));
    const keys = Object.keys(p.counters);
    p.close();
    for (const k of keys) expect(COUNTER_KEYS as readonly string[]).toContain(k);
  });

  it('sends a branch only its 16-bit copy when nobody reads its floats, quantized like a recording', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [] }, { stages: [] }, { stages: [] }] });
    const outputs = p.process(frames.slice(0, 4));
    p.close();
    const floats = outputs.map((list) => list.map((f) => (f.data as Float32Array).slice()));
    // Branch 0: floats only; branch 1: the 16-bit copy only; branch 2: both.
    const buffer = packOutput([{ key: 1, status: ItemStatus.OK, outputs, f32Mask: 0b101, pcm16Mask: 0b110 }]);
    const [back] = readAll(buffer);
    for (const g of back.frames) {
      const i = back.frames.filter((x) => x.branch === g.branch).indexOf(g);
      const expected = new Int16Array(floats[g.branch][i].length);
      quantizeS16(floats[g.branch][i], expected);
      if (g.branch === 0) {
        expect(g.complete).toBe(true);
        expect(g.pcm16).toBeUndefined();
        expect(Array.from(g.frame.data)).toEqual(Array.from(floats[0][i]));
      } else if (g.branch === 1) {
        expect(g.complete).toBe(false);
        expect(g.frame.sampleFormat).toBe('s16');
        expect(Array.from(g.pcm16!)).toEqual(Array.from(expected));
        expect(g.frame.data).toBe(g.pcm16);
      } else {
        expect(g.complete).toBe(true);
        expect(g.frame.sampleFormat).toBe('f32');
        expect(Array.from(g.frame.data)).toEqual(Array.from(floats[2][i]));
        expect(Array.from(g.pcm16!)).toEqual(Array.from(expected));
      }
    }
  });

  it('gives a pause the stream filled with silence a 16-bit copy of zeros, and the sound around it its quantized samples', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    // Two packets, 100 ms with none (DTX), two packets.
    const sent = [...frames.slice(0, 2), ...frames.slice(7, 9)];
    const outputs = p.process(sent);
    p.close();
    const floats = outputs[0].map((f) => (f.data as Float32Array).slice());
    expect(outputs[0].map((f) => [f.position, f.data.length, f.peak === 0])).toEqual([
      [0, 960, false],
      [960, 960, false],
      [1920, 4800, true],
      [6720, 960, false],
      [7680, 960, false],
    ]);
    // A buffer given back holds an earlier batch's samples: the zeros must be written, not assumed.
    const spare = new ArrayBuffer(1 << 17);
    new Uint8Array(spare).fill(0xab);
    const [back] = readAll(packOutput([{ key: 1, status: ItemStatus.OK, outputs, f32Mask: 0, pcm16Mask: 1 }], spare));
    back.frames.forEach((g, i) => {
      const expected = new Int16Array(floats[i].length);
      quantizeS16(floats[i], expected);
      expect(Array.from(g.pcm16!)).toEqual(Array.from(expected));
    });
    expect(back.frames[2].pcm16!.every((v) => v === 0)).toBe(true);
  });

  it('sends a 20-minute gap by its length: a small buffer, zeros of the right length, floats each reader may keep and change', () => {
    // A 16 kHz branch (the resampler cannot skip silence) beside the decoded audio as is.
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [] }, { stages: [{ type: 'resample', sampleRate: 16000 }] }] });
    const gap = 48000 * 1200;
    const sent = [frames[0], frames[1], { ...frames[2], position: 960 * 2 + gap }];
    const outputs = p.process(sent);
    p.close();
    expect(outputs[0].reduce((n, f) => n + f.data.length, 0)).toBe(960 * 3 + gap);
    // Less the resampler's delay (48 samples), which the stream's end would bring out.
    expect(outputs[1].reduce((n, f) => n + f.data.length, 0)).toBe(320 * 3 + gap / 3 - 48);
    const buffer = packOutput([{ key: 1, status: ItemStatus.OK, outputs, f32Mask: 2, pcm16Mask: 3 }]);
    // As bytes, the gap would be 115 MB of 16-bit copies plus 77 MB of 16 kHz floats.
    expect(buffer.byteLength).toBeLessThan(1024 * 1024);
    const [back] = readAll(buffer);
    const silent = back.frames.filter((g) => g.frame.peak === 0);
    // 1 s chunks in each branch; the resampler's first one after the audio holds its filter's tail.
    expect(silent.length).toBeGreaterThanOrEqual(2 * 1200 - 2);
    const heard = back.frames.filter((g) => g.frame.peak > 0);
    expect(heard.length).toBeGreaterThanOrEqual(4); // the packets either side, in each branch
    for (const g of silent) {
      expect(g.pcm16!.length).toBe(g.frame.data.length);
      expect(g.pcm16!.every((v) => v === 0)).toBe(true);
      if (g.branch === 1) {
        expect(g.complete).toBe(true);
        expect(g.frame.data).toBeInstanceOf(Float32Array);
        expect(g.frame.data.every((v) => v === 0)).toBe(true);
      } else {
        expect(g.complete).toBe(false);
        expect(g.frame.data).toBe(g.pcm16);
      }
    }
    // The 16 kHz frames' floats are arrays of their own: writing one leaves the others zero.
    const [a, b] = silent.filter((g) => g.branch === 1);
    a.frame.data[0] = 0.5;
    expect(b.frame.data[0]).toBe(0);
    expect(a.frame.data.buffer).not.toBe(b.frame.data.buffer);
    const positions = back.frames.filter((g) => g.branch === 0).map((g) => [g.frame.position, g.frame.data.length]);
    positions.slice(1).forEach(([pos], i) => expect(pos).toBe(positions[i][0] + positions[i][1]));
    // A reader whose caller copies for code that may write (sharedZeros) gets those floats as shared zeros.
    const r = new OutputReader(buffer);
    const shared: boolean[] = [];
    for (let k = 0; k < r.frameCount(0); k++) {
      r.next(true);
      if (r.branch === 1 && r.frame!.peak === 0) shared.push(isSharedZeros(r.frame!.data));
    }
    expect(shared.length).toBeGreaterThanOrEqual(1200 - 1);
    expect(shared.every(Boolean)).toBe(true);
  });

  it('carries a settled pause\'s Opus packets marked as repeats, their bytes stored once a frame, each packet at its place', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    const gap = 48000 * 1200;
    const outputs = p.process([frames[0], frames[1], { ...frames[2], position: 960 * 2 + gap }]);
    const encoder = new BranchOpusEncoder(branchFormatOf(p.outputs[0]));
    p.close();
    // And a 2 s frame (as a PCM input's might be) of another pause and then sound: its repeats come before its sound.
    const last = outputs[0][outputs[0].length - 1];
    const onset = new Float32Array(96000);
    for (let k = 72000; k < onset.length; k++) onset[k] = 0.3 * Math.sin(k / 5);
    outputs[0].push({ ...last, position: last.position + last.data.length, data: onset, peak: 0.3, rms: 0.2 });
    const runs = outputs[0].map((f) => encoder.push(f));
    encoder.close();
    const item: OutputItem = { key: 1, status: ItemStatus.OK, outputs, f32Mask: 0, pcm16Mask: 1, encoded: [runs] };
    // 60,000 packets of 3 bytes or more, each with its length: 300 KB if every one were stored.
    // A repeat costs its length field: 2 bytes.
    const bytesFor = (it: OutputItem) => {
      let needed = 0;
      packOutput([it], (bytes) => void (needed = bytes));
      return needed;
    };
    expect(bytesFor(item) - bytesFor({ ...item, encoded: undefined })).toBeLessThan(2 * 60_100 + 16 * outputs[0].length + 8192);
    const r = new OutputReader(packOutput([item]));
    const back: Array<{ position: number; packets: Uint8Array[]; repeat?: boolean[] } | undefined> = [];
    r.frames(0, () => back.push(r.opus && { position: r.opusPosition, packets: r.opus, repeat: r.opusRepeat }));
    expect(back).toHaveLength(runs.length);
    const hex = (x: Uint8Array) => Buffer.from(x).toString('hex');
    const flags = (run: { packets: unknown[]; repeat?: boolean[] }) => run.packets.map((_, i) => run.repeat?.[i] === true);
    back.forEach((got, i) => {
      const sent = runs[i];
      if (!sent) return expect(got).toBeUndefined();
      expect(got!.position).toBe(sent.position);
      expect(flags(got!)).toEqual(flags(sent));
      expect(got!.packets.map(hex)).toEqual(sent.packets.map(hex));
    });
    // All of the pause but the packets libopus took to settle; in the last frame, its pause's packets
    // coded until they settled, then repeats, then its 25 packets of sound.
    expect(runs.flatMap((x) => (x ? flags(x) : [])).filter(Boolean).length).toBeGreaterThan(gap / 960 - 50);
    const tail = flags(runs[runs.length - 1]!);
    const settled = tail.indexOf(true);
    expect(settled).toBeGreaterThan(0);
    expect(settled).toBeLessThan(30);
    expect(tail).toEqual([...new Array<boolean>(settled).fill(false), ...new Array<boolean>(75 - settled).fill(true), ...new Array<boolean>(25).fill(false)]);
  });

  it('packs into a buffer given back when it is large enough, and says when a batch holds copies only', () => {
    const p = new StreamProcessor({ channels: 1, branches: [{ stages: [] }] });
    const outputs = p.process(frames.slice(0, 6));
    p.close();
    const copiesOnly = { key: 1, status: ItemStatus.OK, outputs, f32Mask: 0, pcm16Mask: 1 };
    const first = packOutput([copiesOnly]);
    expect(new OutputReader(first).onlyCopies()).toBe(true);
    const expected = readAll(first)[0].frames.map((g) => Array.from(g.pcm16!));
    // Dirty it, give it back: the next batch overwrites what it uses.
    new Uint8Array(first).fill(0xa5);
    const second = packOutput([copiesOnly], first);
    expect(second).toBe(first);
    expect(readAll(second)[0].frames.map((g) => Array.from(g.pcm16!))).toEqual(expected);
    expect(packOutput([copiesOnly], new ArrayBuffer(64))).not.toBe(first);
    expect(new OutputReader(packOutput([{ ...copiesOnly, f32Mask: 1 }])).onlyCopies()).toBe(false);
  });

  it('reports a stream the worker no longer had, and one that failed, without frames or counters', () => {
    const buffer = packOutput([
      { key: 1, status: ItemStatus.MISSING, outputs: [], f32Mask: ALL_BRANCHES, pcm16Mask: 0 },
      { key: 2, status: ItemStatus.ERROR, outputs: [], f32Mask: ALL_BRANCHES, pcm16Mask: 0 },
    ]);
    const r = new OutputReader(buffer);
    expect([r.status(0), r.status(1)]).toEqual([ItemStatus.MISSING, ItemStatus.ERROR]);
    expect([r.frameCount(0), r.frameCount(1)]).toEqual([0, 0]);
    expect([r.hasCounters(0), r.hasCounters(1)]).toEqual([false, false]);
  });
});
