/**
 * The sender's WAV reader: every linear PCM and float encoding decodes exactly
 * as wavefile's own conversion would (its fast path reads the data chunk
 * directly), other encodings (A-law) decode too, and unusable files say why.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import { openWav } from '../../src/client/wav-source.js';
import { readWavSource } from '../../src/client/wav-stream.js';
import { dominantFrequency, rmsDb, sameSamples, toneLevelDb } from '../helpers/audio.js';
import { chunk, fmt, wave } from '../helpers/wav-files.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-wav-source-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const N = 4800;
const sine = Float64Array.from({ length: N }, (_, i) => 0.8 * Math.sin((2 * Math.PI * 440 * i) / 48000));
const extremes = Float64Array.from({ length: N }, (_, i) => [1, -1, 0, 0.5, -0.5][i % 5]);

/**
 * A stereo 48 kHz WAV of `depth` (wavefile's codes): a 440 Hz sine left, full-scale extremes and
 * zero right; and what wavefile's general (slow) conversion makes of it. Except for 32-bit
 * integers: wavefile reads those through float32 in some of its builds, one step off, so there
 * the file is written from known integers and the reference is their exact quotient, with
 * wavefile's scaling (2^31−1 above zero, 2^31 below).
 */
async function stereoWav(depth: string): Promise<{ path: string; reference: Float32Array[] }> {
  const path = join(dir, `stereo-${depth}.wav`);
  const wav = new wavefile.WaveFile();
  if (depth === '32') {
    const ints = [sine, extremes].map((c) => Int32Array.from(c, (v) => (v > 0 ? Math.floor(v * (2 ** 31 - 1)) : Math.ceil(v * 2 ** 31))));
    wav.fromScratch(2, 48000, '32', ints);
    await writeFile(path, wav.toBuffer());
    return { path, reference: ints.map((c) => Float32Array.from(c, (v) => (v > 0 ? v / (2 ** 31 - 1) : v / 2 ** 31))) };
  }
  wav.fromScratch(2, 48000, '32f', [sine, extremes]);
  if (depth !== '32f') wav.toBitDepth(depth);
  const bytes = wav.toBuffer();
  await writeFile(path, bytes);
  const ref = new wavefile.WaveFile(bytes);
  ref.toBitDepth('32f');
  return { path, reference: ref.getSamples(false, Float32Array) as unknown as Float32Array[] };
}

/** 16-bit PCM `data`, channels interleaved. */
function pcm16(planes: Float64Array[]): Buffer {
  const b = Buffer.alloc(planes[0].length * planes.length * 2);
  for (let i = 0; i < planes[0].length; i++) for (let c = 0; c < planes.length; c++) b.writeInt16LE(Math.round(planes[c][i] * 32767), (i * planes.length + c) * 2);
  return chunk('data', b);
}

/** Runs sox (the reference encoder for the ADPCM files) in the test directory. */
const sox = (...args: string[]) => promisify(execFile)('sox', args, { cwd: dir });

async function file(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

const tone = (hz: number, amplitude: number, seconds = 1, rate = 48000) => Float64Array.from({ length: Math.round(seconds * rate) }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate));
const silent = (seconds = 1, rate = 48000) => new Float64Array(Math.round(seconds * rate));
/** Channels with `signal` at `index`, silence elsewhere. */
const only = (channels: number, index: number, signal: Float64Array) => Array.from({ length: channels }, (_, c) => (c === index ? signal : new Float64Array(signal.length)));
/** The level of the 1 kHz test tone, dB relative to full scale. */
const level1k = (samples: Float32Array) => toneLevelDb(samples, 48000, 1000);

describe('readWavSource', () => {
  for (const depth of ['8', '16', '24', '32', '32f', '64']) {
    it(`decodes ${depth === '32f' || depth === '64' ? `${depth === '64' ? 64 : 32}-bit float` : `${depth}-bit PCM`} exactly as wavefile converts it`, async () => {
      const { path, reference } = await stereoWav(depth);
      const source = await readWavSource(path, 2);
      expect(source.sampleRate).toBe(48000);
      expect(source.channels).toHaveLength(2);
      for (let c = 0; c < 2; c++) expect(sameSamples(source.channels[c], reference[c]), `channel ${c}`).toBe(true);
    });
  }

  it('decodes encodings without a fast path (A-law) through wavefile, close to the original', async () => {
    const n = N;
    const tone = Int16Array.from({ length: n }, (_, i) => Math.round(16000 * Math.sin((2 * Math.PI * 440 * i) / 48000)));
    const wav = new wavefile.WaveFile();
    wav.fromScratch(1, 48000, '16', tone);
    wav.toALaw();
    const path = join(dir, 'alaw.wav');
    await writeFile(path, wav.toBuffer());
    const source = await readWavSource(path);
    expect(source.channels).toHaveLength(1);
    expect(source.channels[0]).toHaveLength(n);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(source.channels[0][i] - tone[i] / 32768));
    expect(worst).toBeLessThan(0.02); // A-law's coarsest step near full scale is ~1/64
  });

  it('mixes to mono when asked, and says why a file cannot be used', async () => {
    const { path, reference } = await stereoWav('16');
    const mono = await readWavSource(path, 1);
    expect(mono.channels).toHaveLength(1);
    expect(mono.channels[0][3]).toBeCloseTo((reference[0][3] + reference[1][3]) / 2, 6);
    const text = join(dir, 'not.wav');
    await writeFile(text, 'hello');
    await expect(readWavSource(text)).rejects.toMatchObject({ code: 'EARSHOT_WAV_UNREADABLE', message: expect.stringMatching(/not a WAV file/) });
    await expect(readWavSource(join(dir, 'missing.wav'))).rejects.toMatchObject({ code: 'EARSHOT_WAV_UNREADABLE', message: expect.stringMatching(/no such file/) });
  });

  describe('more than two channels: a standard stereo downmix', () => {
    const half = 20 * Math.log10(0.5); // the tone's level in its channel: −6 dB

    it('brings a 5.1 centre channel to both sides at −3 dB, in stereo and in mono, with or without a channel mask', async () => {
      for (const mask of [0x3f, undefined]) {
        const path = await file(`centre-${mask}.wav`, wave([fmt({ channels: 6, mask }), pcm16(only(6, 2, tone(1000, 0.5)))]));
        const stereo = await readWavSource(path, 2);
        for (const side of stereo.channels) expect(level1k(side)).toBeCloseTo(half - 3.01, 1);
        const mono = await readWavSource(path, 1);
        expect(level1k(mono.channels[0])).toBeCloseTo(half - 3.01, 1);
        expect((await readWavSource(path)).channels, 'default: stereo').toHaveLength(2);
      }
    });

    it('keeps the front left on the left at full level, puts a surround on its side at −3 dB and leaves the LFE out', async () => {
      const front = await readWavSource(await file('front-left.wav', wave([fmt({ channels: 6, mask: 0x3f }), pcm16(only(6, 0, tone(1000, 0.5)))])), 2);
      expect(level1k(front.channels[0])).toBeCloseTo(half, 1);
      expect(rmsDb(front.channels[1])).toBeLessThan(-90);
      // 7.1 by its mask (FL FR FC LFE BL BR SL SR): channel 8 is the right surround.
      const side = await readWavSource(await file('side-right.wav', wave([fmt({ channels: 8, mask: 0x63f }), pcm16(only(8, 7, tone(1000, 0.5)))])), 2);
      expect(rmsDb(side.channels[0])).toBeLessThan(-90);
      expect(level1k(side.channels[1])).toBeCloseTo(half - 3.01, 1);
      // Quad without a mask: channel 3 is the back left.
      const quad = await readWavSource(await file('quad-back-left.wav', wave([fmt({ channels: 4 }), pcm16(only(4, 2, tone(1000, 0.5)))])), 2);
      expect(level1k(quad.channels[0])).toBeCloseTo(half - 3.01, 1);
      expect(rmsDb(quad.channels[1])).toBeLessThan(-90);
      const lfe = await readWavSource(await file('lfe.wav', wave([fmt({ channels: 6, mask: 0x3f }), pcm16(only(6, 3, tone(60, 0.5)))])), 1);
      expect(rmsDb(lfe.channels[0])).toBeLessThan(-90);
    });
  });

  describe('chunks', () => {
    const list = (type: string, ...subchunks: Buffer[]) => chunk('LIST', Buffer.concat([Buffer.from(type), ...subchunks]));

    it('reads a file with two LIST chunks and odd-sized chunks around the audio', async () => {
      const path = await file(
        'lists.wav',
        wave([chunk('bext', new Uint8Array(603)), fmt({}), list('INFO', chunk('INAM', Buffer.from('abc'))), pcm16([tone(1000, 0.5)]), list('INFO', chunk('ISFT', Buffer.from('Lavf\0'))), list('adtl', chunk('labl', Buffer.from('\x01\0\0\0cue\0', 'latin1')))]),
      );
      const source = await readWavSource(path);
      expect(source.channels[0]).toHaveLength(48000);
      expect(dominantFrequency(source.channels[0], 48000)).toBe(1000);
      expect(level1k(source.channels[0])).toBeCloseTo(20 * Math.log10(0.5), 1);
    });

    it('sends what a cut-short file has when its data chunk claims more', async () => {
      const whole = wave([fmt({}), pcm16([tone(1000, 0.5)])]);
      whole.writeUInt32LE(4 * 48000, 40); // the data chunk claims 2 s; the file has 1
      const source = await readWavSource(await file('cut.wav', whole));
      expect(source.channels[0]).toHaveLength(48000);
      expect(dominantFrequency(source.channels[0], 48000)).toBe(1000);
    });

    it('ends an RF64 file\'s audio where its ds64 chunk says (a chunk after the audio was played as audio)', async () => {
      const audio = pcm16([tone(1000, 0.5, 0.1)]).subarray(8);
      const plain = await readWavSource(await file('plain.wav', wave([fmt({}), chunk('data', audio)])));
      const ds64 = Buffer.alloc(28);
      ds64.writeBigUInt64LE(BigInt(audio.length), 8); // riff size, data size, sample count (EBU 3306)
      const rf64 = wave([chunk('ds64', ds64), fmt({}), chunk('data', audio), list('INFO', chunk('ISFT', Buffer.from('Lavf\0')))]);
      rf64.write('RF64', 0);
      rf64.writeUInt32LE(0xffffffff, 4);
      rf64.writeUInt32LE(0xffffffff, 12 + 36 + 24 + 4); // the data chunk's size: in ds64
      const source = await readWavSource(await file('list-after.rf64.wav', rf64));
      expect(sameSamples(source.channels[0], plain.channels[0])).toBe(true);
    });

    it('does not play the pad byte after an odd-sized 8-bit data chunk (it was a full-scale click)', async () => {
      const silence = chunk('data', new Uint8Array(8001).fill(128)); // 8-bit WAV is unsigned: 128 is zero
      const path = await file('odd8.wav', wave([fmt({ rate: 8000, bits: 8 }), silence, list('INFO', chunk('ISFT', Buffer.from('sox\0')))]));
      const source = await readWavSource(path);
      expect(source.channels[0]).toHaveLength(8001 * 6);
      expect(source.channels[0].reduce((peak, v) => Math.max(peak, Math.abs(v)), 0)).toBe(0);
    });
  });

  describe('encodings', () => {
    const refused = (message: RegExp) => ({ code: 'EARSHOT_WAV_UNREADABLE', message: expect.stringMatching(message) });

    it('refuses MS ADPCM by name (it was decoded as IMA ADPCM: noise, 6 dB too loud)', async () => {
      await sox('-n', '-r', '8000', '-e', 'ms-adpcm', 'ms-adpcm.wav', 'synth', '1', 'sine', '440');
      await expect(readWavSource(join(dir, 'ms-adpcm.wav'))).rejects.toMatchObject(refused(/: format 0x0002 \(MS ADPCM\) is not supported; convert it to PCM, e\.g\. `sox in\.wav -e signed-integer out\.wav`/));
    });

    it('ends IMA ADPCM where its fact chunk says, not with the padding of its last block', async () => {
      await sox('-n', '-r', '8000', '-e', 'ima-adpcm', 'ima.wav', 'synth', '1.003', 'sine', '440'); // 8024 samples in blocks of 505
      const source = await readWavSource(join(dir, 'ima.wav'));
      expect(source.channels[0]).toHaveLength(8024 * 6);
      expect(Math.abs(dominantFrequency(source.channels[0], 48000) - 440)).toBeLessThanOrEqual(2); // ADPCM's noise blurs the peak
    });

    it('scales samples of fewer bits by their container: 12-bit in 16, 20-bit in 24 (they came out 16× and 8× too loud)', async () => {
      const twelve = await readWavSource(await file('12-bit.wav', wave([fmt({ bits: 12, blockAlign: 2 }), pcm16([tone(1000, 0.5)])])));
      expect(level1k(twelve.channels[0])).toBeCloseTo(20 * Math.log10(0.5), 1);
      const samples = tone(1000, 0.5);
      const packed = Buffer.alloc(samples.length * 3);
      samples.forEach((v, i) => packed.writeIntLE(Math.round(v * 2 ** 19) * 16, i * 3, 3)); // 20 bits, left-justified
      const twenty = await readWavSource(await file('20-bit.wav', wave([fmt({ bits: 20, blockAlign: 3 }), chunk('data', packed)])));
      expect(level1k(twenty.channels[0])).toBeCloseTo(20 * Math.log10(0.5), 1);
    });

    it('never sends a float sample that is not a number: NaN and ±Infinity become silence', async () => {
      const samples = Float32Array.from(tone(1000, 0.5));
      for (let i = 1000; i < samples.length; i += 4000) samples.fill(Number.NaN, i, i + 3).fill(Infinity, i + 3, i + 4).fill(-Infinity, i + 4, i + 5);
      const path = await file('nan.wav', wave([fmt({ format: 3, bits: 32 }), chunk('data', Buffer.from(samples.buffer))]));
      const source = await readWavSource(path);
      expect(source.channels[0].every(Number.isFinite)).toBe(true);
      expect(level1k(source.channels[0])).toBeCloseTo(20 * Math.log10(0.5), 1);
      // At 44.1 kHz the resampler would have spread a NaN over the whole file.
      const resampled = await readWavSource(await file('nan-44k.wav', wave([fmt({ format: 3, bits: 32, rate: 44100 }), chunk('data', Buffer.from(samples.buffer))])));
      expect(resampled.channels[0].every(Number.isFinite)).toBe(true);
    });

    it('refuses 64-bit integer PCM (it decoded to NaN and Infinity) and other encodings by their format tag, saying what to do', async () => {
      const data = chunk('data', new Uint8Array(8000));
      const cases: Array<[Buffer, RegExp]> = [
        [fmt({ bits: 64 }), /: 64-bit integer PCM is not supported; convert it to 32-bit, e\.g\. `ffmpeg -i in\.wav -c:a pcm_s32le out\.wav`/],
        [fmt({ bits: 64, mask: 0x4 }), /: 64-bit integer PCM is not supported/],
        [fmt({ format: 0x31, bits: 0, blockAlign: 65 }), /: format 0x0031 \(GSM 6\.10\) is not supported; convert it to PCM, e\.g\. `sox in\.wav -e signed-integer out\.wav`/],
        [fmt({ format: 0x55, bits: 0, blockAlign: 1 }), /: format 0x0055 \(MP3\) is not supported; convert it to PCM/],
        [fmt({ format: 0x55, mask: 0x4 }), /: format 0x0055 \(MP3\) is not supported/],
        [fmt({ bits: 0, blockAlign: 2 }), /: format 0x0001 \(PCM\) with 0-bit samples is not supported; convert it to PCM/],
        [fmt({ format: 3, bits: 16 }), /: format 0x0003 \(IEEE float\) with 16-bit samples is not supported/],
      ];
      for (const [i, [header, message]] of cases.entries()) {
        await expect(readWavSource(await file(`refused-${i}.wav`, wave([header, data]))), message.source).rejects.toMatchObject(refused(message));
      }
    });
  });

  it('decodes only the start it is asked for, exactly as the whole file gives it', async () => {
    // 60 s at 44.1 kHz stereo: decoding and resampling all of it took seconds and memory for a 1 s send.
    const path = await file('minute.wav', wave([fmt({ channels: 2, rate: 44100 }), pcm16([tone(1000, 0.5, 60, 44100), tone(440, 0.5, 60, 44100)])]));
    const start = await readWavSource(path, 2, 1);
    const whole = await readWavSource(path, 2);
    expect(whole.channels[0]).toHaveLength(60 * 48000);
    expect(start.channels[0].length).toBeGreaterThanOrEqual(48000);
    expect(start.channels[0].length).toBeLessThan(1.2 * 48000);
    for (let c = 0; c < 2; c++) expect(sameSamples(start.channels[c].subarray(0, 48000), whole.channels[c].subarray(0, 48000)), `channel ${c}`).toBe(true);
  });
});

describe('a file cut short', () => {
  /** A 1 s, 48 kHz 16-bit mono WAV's bytes, and where its data chunk's samples begin. */
  function second(): { bytes: Buffer; dataAt: number } {
    const wav = new wavefile.WaveFile();
    wav.fromScratch(1, 48000, '16', Int16Array.from({ length: 48000 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 48000))));
    const bytes = Buffer.from(wav.toBuffer());
    return { bytes, dataAt: bytes.indexOf('data', 12, 'latin1') + 8 };
  }
  const missingOf = async (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    await writeFile(path, bytes);
    const wav = await openWav(path);
    await wav.close();
    return { missing: wav.missingSeconds, holds: wav.frames / wav.fmt.sampleRate };
  };

  it('reports the audio its header declares that the file lacks; none for a whole file or a size the header does not know', async () => {
    const { bytes, dataAt } = second();
    expect(await missingOf('whole.wav', bytes)).toEqual({ missing: 0, holds: 1 });
    // Cut after 0.25 s of samples.
    expect(await missingOf('cut.wav', bytes.subarray(0, dataAt + 24_000))).toEqual({ missing: 0.75, holds: 0.25 });
    // Sizes that say "not known", as WAVs written to a pipe have them: ffmpeg's and sox's.
    for (const unknown of [0xffffffff, 0x7ffff000]) {
      const piped = Buffer.from(bytes.subarray(0, dataAt + 24_000));
      piped.writeUInt32LE(unknown, dataAt - 4);
      expect(await missingOf(`piped-${unknown}.wav`, piped), unknown.toString(16)).toEqual({ missing: 0, holds: 0.25 });
    }
  });

  it('counts an IMA ADPCM file\'s missing audio by its fact chunk, as its frames are counted', async () => {
    // wavefile codes IMA ADPCM from 8 kHz only: 1 s of it.
    const wav = new wavefile.WaveFile();
    wav.fromScratch(1, 8000, '16', Int16Array.from({ length: 8000 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000))));
    wav.toIMAADPCM();
    const bytes = Buffer.from(wav.toBuffer());
    const dataAt = bytes.indexOf('data', 12, 'latin1') + 8;
    const blockAlign = (wav.fmt as { blockAlign: number }).blockAlign;
    const whole = await missingOf('ima-whole.wav', bytes);
    expect(whole.missing).toBe(0);
    // Cut after half its blocks.
    const blocks = Math.floor((bytes.length - dataAt) / blockAlign);
    const cut = await missingOf('ima-cut.wav', bytes.subarray(0, dataAt + Math.floor(blocks / 2) * blockAlign));
    expect(cut.holds + cut.missing).toBeCloseTo(whole.holds, 6);
    expect(cut.missing).toBeGreaterThan(0.4);
  });
});
