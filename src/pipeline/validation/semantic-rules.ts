/**
 * The rules of a pipeline that a JSON schema cannot say: one chain or
 * branches, not both; at least one sink and at most one recording per branch;
 * recording names the store accepts; websocket sink headers that name only
 * variables meant for sinks; processor stages after the worker
 * stages (processor-stages.ts); and each stage's own rules for the
 * format it gets at its place in the branch (from its definition in src/dsp,
 * the same check its factory makes in the worker).
 */
import { Value } from '@sinclair/typebox/value';
import { fillRecordingName, recordingNameProblem, sampleRecordingVars } from '../../sinks/recording-names.js';
import { OPUS_INPUT_RATES, opusEncodable } from '../../dsp/opus-encode.js';
import { decodedFlow, followStages, nextFlow, usableStage, type BranchFlow } from '../branch-format.js';
import { processorStageProblems, processorStageSinkProblems } from '../processor-stages.js';
import { RECORD_PLACEHOLDERS, RecordSinkSchema } from '../schema.js';
import { ENV_REFERENCE, namedVariables, SINK_ENV_LIST, SINK_ENV_PREFIX, sinkVariableAllowed, sinkVariableRefusal } from '../../sinks/sink-environment.js';
import { isObject, pointerKey } from './json-values.js';
import { report, type Walk } from './problems.js';
import { excerpt, nearest } from './wording.js';

/** Rules the schema cannot say: the chain form, sink counts, the stages' rules for the format they get. Checked wherever the structure allows. */
export function checkSemantics(doc: unknown, walk: Walk): void {
  if (!isObject(doc)) return;
  const single = doc.stages !== undefined || doc.sinks !== undefined;
  if (single && doc.branches !== undefined) {
    report(walk, { path: '/branches', message: 'use either "stages"/"sinks" (one chain) or "branches", not both', hint: 'move the chain into a branch' });
  }
  if (!single && doc.branches === undefined) {
    report(walk, { path: '', message: 'a pipeline needs "stages" and "sinks", or "branches"', allowed: '"stages" and "sinks", or "branches"' });
  }
  const channels = doc.channels === 2 ? 2 : 1;
  const pipelineName = typeof doc.name === 'string' ? doc.name : 'pipeline';
  if (isObject(doc.branches)) {
    const names = Object.keys(doc.branches);
    if (names.length === 0 && !single) report(walk, { path: '/branches', message: 'needs at least one branch', allowed: 'an object of one or more named branches' });
    for (const name of names) {
      const b = doc.branches[name];
      if (isObject(b)) checkBranch(b.stages, b.sinks, `/branches/${pointerKey(name)}`, channels, walk, { pipeline: pipelineName, branch: name, multiple: names.length > 1 });
    }
  } else if (single) {
    // absent sinks: the "at least one" rule words it
    checkBranch(doc.stages, doc.sinks ?? [], '', channels, walk, { pipeline: pipelineName, branch: 'main', multiple: false });
  }
}

function checkBranch(stages: unknown, sinks: unknown, base: string, channels: 1 | 2, walk: Walk, names: RecordNameContext): void {
  if (Array.isArray(stages)) {
    let flow = decodedFlow(channels);
    // Past a stage whose output is not known here (a custom one, or one with unusable options), nothing can be judged by its
    // format; rules across a stage's options need none.
    for (let i = 0; i < stages.length; i++) {
      checkStage(stages[i], `${base}/stages/${i}`, flow.known ? flow : undefined, walk);
      if (flow.known) flow = nextFlow(flow, stages[i]);
    }
    // Worker stages, then processor stages (main thread), each naming a processor registered as a stage.
    for (const problem of processorStageProblems(stages, base, walk.processors)) report(walk, problem);
    for (const problem of processorStageSinkProblems(stages, sinks, base)) report(walk, problem);
  }
  if (Array.isArray(sinks)) {
    if (sinks.length === 0) {
      report(walk, { path: `${base}/sinks`, message: 'a branch needs at least one sink ("record", "stats", "processor" or "websocket")', found: [], allowed: 'one or more sinks' });
    }
    sinks.forEach((sink, i) => {
      if (isObject(sink) && sink.type === 'websocket') {
        checkReconnectDelays(sink, `${base}/sinks/${i}`, walk);
        checkHeaderVariables(sink, `${base}/sinks/${i}`, walk);
      }
      if (!isObject(sink) || sink.type !== 'record') return;
      for (const key of ['directory', 'template'] as const) {
        const text = sink[key];
        if (typeof text !== 'string') continue;
        for (const [, name] of text.matchAll(/\{([^}]*)\}/g)) {
          if ((RECORD_PLACEHOLDERS as readonly string[]).includes(name)) continue;
          const allowed = RECORD_PLACEHOLDERS.map((p) => `{${p}}`).join(', ');
          report(walk, {
            path: `${base}/sinks/${i}/${key}`,
            message: `{${name}} is not a placeholder; use ${allowed}${nearest(name, RECORD_PLACEHOLDERS) ? ` (${nearest(name, RECORD_PLACEHOLDERS)})` : ''}`,
            found: `{${name}}`,
            allowed,
          });
        }
      }
      checkRecordNames(sink, `${base}/sinks/${i}`, names, walk);
      if (sink.format === 'ogg-opus') checkOggOpus(sink, stages, channels, `${base}/sinks/${i}`, walk);
    });
    const records = sinks.filter((s) => isObject(s) && s.type === 'record').length;
    if (records > 1) {
      report(walk, {
        path: `${base}/sinks`,
        message: 'at most one "record" sink per branch; add a branch for a second recording',
        found: `${records} record sinks`,
        allowed: 'at most one "record" sink',
        hint: 'add a branch for a second recording',
      });
    }
  }
}

/**
 * Every `${NAME}` in a websocket sink's headers is a variable sink headers may read (sink-environment.ts),
 * and every value is one HTTP can carry. Problems here never quote the value: it may hold a secret.
 */
function checkHeaderVariables(sink: Record<string, unknown>, path: string, walk: Walk): void {
  if (!isObject(sink.headers)) return;
  for (const [header, value] of Object.entries(sink.headers)) {
    if (typeof value !== 'string') continue;
    const at = `${path}/headers/${pointerKey(header)}`;
    // RFC 9110 §5.5, as Node sends headers: a line break made every connection attempt fail, losing all the branch's audio.
    const bad = value.search(/[^\t\x20-\x7e\x80-\xff]/);
    if (bad >= 0) {
      const code = value.codePointAt(bad)!.toString(16).toUpperCase().padStart(4, '0');
      report(walk, { path: at, message: `has a character an HTTP header value cannot hold (character ${bad + 1}, U+${code}: a line break, another control character, or one beyond Latin-1)` });
    }
    if (value.replace(ENV_REFERENCE, '').includes('${')) {
      report(walk, { path: at, message: 'has "${" that does not name a variable: write ${NAME}, with a name of letters, digits and "_" and the closing "}" (it would be sent as it is)' });
    }
    for (const name of namedVariables(value)) {
      if (sinkVariableAllowed(name)) continue;
      report(walk, { path: at, message: sinkVariableRefusal(name), found: `\${${name}}`, allowed: `\${${SINK_ENV_PREFIX}…} or a variable listed in ${SINK_ENV_LIST}` });
    }
  }
}

/** A websocket sink's first reconnection wait may not be longer than its longest one (the default of each counts). */
function checkReconnectDelays(sink: Record<string, unknown>, path: string, walk: Walk): void {
  const first = typeof sink.reconnectDelayMs === 'number' ? sink.reconnectDelayMs : 500;
  const most = typeof sink.reconnectMaxDelayMs === 'number' ? sink.reconnectMaxDelayMs : 10_000;
  if (first <= most) return;
  const given = sink.reconnectDelayMs !== undefined;
  report(walk, {
    path: `${path}/${given ? 'reconnectDelayMs' : 'reconnectMaxDelayMs'}`,
    message: `the first reconnection wait (reconnectDelayMs, ${first} ms) is longer than the longest (reconnectMaxDelayMs, ${most} ms)`,
    found: given ? first : most,
    allowed: given ? `at most reconnectMaxDelayMs (${most} ms)` : `at least reconnectDelayMs (${first} ms)`,
    hint: 'raise reconnectMaxDelayMs or lower reconnectDelayMs',
  });
}

/**
 * An "ogg-opus" recording of a branch without stages holds the Opus packets
 * as received; with stages, the worker encodes what they output, which Opus
 * must be able to code (8, 12, 16, 24 or 48 kHz). A branch whose format is not
 * known here (a custom stage) is judged by the worker's report at stream
 * start. Either way there is no sample encoding to choose.
 */
function checkOggOpus(sink: Record<string, unknown>, stages: unknown, channels: 1 | 2, path: string, walk: Walk): void {
  if (Array.isArray(stages) && stages.length > 0) {
    const flow = followStages(stages, channels);
    const refused = flow.known ? opusEncodable(flow.format) : null;
    if (refused) {
      report(walk, {
        path: `${path}/format`,
        message: `an "ogg-opus" recording encodes this branch's output to Opus, and ${refused} (what the stages output)`,
        found: 'ogg-opus',
        allowed: `"ogg-opus" on a branch that outputs ${OPUS_INPUT_RATES.map((r) => r / 1000).join(', ')} kHz, or "wav"`,
        hint: 'end the branch with a resample stage to 16000, 24000 or 48000 Hz, or record "wav"',
      });
    }
  }
  if (sink.sampleFormat !== undefined) {
    report(walk, {
      path: `${path}/sampleFormat`,
      message: 'an "ogg-opus" recording has no sample encoding to choose (it holds Opus packets)',
      found: sink.sampleFormat,
      allowed: 'no "sampleFormat" with "ogg-opus"',
      hint: 'remove "sampleFormat"',
    });
  }
}

interface RecordNameContext {
  pipeline: string;
  branch: string;
  /** Several branches: generated names get "-{branch}" appended. */
  multiple: boolean;
}

const RECORD_NAME_RULE = 'names whose every directory and file name starts with a letter, digit, "_" or "-", has at most 128 characters, and at most 4 subdirectory levels';

/**
 * A record sink's `directory` and `template` must make names the recordings
 * store accepts (the very rule it applies: `recordingNameProblem`), or every
 * session would start without a recording. Filled with values that stand for
 * any session; only checked once both pass the schema, so a problem is
 * reported once.
 */
function checkRecordNames(sink: Record<string, unknown>, path: string, names: RecordNameContext, walk: Walk): void {
  const parts: { directory?: string; template?: string } = {};
  for (const key of ['directory', 'template'] as const) {
    const text = sink[key];
    if (text === undefined) continue;
    const schema = RecordSinkSchema.properties[key];
    if (typeof text !== 'string' || !Value.Check(schema, text)) return;
    // An unknown placeholder was reported above; filling around it would only repeat that.
    if ([...text.matchAll(/\{([^}]*)\}/g)].some(([, n]) => !(RECORD_PLACEHOLDERS as readonly string[]).includes(n))) return;
    parts[key] = text;
  }
  const sample = `${fillRecordingName(parts, sampleRecordingVars(names.pipeline, names.branch), names.multiple)}${sink.format === 'ogg-opus' ? '.opus' : '.wav'}`;
  const problem = recordingNameProblem(sample);
  if (!problem) return;
  const directorySegments = sample.split('/').length - 1;
  const key = problem.segment === -1 || problem.segment < directorySegments ? 'directory' : 'template';
  const text = parts[key];
  report(walk, {
    path: `${path}/${key}`,
    message: `${text === undefined ? `the default ${key}` : excerpt(text)} makes recording names like "${sample}" that can never be used: ${problem.message}`,
    ...(text === undefined ? {} : { found: text }),
    allowed: RECORD_NAME_RULE,
  });
}

/**
 * What a stage's definition refuses across its options (bandpass: one form,
 * not both) and, where the format it gets at its place in the branch is
 * known, for that format (denoise below 48 kHz, a filter frequency at or
 * above Nyquist, a frame duration that is not whole samples): the very checks
 * its factory makes when the stream starts, reported now with the rest.
 * Options that break the schema were reported already; their defaults stand
 * in, so the other options are still judged.
 */
function checkStage(stage: unknown, path: string, flow: BranchFlow | undefined, walk: Walk): void {
  const found = usableStage(stage);
  if (!found?.options || !isObject(stage)) return;
  const { definition, options } = found;
  const problems = [...(definition.checkOptions?.(options, stage) ?? []), ...(flow ? (definition.checkInput?.(options, flow.format, stage) ?? []) : [])];
  for (const p of problems) {
    if (p.option !== undefined && found.unusable.has(p.option)) continue; // reported by the schema walk already
    report(walk, {
      path: p.option === undefined ? path : `${path}/${pointerKey(p.option)}`,
      message: p.message,
      ...(p.found !== undefined ? { found: p.found } : {}),
      ...(p.allowed !== undefined ? { allowed: p.allowed } : {}),
      ...(p.hint !== undefined ? { hint: p.hint } : {}),
    });
  }
}
