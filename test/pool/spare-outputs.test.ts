import { describe, expect, it } from 'vitest';
import { SpareOutputs } from '../../src/pool/spare-outputs.js';

const buffers = (...sizes: number[]) => sizes.map((n) => new ArrayBuffer(n));

describe('SpareOutputs (a worker reuses the output buffers given back)', () => {
  it('serves a large batch after small ones filled the list: the larger buffers given back are kept', () => {
    const spares = new SpareOutputs(4);
    spares.keep(buffers(4096, 4096, 4096, 4096));
    spares.keep(buffers(1_048_576, 8192));
    expect(spares.sizes().sort((a, b) => a - b)).toEqual([4096, 4096, 8192, 1_048_576]);
    const big = spares.take(800_000);
    expect(big?.byteLength).toBe(1_048_576);
    expect(spares.take(800_000)).toBeUndefined();
  });

  it('takes the smallest buffer that fits, off the list', () => {
    const spares = new SpareOutputs(4);
    spares.keep(buffers(65_536, 16_384, 262_144));
    expect(spares.take(10_000)?.byteLength).toBe(16_384);
    expect(spares.take(10_000)?.byteLength).toBe(65_536);
    expect(spares.sizes()).toEqual([262_144]);
  });

  it('does not keep a buffer over its size limit, nor more than it keeps', () => {
    const spares = new SpareOutputs(2, 1_000_000);
    spares.keep(buffers(2_000_000, 500_000, 600_000, 100_000));
    expect(spares.sizes().sort((a, b) => a - b)).toEqual([500_000, 600_000]);
  });
});
