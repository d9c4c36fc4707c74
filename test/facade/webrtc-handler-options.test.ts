/**
 * Every option of `WebRTCHandler` is checked in the constructor, before any
 * worker starts: `EARSHOT_OPTION_INVALID` naming the option (ICE servers keep
 * their own code).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { AudioFilter, AudioTranscoder, DefaultAudioProcessor, EarshotError, WebRTCHandler, type AudioFilterOptions, type WebRTCHandlerOptions } from '../../src/index.js';

const cases: Array<[string, Record<string, unknown>, string | RegExp]> = [
  ['pipeline', { pipeline: 7 }, /^options\.pipeline must be a pipeline name, a JSON file path, a pipeline document or a Pipeline, got 7$/],
  ['recordingsDir', { recordingsDir: '' }, 'options.recordingsDir must be a non-empty string, got ""'],
  ['threads', { threads: 0 }, /^options\.threads must be an integer from 1 to \d+, got 0$/],
  ['iceHostAddresses[0]', { iceHostAddresses: ['nope'] }, 'options.iceHostAddresses[0] must be an IP address, got "nope"'],
  ['icePortRange', { icePortRange: [4000, 4000] }, 'options.icePortRange must be two ports [min, max] from 1 to 65535 with min < max, got [4000, 4000]'],
  ['mediaTimeoutMs', { mediaTimeoutMs: 'x' }, 'options.mediaTimeoutMs must be a number from 1 to 2147483647 (ms), got "x"'],
  ['connectTimeoutMs', { connectTimeoutMs: -1 }, 'options.connectTimeoutMs must be a number from 1 to 2147483647 (ms), got -1'],
  ['logLevel', { logLevel: 'chatty' }, 'options.logLevel must be one of fatal, error, warn, info, debug, trace, silent, got "chatty"'],
  ['thread', { thread: 2 }, 'options.thread is not an option of WebRTCHandler (did you mean threads?)'],
  ['admission', { admission: true }, 'options.admission must be false or an object of admission limits, got true (admission is on by default)'],
];

/** Directories the handlers below record into, removed after each test. */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A handler on one worker thread (these tests send no audio) with a temporary recordings directory. */
function smallHandler(options: WebRTCHandlerOptions = {}): WebRTCHandler {
  const recordingsDir = mkdtempSync(join(tmpdir(), 'earshot-handler-options-'));
  dirs.push(recordingsDir);
  return new WebRTCHandler({ iceHostAddresses: ['127.0.0.1'], threads: 1, recordingsDir, ...options });
}

describe('WebRTCHandler options', () => {
  it.each(cases)('%s: %j', (option, given, message) => {
    let error: unknown;
    try {
      new WebRTCHandler(given as WebRTCHandlerOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EarshotError);
    expect(error).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option } });
    expect((error as Error).message).toMatch(typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message);
  });

  it('takes the name of a bundled pipeline, as createServer does, and lists them for an unknown name', async () => {
    // Read as a file path before: "Cannot read pipeline telephony: ENOENT".
    const handler = new WebRTCHandler({ pipeline: 'telephony', iceHostAddresses: ['127.0.0.1'] });
    await handler.close();
    expect(() => new WebRTCHandler({ pipeline: 'nope' })).toThrow(
      expect.objectContaining({ code: 'EARSHOT_PIPELINE_NOT_FOUND', message: expect.stringMatching(/^No pipeline "nope"; loaded: call-recording, default, handler, podcast, telephony, voice-agent\. Name a bundled one, or pass a pipeline file's path \(ending in \.json\) or a definePipeline\(\) object\.$/) }),
    );
  });

  it('takes the room and peer names WHIP takes, and refuses others with EARSHOT_NAME_INVALID before any connection is made', async () => {
    const handler = smallHandler();
    try {
      const bad: Array<[unknown, unknown]> = [['room with space', 'p'], ['r', '../../escaped'], ['r', 'a/b'], ['', 'p'], ['r', ''], [1, 2], ['sessions', 'p'], [undefined, undefined]];
      for (const [room, peer] of bad) {
        expect(() => handler.createPeerConnection(room as string, peer as string), `${String(room)} / ${String(peer)}`).toThrow(expect.objectContaining({ code: 'EARSHOT_NAME_INVALID', statusCode: 400 }));
      }
      expect(handler.getAllAudioStatistics()).toEqual({});
      const pc = handler.createPeerConnection('lobby-1', 'alice.b_c-d');
      await pc.close();
    } finally {
      await handler.close();
    }
  });

  it('refuses a processor registered after close() with EARSHOT_SHUTTING_DOWN, as a new peer connection', async () => {
    const handler = smallHandler();
    await handler.close();
    expect(() => handler.registerCustomAudioProcessor('late', new DefaultAudioProcessor())).toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN' }));
    expect(() => handler.createPeerConnection('lobby', 'late')).toThrow(expect.objectContaining({ code: 'EARSHOT_SHUTTING_DOWN' }));
  });

  it('types its arguments\' errors: a recording path that is not a string, a statistics interval out of range', async () => {
    const handler = smallHandler();
    try {
      await expect(handler.startAudioRecording('p', 42 as unknown as string)).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'path' } });
      expect(() => handler.statistics$(10)).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'intervalMs' } }));
    } finally {
      await handler.close();
    }
  });

  it('checks AudioTranscoder\'s and AudioFilter\'s options with EARSHOT_OPTION_INVALID: a misspelt one is refused, not ignored', () => {
    const refused: Array<[() => unknown, string]> = [
      [() => new AudioTranscoder({ sampleRat: 16000 } as never), 'sampleRat'],
      [() => new AudioTranscoder({ quality: 5 }), 'quality'],
      [() => new AudioTranscoder({ channels: '1' } as never), 'channels'],
      [() => new AudioTranscoder(null as never), ''],
      [() => new AudioTranscoder({ pool: {} } as never), 'pool'],
      [() => new AudioTranscoder({ sampleRate: 7 }), 'sampleRate'],
      [() => new AudioTranscoder({ sampleRate: 7000 }), 'sampleRate'],
      [() => new AudioTranscoder({ sampleRate: 16000, quality: 11 }), 'quality'],
      [() => new AudioTranscoder({ frameDurationMs: 25 as 20 }), 'frameDurationMs'],
      [() => new AudioTranscoder({ sampleFormat: 's24' as 's16' }), 'sampleFormat'],
      [() => new AudioFilter({ denoize: true } as never), 'denoize'],
      [() => new AudioFilter({ name: '' }), 'name'],
      [() => new AudioFilter({ gainDb: 100 }), 'gainDb'],
      [() => new AudioFilter({ highpass: Number.NaN }), 'highpass'],
      [() => new AudioFilter({ notch: { frequency: 50, q: 30 } }), 'notch.q'],
      [() => new AudioFilter({ denoise: { mix: 2 } }), 'denoise.mix'],
      [() => new AudioFilter({ limiter: { ceilingDb: 'loud' } as never }), 'limiter.ceilingDb'],
      [() => new AudioFilter({ bandpass: { lowFrequency: 3000, highFrequency: 300 } }), 'bandpass.highFrequency'],
      [() => new AudioFilter({ bandpass: { frequency: 1000, lowFrequency: 300, highFrequency: 3000 } as never }), 'bandpass'],
    ];
    for (const [make, option] of refused) expect(make, option).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', extensions: { option } }));
    // The message names the class option, then the stage's own words.
    expect(() => new AudioFilter({ gainDb: 100 })).toThrow('options.gainDb is refused by a stage: gain(): db: must be a number from -60 to 60, got 100');
    expect(new AudioTranscoder({ sampleRate: 16000, quality: 6, channels: 1 }).stages.map((s) => s.type)).toEqual(['downmix', 'resample']);
  });

  it('checks AudioFilter\'s bandpass form when it is built, not when audio flows', () => {
    const refused: Array<[AudioFilterOptions['bandpass'], RegExp]> = [
      [{ lowFrequency: 3000, highFrequency: 300 }, /highFrequency: 300 is not allowed; use a number above "lowFrequency" \(3000\)/],
      [{ frequency: 1000, lowFrequency: 300, highFrequency: 3000 } as never, /it got both forms/],
      [{ lowFrequency: 300 } as never, /highFrequency: missing/],
    ];
    for (const [bandpass, message] of refused) {
      expect(() => new AudioFilter({ bandpass }), JSON.stringify(bandpass)).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', message: expect.stringMatching(message) }));
    }
    expect(new AudioFilter({ bandpass: { lowFrequency: 300, highFrequency: 3400 } }).stages).toEqual([{ type: 'bandpass', lowFrequency: 300, highFrequency: 3400 }]);
  });

  it('takes admission: false (every peer admitted) or admission limits, as createServer does', async () => {
    for (const admission of [false, { maxProcessUtilization: 0.9 }, undefined] as const) {
      const handler = smallHandler({ admission });
      try {
        await handler.ready();
        // stats$, as the server names it, and statistics$ are the same figures.
        const { server } = await firstValueFrom(admission === false ? handler.stats$(50) : handler.statistics$(50));
        // Off: no admission state at all; on (limits given, or the default): measured.
        expect(server.admission === null, String(admission)).toBe(admission === false);
      } finally {
        await handler.close();
      }
    }
    expect(() => new WebRTCHandler({ admission: { maxProcessCpu: 0.9 } as never })).toThrow(expect.objectContaining({ code: 'EARSHOT_OPTION_INVALID', extensions: { option: 'admission.maxProcessCpu' } }));
  });

  it('checks ICE servers with their own code', () => {
    expect(() => new WebRTCHandler({ iceServers: [{ urls: 'http://stun.example.net' }] })).toThrow(expect.objectContaining({ code: 'EARSHOT_ICE_SERVER_INVALID' }));
  });
});
