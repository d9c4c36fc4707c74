/**
 * Every option of `createServer` is checked before anything starts: an
 * unusable value or an unknown name rejects with `EARSHOT_OPTION_INVALID`,
 * a message naming the option and what it got, and the option's name in
 * `extensions.option`.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createServer, EarshotError, gain, statsSink, type CreateServerOptions } from '../../src/index.js';
import { until } from '../helpers/until.js';
import { defaultIceHosts } from '../../src/server/create-server.js';

/** [option as reported, options given, the message]. */
const cases: Array<[string, Record<string, unknown>, string | RegExp]> = [
  ['host', { host: '' }, 'options.host must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost), got ""'],
  ['port', { port: 70000 }, 'options.port must be an integer from 0 to 65535, got 70000'],
  ['port', { port: 1.5 }, 'options.port must be an integer from 0 to 65535, got 1.5'],
  ['token', { token: '' }, 'options.token must be a non-empty string, got ""'],
  ['adminToken', { adminToken: 42 }, 'options.adminToken must be a non-empty string, got 42'],
  // No client could present these as `Authorization: Bearer …`; the message names the character, not the secret.
  ['token', { token: 'two words' }, 'options.token must be usable as an HTTP bearer token (visible ASCII characters only: no spaces, line breaks or non-ASCII), but character 4 of 9 is " "'],
  ['adminToken', { adminToken: 'pass\n' }, /^options\.adminToken must be usable as an HTTP bearer token .*, but character 5 of 5 is "\\n"$/],
  ['adminToken', { adminToken: 'naïve' }, /^options\.adminToken must be usable as an HTTP bearer token .*, but character 3 of 5 is "ï"$/],
  ['insecure', { insecure: 'yes' }, 'options.insecure must be true or false, got "yes"'],
  ['corsOrigins', { corsOrigins: 'https://ops.example.com' }, 'options.corsOrigins must be an array of strings, got "https://ops.example.com"'],
  ['corsOrigins', { corsOrigins: ['*'] }, /^options\.corsOrigins must not contain "\*"/],
  ['whipCorsOrigins', { whipCorsOrigins: ['https://a.example/path'] }, /^options\.whipCorsOrigins must list origins .*use "https:\/\/a\.example"/],
  ['metricsPublic', { metricsPublic: 1 }, 'options.metricsPublic must be true or false, got 1'],
  ['maxDownloadsPerClient', { maxDownloadsPerClient: 0 }, 'options.maxDownloadsPerClient must be an integer ≥ 1, got 0'],
  ['maxEventStreamsPerClient', { maxEventStreamsPerClient: 0 }, 'options.maxEventStreamsPerClient must be an integer ≥ 1, got 0'],
  ['maxEventStreams', { maxEventStreams: 2.5 }, 'options.maxEventStreams must be an integer ≥ 1, got 2.5'],
  ['maxDownloads', { maxDownloads: -3 }, 'options.maxDownloads must be an integer ≥ 1, got -3'],
  ['downloadIdleTimeoutMs', { downloadIdleTimeoutMs: 0 }, /^options\.downloadIdleTimeoutMs must be an integer from 1 to/],
  ['requestTimeoutMs', { requestTimeoutMs: 0 }, /^options\.requestTimeoutMs must be an integer from 100 to/],
  ['downloadLinkSeconds', { downloadLinkSeconds: 1.5 }, /^options\.downloadLinkSeconds must be an integer from 1 to 31536000, got 1\.5$/],
  ['pipelinesDir', { pipelinesDir: '' }, 'options.pipelinesDir must be a non-empty string, got ""'],
  ['watchPipelines', { watchPipelines: 'no' }, 'options.watchPipelines must be true or false, got "no"'],
  ['pipeline', { pipeline: 42 }, /^options\.pipeline must be a pipeline name, a JSON file path, a pipeline document or a Pipeline, got 42$/],
  ['recordingsDir', { recordingsDir: '' }, 'options.recordingsDir must be a non-empty string, got ""'],
  ['threads', { threads: 0 }, /^options\.threads must be an integer from 1 to \d+, got 0$/],
  ['batchIntervalMs', { batchIntervalMs: 500 }, 'options.batchIntervalMs must be a number from 1 to 100 (ms), got 500'],
  ['stageTimeoutMs', { stageTimeoutMs: 10 }, 'options.stageTimeoutMs must be a number from 50 to 600000 (ms), got 10'],
  ['maxStreamCrashes', { maxStreamCrashes: 0 }, 'options.maxStreamCrashes must be an integer from 1 to 100, got 0'],
  ['maxQueuedFrames', { maxQueuedFrames: 0 }, 'options.maxQueuedFrames must be an integer ≥ 1, got 0'],
  ['mediaTimeoutMs', { mediaTimeoutMs: 0 }, 'options.mediaTimeoutMs must be a number from 1 to 2147483647 (ms), got 0'],
  ['connectTimeoutMs', { connectTimeoutMs: '5s' }, 'options.connectTimeoutMs must be a number from 1 to 2147483647 (ms), got "5s"'],
  ['maxSessions', { maxSessions: -3 }, 'options.maxSessions must be an integer ≥ 1, got -3'],
  ['maxPendingSessions', { maxPendingSessions: 0 }, 'options.maxPendingSessions must be an integer ≥ 1, got 0'],
  ['maxPendingSessionsPerClient', { maxPendingSessionsPerClient: 0 }, 'options.maxPendingSessionsPerClient must be an integer ≥ 1, got 0'],
  ['admission', { admission: true }, /^options\.admission must be false or an object of admission limits, got true/],
  ['admission.maxWorkerUtilization', { admission: { maxWorkerUtilization: 1.5 } }, 'options.admission.maxWorkerUtilization must be a share above 0 and at most 1, got 1.5'],
  ['admission.maxLatncyMs', { admission: { maxLatncyMs: 50 } }, 'options.admission.maxLatncyMs is not an option of admission (did you mean admission.maxLatencyMs?)'],
  ['iceHostAddresses[0]', { iceHostAddresses: ['media.example.com'] }, 'options.iceHostAddresses[0] must be an IP address, got "media.example.com"'],
  // "Every interface" when listening, no address to a client: announced, nobody could connect.
  ['iceHostAddresses[1]', { iceHostAddresses: ['203.0.113.7', '0.0.0.0'] }, /^options\.iceHostAddresses\[1\] must be an address clients can reach, not the unspecified address .*got "0\.0\.0\.0"$/],
  ['iceHostAddresses[0]', { iceHostAddresses: ['::0'] }, /^options\.iceHostAddresses\[0\] must be an address clients can reach, not the unspecified address .*got "::0"$/],
  ['icePortRange', { icePortRange: [5000, 4000] }, 'options.icePortRange must be two ports [min, max] from 1 to 65535 with min < max, got [5000, 4000]'],
  ['iceServers', { iceServers: 'stun:stun.example.net' }, /^options\.iceServers must be an array of \{ urls, username\?, credential\? \}/],
  ['logLevel', { logLevel: 'loud' }, 'options.logLevel must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
  ['logger', { logger: { info() {} } }, /^options\.logger must be a pino-compatible logger .* lacks warn, error, debug, child$/],
  ['stageModules', { stageModules: 'stage.js' }, 'options.stageModules must be an array of file paths or file: URLs, got "stage.js"'],
  ['stageModules[1]', { stageModules: ['a.js', 7] }, 'options.stageModules[1] must be a file path or a file: URL, got 7'],
  ['processors', { processors: {} }, 'options.processors must be a ProcessorRegistry, got an object'],
  ['maxSesions', { maxSesions: 10 }, 'options.maxSesions is not an option of createServer (did you mean maxSessions?)'],
  // Not "did you mean processors?": it belongs to createCluster.
  ['processes', { processes: 2 }, 'options.processes is an option of createCluster (several processes or machines), not of createServer'],
];

describe('createServer options', () => {
  it.each(cases)('%s: %j', async (option, given, message) => {
    const options = { logLevel: 'silent', ...given } as CreateServerOptions;
    const error = await createServer(options).then(
      () => expect.fail('createServer accepted the option'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(EarshotError);
    expect(error).toMatchObject({ code: 'EARSHOT_OPTION_INVALID', statusCode: 500, extensions: { option } });
    expect((error as Error).message).toMatch(typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message);
  });

  it('refuses a recordings directory that is a file, naming it, before anything listens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-recdir-'));
    try {
      const file = join(dir, 'not-a-dir');
      await writeFile(file, '');
      await expect(createServer({ logLevel: 'silent', recordingsDir: file })).rejects.toMatchObject({
        code: 'EARSHOT_RECORDINGS_DIR_UNWRITABLE',
        message: expect.stringContaining(`Cannot write recordings to "${file}": ENOTDIR`),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a pipeline given by file or in code that has the name of one in its own pipelines directory; the same file, or a bundled name, is fine', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-clash-'));
    try {
      const pipelinesDir = join(dir, 'pipelines');
      await mkdir(pipelinesDir);
      const multi = { name: 'multi', branches: { a: { stages: [], sinks: [{ type: 'record' }] }, b: { stages: [{ type: 'gain', db: -6 }], sinks: [{ type: 'stats' }] } } };
      await writeFile(join(pipelinesDir, 'multi.json'), JSON.stringify(multi));
      await writeFile(join(pipelinesDir, 'default.json'), JSON.stringify({ name: 'default', stages: [], sinks: [{ type: 'stats' }] }));
      const shadow = join(dir, 'shadow.json');
      await writeFile(shadow, JSON.stringify({ name: 'multi', stages: [], sinks: [{ type: 'stats' }] }));
      // Before, the file hid the directory's pipeline, and a PUT of what GET showed overwrote multi.json with it.
      for (const pipeline of [shadow, { name: 'multi', stages: [], sinks: [statsSink()] }]) {
        await expect(createServer({ logLevel: 'silent', threads: 1, pipelinesDir, pipeline })).rejects.toMatchObject({
          code: 'EARSHOT_OPTION_INVALID',
          extensions: { option: 'pipeline' },
          message: `options.pipeline names its pipeline "multi", as does ${join(pipelinesDir, 'multi.json')} in the pipelines directory: it would hide that pipeline, and a PUT /pipelines/multi would overwrite that file with it. Give one of them another "name" (and file name), or name the directory's pipeline instead (--pipeline multi, or pipeline: "multi" in code)`,
        });
      }
      // The directory's own file, named by path; and the bundled pipelines (read-only) may be replaced.
      for (const options of [{ pipelinesDir, pipeline: join(pipelinesDir, 'multi.json') }, { pipeline: { name: 'default', stages: [], sinks: [statsSink()] } }]) {
        const server = await createServer({ logLevel: 'silent', threads: 1, ...options });
        await server.close();
      }

      // Nor can the directory take the name later: a PUT is refused, and a file dropped in is not loaded.
      const outside = join(dir, 'outside.json');
      await writeFile(outside, JSON.stringify({ name: 'outside', stages: [{ type: 'gain', db: -6 }], sinks: [statsSink()] }));
      const server = await createServer({ logLevel: 'silent', threads: 1, port: 0, host: '127.0.0.1', pipelinesDir, pipeline: outside });
      try {
        const url = await server.listen();
        const put = await fetch(`${url}/pipelines/outside`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'outside', stages: [], sinks: [{ type: 'record' }] }) });
        expect(put.status).toBe(409);
        expect(await put.json()).toMatchObject({ code: 'EARSHOT_PIPELINE_IN_USE', detail: expect.stringMatching(/given to the server as a file outside its pipelines directory, or in code/) });
        expect(existsSync(join(pipelinesDir, 'outside.json'))).toBe(false);
        await writeFile(join(pipelinesDir, 'outside.json'), JSON.stringify({ name: 'outside', stages: [], sinks: [{ type: 'record' }] }));
        const listed = await until('the dropped-in file to be listed as not loaded', async () => {
          const body = (await (await fetch(`${url}/pipelines`)).json()) as { invalidFiles: Array<{ file: string; code: string }> };
          return body.invalidFiles.some((f) => f.file === 'outside.json') ? body : undefined;
        });
        expect(listed.invalidFiles.find((f) => f.file === 'outside.json')).toMatchObject({ code: 'EARSHOT_PIPELINE_IN_USE' });
        // The default is still the one given: its gain stage, not the file's record sink.
        const doc = (await (await fetch(`${url}/pipelines/outside`)).json()) as { stages: Array<{ type: string }> };
        expect(doc.stages.map((x) => x.type)).toEqual(['gain']);
      } finally {
        await server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('creates a recordings directory that does not exist yet, and logs no warning about it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'earshot-recdir-'));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const server = await createServer({ logger, recordingsDir: join(dir, 'new', 'recordings'), threads: 1 });
    try {
      expect((await stat(join(dir, 'new', 'recordings'))).isDirectory()).toBe(true);
      expect(lines.filter((l) => (JSON.parse(l) as { level: number }).level >= 40)).toEqual([]);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts a token of visible ASCII characters (RFC 6750\'s and the punctuation password generators use), and a client presenting it is let in', async () => {
    const adminToken = 'AZaz09-._~+/==!#$%&*?@^';
    const server = await createServer({ logLevel: 'silent', port: 0, threads: 1, token: 'publish/Token+1=', adminToken });
    try {
      const url = await server.listen();
      expect((await fetch(`${url}/stats`, { headers: { authorization: `Bearer ${adminToken}` } })).status).toBe(200);
      expect((await fetch(`${url}/stats`)).status).toBe(401);
    } finally {
      await server.close();
    }
  });

  it('takes a pipeline definition inline, stage operators included, and reports a misspelt member of one as a file\'s', async () => {
    const server = await createServer({ logLevel: 'silent', threads: 1, pipeline: { name: 'inline', stages: [gain({ db: -6 })], sinks: [statsSink()] } });
    try {
      expect(server.core.pipelines.get('inline').toJSON()).toMatchObject({ name: 'inline', stages: [{ type: 'gain', db: -6 }], sinks: [{ type: 'stats' }] });
    } finally {
      await server.close();
    }
    // Members validation does not know are problems, as in a file: the operators' replacement keeps them.
    const typo = { name: 'typo', stages: [gain({ db: -6 })], sinks: [statsSink()], sinkz: [] } as CreateServerOptions['pipeline'];
    await expect(createServer({ logLevel: 'silent', threads: 1, pipeline: typo })).rejects.toMatchObject({ code: 'EARSHOT_PIPELINE_INVALID', message: expect.stringContaining('sinkz') });
  });

  it('refuses a non-object as the options', async () => {
    await expect(createServer('port=80' as never)).rejects.toMatchObject({ code: 'EARSHOT_OPTION_INVALID', message: 'options must be an object (the options of createServer), got "port=80"' });
  });
});

describe('the ICE host addresses announced by default', () => {
  it('are every interface\'s for an unspecified --host however it is written, the address itself for one IP, loopback for localhost', () => {
    // `--host ::0 --processes 2` handed "::0" to the engines as their ICE host, which they (rightly) refused.
    for (const host of ['0.0.0.0', '::', '::0', '0:0:0:0:0:0:0:0']) expect(defaultIceHosts(host), host).toBeUndefined();
    expect(defaultIceHosts('10.1.2.3')).toEqual(['10.1.2.3']);
    expect(defaultIceHosts('localhost')).toEqual(['127.0.0.1']);
  });
});
