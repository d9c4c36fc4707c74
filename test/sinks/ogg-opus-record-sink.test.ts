/**
 * The record sink in "ogg-opus" mode: it takes the encoded packets (and
 * ignores PCM frames), creates its `.opus` file with the first packet when
 * armed, keeps packets that arrive while the file opens, names chosen files
 * `.opus`, picks stereo when the first packet is coded stereo, and the store
 * lists and describes the result from the file.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AudioFrame } from '../../src/media/frames.js';
import type { EarshotError } from '../../src/errors.js';
import { RecordSink } from '../../src/sinks/record-sink.js';
import type { RecordingInfo } from '../../src/sinks/recorder.js';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';
import { encodeOpusFrames } from '../helpers/audio.js';
import { opusinfo } from '../helpers/opus-tools.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-oggsink-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function tone(seconds: number, channels: 1 | 2 = 1): Float32Array {
  const n = Math.round(seconds * 48000);
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) out[i * channels + c] = 0.4 * Math.sin((2 * Math.PI * 1000 * i) / 48000);
  return out;
}

function sink(channels: 1 | 2 = 1) {
  const failures: Array<{ error: EarshotError; info: RecordingInfo }> = [];
  const store = new RecordingsStore(dir);
  const s = new RecordSink({ store, peer: 'alice', baseName: 'calls/demo-alice', sampleRate: 48000, channels, sampleFormat: 's16', format: 'ogg-opus', onFailed: (error, info) => failures.push({ error, info }) });
  return { s, store, failures };
}

const pcmFrame: AudioFrame = { position: 0, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data: new Float32Array(960).fill(0.25), rms: 0, peak: 0, arrival: 0 };

describe('RecordSink with format "ogg-opus"', () => {
  it('armed: the first packet creates "<base>.opus"; packets during the open are kept; PCM frames are ignored; the store lists it', async () => {
    const { s, store, failures } = sink();
    s.arm(true);
    expect(await readdir(dir)).toEqual([]);
    s.write(pcmFrame); // a PCM frame does not start an ogg-opus recording
    expect(s.armed).toBe(true);
    for (const f of encodeOpusFrames(tone(2), 1)) s.writeEncoded(f); // all while the file opens
    const info = (await s.finalize())!;
    expect(failures).toEqual([]);
    expect(info).toMatchObject({ name: 'calls/demo-alice.opus', format: 'ogg-opus', state: 'stopped', channels: 1, sampleRate: 48000, droppedFrames: 0 });
    expect(info.seconds).toBeCloseTo(2 - 312 / 48000, 6);
    await opusinfo(join(dir, info.name));
    expect(await store.names()).toEqual(['calls/demo-alice.opus']);
    expect(await store.describe('calls/demo-alice.opus')).toMatchObject({ name: 'calls/demo-alice.opus', format: 'ogg-opus', bytes: info.bytes, seconds: info.seconds, channels: 1, sampleRate: 48000 });
  });

  it('a chosen name gets ".opus", and a taken one is refused', async () => {
    const { s } = sink();
    const started = await s.start('interview');
    expect(started).toMatchObject({ name: 'interview.opus', format: 'ogg-opus', state: 'recording' });
    for (const f of encodeOpusFrames(tone(1), 1, { startPosition: 48000 * 7 })) s.writeEncoded(f);
    const stopped = await s.stop();
    expect(stopped.seconds).toBeCloseTo(1 - 312 / 48000, 6);
    const again = sink();
    await expect(again.s.start('interview')).rejects.toMatchObject({ code: 'EARSHOT_RECORDING_EXISTS' });
  });

  it('records stereo when the first packet is coded stereo, though the branch is mono', async () => {
    const { s } = sink(1);
    s.arm(true);
    for (const f of encodeOpusFrames(tone(1, 2), 2, 64000)) s.writeEncoded(f);
    const info = (await s.finalize())!;
    expect(info.channels).toBe(2);
    expect(await opusinfo(join(dir, info.name))).toMatch(/Channels: 2/);
  });

  it('a WAV sink ignores packets', async () => {
    const store = new RecordingsStore(dir);
    const s = new RecordSink({ store, peer: 'bob', baseName: 'b', sampleRate: 48000, channels: 1, sampleFormat: 's16', onFailed: () => undefined });
    s.arm(true);
    for (const f of encodeOpusFrames(tone(0.2), 1)) s.writeEncoded(f);
    expect(s.armed).toBe(true);
    expect(await readdir(dir)).toEqual([]);
    s.disarm();
  });
});
