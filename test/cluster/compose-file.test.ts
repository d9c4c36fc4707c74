/**
 * docker/compose.yaml and docker/prometheus.yml agree with each other and
 * with the CLI: every earshot node is scraped, every variable the nodes are
 * given is one `earshot serve` reads, each node's UDP range is the one it
 * publishes (and no two overlap), and the cluster settings point where they
 * should. (Running the file needs Docker Compose and images from a registry,
 * neither of which the test machines have.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { registerServeCommand } from '../../src/cli/serve-command.js';

const dir = join(import.meta.dirname, '..', '..', 'docker');

type Service = {
  image?: string;
  build?: { context: string; dockerfile: string };
  hostname?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  entrypoint?: string[];
  stop_grace_period?: string;
};
const compose = parse(readFileSync(join(dir, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const prometheus = parse(readFileSync(join(dir, 'prometheus.yml'), 'utf8')) as {
  scrape_configs: Array<{ job_name: string; metrics_path: string; authorization?: { credentials_file?: string }; static_configs: Array<{ targets: string[] }> }>;
};
const nodes = Object.entries(compose.services).filter(([, s]) => s.image === 'earshot:local');

function serveEnvVars(): Set<string> {
  const program = new Command('earshot');
  registerServeCommand(program);
  return new Set(program.commands.find((c) => c.name() === 'serve')!.options.flatMap((o) => (o.envVar ? [o.envVar] : [])));
}

/** `"40000-40099:40000-40099/udp"` → [[40000, 40099], [40000, 40099]]. */
function udpMapping(ports: string[]): [[number, number], [number, number]] | undefined {
  const udp = ports.find((p) => p.endsWith('/udp'));
  const m = udp && /^(\d+)-(\d+):(\d+)-(\d+)\/udp$/.exec(udp);
  return m ? [[Number(m[1]), Number(m[2])], [Number(m[3]), Number(m[4])]] : undefined;
}

describe('docker/compose.yaml', () => {
  it('runs three earshot nodes built from docker/Dockerfile, plus Redis and Prometheus', () => {
    expect(nodes.map(([name]) => name)).toEqual(['earshot-1', 'earshot-2', 'earshot-3']);
    for (const [, s] of nodes) expect(s.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile', args: { BASE_IMAGE: '${EARSHOT_BASE_IMAGE:-node:22-bookworm-slim}' } });
    expect(Object.keys(compose.services).sort()).toEqual(['earshot-1', 'earshot-2', 'earshot-3', 'prometheus', 'redis']);
  });

  it('gives the nodes only variables `earshot serve` reads, and the cluster settings each needs', () => {
    const known = serveEnvVars();
    for (const [name, s] of nodes) {
      const env = s.environment ?? {};
      expect(Object.keys(env).filter((k) => !known.has(k)), name).toEqual([]);
      expect(env.EARSHOT_CLUSTER).toBe('redis://redis:6379');
      expect(env.EARSHOT_NODE_ID).toBe(name);
      // Other nodes forward to it there: its compose hostname, on the port inside the container.
      expect(env.EARSHOT_PUBLIC_URL).toBe(`http://${s.hostname}:8080`);
      expect(s.hostname).toBe(name);
      for (const token of ['EARSHOT_TOKEN', 'EARSHOT_ADMIN_TOKEN']) expect(env[token]).toMatch(new RegExp(`^\\$\\{${token}:\\?`));
      // The address announced for media has no default: 127.0.0.1 would bind the media socket to the container's own loopback.
      expect(env.EARSHOT_ICE_HOSTS).toMatch(/^\$\{EARSHOT_PUBLIC_IP:\?/);
      // Draining needs longer than Docker's default 10 s before SIGKILL.
      expect(parseInt(s.stop_grace_period ?? '10s', 10)).toBeGreaterThan(30);
    }
    expect(new Set(nodes.map(([, s]) => s.environment!.EARSHOT_NODE_ID)).size).toBe(nodes.length);
  });

  it('publishes each node\'s own UDP range exactly as it uses it, with no two overlapping, and a distinct HTTP port', () => {
    const ranges: Array<[number, number]> = [];
    const httpPorts = new Set<string>();
    for (const [name, s] of nodes) {
      const mapping = udpMapping(s.ports ?? []);
      expect(mapping, name).toBeDefined();
      const [host, container] = mapping!;
      expect(host, name).toEqual(container);
      expect(s.environment!.EARSHOT_ICE_PORTS).toBe(`${container[0]}-${container[1]}`);
      ranges.push(host);
      const http = (s.ports ?? []).find((p) => /^\d+:8080$/.test(p));
      expect(http, name).toBeDefined();
      httpPorts.add(http!.split(':')[0]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i][0]).toBeGreaterThan(ranges[i - 1][1]);
    expect(httpPorts.size).toBe(nodes.length);
  });

  it('has Prometheus scrape every node with the admin token the compose file writes for it', () => {
    const job = prometheus.scrape_configs.find((j) => j.job_name === 'earshot')!;
    expect(job.metrics_path).toBe('/metrics');
    expect(job.static_configs.flatMap((c) => c.targets).sort()).toEqual(nodes.map(([name]) => `${name}:8080`).sort());
    const file = job.authorization?.credentials_file;
    expect(file).toBeDefined();
    const p = compose.services.prometheus;
    expect(p.entrypoint!.join(' ')).toContain(`> ${file} `);
    expect(p.volumes).toContain('./prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(p.environment!.EARSHOT_ADMIN_TOKEN).toBe(nodes[0][1].environment!.EARSHOT_ADMIN_TOKEN);
  });
});
