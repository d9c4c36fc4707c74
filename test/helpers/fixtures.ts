/**
 * The test fixtures (test/fixtures): where they are, and reading the audio
 * ones. Every test finds its fixtures through here, so none depends on its own
 * depth in the tree.
 */
import { join } from 'node:path';
import { readWav, type WavData } from './audio.js';

/** Absolute path of test/fixtures. */
export const FIXTURES_DIR = join(import.meta.dirname, '..', 'fixtures');

/** Absolute path of a file in test/fixtures, e.g. `fixturePath('tone-1k-48k.wav')`. */
export function fixturePath(name: string): string {
  return join(FIXTURES_DIR, name);
}

/** Absolute path of a custom stage module in test/fixtures/modules, e.g. `fixtureModule('stall.js')`. */
export function fixtureModule(name: string): string {
  return join(FIXTURES_DIR, 'modules', name);
}

/**
 * A WAV fixture as −1..1 floats per channel (see `readWav`: parsed once per
 * test file, fresh copies of the samples on every call).
 */
export function readFixture(name: string): Promise<WavData> {
  return readWav(fixturePath(name));
}
