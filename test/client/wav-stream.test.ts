/**
 * The streaming WAV reader `sendAudio` sends files from: for every encoding, rate and channel
 * layout `readWavSource` reads, it gives exactly `readWavSource`'s samples (decoded, mixed and
 * resampled a stretch at a time, seams anywhere), pass after pass; it refuses what
 * `readWavSource` refuses, with the same error; it holds a few seconds of a long file, not the
 * file; and a file truncated while it is read ends the stream with a clear error.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import { openWavStream, readWavSource, type WavStream } from '../../src/client/wav-stream.js';
import { concat, sameSamples } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { liveBytes } from '../helpers/memory.js';
import { chunk, fmt, sparseWav, wave } from '../helpers/wav-files.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-wav-stream-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Channel c of a test signal: two partials, a different pair per channel, never silent for long. */
const signal = (frames: number, rate: number, c: number) => Float64Array.from({ length: frames }, (_, i) => 0.6 * Math.sin((2 * Math.PI * (220 + 110 * c) * i) / rate) + 0.3 * Math.sin((2 * Math.PI * (3000 + 500 * c) * i) / rate));

/** `seconds` of the test signal as interleaved samples of `bits` (integers) or floats. */
function samples({ channels, rate, seconds, bits, float = false, bigEndian = false }: { channels: number; rate: number; seconds: number; bits: number; float?: boolean; bigEndian?: boolean }): Buffer {
  const frames = Math.round(seconds * rate);
  const planes = Array.from({ length: channels }, (_, c) => signal(frames, rate, c));
  const bytes = Math.ceil(bits / 8);
  const b = Buffer.alloc(frames * channels * bytes);
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++) {
      const v = planes[c][i];
      const at = (i * channels + c) * bytes;
      if (float) {
        if (bits === 32) bigEndian ? b.writeFloatBE(v, at) : b.writeFloatLE(v, at);
        else bigEndian ? b.writeDoubleBE(v, at) : b.writeDoubleLE(v, at);
      } else if (bytes === 1) b.writeUInt8(Math.round(v * 127) + 128, at);
      else {
        const n = Math.round(v * (2 ** (bits - 1) - 1)) * 2 ** (bytes * 8 - bits); // fewer bits: left-justified
        bigEndian ? b.writeIntBE(n, at, bytes) : b.writeIntLE(n, at, bytes);
      }
    }
  }
  return b;
}

async function file(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** Every plane of a pass of `stream`, and its stretches' lengths. */
async function pass(stream: WavStream): Promise<{ planes: Float32Array[]; stretches: number[] }> {
  const parts: Float32Array[][] = [];
  for (let p = await stream.read(); p; p = await stream.read()) parts.push(p);
  return { planes: Array.from({ length: stream.channels }, (_, c) => concat(parts.map((p) => p[c]))), stretches: parts.map((p) => p[0].length) };
}

/** Files of every encoding, rate and layout readWavSource reads, with the channel counts to ask of each. */
async function files(): Promise<Array<{ path: string; channels: Array<1 | 2 | undefined> }>> {
  const all = (path: string) => ({ path, channels: [undefined, 1, 2] as Array<1 | 2 | undefined> });
  const out = [];
  for (const [bits, float] of [[8, false], [16, false], [24, false], [32, false], [32, true], [64, true], [12, false], [20, false]] as const) {
    const rate = bits === 16 ? 48000 : 44100;
    out.push(all(await file(`pcm-${bits}${float ? 'f' : ''}.wav`, wave([fmt({ format: float ? 3 : 1, channels: 2, rate, bits }), chunk('data', samples({ channels: 2, rate, seconds: 0.4, bits, float }))]))));
  }
  out.push(all(await file('mono-22050.wav', wave([fmt({ rate: 22050 }), chunk('data', samples({ channels: 1, rate: 22050, seconds: 0.5, bits: 16 }))]))));
  out.push(all(await file('mono-48k.wav', wave([fmt({}), chunk('data', samples({ channels: 1, rate: 48000, seconds: 0.3, bits: 16 }))]))));
  out.push(all(await file('5.1-44k1.wav', wave([fmt({ channels: 6, rate: 44100, mask: 0x3f }), chunk('data', samples({ channels: 6, rate: 44100, seconds: 0.3, bits: 16 }))]))));
  out.push(all(await file('quad-96k.wav', wave([fmt({ channels: 4, rate: 96000, bits: 24 }), chunk('data', samples({ channels: 4, rate: 96000, seconds: 0.2, bits: 24 }))]))));
  out.push(all(await file('rifx-24.wav', wave([fmt({ channels: 2, rate: 32000, bits: 24, bigEndian: true }), chunk('data', samples({ channels: 2, rate: 32000, seconds: 0.3, bits: 24, bigEndian: true }), true)], true))));
  out.push(all(await file('rifx-float.wav', wave([fmt({ format: 3, channels: 1, rate: 48000, bits: 32, bigEndian: true }), chunk('data', samples({ channels: 1, rate: 48000, seconds: 0.3, bits: 32, float: true, bigEndian: true }), true)], true))));
  for (const law of ['a', 'mu'] as const) {
    const wav = new wavefile.WaveFile();
    wav.fromScratch(2, 8000, '16', [0, 1].map((c) => Int16Array.from(signal(4000, 8000, c), (v) => Math.round(v * 32767))));
    if (law === 'a') wav.toALaw();
    else wav.toMuLaw();
    out.push(all(await file(`${law}-law.wav`, Buffer.from(wav.toBuffer()))));
  }
  // IMA ADPCM by sox (blocks of 505 samples, a fact chunk), and a last block cut short.
  await promisify(execFile)('sox', ['-n', '-r', '8000', '-e', 'ima-adpcm', join(dir, 'ima.wav'), 'synth', '1.003', 'sine', '440']);
  out.push(all(join(dir, 'ima.wav')));
  // RF64 (EBU 3306): the data chunk's size in ds64, a chunk after the audio that is not audio.
  const audio = samples({ channels: 2, rate: 44100, seconds: 0.3, bits: 16 });
  const ds64 = Buffer.alloc(28);
  ds64.writeBigUInt64LE(BigInt(audio.length + 200), 0);
  ds64.writeBigUInt64LE(BigInt(audio.length), 8);
  const rf64 = wave([chunk('ds64', ds64), fmt({ channels: 2, rate: 44100 }), chunk('data', audio), chunk('LIST', Buffer.from('INFOISFT\x04\0\0\0abc\0', 'latin1'))]);
  rf64.write('RF64', 0);
  rf64.writeUInt32LE(0xffffffff, 4);
  rf64.writeUInt32LE(0xffffffff, 12 + 8 + 28 + 8 + 16 + 4);
  out.push(all(await file('rf64.wav', rf64)));
  // Chunks around the audio, an odd-sized 8-bit data chunk, a file cut short of what its data chunk claims, and mid-frame.
  out.push(all(await file('odd8.wav', wave([chunk('bext', new Uint8Array(603)), fmt({ rate: 11025, bits: 8 }), chunk('LIST', Buffer.from('INFO')), chunk('data', samples({ channels: 1, rate: 11025, seconds: 0.2, bits: 8 })), chunk('LIST', Buffer.from('INFO'))]))));
  const cut = wave([fmt({ channels: 2, rate: 16000 }), chunk('data', samples({ channels: 2, rate: 16000, seconds: 0.5, bits: 16 }))]);
  cut.writeUInt32LE(10 * 16000 * 4, 40);
  out.push(all(await file('cut.wav', cut.subarray(0, cut.length - 3))));
  for (const name of ['speech-16k.wav', 'speech-44k1.wav', 'tone-stereo-48k.wav']) out.push({ path: fixturePath(name), channels: [undefined] as Array<1 | 2 | undefined> });
  return out;
}

describe('streaming a WAV file', () => {
  it('gives the same samples in stretches of any size as read whole (readWavSource), for every encoding, rate and layout, pass after pass', async () => {
    const compared: string[] = [];
    for (const { path, channels } of await files()) {
      for (const ch of channels) {
        const whole = await readWavSource(path, ch);
        // readWavSource reads stretches of about half a second (the default); these of 777 and 10 007 frames put
        // the seams elsewhere, inside IMA ADPCM blocks' worth too.
        for (const chunkFrames of [777, 10_007]) {
          const stream = await openWavStream(path, ch, { chunkFrames });
          try {
            expect(stream.channels).toBe(whole.channels.length);
            expect(stream.frames).toBe(whole.channels[0].length);
            for (let round = 0; round < 2; round++) {
              const { planes, stretches } = await pass(stream);
              const what = `${path} channels ${ch} chunkFrames ${chunkFrames} pass ${round + 1}`;
              expect(stretches.every((n) => n > 0), what).toBe(true);
              for (let c = 0; c < planes.length; c++) expect(sameSamples(planes[c], whole.channels[c]), `${what} channel ${c}`).toBe(true);
              await stream.rewind();
            }
          } finally {
            await stream.close();
          }
        }
      }
      compared.push(path);
    }
    expect(compared.length).toBeGreaterThan(20);
  });

  it('refuses a file it cannot decode with EARSHOT_WAV_UNREADABLE, naming the file, before reading any audio', async () => {
    const data = chunk('data', new Uint8Array(800));
    const bad: Array<[string, Buffer | undefined]> = [
      ['text.wav', Buffer.from('hello')],
      ['empty.wav', Buffer.alloc(0)],
      ['avi.wav', Buffer.from('RIFF\x04\0\0\0AVI ', 'latin1')],
      ['no-fmt.wav', wave([data])],
      ['short-fmt.wav', wave([chunk('fmt ', Buffer.alloc(10)), data])],
      ['no-data.wav', wave([fmt({})])],
      ['no-audio.wav', wave([fmt({}), chunk('data', Buffer.alloc(1))])],
      ['header-cut.wav', wave([fmt({}), data]).subarray(0, 30)],
      ['rate.wav', wave([fmt({ rate: 500 }), data])],
      ['no-channels.wav', wave([fmt({ channels: 0, blockAlign: 2 }), data])],
      ['int64.wav', wave([fmt({ bits: 64 }), data])],
      ['gsm.wav', wave([fmt({ format: 0x31, bits: 0, blockAlign: 65 }), data])],
      ['float16.wav', wave([fmt({ format: 3, bits: 16 }), data])],
      ['stereo-ima.wav', wave([fmt({ format: 0x11, channels: 2, bits: 4, blockAlign: 512 }), data])],
      ['missing.wav', undefined],
    ];
    for (const [name, bytes] of bad) {
      const path = bytes ? await file(name, bytes) : join(dir, name);
      const refusal = (await openWavStream(path).then(() => undefined, (e: unknown) => e)) as Error & { code: string };
      expect(refusal, name).toMatchObject({ code: 'EARSHOT_WAV_UNREADABLE' });
      expect(refusal.message, name).toContain(`Cannot use ${path}: `);
    }
    // One piece of advice each, the one that fits the fault.
    const refusal = async (path: string) => ((await openWavStream(path).then(() => undefined, (e: unknown) => e)) as Error).message;
    const gsm = await refusal(join(dir, 'gsm.wav'));
    expect(gsm).toMatch(/\(GSM 6\.10\) is not supported; convert it to PCM, e\.g\. `sox in\.wav -e signed-integer out\.wav`\.$/);
    expect(gsm.match(/sox/g)).toHaveLength(1);
    expect(await refusal(join(dir, 'missing.wav'))).toBe(`Cannot use ${join(dir, 'missing.wav')}: no such file. Check the path.`);
    expect(await refusal(dir)).toBe(`Cannot use ${dir}: it is a directory. Give the path of a WAV file.`);
    expect(await refusal(join(dir, 'text.wav'))).toMatch(/: not a WAV file \(.*\)\. Give a WAV file of PCM, float, A-law, µ-law or mono IMA ADPCM audio \(convert others, e\.g\. `sox in\.mp3 out\.wav`\)\.$/);
  });

  it('holds a few megabytes of a 10-minute file, not the file: memory measured after GC all through a pass', async () => {
    // 10 minutes of 48 kHz 16-bit stereo: a 115 MB file, 230 MB as floats. Written as a second of
    // tone and then a hole (the file system's zeros, read and decoded as any other samples).
    const rate = 48000;
    const frames = 600 * rate;
    const path = join(dir, 'ten-minutes.wav');
    await sparseWav(path, frames * 4, { channels: 2, head: samples({ channels: 2, rate, seconds: 1, bits: 16 }) });

    const stream = await openWavStream(path);
    const before = await liveBytes();
    let peak = 0;
    let read = 0;
    let nextCheck = 0;
    try {
      for (let p = await stream.read(); p; p = await stream.read()) {
        read += p[0].length;
        if (read >= nextCheck) {
          peak = Math.max(peak, (await liveBytes()) - before);
          nextCheck += 30 * rate;
        }
      }
    } finally {
      await stream.close();
    }
    expect(read).toBe(frames);
    // Measured: under 1 MB (the stretch handed out and the one read ahead); readWavSource keeps 220 MB.
    expect(peak).toBeLessThan(8 * 2 ** 20);
  });

  it('ends with EARSHOT_WAV_READ_FAILED, naming the file, when the file is truncated while it is read', async () => {
    const rate = 44100;
    const path = await file('shrinking.wav', wave([fmt({ channels: 2, rate }), chunk('data', samples({ channels: 2, rate, seconds: 5, bits: 16 }))]));
    const stream = await openWavStream(path);
    try {
      expect(await stream.read()).not.toBeNull();
      // Another program cuts the file to its first second.
      const handle = await open(path, 'r+');
      await handle.truncate(44 + rate * 4);
      await handle.close();
      let error: unknown;
      try {
        while (await stream.read());
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: 'EARSHOT_WAV_READ_FAILED', message: `Reading ${path} failed 1.00 s into its audio: it now has ${44 + rate * 4} bytes, ${44 + 5 * rate * 4} when it was opened: it was truncated while being read. Keep the file in place and whole while it is sent.` });
      // And stays failed: the sender does not read past the hole.
      await expect(stream.read()).rejects.toBe(error);
    } finally {
      await stream.close();
    }
  });
});
