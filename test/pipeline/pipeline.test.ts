/** Pipeline documents: validation reports every problem with its path; valid ones normalize and round-trip. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPipelineFile, parsePipeline, validatePipeline } from '../../src/pipeline/pipeline.js';

describe('pipeline validation', () => {
  it('accepts the shipped default pipeline: denoise, then record and stats', async () => {
    const p = await loadPipelineFile(join(import.meta.dirname, '..', '..', 'pipelines', 'default.json'));
    expect(p.name).toBe('default');
    expect(p.branches).toHaveLength(1);
    expect(p.branches[0].stages).toEqual([{ type: 'denoise' }]);
    expect(p.branches[0].sinks.map((s) => s.type)).toEqual(['record', 'stats']);
    expect(p.branches[0].sampleRate).toBe(48000);
    const doc = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'pipelines', 'default.json'), 'utf8'));
    expect(p.toJSON()).toEqual(doc);
  });

  it('reports every problem at once, each with its JSON path and a hint', () => {
    const { problems } = validatePipeline({
      name: 'bad name',
      stages: [{ type: 'denoize' }, { type: 'resample', sampleRate: 100, speed: 1 }],
      sinks: [{ type: 'record', sampleFormat: 'u8' }],
    });
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath['/name']).toMatch(/letters, digits/);
    expect(byPath['/stages/0/type']).toMatch(/"denoize" is not a stage type; use one of passthrough, denoise, resample, .*\(did you mean "denoise"\?\)/);
    expect(byPath['/stages/1/speed']).toMatch(/unknown option for stage "resample"; allowed: type, sampleRate, quality/);
    expect(byPath['/stages/1/sampleRate']).toMatch(/100 is not allowed/);
    expect(byPath['/sinks/0/sampleFormat']).toMatch(/use one of "s16", "f32"/);
  });

  it('refuses denoise after a stage that leaves 48 kHz, naming the fix', () => {
    const { problems } = validatePipeline({ name: 'x', stages: [{ type: 'resample', sampleRate: 16000 }, { type: 'denoise' }], sinks: [{ type: 'stats' }] });
    expect(problems).toEqual([{ path: '/stages/1', message: expect.stringMatching(/denoise needs 48000 Hz audio but gets 16000 Hz here; move "denoise" before/) }]);
  });

  it('normalizes branches and tracks each branch output rate', () => {
    const p = parsePipeline({
      name: 'two',
      branches: { archive: { stages: [], sinks: [{ type: 'record' }] }, asr: { stages: [{ type: 'denoise' }, { type: 'resample', sampleRate: 16000 }], sinks: [{ type: 'stats' }] } },
    });
    expect(p.branches.map((b) => [b.name, b.sampleRate])).toEqual([['archive', 48000], ['asr', 16000]]);
  });

  it('throws a typed 422 error listing the problems', () => {
    try {
      parsePipeline({ name: 'x', stages: [], sinks: [], branches: {} });
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: 'EARSHOT_PIPELINE_INVALID', statusCode: 422 });
      expect((e as Error).message).toMatch(/\/branches: use either/);
    }
  });

  it('reports a file that is not JSON with its name', async () => {
    await expect(loadPipelineFile(join(import.meta.dirname, '..', 'fixtures', 'tone-1k-48k.wav'))).rejects.toMatchObject({ code: 'EARSHOT_PIPELINE_INVALID' });
    await expect(loadPipelineFile('/nonexistent/p.json')).rejects.toMatchObject({ code: 'EARSHOT_PIPELINE_FILE_UNREADABLE' });
  });
});
