/**
 * The package as a user meets it: packed (`npm pack`, whose `prepack` builds it) from a copy of the
 * repository's sources, installed from the tarball into a fresh project outside this repository,
 * imported by name from a strict TypeScript program that is type-checked
 * against the shipped declarations, compiled and run with node through a real
 * loopback session. Also: the tarball holds only what a user needs, publint
 * and arethetypeswrong (ESM-only profile: the package is ESM-only on purpose)
 * find nothing. Tests elsewhere import from src/, so only this one catches
 * entry points that name files the build does not write.
 *
 * The temp project is under os.tmpdir(), never inside the repository, so
 * node and TypeScript cannot find the repository's own node_modules by walking
 * up. npm installs from its cache when it can (`--prefer-offline`).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const CONSUMER = join(import.meta.dirname, 'consumer');
const FIXTURE = fixturePath('speech-48k.wav');
const bin = (name: string) => join(REPO, 'node_modules', '.bin', name);

/**
 * The environment for child npm/node processes. Under `npm test`, npm exports
 * its own settings (`npm_config_local_prefix` is this repository, and an
 * `npm install` run with it would install here, not in the temp project), and
 * NODE_PATH/NODE_OPTIONS could hand the child this repository's modules.
 * Kept: where npm's cache, registry and CA are, so installs stay offline-first.
 */
function childEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_cafile']);
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && !keep.has(key.toLowerCase())) continue;
    if (['INIT_CWD', 'NODE_PATH', 'NODE_OPTIONS'].includes(key) || key.startsWith('VITEST')) continue;
    env[key] = value;
  }
  return env;
}

async function sh(file: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd, env: childEnv(), maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number | string };
    return { stdout: err.stdout ?? '', stderr: err.stderr ?? String(e), code: typeof err.code === 'number' ? err.code : 1 };
  }
}

/** Runs a command that must succeed; on failure the error carries its output. */
async function must(file: string, args: string[], cwd: string): Promise<string> {
  const r = await sh(file, args, cwd);
  if (r.code !== 0) throw new Error(`${[file, ...args].join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: Array<{ path: string; size: number }>;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(REPO, join(e.parentPath, e.name)).split(sep).join('/'));
}

let work: string;
let tarball: string;
let packed: PackResult;
let pkg: { main: string; types: string; bin: Record<string, string>; exports: Record<string, unknown>; version: string; files: string[] };
let sourceManifestAfterPack: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'earshot-package-'));
  pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as typeof pkg;
  // Packed as a maintainer publishes, lifecycle scripts and all (`prepack` builds, then takes `prepare`
  // out of the published package.json; `postpack` puts it back), from a copy of what the package is
  // made of: the build cleans dist/, and other tests run the CLI and the DSP workers from this
  // repository's dist/ meanwhile.
  const source = join(work, 'source');
  for (const entry of new Set(['package.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'src', 'wasm', ...pkg.files])) {
    if (entry !== 'dist') await cp(join(REPO, entry), join(source, entry), { recursive: true });
  }
  await symlink(join(REPO, 'node_modules'), join(source, 'node_modules'), 'dir');
  const out = await must('npm', ['pack', '--json', '--pack-destination', work], source);
  // The JSON is npm's last output: scripts run with their output piped, but keep it robust to a `--foreground-scripts` config.
  [packed] = JSON.parse(out.slice(out.search(/^\[/m))) as PackResult[];
  tarball = join(work, packed.filename);
  sourceManifestAfterPack = await readFile(join(source, 'package.json'), 'utf8');
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

let app: Promise<string> | undefined;
/** A fresh project (under `work`) that installed the tarball, as a user's: made once, for the tests that need one. */
function installedApp(): Promise<string> {
  return (app ??= (async () => {
    const dir = join(work, 'app');
    await mkdir(dir);
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'earshot-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
    // Only what a user installs: earshot itself brings @types/multicast-dns, which werift's
    // declarations need with skipLibCheck off (tsc's default).
    await must('npm', ['install', tarball, 'typescript@5.9', '@types/node@20', '--no-audit', '--no-fund', '--prefer-offline'], dir);
    return dir;
  })());
}

/**
 * The official Node.js binary of `version` for this platform, from the npm registry (the package
 * `node-<platform>-<arch>` holds the binaries nodejs.org ships), kept under the temp directory
 * between runs.
 */
async function nodeBinary(version: string): Promise<string> {
  const dir = join(tmpdir(), 'earshot-node-binaries', `${process.platform}-${process.arch}-${version}`);
  const node = join(dir, 'package', 'bin', 'node');
  if (existsSync(node)) return node;
  await mkdir(dir, { recursive: true });
  const out = await must('npm', ['pack', `node-${process.platform}-${process.arch}@${version}`, '--json', '--pack-destination', dir, '--prefer-offline'], dir);
  const [{ filename }] = JSON.parse(out) as Array<{ filename: string }>;
  await must('tar', ['-xzf', join(dir, filename), '-C', dir, 'package/bin/node'], dir);
  await rm(join(dir, filename));
  return node;
}

/** Runs the consumer's compiled program (out/main.js) with `node`: a loopback session, checked as a user would. */
async function expectSession(node: string, app: string): Promise<void> {
  const out = await must(node, [join(app, 'out', 'main.js'), FIXTURE], app);
  const result = JSON.parse(out.trim().split('\n').at(-1)!) as {
    dashboard: number;
    bundledPipelines: { put: number; code: string; writable: boolean };
    streams: number;
    frames: number;
    firstFrame: { sampleRate: number; channels: number; samples: number };
    frames16k: number;
    samples16k: number;
    rate16k: number;
    sentSeconds: number;
    packetsSent: number;
    recordings: number;
    recordedSeconds: number | null;
    handler: { packetsSent: number; packetsReceived: number; pipeline: string; processed: number };
    health: string;
  };
  expect(result).toMatchObject({ dashboard: 200, streams: 1, firstFrame: { sampleRate: 48000, channels: 1, samples: 960 }, rate16k: 16000, recordings: 1 });
  expect(result.packetsSent).toBe(150); // 3 s of 20 ms packets
  expect(result.frames).toBe(result.packetsSent);
  // Every 20 ms of the media at 16 kHz: the resampler's delay (48 samples) cut from the first frame comes out in a frame of its own at the end.
  expect(result.samples16k).toBe(result.packetsSent * 320);
  expect(result.frames16k).toBe(result.packetsSent + 1);
  expect(Math.abs(result.recordedSeconds! - result.sentSeconds)).toBeLessThan(0.1);
  // The facade found its bundled pipeline and ran the user's processor on every frame.
  expect(result.handler).toEqual({ packetsSent: 50, packetsReceived: 50, pipeline: 'handler', processed: 50 });
  expect(result.health).toBe('ok, 0 quarantined');
  // A PUT on the bundled pipelines is refused, and nothing was written into the installed package.
  expect(result.bundledPipelines).toEqual({ put: 409, code: 'EARSHOT_PIPELINES_READ_ONLY', writable: false });
  expect(existsSync(join(app, 'node_modules', 'earshot', 'pipelines', 'mine.json'))).toBe(false);
}

// Generous: a build, a pack and an `npm install` (from the cache: ~15 s; longer on a cold cache).
describe('the packed package', { timeout: 300_000 }, () => {
  it('ships what a user needs and nothing else: the build, its runtime files, no sources, maps, tests or tooling', async () => {
    const files = packed.files.map((f) => f.path).sort();
    const allowed = /^(package\.json|README\.md|LICENSE|bin\/earshot\.js|dist\/(src|wasm)\/.+\.(js|cjs|d\.ts|d\.cts)|pipelines\/[\w.-]+\.json|src\/server\/dashboard\/[\w.-]+)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);

    // Exactly the compiled runtime sources: every module of src/ and wasm/ (less build tooling), once.
    const sources = [...(await filesUnder(join(REPO, 'src'))), ...(await filesUnder(join(REPO, 'wasm')))]
      .filter((f) => /\.c?ts$/.test(f) && !f.endsWith('.d.ts') && f !== 'wasm/compile-kernel.ts')
      // A .cts module (the DSP worker's CommonJS entry) compiles to .cjs and .d.cts.
      .flatMap((f) => [`dist/${f.replace(/\.(c?)ts$/, '.$1js')}`, `dist/${f.replace(/\.(c?)ts$/, '.d.$1ts')}`]);
    expect(files.filter((f) => f.startsWith('dist/'))).toEqual(sources.sort());

    // What the runtime reads from the package root, and what package.json points at.
    const runtime = ['LICENSE', 'pipelines/handler.json', 'pipelines/default.json', 'pipelines/pipeline.schema.json', 'src/server/dashboard/index.html', 'dist/src/pool/worker.js', 'dist/src/pool/worker-entry.cjs'];
    const entries = [pkg.main, pkg.types, ...Object.values(pkg.bin), ...JSON.stringify(pkg.exports).match(/\.\/[^"]+/g)!].map((p) => p.replace(/^\.\//, ''));
    for (const f of [...runtime, ...entries]) expect(files, f).toContain(f);
    expect(files).toContain('dist/src/cli/main.js'); // what bin/earshot.js imports

    console.log(`npm pack: ${packed.entryCount} files, ${(packed.size / 1024).toFixed(1)} kB packed, ${(packed.unpackedSize / 1024).toFixed(1)} kB unpacked`);
  });

  it('declares no install script, so installing it runs nothing and npm has nothing to warn about; the repository keeps its own', async () => {
    const published = JSON.parse(await must('tar', ['-xzOf', tarball, 'package/package.json'], work)) as { scripts?: Record<string, string> };
    // npm runs these when a package is installed (or lists them for approval: npm 11's allowScripts).
    const installScripts = ['preinstall', 'install', 'postinstall', 'prepare'].filter((name) => published.scripts?.[name] !== undefined);
    expect(installScripts).toEqual([]);
    // `postpack` put `prepare` back, byte for byte: a clone's `npm install` still builds.
    expect(sourceManifestAfterPack).toBe(await readFile(join(REPO, 'package.json'), 'utf8'));
  });

  it('passes publint (strict: warnings are errors, and no suggestions either)', async () => {
    const r = await sh(bin('publint'), ['run', tarball, '--strict'], work);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/All good!/);
  });

  it('passes arethetypeswrong for an ESM-only package', async () => {
    const r = await sh(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json'], work);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const { problems } = JSON.parse(r.stdout) as { problems: Record<string, Array<{ resolutionKind?: string }>> };
    // The JSON lists what the profile ignores too: `require()` from CommonJS is the only one.
    const counted = Object.values(problems).flat().filter((p) => p.resolutionKind !== 'node16-cjs' && p.resolutionKind !== 'node10');
    expect(counted).toEqual([]);
  });

  it('installs into a fresh project, type-checks strictly against its declarations, and runs a loopback session by package name', async () => {
    const app = await installedApp();
    await cp(join(CONSUMER, 'main.ts'), join(app, 'main.ts'));
    await cp(join(CONSUMER, 'tsconfig.json'), join(app, 'tsconfig.json'));

    // The type check and the compile are one run: noEmitOnError, so out/ exists only if it checked clean.
    const tsc = await sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app);
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);

    const version = await must(join(app, 'node_modules', '.bin', 'earshot'), ['--version'], app);
    expect(version.trim()).toBe(pkg.version);

    await expectSession(process.execPath, app);
  });

  // The Node versions package.json and the docs promise, with the official binaries (the npm
  // package node-<platform>-<arch> holds nodejs.org's), not only the one these tests run on.
  it.each(['20.19.0', '22', '24'])('runs the same loopback session on Node %s', async (version) => {
    const app = await installedApp();
    if (!existsSync(join(app, 'out', 'main.js'))) await must(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app);
    const node = await nodeBinary(version);
    const reported = (await must(node, ['--version'], app)).trim();
    expect(reported.startsWith(version.includes('.') ? `v${version}` : `v${version}.`), reported).toBe(true);
    await expectSession(node, app);
  });

  it('runs the examples copied into a user\'s project as they are: they import earshot by name, type-check against its declarations, load and work', async () => {
    const app = await installedApp();
    // They imported ../src/index.js: a copy outside the repository did not compile.
    await cp(join(REPO, 'examples'), join(app, 'examples'), { recursive: true });
    await cp(join(CONSUMER, 'examples.ts'), join(app, 'examples.ts'));
    await cp(join(CONSUMER, 'tsconfig.json'), join(app, 'tsconfig.json'));
    await cp(join(CONSUMER, 'tsconfig.examples.json'), join(app, 'tsconfig.examples.json'));
    const tsc = await sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.examples.json'], app);
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);

    const out = await must(process.execPath, [join(app, 'out', 'examples.js'), FIXTURE], app);
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as { packetsSent: number; events: string[] };
    // 4 s of 20 ms packets, through a pipeline of the dc-blocker stage (createServer refuses a pipeline of a type no module gave).
    expect(result.packetsSent).toBe(200);
    // The energy detector heard the speech: turns that start and end, in order.
    expect(result.events.length).toBeGreaterThanOrEqual(2);
    result.events.forEach((event, i) => expect(event).toBe(i % 2 === 0 ? 'speech-start' : 'speech-end'));
  });
});
