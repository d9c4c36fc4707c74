/**
 * `GET /metrics` of a machine with several engine processes: every engine's
 * own exposition, each sample labelled `engine="<slot>"`, and the front
 * process's own (`engine="front"`: its CPU, memory and event loop, plus
 * the engine restarts it counts).
 *
 * Labelled rather than summed: every metric is one process's, and a counter
 * summed over processes would fall when an engine restarts from zero, which
 * `rate()` reads as a reset and turns into a spike. Per process, a restart is
 * an ordinary counter reset. Sum in the query: `sum without (engine) (…)`.
 * The slot number is stable across restarts and bounded by `--processes`, so
 * the label adds N series per metric, not one per process ever started.
 *
 * The text format requires all samples of a metric to follow its single
 * `# HELP`/`# TYPE` pair, so the expositions are merged per metric family,
 * not concatenated.
 */

interface Family {
  help?: string;
  type?: string;
  samples: string[];
}

/** Merges Prometheus text expositions, adding `label="value"` to every sample of each. */
export function mergeExpositions(sources: Array<{ label: string; value: string; text: string }>): string {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: [] }));
    return f;
  };
  for (const { label, value, text } of sources) {
    let current: Family | undefined;
    let currentName = '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (meta) {
        currentName = meta[2];
        current = family(currentName);
        if (meta[1] === 'HELP') current.help ??= meta[3] ?? '';
        else current.type ??= meta[3] ?? 'untyped';
        continue;
      }
      if (line.startsWith('#')) continue;
      const name = /^[^{\s]+/.exec(line)?.[0] ?? '';
      // A sample belongs to the family announced last (histograms add _bucket, _sum, _count to its name).
      const target = current && name.startsWith(currentName) ? current : family(name);
      target.samples.push(withLabel(line, name, label, value));
    }
  }
  const out: string[] = [];
  for (const [name, f] of families) {
    if (f.help !== undefined) out.push(`# HELP ${name} ${f.help}`);
    if (f.type !== undefined) out.push(`# TYPE ${name} ${f.type}`);
    out.push(...f.samples);
  }
  return `${out.join('\n')}\n`;
}

function withLabel(line: string, name: string, label: string, value: string): string {
  const pair = `${label}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const rest = line.slice(name.length);
  if (rest.startsWith('{}')) return `${name}{${pair}}${rest.slice(2)}`;
  if (rest.startsWith('{')) return `${name}{${pair},${rest.slice(1)}`;
  return `${name}{${pair}}${rest}`;
}
