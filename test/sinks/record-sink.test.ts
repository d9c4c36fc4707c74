/**
 * The record sink's lifecycle and its failures: armed recordings create their
 * file with the first frame (none without media), a recording that cannot
 * start says why, and the naming rule is one function shared with pipeline
 * validation. The preflight for `required` recording: recording-preflight.test.ts.
 */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AudioFrame } from '../../src/media/frames.js';
import type { EarshotError } from '../../src/errors.js';
import { RecordSink } from '../../src/sinks/record-sink.js';
import type { RecordingInfo } from '../../src/sinks/recorder.js';
import { recordingBaseName, recordingNameProblem } from '../../src/sinks/recording-names.js';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';
import { fileBytes } from '../helpers/wav-files.js';
import { until } from '../helpers/until.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-sink-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const frame = (position: number, n = 960): AudioFrame => ({
  position,
  sampleRate: 48000,
  channels: 1,
  sampleFormat: 'f32',
  data: new Float32Array(n).fill(0.25),
  rms: 0,
  peak: 0,
  arrival: 0,
});

function sink(store = new RecordingsStore(dir), baseName = 'demo-alice') {
  const failures: Array<{ error: EarshotError; info: RecordingInfo }> = [];
  const s = new RecordSink({
    store,
    peer: 'alice',
    baseName,
    sampleRate: 48000,
    channels: 1,
    sampleFormat: 's16',
    onFailed: (error, info) => failures.push({ error, info }),
  });
  return { s, failures };
}

describe('RecordSink', () => {
  it('writes a recording in the format the worker reports, waiting for the report when started before it', async () => {
    await mkdir(dir, { recursive: true });
    let report!: (format: { sampleRate: number; channels: number }) => void;
    const reportedFormat = new Promise<{ sampleRate: number; channels: number }>((resolve) => (report = resolve));
    const s = new RecordSink({
      store: new RecordingsStore(dir),
      peer: 'alice',
      baseName: 'demo-alice',
      // What the pipeline expected; a custom stage made it 16 kHz stereo.
      sampleRate: 48000,
      channels: 1,
      reportedFormat,
      sampleFormat: 's16',
      onFailed: (error) => {
        throw error;
      },
    });
    let started = false;
    const starting = s.start('explicit').then((info) => ((started = true), info));
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toBe(false);
    report({ sampleRate: 16000, channels: 2 });
    expect(await starting).toMatchObject({ sampleRate: 16000, channels: 2 });
    s.write({ ...frame(0, 640), sampleRate: 16000, channels: 2 });
    const info = await s.stop();
    expect(info).toMatchObject({ sampleRate: 16000, channels: 2, seconds: 0.02 });
    const wav = new wavefile.WaveFile(await readFile(join(dir, 'explicit.wav')));
    expect(wav.fmt).toMatchObject({ sampleRate: 16000, numChannels: 2 });
  });

  it('leaves no file for an armed recording whose session ends without media', async () => {
    const { s, failures } = sink();
    s.arm(true);
    expect(s.active).toBe(true);
    expect(s.armed).toBe(true);
    expect(await s.finalize()).toBeUndefined();
    expect(s.info()).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
    expect(failures).toEqual([]);
  });

  it('creates the armed file with the first frame, anchored at position 0, keeping the frames that arrive while it opens', async () => {
    const { s } = sink();
    s.arm(true);
    expect(await readdir(dir)).toEqual([]);
    s.write(frame(960)); // the first 960 samples of the stream were lost
    s.write(frame(1920));
    s.write(frame(2880));
    expect(s.armed).toBe(false);
    const info = (await s.finalize())!;
    expect(info).toMatchObject({ name: 'demo-alice.wav', state: 'stopped', gapFrames: 960, droppedFrames: 0 });
    expect(info.seconds * 48000).toBe(3840);
    expect(await readdir(dir)).toEqual(['demo-alice.wav']);
    const wav = new wavefile.WaveFile(await readFile(join(dir, 'demo-alice.wav')));
    expect((wav.getSamples(true, Float64Array) as unknown as Float64Array).length).toBe(3840);
  });

  it('counts loss reported while armed into the recording that then starts', async () => {
    const { s } = sink();
    s.arm(true);
    s.noteLoss({ queueFull: 2 }, 1920);
    s.write(frame(0));
    s.noteLoss({ late: 1 });
    const info = (await s.finalize())!;
    expect(info.droppedBy).toEqual({ queueFull: 2, late: 1, workerRestart: 0, stageFailed: 0, backlog: 0, processorStage: 0 });
    expect(info.gapFrames).toBe(1920);
  });

  it('a generated name may end like the other format (a peer called "x.opus"); a chosen one may not', async () => {
    const { s } = sink(new RecordingsStore(dir), 'room-x.opus');
    s.arm(true);
    s.write(frame(0));
    await until('the automatic recording to start', async () => (s.active ? true : undefined));
    expect((await s.stop()).name).toBe('room-x.opus.wav');
    await expect(s.start('take.opus')).rejects.toMatchObject({ code: 'EARSHOT_RECORDING_NAME_INVALID', message: expect.stringMatching(/it ends in \.opus, but this recording is WAV/) });
  });

  it('an explicit start replaces an armed recording and creates its file at once', async () => {
    const { s } = sink();
    s.arm(true);
    const info = await s.start('interview');
    expect(info.name).toBe('interview.wav');
    expect(await readdir(dir)).toEqual(['interview.wav']);
    await s.stop();
  });

  it('keeps the armed recording when an explicit start fails for its name', async () => {
    const { s, failures } = sink();
    await writeFile(join(dir, 'taken.wav'), '');
    s.arm(true);
    await expect(s.start('taken')).rejects.toMatchObject({ code: 'EARSHOT_RECORDING_EXISTS' });
    expect(s.armed).toBe(true);
    expect(failures).toEqual([]);
  });

  it('a recording that cannot start reports failed with the reason, once, and leaves no file', async () => {
    const root = join(dir, 'recordings');
    const store = new RecordingsStore(root);
    await writeFile(root, 'not a directory');
    const { s, failures } = sink(store);
    s.arm(true);
    s.write(frame(0));
    s.write(frame(960));
    await new Promise((r) => setTimeout(r, 50));
    expect(failures).toHaveLength(1);
    expect(failures[0].error.code).toBe('EARSHOT_RECORDINGS_DIR_UNWRITABLE');
    expect(failures[0].error.message).toMatch(/ENOTDIR.*not a directory/);
    expect(failures[0].error.message).not.toMatch(/Create the directory/);
    expect(s.info()).toMatchObject({ state: 'failed', code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE', bytes: 0 });
    expect(s.active).toBe(false);
    s.write(frame(1920)); // frames after the failure are ignored, not retried per frame
    expect(failures).toHaveLength(1);
    expect(await s.finalize()).toMatchObject({ state: 'failed' });
    // The files it made: none (a session's end names no file that never existed).
    expect(s.made()).toEqual([]);
  });

  it('recordings whose generated names are the same, starting at the same moment, each get a file of their own', async () => {
    // Sessions (or branches) whose template gives one name: each was checked free, then all but one
    // lost their recording (EARSHOT_RECORDING_EXISTS) when their files were created.
    const store = new RecordingsStore(dir);
    const sinks = Array.from({ length: 6 }, () => sink(store));
    for (const { s } of sinks) {
      s.arm(true);
      s.write(frame(0));
    }
    const infos = await Promise.all(sinks.map(({ s }) => s.finalize()));
    expect(sinks.flatMap(({ failures }) => failures)).toEqual([]);
    expect(infos.map((i) => i?.state)).toEqual(Array(6).fill('stopped'));
    expect((await readdir(dir)).sort()).toEqual(['demo-alice-2.wav', 'demo-alice-3.wav', 'demo-alice-4.wav', 'demo-alice-5.wav', 'demo-alice-6.wav', 'demo-alice.wav']);
  });

  it('a file where the recording\'s directory should be is the directory that cannot be written, not a recording that exists', async () => {
    await mkdir(join(dir, 'calls'), { recursive: true });
    await writeFile(join(dir, 'calls', 'blocked'), '');
    const { s, failures } = sink(new RecordingsStore(dir), 'calls/blocked/demo-alice');
    s.arm(true);
    s.write(frame(0));
    await s.finalize();
    expect(failures).toHaveLength(1);
    expect(failures[0].error.code).toBe('EARSHOT_RECORDINGS_DIR_UNWRITABLE');
    expect(failures[0].error.message).toMatch(/a file is where a directory should be/);
  });

  it('a name the client chose that needs a recording to be a directory is its conflict: 409 naming that recording, no path of the server', async () => {
    await writeFile(join(dir, 'a.wav'), '');
    const { s } = sink();
    const refused = await s.start('a.wav/x').catch((e: unknown) => e as EarshotError);
    expect(refused).toMatchObject({ code: 'EARSHOT_RECORDING_EXISTS', statusCode: 409 });
    expect((refused as EarshotError).message).toBe('The recording name "a.wav/x.wav" cannot be used: "a.wav" is a recording, not a directory; choose another name.');
    expect((refused as EarshotError).message).not.toContain(dir);
  });

  it('answers a stop of an armed-only recording with "not recording" and disarms it', async () => {
    const { s } = sink();
    s.arm(true);
    await expect(s.stop()).rejects.toMatchObject({ code: 'EARSHOT_RECORDING_NOT_ACTIVE' });
    expect(s.active).toBe(false);
  });
});

describe('recording names', () => {
  it('one rule: the store and validation agree on what is a name', () => {
    expect(recordingNameProblem('calls/demo/a-b.wav')).toBeUndefined();
    expect(recordingNameProblem('..r/x.wav')?.segment).toBe(0);
    expect(recordingNameProblem('a/..../x.wav')?.segment).toBe(1);
    expect(recordingNameProblem('a//x.wav')?.message).toMatch(/empty path segment/);
    expect(recordingNameProblem('a/b/c/d/e/x.wav')).toMatchObject({ segment: -1 });
    expect(recordingNameProblem(`${'x'.repeat(125)}.wav`)?.message).toMatch(/129 characters/);
    for (const bad of ['..r/x', '....', 'a//x', 'a/b/c/d/e/x']) expect(() => RecordingsStore.checkName(bad)).toThrow(/not allowed/);
  });

  it('shortens a generated name that long room and peer names push over the limit, instead of losing the recording', () => {
    const vars = { room: 'r'.repeat(64), peer: 'p'.repeat(64), date: '20261124-101500', time: '101500', session: 'abcdef01', branch: 'main', pipeline: 'default' };
    const base = recordingBaseName(undefined, vars, false);
    expect(base.length).toBe(120);
    expect(() => RecordingsStore.checkName(`${base}-999`)).not.toThrow();
    // The room and peer are shortened, not the date after them.
    expect(base).toMatch(/^r+-p+-20261124-101500$/);
    // With two branches, each keeps its suffix: the two files never get the same name (one was lost).
    const [a, b] = ['a', 'b'].map((branch) => recordingBaseName(undefined, { ...vars, branch }, true));
    expect(a).toMatch(/^r+-p+-20261124-101500-a$/);
    expect(b).toMatch(/^r+-p+-20261124-101500-b$/);
    expect(a.length).toBeLessThanOrEqual(120);
    expect(recordingBaseName({ directory: 'calls/{room}' }, { ...vars, room: 'demo' }, false)).toBe(`calls/demo/demo-${'p'.repeat(64)}-20261124-101500`);
  });
});

describe('a WAV recording past the 4 GiB a RIFF file can hold', () => {
  it('goes on as RF64 with every frame, stops whole, and is listed with its whole duration', async () => {
    const store = new RecordingsStore(dir);
    const { s, failures } = sink(store);
    s.arm(true);
    s.write(frame(0));
    // 12.4 hours of s16 mono later (a gap: silence the file is extended over, no blocks written),
    // a frame that crosses the 4 GiB a RIFF size can say, and one after it.
    await new Promise((r) => setTimeout(r, 50));
    const riffFrames = Math.floor((0xffffffff - (80 - 8)) / 2);
    const tone = (position: number): AudioFrame => {
      const data = Float32Array.from({ length: 960 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * (position + i)) / 48000));
      return { ...frame(position), data, peak: 0.5 };
    };
    const crossing = riffFrames - 480;
    s.write(tone(crossing));
    s.write(tone(crossing + 960));
    const frames = crossing + 1920;
    const info = (await s.finalize(frames))!;
    expect(failures).toEqual([]);
    expect(info).toMatchObject({ state: 'stopped', bytes: 80 + frames * 2 });
    expect(info.seconds).toBeCloseTo(frames / 48000, 6);
    const [name] = await readdir(dir);
    expect(await store.describe(name)).toMatchObject({ format: 'wav', bytes: 80 + frames * 2, sampleRate: 48000, channels: 1, seconds: frames / 48000 });
    // The file: RF64, its sizes in ds64, and both tone frames at its end, the second all past 4 GiB.
    const path = join(dir, name);
    expect((await stat(path)).size).toBe(80 + frames * 2);
    const header = await fileBytes(path, 0, 80);
    expect([header.toString('ascii', 0, 4), header.toString('ascii', 12, 16), header.readBigUInt64LE(28), header.readUInt32LE(76)]).toEqual(['RF64', 'ds64', BigInt(frames * 2), 0xffffffff]);
    const tail = await fileBytes(path, 80 + crossing * 2, 1920 * 2);
    const expected = [...tone(crossing).data, ...tone(crossing + 960).data];
    for (let i = 0; i < 1920; i++) expect(Math.abs(tail.readInt16LE(2 * i) / 32768 - expected[i])).toBeLessThan(1e-4);
  });
});
