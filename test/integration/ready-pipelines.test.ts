/**
 * The ready pipelines in pipelines/, each exercised over real loopback WebRTC
 * against the real server, picked per session with `?pipeline=NAME`.
 * (default.json is covered by recording-quality.test.ts.)
 */
import { join } from 'node:path';
import wavefile from 'wavefile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { ProcessorRegistry, type AudioFrame } from '../../src/index.js';
import { readWav, rmsDb } from '../helpers/audio.js';
import { fixturePath, readFixture } from '../helpers/fixtures.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
const asrFrames: AudioFrame[] = [];
beforeAll(async () => {
  const processors = new ProcessorRegistry();
  // Stands in for a speech recognizer: keeps what the voice-agent pipeline hands over.
  processors.register('asr', () => ({ next: (f: AudioFrame) => void asrFrames.push(f) }));
  t = await startServer({ processors }); // the bundled pipelines directory, default pipeline "default"
});
afterAll(async () => {
  await t.close();
});

type Stats = { pipeline: string; recording: { name: string } | null; recordings: Array<{ name: string }> };
const statsOf = async (peer: string) => (await (await fetch(`${t.url}/stats/${peer}`)).json()) as Stats;

/** RMS in dB of consecutive 100 ms blocks. */
function blockLevels(x: Float32Array, rate: number): number[] {
  const n = rate / 10;
  const out: number[] = [];
  for (let i = 0; i + n <= x.length; i += n) out.push(rmsDb(x.subarray(i, i + n)));
  return out;
}

describe('ready pipelines over WebRTC', () => {
  it('lists every bundled pipeline', async () => {
    const body = (await (await fetch(`${t.url}/pipelines`)).json()) as { default: string; pipelines: Array<{ name: string }> };
    expect(body.default).toBe('default');
    expect(body.pipelines.map((p) => p.name)).toEqual(expect.arrayContaining(['default', 'voice-agent', 'call-recording', 'telephony', 'podcast']));
  });

  it('voice-agent: hands 16 kHz mono 16-bit 20 ms frames of denoised speech to the "asr" processor', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/agents/va?pipeline=voice-agent`, source: fixturePath('speech-noisy-48k.wav'), seconds: 3, speed: FAST });
    await expectComplete(t.url, 'va', sent);
    expect((await statsOf('va')).pipeline).toBe('voice-agent');
    expect(asrFrames.length).toBeGreaterThan(140);
    for (const f of asrFrames) {
      expect([f.sampleRate, f.channels, f.sampleFormat, f.data.length]).toEqual([16000, 1, 's16', 320]);
      expect(f.data).toBeInstanceOf(Int16Array);
    }
    // Every 20 ms of the call arrives, in order, back to back (the reframer keeps at most one frame back).
    expect(asrFrames.length).toBeGreaterThanOrEqual(sent.packetsSent - 1);
    asrFrames.forEach((f, i) => i > 0 && expect(f.position).toBe(asrFrames[i - 1].position + 320));
    // Denoised speech: frames marked as speech and as not.
    expect(asrFrames.some((f) => f.speech === true)).toBe(true);
    expect(asrFrames.some((f) => f.speech === false)).toBe(true);
  });

  it('call-recording: records "archive" untouched and "clean" denoised + normalized under calls/<room>/', async () => {
    await expectComplete(t.url, 'cr', await sendAudio({ url: `${t.url}/whip/sales/cr?pipeline=call-recording`, source: fixturePath('speech-noisy-48k.wav'), seconds: 4, speed: FAST }));
    const { recordings } = await statsOf('cr');
    const names = recordings.map((r) => r.name).sort();
    expect(names).toHaveLength(2);
    expect(names[0]).toMatch(/^calls\/sales\/cr-\d{8}-\d{6}-archive\.wav$/);
    expect(names[1]).toMatch(/^calls\/sales\/cr-\d{8}-\d{6}-clean\.wav$/);
    const [archive, clean] = await Promise.all(names.map((n) => readWav(join(t.recordingsDir, n))));
    const source = (await readFixture('speech-noisy-48k.wav')).channels[0].subarray(0, 4 * 48000);
    for (const w of [archive, clean]) expect(Math.abs(w.durationSec - 4)).toBeLessThan(0.03);
    expect(Math.abs(rmsDb(archive.channels[0]) - rmsDb(source))).toBeLessThan(1);
    // Loudest 100 ms block (speech) over the quietest (the noise in a pause): denoising widens the gap.
    const contrast = (x: Float32Array) => {
      const levels = blockLevels(x.subarray(4800), 48000);
      return Math.max(...levels) - Math.min(...levels);
    };
    // Measured: the pause at ~3.1–3.4 s is −37…−39 dB in the archive, −58…−61 dB clean; speech peaks −15 / −13 dB.
    expect(contrast(clean.channels[0]) - contrast(archive.channels[0])).toBeGreaterThan(15);
    // The recordings API lists and serves files in subdirectories.
    const listed = (await (await fetch(`${t.url}/recordings`)).json()) as { recordings: Array<{ name: string }> };
    expect(listed.recordings.map((r) => r.name)).toEqual(expect.arrayContaining(names));
    const dl = await fetch(`${t.url}/recordings/${names[0]}`);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-disposition')).toContain(names[0].split('/').pop());
    expect((await dl.arrayBuffer()).byteLength).toBeGreaterThan(44);
  });

  it('telephony: 8 kHz recording that keeps 1 kHz and cuts below 300 Hz and above 3.4 kHz', async () => {
    await expectComplete(t.url, 'tel', await sendAudio({ url: `${t.url}/whip/pstn/tel?pipeline=telephony`, source: fixturePath('sweep-48k.wav'), speed: FAST }));
    const wav = await readWav(join(t.recordingsDir, (await statsOf('tel')).recording!.name));
    expect(wav.sampleRate).toBe(8000);
    expect(Math.abs(wav.durationSec - 4)).toBeLessThan(0.03);
    const x = wav.channels[0];
    const at = (from: number, to: number) => rmsDb(x.subarray(Math.round(from * 8000), Math.round(to * 8000)));
    // The fixture sweeps 20 Hz → 23 kHz logarithmically over 4 s: ~25–48 Hz in 0.1–0.5 s,
    // ~0.85–1.2 kHz in 2.1–2.3 s, ~7.5–15 kHz in 3.4–3.9 s.
    const mid = at(2.1, 2.3);
    expect(at(0.1, 0.5)).toBeLessThan(mid - 20);
    // Above the band: the resampler's stopband removes the tone itself; what remains (~29 dB down) is
    // Opus's coding noise from a high tone at 32 kb/s, which lands inside the band.
    expect(at(3.4, 3.9)).toBeLessThan(mid - 25);
    const source = await readFixture('sweep-48k.wav');
    expect(Math.abs(mid - rmsDb(source.channels[0].subarray(Math.round(2.1 * 48000), Math.round(2.3 * 48000))))).toBeLessThan(2);
  });

  it('podcast: 32-bit float recording at 48 kHz whose peaks never pass the −1 dBFS limiter ceiling', async () => {
    await expectComplete(t.url, 'pod', await sendAudio({ url: `${t.url}/whip/studio/pod?pipeline=podcast`, source: fixturePath('speech-48k.wav'), seconds: 4, speed: FAST }));
    const name = (await statsOf('pod')).recording!.name;
    const wav = await readWav(join(t.recordingsDir, name));
    expect(wav.sampleRate).toBe(48000);
    expect(Math.abs(wav.durationSec - 4)).toBeLessThan(0.03);
    const fmt = new wavefile.WaveFile(Buffer.from(await (await fetch(`${t.url}/recordings/${name}`)).arrayBuffer())).fmt as { audioFormat: number; bitsPerSample: number };
    expect(fmt.audioFormat === 3 || fmt.audioFormat === 0xfffe).toBe(true); // IEEE float (or extensible)
    expect(fmt.bitsPerSample).toBe(32);
    const ceiling = 10 ** (-1 / 20);
    expect(wav.channels[0].reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeLessThanOrEqual(ceiling + 1e-6);
    // Speech is there, brought up toward the −18 dBFS target, not gated away.
    expect(rmsDb(wav.channels[0])).toBeGreaterThan(-30);
  });
});
