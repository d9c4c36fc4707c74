/**
 * A peer's pipeline against a real worker pool: the recording is the same
 * whether its samples were quantized in the worker or on the main thread, a
 * subscriber that arrives mid-stream gets whole float frames from then on, in
 * order, and the stats see every frame either way. A pause of twenty
 * minutes in the middle of a stream is recorded whole.
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AudioFrame } from '../../src/media/frames.js';
import type { PeerPipeline } from '../../src/pipeline/peer-pipeline.js';
import { parsePipeline } from '../../src/pipeline/pipeline.js';
import { ProcessorRegistry } from '../../src/sinks/processors.js';
import { usePipelineRig } from '../helpers/pipeline-rig.js';
import { OpusDecoder, OPUS_MAX_FRAME_SAMPLES } from '../../wasm/opus.js';
import { isSharedZeros } from '../../src/media/shared-zeros.js';
import { readWav, rmsDb } from '../helpers/audio.js';
import { opusdec, opusinfo } from '../helpers/opus-tools.js';

const rig = usePipelineRig({ fixture: 'speech-48k.wav', frames: 100 });

function pipelineOf(name: string, doc: Record<string, unknown>): Promise<PeerPipeline> {
  return rig.open(name, parsePipeline({ name, ...doc }));
}

/** Pushes the frames at 2 ms intervals (faster than real time; the pool batches them) and runs `at(i)` before frame i; asserts no sink or stage failed. */
function feed(p: PeerPipeline, at?: (i: number) => void): Promise<unknown> {
  return rig.feed(p, { at, gapMs: 2 });
}

describe('PeerPipeline', () => {
  it('records the same file with samples quantized in the worker as with a subscriber reading floats all along', async () => {
    const sinks = [{ type: 'record', sampleFormat: 's16' }, { type: 'stats' }];
    // Nobody reads floats: the worker sends 16-bit copies only.
    const copies = await pipelineOf('copies', { sinks });
    await feed(copies);
    // A subscriber from the start: floats and copies both come.
    const floats = await pipelineOf('floats', { sinks });
    const seen: AudioFrame[] = [];
    floats.branches[0].audio$.subscribe((f) => seen.push(f));
    await feed(floats);
    expect(seen.length).toBeGreaterThan(90);
    for (const f of seen) expect(f.data).toBeInstanceOf(Float32Array);
    const a = await rig.recording('copies');
    const b = await rig.recording('floats');
    expect(a.length).toBe(80 + 2 * 960 * rig.frames.length);
    expect(a.equals(b)).toBe(true);
    // The stats saw every frame in both.
    expect(copies.stats.processing(0).framesProcessed).toBe(rig.frames.length);
    expect(floats.stats.processing(0).framesProcessed).toBe(rig.frames.length);
    expect(copies.stats.audio(performance.now()).sessionRmsDbfs).toBeCloseTo(floats.stats.audio(performance.now()).sessionRmsDbfs, 5);
  });

  it('records a 20-minute pause in the middle of a stream whole: its media time in the file, nothing dropped, the sound after it unchanged', async () => {
    const gap = 48000 * 60 * 20;
    const half = rig.frames.length / 2;
    const whole = await pipelineOf('unpaused', { sinks: [{ type: 'record' }] });
    await feed(whole);
    const problems: string[] = [];
    const paused = parsePipeline({
      name: 'paused',
      branches: {
        main: { stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] },
        float: { stages: [], sinks: [{ type: 'record', sampleFormat: 'f32' }] },
        // Processed audio is Opus-encoded in the worker: the pause is 60,000 packets of silence.
        coded: { stages: [{ type: 'gain', db: -1 }], sinks: [{ type: 'record', format: 'ogg-opus' }] },
      },
    });
    const p = await rig.open('paused', paused, { problems });
    // A subscriber of the f32 branch: the pause's frames come with samples of their own, which it may change.
    const kept: AudioFrame[] = [];
    p.branches[1].audio$.subscribe((f) => {
      if (f.peak === 0 && kept.length < 2) kept.push(f);
    });
    // What a WHEP listener of the coded branch gets: every 20 ms, the settled pause's packets marked as repeats.
    const heard = { packets: 0, repeats: 0, next: 0, contiguous: true };
    p.encodedAudio$('coded').subscribe((f) => {
      if (heard.packets > 0 && f.position !== heard.next) heard.contiguous = false;
      heard.next = f.position + f.samples;
      heard.packets++;
      if (f.repeat) heard.repeats++;
    });
    for (let i = 0; i < rig.frames.length; i++) {
      // The second half comes after the pause (a sender that stopped for 20 minutes, within a long media timeout).
      const f = rig.frames[i];
      p.push({ ...f, position: f.position + (i >= half ? gap : 0), arrival: performance.now() });
      await new Promise((r) => setTimeout(r, 2));
    }
    const infos = await p.close();
    expect(problems).toEqual([]);
    expect(infos).toHaveLength(3);
    const samples = 960 * rig.frames.length + gap;
    for (const info of infos) {
      if (info.format === 'ogg-opus') continue;
      expect(info.state).toBe('stopped');
      expect(info.seconds).toBe(samples / 48000);
      expect(info.droppedBytes).toBe(0);
      expect(info.droppedFrames).toBe(0);
      expect(info.gapSeconds).toBe(gap / 48000);
    }
    expect(infos.filter((i) => i.format === 'wav').map((i) => i.bytes).sort((a, b) => a - b)).toEqual([80 + 2 * samples, 94 + 4 * samples]);
    expect(p.stats.processing(0).framesProcessed).toBeGreaterThanOrEqual(rig.frames.length);
    // The s16 file: the first half, zeros, then the second half exactly as a recording without the pause has it.
    const unpaused = await rig.recording('unpaused');
    const s16 = infos.find((i) => i.sampleFormat === 's16')!;
    const fh = await open(join(rig.dir, 'paused', s16.name), 'r');
    try {
      const read = async (at: number, bytes: number) => {
        const b = Buffer.alloc(bytes);
        await fh.read(b, 0, bytes, at);
        return b;
      };
      const halfBytes = 2 * 960 * half;
      expect((await read(0, 80 + halfBytes)).subarray(80).equals(unpaused.subarray(80, 80 + halfBytes))).toBe(true);
      for (const at of [1, gap / 2, gap - 4800]) expect((await read(80 + halfBytes + 2 * at, 9600)).every((v) => v === 0)).toBe(true);
      expect((await read(80 + halfBytes + 2 * gap, halfBytes)).equals(unpaused.subarray(80 + halfBytes))).toBe(true);
    } finally {
      await fh.close();
    }
    // The Opus file: every 20 ms of the pause a whole packet (none replaced by an empty frame because
    // the disk fell behind), and the speech after it decodes at its place.
    const coded = infos.find((i) => i.format === 'ogg-opus')!;
    expect(coded.state).toBe('stopped');
    expect(coded.droppedBytes).toBe(0);
    // To the media's last sample: one packet more codes the encoder's lookahead, and the end is trimmed.
    expect(coded.seconds).toBe(samples / 48000);
    const packets = oggPackets(await readFile(join(rig.dir, 'paused', coded.name)));
    expect(packets).toHaveLength(samples / 960 + 1);
    expect(Math.min(...packets.map((x) => x.length))).toBeGreaterThan(2);
    expect(kept).toHaveLength(2);
    kept[0].data[0] = 0.5;
    expect(kept[1].data[0]).toBe(0);
    expect(kept[0].data.buffer).not.toBe(kept[1].data.buffer);
    expect(isSharedZeros(kept[1].data)).toBe(false);
    expect(heard).toMatchObject({ packets: samples / 960 + 1, contiguous: true });
    expect(heard.repeats).toBeGreaterThan(gap / 960 - 20);
    const resume = (960 * half + gap) / 960;
    const decoded = decodeRms(packets.slice(resume - 50));
    expect(Math.max(...decoded.slice(0, 40))).toBeLessThan(1e-4);
    expect(Math.max(...decoded.slice(50))).toBeGreaterThan(0.05);
  });

  it('ends a recording encoded in the worker at the media\'s last sample, whether the last frames close the stream or came before', async () => {
    const media = (960 * rig.frames.length) / 48000;
    for (const lastBatch of ['frames', 'empty'] as const) {
      const name = `ends-${lastBatch}`;
      const p = await pipelineOf(name, {
        branches: {
          coded: { stages: [{ type: 'gain', db: -1 }], sinks: [{ type: 'record', format: 'ogg-opus' }, { type: 'stats' }] },
          wav: { stages: [{ type: 'gain', db: -1 }], sinks: [{ type: 'record' }] },
        },
      });
      for (const f of rig.frames) p.push({ ...f, arrival: performance.now() });
      if (lastBatch === 'empty') {
        // Every frame processed before the close: the closing batch carries no frame of the branch.
        const deadline = Date.now() + 10_000;
        while (p.stats.processing(0).framesProcessed < rig.frames.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        expect(p.stats.processing(0).framesProcessed).toBe(rig.frames.length);
      }
      const infos = await p.close();
      const coded = infos.find((i) => i.format === 'ogg-opus')!;
      expect(coded.seconds, lastBatch).toBe(media);
      const path = join(rig.dir, name, coded.name);
      await opusinfo(path);
      const decoded = (await opusdec(path)).channels[0];
      expect(decoded.length, lastBatch).toBe(960 * rig.frames.length);
      // The last 6.5 ms (the encoder's lookahead, not coded before) holds the audio the WAV has there.
      const wav = (await readWav(join(rig.dir, name, infos.find((i) => i.format === 'wav')!.name))).channels[0];
      const tail = (x: Float32Array) => rmsDb(x.subarray(x.length - 312));
      expect(tail(wav), 'the fixture is not silent there').toBeGreaterThan(-50);
      expect(Math.abs(tail(decoded) - tail(wav)), lastBatch).toBeLessThan(3);
    }
  });

  it('answers an unknown branch with EARSHOT_BRANCH_NOT_FOUND, naming the branches there are', async () => {
    const processors = new ProcessorRegistry();
    processors.register('count', () => ({ next() {} }));
    const p = await rig.open('branches', parsePipeline({ name: 'branches', branches: { main: { stages: [], sinks: [{ type: 'stats' }] }, low: { stages: [{ type: 'gain', db: -6 }], sinks: [{ type: 'stats' }] } } }), { processors });
    const unknown = { code: 'EARSHOT_BRANCH_NOT_FOUND', statusCode: 404, message: 'The pipeline of peer "branches" has no branch "nope"; its branches: main, low.' };
    expect(() => p.attachProcessor('count', {}, 'nope')).toThrow(expect.objectContaining(unknown));
    expect(() => p.addListener({ write() {}, end() {} } as never, 'nope')).toThrow(expect.objectContaining(unknown));
    expect(() => p.encodedAudio$('nope')).toThrow(expect.objectContaining(unknown));
    await p.close();
  });

  it('starts, on a POST before any audio, the on-demand branch and not the archive armed for the first frame; that alone, once nothing else is left', async () => {
    const p = await pipelineOf('armed', { branches: { archive: { stages: [], sinks: [{ type: 'record' }] }, clean: { stages: [], sinks: [{ type: 'record', autoStart: false }] } } });
    const started = await p.startRecording('take');
    expect(started.map((r) => r.name)).toEqual(['take-clean.wav']);
    // Every branch not armed records: the armed archive's file is opened at once (as in a pipeline with only it).
    expect((await p.startRecording()).map((r) => r.name)).toEqual([expect.stringMatching(/-archive\.wav$/)]);
    await p.stopRecording();
    await p.close();
  });

  it('gives a subscriber that comes mid-stream whole float frames, contiguous from its first one', async () => {
    const p = await pipelineOf('late', { sinks: [{ type: 'record' }, { type: 'stats' }] });
    const seen: AudioFrame[] = [];
    await feed(p, (i) => {
      if (i === 40) p.branches[0].audio$.subscribe((f) => seen.push(f));
    });
    expect(seen.length).toBeGreaterThan(40);
    for (const f of seen) {
      expect(f.sampleFormat).toBe('f32');
      expect(f.data).toBeInstanceOf(Float32Array);
      expect(f.data.length).toBe(960);
    }
    for (let i = 1; i < seen.length; i++) expect(seen[i].position).toBe(seen[i - 1].position + 960);
    expect(seen[seen.length - 1].position).toBe(960 * (rig.frames.length - 1));
    // The recording has every frame.
    expect((await rig.recording('late')).length).toBe(80 + 2 * 960 * rig.frames.length);
  });
});

/** The audio packets of an Ogg Opus file (after its two header pages), checking nothing but the layout. */
function oggPackets(file: Buffer): Buffer[] {
  const packets: Buffer[] = [];
  let partial: Buffer[] = [];
  for (let o = 0, page = 0; o < file.length; page++) {
    const n = file[o + 26];
    let at = o + 27 + n;
    for (let k = 0; k < n; k++) {
      const len = file[o + 27 + k];
      partial.push(file.subarray(at, at + len));
      at += len;
      if (len < 255) {
        if (page >= 2) packets.push(Buffer.concat(partial));
        partial = [];
      }
    }
    o = at;
  }
  return packets;
}

/** RMS of each packet decoded, in order, by one decoder. */
function decodeRms(packets: readonly Uint8Array[]): number[] {
  const decoder = new OpusDecoder(1);
  const out = new Float32Array(OPUS_MAX_FRAME_SAMPLES);
  try {
    return packets.map((p) => {
      const n = decoder.decode(p, out);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += out[i] * out[i];
      return Math.sqrt(sum / n);
    });
  } finally {
    decoder.close();
  }
}
