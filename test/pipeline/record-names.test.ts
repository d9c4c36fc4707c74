/**
 * A record sink's `directory` and `template` are validated against the rule
 * the recordings store applies (one shared function), with representative
 * values for the placeholders: a pipeline whose recordings could never be
 * named is refused up front with the JSON path of the culprit, never accepted
 * and then failing on every session.
 */
import { describe, expect, it } from 'vitest';
import { parsePipeline, validatePipeline } from '../../src/pipeline/pipeline.js';
import { PipelineRegistry } from '../../src/pipeline/pipeline-registry.js';

const withSink = (sink: Record<string, unknown>, branches = ['main']) => ({
  name: 'calls',
  branches: Object.fromEntries(branches.map((b) => [b, { stages: [], sinks: [{ type: 'record', ...sink }] }])),
});

describe('record sink names in pipeline validation', () => {
  const refused: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['a directory whose segment starts with "." after filling', { directory: '..{room}' }, '/branches/main/sinks/0/directory', /"\.\.r" starts with "\."/],
    ['a directory of dots only', { directory: '....' }, '/branches/main/sinks/0/directory', /"\.\.\.\." starts with "\."/],
    ['a template whose file name starts with "."', { template: '..{room}' }, '/branches/main/sinks/0/template', /"\.\.r\.wav" starts with "\."/],
    ['a directory deeper than allowed', { directory: 'a/b/c/d/{room}' }, '/branches/main/sinks/0/directory', /5 subdirectory levels; at most 4/],
    ['an empty directory segment', { directory: 'calls//{room}' }, '/branches/main/sinks/0/directory', /empty path segment/],
    ['a file name too long even for 1-character room and peer names', { template: `${'x'.repeat(116)}-{room}-{peer}-{session}` }, '/branches/main/sinks/0/template', /at most 128/],
  ];
  for (const [what, sink, path, message] of refused) {
    it(`refuses ${what}, at ${path}`, () => {
      const result = validatePipeline(withSink(sink));
      expect(result.problems).toHaveLength(1);
      expect(result.problems[0]).toMatchObject({ path, found: sink[path.endsWith('directory') ? 'directory' : 'template'] });
      expect(result.problems[0].message).toMatch(message);
      expect(result.problems[0].message).toMatch(/can never be used/);
    });
  }

  it('points at the single-chain path too', () => {
    const result = validatePipeline({ name: 'calls', stages: [], sinks: [{ type: 'record', directory: '....' }] });
    expect(result.problems.map((p) => p.path)).toEqual(['/sinks/0/directory']);
  });

  it('counts the "-{branch}" that several branches append', () => {
    const long = 'b'.repeat(120);
    const result = validatePipeline(withSink({ template: '{room}-{session}' }, ['main', long]));
    expect(result.problems.map((p) => p.path)).toEqual([`/branches/${long}/sinks/0/template`]);
  });

  it('accepts the names people use, and reports an unknown placeholder once', () => {
    for (const sink of [{}, { directory: 'calls/{room}/{date}', template: '{peer}-{time}' }, { directory: 'a/b/c/d', template: '{pipeline}.{branch}.{session}' }, { template: '{room}' }, { directory: 'x/' }]) {
      expect(validatePipeline(withSink(sink)).problems).toEqual([]);
    }
    const unknown = validatePipeline(withSink({ template: '..{rooom}' }));
    expect(unknown.problems).toHaveLength(1);
    expect(unknown.problems[0].message).toMatch(/\{rooom\} is not a placeholder/);
  });

  it('accepts "required" on a record sink and nowhere else', () => {
    expect(parsePipeline(withSink({ required: true })).branches[0].sinks[0]).toMatchObject({ type: 'record', required: true });
    expect(validatePipeline(withSink({ required: 'yes' })).problems.map((p) => p.path)).toEqual(['/branches/main/sinks/0/required']);
  });

  it('PUT /pipelines (registry.put) refuses such a pipeline with EARSHOT_PIPELINE_INVALID and keeps nothing', async () => {
    const registry = PipelineRegistry.inMemory([]);
    await expect(registry.put('calls', withSink({ directory: '..{room}' }))).rejects.toMatchObject({
      code: 'EARSHOT_PIPELINE_INVALID',
      statusCode: 422,
      extensions: { problems: [expect.objectContaining({ path: '/branches/main/sinks/0/directory' })] },
    });
    expect(registry.has('calls')).toBe(false);
  });
});
