/**
 * Compiles wasm/kernels/*.wat to the base64 embedded in wasm/*-kernel.ts
 * (`npm run build:kernels` rewrites them; test/dsp/gain-kernel.test.ts checks
 * they are current). Dev-time only: wabt is a devDependency.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import wabtInit from 'wabt';

/** The binary of a .wat kernel, base64. */
export async function compileKernel(watPath: URL): Promise<string> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(watPath.pathname, await readFile(watPath, 'utf8'), { simd: true });
  try {
    return Buffer.from(module.toBinary({}).buffer).toString('base64');
  } finally {
    module.destroy();
  }
}

export const KERNELS = [{ wat: new URL('./kernels/gain.wat', import.meta.url), ts: new URL('./gain-kernel.ts', import.meta.url) }];

/** Replaces the `BINARY = '…'` line of each kernel module with the freshly compiled binary. */
async function writeAll(): Promise<void> {
  for (const k of KERNELS) {
    const base64 = await compileKernel(k.wat);
    const source = await readFile(k.ts, 'utf8');
    await writeFile(k.ts, source.replace(/const BINARY = '[^']*';/, `const BINARY = '${base64}';`));
    console.log(`${k.ts.pathname}: ${base64.length} base64 chars`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await writeAll();
