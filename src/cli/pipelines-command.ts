/**
 * `earshot pipelines`: lists the pipelines a server loads from a directory
 * (offline, validated exactly as `serve` would), or those a running server has
 * (`--url`), with their branches, stages and sinks.
 */
import { Command, Option } from 'commander';
import { isEarshotError } from '../errors.js';
import { PipelineRegistry } from '../pipeline/pipeline-registry.js';
import { packageRoot } from '../package-root.js';
import { join } from 'node:path';
import { defaultPipelinesDir } from './serve-command.js';

interface PipelineSummary {
  name: string;
  description: string;
  default?: boolean;
  branches: Array<{ name: string; stages: string[]; sinks: string[]; sampleRate: number; channels: number }>;
  inUse?: string | null;
}

export function registerPipelinesCommand(program: Command): void {
  program
    .command('pipelines')
    .description('list the pipelines of a directory (as serve loads them) or of a running server (--url)')
    .addOption(new Option('--pipelines <dir>', 'pipelines directory (default: ./pipelines if it exists, else the bundled ones)').env('EARSHOT_PIPELINES'))
    .addOption(new Option('--url <url>', 'ask a running server instead, e.g. http://127.0.0.1:8080'))
    .option('--json', 'print JSON')
    .action(async (opts: { pipelines?: string; url?: string; json?: boolean }) => {
      try {
        let list: PipelineSummary[];
        if (opts.url) {
          const url = new URL('/pipelines', opts.url);
          const res = await fetch(url, { signal: AbortSignal.timeout(10_000) }).catch((e: Error) => {
            // fetch says only "fetch failed"; what failed is its cause (ECONNREFUSED, a name that does not resolve, …).
            const cause = e.cause instanceof Error ? e.cause.message : e.message;
            throw new Error(`the server at ${url.origin} did not answer: ${cause}`);
          });
          if (!res.ok) throw new Error(`${res.status} from ${opts.url}/pipelines`);
          list = ((await res.json()) as { pipelines: PipelineSummary[] }).pipelines;
        } else {
          const dir = opts.pipelines ?? defaultPipelinesDir() ?? join(packageRoot(), 'pipelines');
          const registry = await PipelineRegistry.load({ dir });
          list = registry.list().map((p) => ({
            name: p.name,
            description: p.description,
            branches: p.branches.map((b) => ({ name: b.name, stages: b.stages.map((s) => s.type), sinks: b.sinks.map((s) => s.type), sampleRate: b.sampleRate, channels: b.channels })),
          }));
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          return;
        }
        for (const p of list) {
          process.stdout.write(`${p.name}${p.default ? ' (default)' : ''}${p.description ? ` — ${p.description}` : ''}\n`);
          for (const b of p.branches) {
            const stages = b.stages.length ? b.stages.join(' → ') : '(decoded audio)';
            process.stdout.write(`  ${b.name}: ${stages} ⇒ ${b.sinks.join(', ')}  [${b.sampleRate} Hz, ${b.channels === 2 ? 'stereo' : 'mono'}]\n`);
          }
        }
      } catch (e) {
        const code = isEarshotError(e) ? ` [${e.code}]` : '';
        process.stderr.write(`earshot pipelines: ${(e as Error).message}${code}\n`);
        process.exitCode = 1;
      }
    });
}
