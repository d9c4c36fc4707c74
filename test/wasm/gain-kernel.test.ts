/**
 * Our own WASM kernel (wasm/gain-kernel.ts): the embedded binary is the one
 * compiled from wasm/kernels/gain.wat, and it scales exactly like the
 * TypeScript loop it replaced, for any length (SIMD body, scalar tail, blocks).
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { compileKernel, KERNELS } from '../../wasm/compile-kernel.js';
import { scaleInPlace } from '../../wasm/gain-kernel.js';

describe('gain kernel (WASM SIMD)', () => {
  it('embeds the binary compiled from its .wat source (run `npm run build:kernels` after editing it)', async () => {
    for (const k of KERNELS) {
      const source = await readFile(k.ts, 'utf8');
      expect(source).toContain(`const BINARY = '${await compileKernel(k.wat)}';`);
    }
  });

  it('scales like float math rounded to f32, for odd lengths and lengths beyond one block', () => {
    for (const n of [0, 1, 3, 4, 5, 960, 1921, 16384, 16387, 50000]) {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37) * 0.9;
      const expected = data.map((v) => Math.fround(v * Math.fround(0.5011872336272722)));
      scaleInPlace(data, 0.5011872336272722);
      // Element by element with Object.is, as toEqual compares, without the seconds toEqual takes over 50 000 elements.
      expect(data.length).toBe(expected.length);
      expect(data.findIndex((v, i) => !Object.is(v, expected[i])), `first differing sample of ${n}`).toBe(-1);
    }
  });
});
