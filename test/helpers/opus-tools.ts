/**
 * The real opus-tools as the judges of an Ogg Opus file: `opusinfo` must
 * accept it without a warning, `opusdec` decodes it to a 48 kHz WAV.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { readWav, type WavData } from './audio.js';

const run = promisify(execFile);

/** `opusinfo` on the file: exit status 0 and no warnings or errors in what it says; resolves to what it says. */
export async function opusinfo(path: string): Promise<string> {
  const { stdout, stderr } = await run('opusinfo', [path]);
  const text = stdout + stderr;
  expect(text, `opusinfo ${path}`).not.toMatch(/WARNING|ERROR|Hole in data|corrupt/i);
  return text;
}

/** Decodes with `opusdec` to a 48 kHz WAV next to the file and reads it. */
export async function opusdec(path: string): Promise<WavData> {
  // Named after the file: readWav caches by path.
  const out = `${path}.decoded.wav`;
  await run('opusdec', ['--quiet', '--rate', '48000', path, out]);
  return readWav(out);
}
