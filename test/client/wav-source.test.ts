/**
 * The sender's WAV reader: every linear PCM and float encoding decodes exactly
 * as wavefile's own conversion would (its fast path reads the data chunk
 * directly), other encodings (A-law) decode too, and unusable files say why.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import wavefile from 'wavefile';
import { readWavSource } from '../../src/client/wav-source.js';
import { sameSamples } from '../helpers/audio.js';

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
});
