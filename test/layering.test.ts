/**
 * The folders of src/ import one way: frames and their
 * formats (media) at the bottom; WebRTC (rtc) and the DSP stages (dsp) on
 * them; the worker pool (pool) runs the stages; sinks take frames; a pipeline
 * joins pool, stages and sinks; the core runs sessions of pipelines without
 * HTTP; the server puts HTTP on the core; cluster, cli, the facade and the
 * entry point wire. Every relative import and re-export of every source file
 * (type-only ones too: a type is a dependency on its room's words) is checked
 * against the rooms its folder may use.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/** The catalog of errors (src/errors.ts): every room but media may raise one. */
const ERRORS = 'errors';
/** Checks of options any room that takes options makes (src/option-checks.ts): they raise catalog errors only. */
const OPTION_CHECKS = 'option-checks';
const BELOW_CORE = ['pipeline', 'pool', 'dsp', 'sinks', 'rtc', 'media', ERRORS, OPTION_CHECKS];

/** What each room may import, besides itself. `wasm` is the WASM loaders outside src/ (wasm/). */
const ALLOWED: Record<string, readonly string[]> = {
  // Frame types, 16-bit quantizing, Opus TOC, the latency histogram: plain data, no dependencies.
  media: [],
  errors: [],
  [OPTION_CHECKS]: [ERRORS],
  'package-root': [],
  rtc: ['media', ERRORS],
  dsp: ['media', 'wasm'],
  pool: ['dsp', 'media', ERRORS],
  // "Sinks take frames": recorders, statistics, processors, websockets know frames, not pipelines.
  sinks: ['media', ERRORS],
  pipeline: ['pool', 'dsp', 'sinks', 'media', ERRORS, OPTION_CHECKS],
  core: BELOW_CORE,
  server: ['core', ...BELOW_CORE, 'package-root'],
  // The publisher (`earshot send`): WebRTC and Opus, never the server side.
  client: ['rtc', 'media', ERRORS, OPTION_CHECKS, 'wasm'],
  // The seed-style API is the core without HTTP.
  facade: ['core', ...BELOW_CORE, 'package-root'],
  cluster: ['server', 'core', ...BELOW_CORE, 'package-root'],
  cli: ['cluster', 'server', 'client', 'core', ...BELOW_CORE, 'package-root'],
  index: ['cluster', 'server', 'client', 'facade', 'core', ...BELOW_CORE, 'package-root'],
};

/** Source files of src/, recursively (the dashboard's browser scripts included). */
function sources(): string[] {
  return readdirSync(SRC, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ts|mts|js|mjs)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/** The room of a path: its first folder under src/ (a file at the top is its own room), or the top folder outside src/. */
function roomOf(path: string): string {
  const inSrc = relative(SRC, path);
  if (!inSrc.startsWith('..')) {
    const parts = inSrc.split(sep);
    return parts.length > 1 ? parts[0] : parts[0].replace(/\.[cm]?[jt]s$/, '');
  }
  return relative(ROOT, path).split(sep)[0];
}

/** Relative module specifiers of a file: imports, re-exports and dynamic imports, comments excluded. */
function specifiers(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName).filter((s) => s.startsWith('.'));
}

interface Edge {
  from: string;
  to: string;
  file: string;
  specifier: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sources()) {
    for (const specifier of specifiers(file)) {
      const from = roomOf(file);
      const to = roomOf(resolve(dirname(file), specifier));
      if (from !== to) out.push({ from, to, file: relative(ROOT, file), specifier });
    }
  }
  return out;
}

describe('import direction', () => {
  const all = edges();

  it('finds the imports (the parser sees them)', () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all).toContainEqual(expect.objectContaining({ from: 'pipeline', to: 'pool' }));
  });

  it('places every folder and top-level file of src/ in the layering', () => {
    const rooms = new Set(sources().map(roomOf));
    expect([...rooms].filter((r) => !(r in ALLOWED))).toEqual([]);
  });

  it('has no import against the direction', () => {
    const against = all.filter((e) => !ALLOWED[e.from]?.includes(e.to)).map((e) => `${e.file}: ${e.from} → ${e.to} (${e.specifier})`);
    expect(against).toEqual([]);
  });

  it('has no cycle between rooms', () => {
    const next = new Map<string, Set<string>>();
    for (const e of all) (next.get(e.from) ?? next.set(e.from, new Set()).get(e.from)!).add(e.to);
    const cycles: string[] = [];
    const visit = (room: string, path: string[]) => {
      for (const to of next.get(room) ?? []) {
        if (path.includes(to)) cycles.push([...path.slice(path.indexOf(to)), to].join(' → '));
        else visit(to, [...path, to]);
      }
    };
    for (const room of next.keys()) visit(room, [room]);
    expect(cycles).toEqual([]);
  });
});
