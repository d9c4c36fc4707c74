/**
 * `earshot pipelines`: lists the pipelines a server loads from a directory
 * (offline, validated exactly as `serve` would), or those a running server has
 * (`--url`), with their branches, stages and sinks, and marks the default one
 * (offline: the one `serve` would take from the same environment).
 */
import { Command, Option } from 'commander';
import { isEarshotError } from '../errors.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import { isPipelineName } from '../pipeline/pipeline-builder.js';
import { packageRoot } from '../package-root.js';
import { join } from 'node:path';
import { defaultPipelinesDir } from './serve-command.js';
import { stageTypesOf } from './validate-command.js';
import { checkToken, credentialsProblem, fetchFailure, withoutCredentials } from '../client/whip-client.js';

interface PipelineSummary {
  name: string;
  description: string;
  default?: boolean;
  /** `formatKnown`: false after a custom stage (the rate and channels are then assumed); absent from a server older than the field. */
  branches: Array<{ name: string; stages: string[]; sinks: string[]; sampleRate: number; channels: number; sampleFormat?: 'f32' | 's16'; formatKnown?: boolean }>;
  inUse?: string | null;
}

export function registerPipelinesCommand(program: Command): void {
  program
    .command('pipelines')
    .description('list the pipelines of a directory (as serve loads them) or of a running server (--url)')
    .addOption(new Option('--pipelines <dir>', 'pipelines directory (default: ./pipelines if it exists, else the bundled ones)').env('EARSHOT_PIPELINES'))
    .addOption(new Option('--url <url>', 'ask a running server instead, e.g. http://127.0.0.1:8080 (a path is kept: https://host/earshot/ asks https://host/earshot/pipelines)'))
    .addOption(new Option('--stage-types <list>', 'comma-separated custom stage types to accept (those of your stage modules, which serve loads with --stage-module)'))
    .addOption(new Option('--admin-token <token>', "with --url: the server's admin token, which its pipelines route needs when it has one").env('EARSHOT_ADMIN_TOKEN'))
    .option('--json', 'print JSON')
    .action(async (opts: { pipelines?: string; url?: string; adminToken?: string; stageTypes?: string; json?: boolean }, command: Command) => {
      try {
        let list: PipelineSummary[];
        let missingDefault: string | undefined;
        if (opts.url) {
          // From the environment, --pipelines may be set for serve; on the command line it asks for something else.
          if (command.getOptionValueSource('pipelines') === 'cli') throw new Error('--pipelines and --url ask for different lists (a directory, a running server): give one of them.');
          if (opts.stageTypes !== undefined) throw new Error('--stage-types is for a directory: a running server (--url) knows its own stage modules.');
          list = await serverPipelines(opts.url, opts.adminToken);
        } else {
          const dir = opts.pipelines ?? defaultPipelinesDir() ?? join(packageRoot(), 'pipelines');
          const customStages = stageTypesOf(opts.stageTypes);
          const registry = await PipelineRegistry.load({ dir, customStages: () => customStages });
          // serve refuses such a directory (it has no default pipeline); say so rather than list nothing.
          if (registry.list().length === 0) throw new Error(`${dir}: no pipeline files (*.json) in this directory`);
          // The one serve would start with from the same environment (its --pipeline defaults to EARSHOT_PIPELINE, else "default").
          const defaultName = process.env.EARSHOT_PIPELINE ?? 'default';
          // A name (not a file) the directory lacks: serve would not start; the list is still shown.
          if (isPipelineName(defaultName) && !registry.list().some((p) => p.name === defaultName)) {
            missingDefault = `${process.env.EARSHOT_PIPELINE === undefined ? 'there is no "default" pipeline' : `EARSHOT_PIPELINE names "${defaultName}", which is not a pipeline`} of ${dir}: serve would refuse to start (EARSHOT_PIPELINE_NOT_FOUND)`;
          }
          list = registry.list().map((p) => ({
            name: p.name,
            description: p.description,
            ...(p.name === defaultName ? { default: true } : {}),
            branches: p.branches.map((b) => ({ name: b.name, stages: b.stages.map((s) => s.type), sinks: b.sinks.map((s) => s.type), sampleRate: b.sampleRate, channels: b.channels, sampleFormat: b.sampleFormat, formatKnown: b.formatKnown })),
          }));
        }
        if (opts.json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        else printList(list);
        if (missingDefault) {
          process.stderr.write(`earshot pipelines: ${missingDefault}\n`);
          process.exitCode = 1;
        }
      } catch (e) {
        // An error about several files has each file's code in its lines: the first one's again after the last read as the last one's.
        const code = isEarshotError(e) && e.extensions?.files === undefined ? ` [${e.code}]` : '';
        // Not for a misspelt built-in stage (its problem says "did you mean"): only for a type that could be a custom one.
        const unknownType = (e as Error).message.split('\n').some((line) => /is not a stage type/.test(line) && !/did you mean/.test(line));
        const hint = opts.stageTypes === undefined && unknownType ? '\nFor a directory whose pipelines use custom stages: earshot pipelines --stage-types TYPE,…' : '';
        process.stderr.write(`earshot pipelines: ${(e as Error).message}${code}${hint}\n`);
        process.exitCode = 1;
      }
    });
}

/** The list as text: each pipeline, its branches, their stages, sinks and format. */
function printList(list: PipelineSummary[]): void {
  for (const p of list) {
    process.stdout.write(`${p.name}${p.default ? ' (default)' : ''}${p.description ? ` — ${p.description}` : ''}\n`);
    for (const b of p.branches) {
      const stages = b.stages.length ? b.stages.join(' → ') : '(decoded audio)';
      // 16-bit is said; float, what a branch carries unless a format stage says otherwise, is not.
      const format = `${b.sampleRate} Hz, ${b.channels === 2 ? 'stereo' : 'mono'}${b.sampleFormat === 's16' ? ', 16-bit (s16)' : ''}${b.formatKnown === false ? ', assumed: a custom stage decides' : ''}`;
      process.stdout.write(`  ${b.name}: ${stages} ⇒ ${b.sinks.join(', ')}  [${format}]\n`);
    }
  }
}

/** The pipelines of the server at `base` (its path kept, as behind a proxy's prefix), asked with `adminToken` if given. */
async function serverPipelines(base: string, adminToken: string | undefined): Promise<PipelineSummary[]> {
  try {
    checkToken(adminToken);
  } catch (e) {
    throw new Error((e as Error).message.replace(/^options\.token /, '--admin-token '));
  }
  let url: URL;
  try {
    url = new URL('pipelines', base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new Error(`--url must be a URL such as http://127.0.0.1:8080, got "${withoutCredentials(base)}"`);
  }
  const credentials = credentialsProblem(base, '--admin-token or EARSHOT_ADMIN_TOKEN');
  if (credentials) throw new Error(`--url ${credentials}`);
  const headers: Record<string, string> = adminToken ? { authorization: `Bearer ${adminToken}` } : {};
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) }).catch((e: unknown) => {
    throw new Error(`the server at ${url.origin} did not answer: ${fetchFailure(e)}`);
  });
  if (!res.ok) {
    // The server's problem (RFC 9457) says what to change; the status alone does not.
    const problem = (await res.json().catch(() => undefined)) as { code?: string; detail?: string; title?: string } | undefined;
    const why = problem?.detail ?? problem?.title ?? res.statusText;
    const hint = res.status === 401 && !adminToken ? ' (pass the admin token: --admin-token or EARSHOT_ADMIN_TOKEN)' : '';
    throw new Error(`${url.href} answered ${res.status}: ${why}${problem?.code ? ` [${problem.code}]` : ''}${hint}`);
  }
  return ((await res.json()) as { pipelines: PipelineSummary[] }).pipelines;
}
