/**
 * What a recording may be called, in one place. The recordings store checks
 * every name against `recordingNameProblem` before it touches the disk, and
 * pipeline validation checks a record sink's `directory` and `template`
 * against the same function (filled with representative values), so a
 * pipeline whose names can never be valid is refused when it is saved instead
 * of failing on every session that uses it.
 *
 * No imports: pipeline validation (which also runs in the CLI and in editors'
 * tooling) uses this without pulling in the file system.
 */

/** Longest path segment (directory or file name, ".wav" included). */
export const RECORDING_SEGMENT_MAX = 128;
/** One path segment: starts with a letter, digit, "_" or "-" (so "." and ".." can never be one), then letters, digits, ".", "_", "-". */
export const RECORDING_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** Subdirectory levels a name may have (and the store's listing descends). */
export const RECORDING_MAX_DEPTH = 4;
/**
 * Longest generated file name before the "-2" … "-999" a taken name gets and
 * the ".wav" suffix, so neither can push a valid name over the limit (".opus" names are cut one shorter).
 */
export const GENERATED_NAME_MAX = RECORDING_SEGMENT_MAX - '-999.wav'.length;

/** Default file name of a record sink, without ".wav". */
/** What a recording name may be, for the errors that refuse one. */
export const RECORDING_NAME_RULE = `A name is a file name with up to ${RECORDING_MAX_DEPTH} directories before it ("calls/sales/take1"), each 1–${RECORDING_SEGMENT_MAX} letters, digits, ".", "_" or "-", not starting with ".", optionally ending in .wav or .opus.`;

export const DEFAULT_RECORD_TEMPLATE = '{room}-{peer}-{date}';

export type RecordingNameVars = Record<'room' | 'peer' | 'date' | 'time' | 'session' | 'branch' | 'pipeline', string>;

export interface RecordingNameProblem {
  /** Index of the offending "/"-separated segment; -1 when the path as a whole is too deep. */
  segment: number;
  message: string;
}

/**
 * Why `name` (relative, "/"-separated, with its ".wav") cannot be a recording
 * name, or undefined when it can.
 */
export function recordingNameProblem(name: string): RecordingNameProblem | undefined {
  const segments = name.split('/');
  if (segments.length > RECORDING_MAX_DEPTH + 1) {
    return { segment: -1, message: `it has ${segments.length - 1} subdirectory levels; at most ${RECORDING_MAX_DEPTH} are allowed` };
  }
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (RECORDING_SEGMENT.test(s)) continue;
    const shown = s.length > 40 ? `${s.slice(0, 37)}…` : s;
    let message: string;
    if (s === '') message = 'it has an empty path segment (a leading "/" or "//")';
    else if (s.length > RECORDING_SEGMENT_MAX) message = `"${shown}" is ${s.length} characters long; a directory or file name may have at most ${RECORDING_SEGMENT_MAX} (its ".wav" or ".opus" included)`;
    else if (!/^[A-Za-z0-9_-]/.test(s)) message = `"${shown}" starts with "${s[0]}"; a directory or file name must start with a letter, digit, "_" or "-" (so "." and ".." can never be one)`;
    else message = `"${shown}" contains "${/[^A-Za-z0-9._-]/.exec(s)![0]}"; only letters, digits, ".", "_" and "-" are allowed`;
    return { segment: i, message };
  }
  return undefined;
}

/**
 * A record sink's `directory` and `template` with the placeholders filled in,
 * as given (nothing shortened). With several branches "-{branch}" is appended
 * unless the template names the branch itself, so branches never collide.
 */
export function fillRecordingName(sink: { directory?: string; template?: string } | undefined, vars: RecordingNameVars, multipleBranches: boolean): string {
  return fillPlaceholders(recordingNamePattern(sink, multipleBranches), vars);
}

/** The sink's `directory/template`, placeholders unfilled, with "-{branch}" appended where several branches need it. */
function recordingNamePattern(sink: { directory?: string; template?: string } | undefined, multipleBranches: boolean): string {
  let template = sink?.template ?? DEFAULT_RECORD_TEMPLATE;
  if (multipleBranches && !template.includes('{branch}')) template += '-{branch}';
  const directory = (sink?.directory ?? '').replace(/\/+$/, '');
  return `${directory ? `${directory}/` : ''}${template}`;
}

function fillPlaceholders(text: string, vars: RecordingNameVars): string {
  return text.replace(/\{(\w+)\}/g, (whole, key: string) => (key in vars ? vars[key as keyof RecordingNameVars] : whole));
}

/** Placeholders whose values come from clients and may be long (64 characters each), shortened first. */
const SHORTENED: ReadonlyArray<keyof RecordingNameVars> = ['room', 'peer', 'pipeline', 'branch'];

/**
 * `template` (one path segment) filled in, at most `max` characters: the
 * longest of the room, peer, pipeline and branch values it names is cut a
 * character at a time until it fits, so the rest of the name (the date, the
 * branch suffix that keeps branches apart) stays whole.
 */
function fitSegment(template: string, vars: RecordingNameVars, max: number): string {
  const v = { ...vars };
  let text = fillPlaceholders(template, v);
  while (text.length > max) {
    const longest = SHORTENED.filter((k) => template.includes(`{${k}}`) && v[k].length > 1).sort((a, b) => v[b].length - v[a].length)[0];
    if (longest === undefined) return text.slice(0, max);
    v[longest] = v[longest].slice(0, Math.max(1, v[longest].length - Math.max(1, Math.floor((text.length - max) / 2))));
    text = fillPlaceholders(template, v);
  }
  return text;
}

/**
 * The name (relative to the recordings directory, without ".wav") a record
 * sink's next file gets. Room and peer names may be up to 64 characters each,
 * so a filled segment can exceed the limit where the template itself never
 * does: such a segment's room, peer, pipeline and branch values are shortened
 * (the longest first), keeping the rest of it (the date, the branch suffix),
 * rather than leaving the session without a recording. Validation refuses
 * templates that are too long even with the shortest values, so only
 * placeholder text is ever cut.
 */
export function recordingBaseName(sink: { directory?: string; template?: string } | undefined, vars: RecordingNameVars, multipleBranches: boolean): string {
  const segments = recordingNamePattern(sink, multipleBranches).split('/');
  const last = segments.length - 1;
  return segments.map((t, i) => fitSegment(t, vars, i === last ? GENERATED_NAME_MAX : RECORDING_SEGMENT_MAX)).join('/');
}

/**
 * Values that stand for any session when a pipeline is validated: the
 * shortest room and peer names (1 character: a name that is too long even
 * then is too long for every session), and the fixed-width placeholders at
 * their real width.
 */
export function sampleRecordingVars(pipeline: string, branch: string): RecordingNameVars {
  return { room: 'r', peer: 'p', date: '20261124-101500', time: '101500', session: '0a1b2c3d', branch, pipeline };
}
