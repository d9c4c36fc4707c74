/**
 * `earshot serve`: run the server until SIGINT/SIGTERM, then drain and finalize
 * every recording before exiting.
 */
import { existsSync, statSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createServer } from '../server/create-server.js';
import { isEarshotError } from '../errors.js';

function integer(name: string, min: number, max: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    return n;
  };
}

function portRange(value: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(value);
  if (!m || Number(m[1]) >= Number(m[2]) || Number(m[2]) > 65535) throw new InvalidArgumentError('use MIN-MAX, e.g. 40000-40999');
  return [Number(m[1]), Number(m[2])];
}

/** `./pipelines` when the working directory has one (a project), else undefined (the bundled ones). */
export function defaultPipelinesDir(): string | undefined {
  return existsSync('pipelines') && statSync('pipelines').isDirectory() ? 'pipelines' : undefined;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve', { isDefault: true })
    .description('run the earshot server (WHIP ingest, DSP workers, recordings, stats)')
    .addOption(new Option('-p, --port <port>', 'HTTP port').env('PORT').default(8080).argParser(integer('--port', 0, 65535)))
    .addOption(new Option('-H, --host <host>', 'address to listen on (0.0.0.0 for all)').env('EARSHOT_HOST').default('127.0.0.1'))
    .addOption(new Option('--token <token>', 'bearer token required for WHIP requests').env('EARSHOT_TOKEN'))
    .addOption(new Option('--pipelines <dir>', 'directory of pipeline files, loaded at start and watched (default: ./pipelines if it exists, else the bundled ones)').env('EARSHOT_PIPELINES'))
    .addOption(new Option('--pipeline <name|file>', 'default pipeline: a name in --pipelines, or a JSON file').env('EARSHOT_PIPELINE').default('default'))
    .addOption(new Option('--recordings <dir>', 'directory for recordings').env('EARSHOT_RECORDINGS').default('recordings'))
    .addOption(new Option('--threads <n>', 'DSP worker threads').env('EARSHOT_THREADS').argParser(integer('--threads', 1, 64)))
    .addOption(new Option('--media-timeout <seconds>', 'end a session after this long without RTP').default(10).argParser(integer('--media-timeout', 1, 3600)))
    .addOption(new Option('--max-sessions <n>', 'concurrent session limit').default(500).argParser(integer('--max-sessions', 1, 100000)))
    .addOption(new Option('--ice-host <ip...>', 'ICE host addresses to announce (default: the --host address, or all interfaces for 0.0.0.0)'))
    .addOption(new Option('--ice-ports <min-max>', 'UDP port range for media').argParser(portRange))
    .addOption(new Option('--stage-module <file...>', 'custom worker stage module(s) to load in every worker (ES module exporting { type, create })'))
    .addOption(new Option('--log-level <level>', 'log level').env('EARSHOT_LOG_LEVEL').default('info').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (opts: {
      port: number; host: string; token?: string; pipeline: string; pipelines?: string; recordings: string; threads?: number;
      mediaTimeout: number; maxSessions: number; iceHost?: string[]; icePorts?: [number, number]; logLevel: string; stageModule?: string[];
    }) => {
      let server;
      try {
        server = await createServer({
          host: opts.host,
          port: opts.port,
          token: opts.token,
          pipeline: opts.pipeline,
          pipelinesDir: opts.pipelines ?? defaultPipelinesDir(),
          recordingsDir: opts.recordings,
          threads: opts.threads,
          mediaTimeoutMs: opts.mediaTimeout * 1000,
          maxSessions: opts.maxSessions,
          iceHostAddresses: opts.iceHost,
          icePortRange: opts.icePorts,
          logLevel: opts.logLevel,
          stageModules: opts.stageModule,
        });
        const url = await server.listen();
        server.app.log.info({ url, pipeline: server.pipeline.name, pipelines: server.core.pipelines.names(), threads: server.core.pool.threads, recordings: server.core.store.dir }, `earshot listening on ${url}`);
      } catch (e) {
        const code = isEarshotError(e) ? ` [${e.code}]` : '';
        process.stderr.write(`earshot: ${(e as Error).message}${code}\n`);
        await server?.close().catch(() => {});
        process.exit(1);
      }
      const s = server;
      let signals = 0;
      const stop = (signal: string) => {
        if (++signals > 1) {
          s.app.log.warn('second signal: exiting without draining');
          process.exit(130);
        }
        s.app.log.info({ signal }, 'shutting down: draining streams and finalizing recordings');
        s.close().then(
          () => process.exit(0),
          (err: unknown) => {
            s.app.log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });
}
