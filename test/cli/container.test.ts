/**
 * How `earshot serve` tells it runs in a container (src/cli/container.ts),
 * for its warning about a container's private media addresses. The warning
 * itself, from a real container: test/docker/image.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { insideContainer } from '../../src/cli/container.js';

const only = (...paths: string[]) => (path: string) => paths.includes(path);

describe('insideContainer', () => {
  it('knows Docker, Podman and Kubernetes by what each leaves in the container', () => {
    expect(insideContainer(only('/.dockerenv'), {})).toBe(true);
    expect(insideContainer(only('/run/.containerenv'), {})).toBe(true);
    expect(insideContainer(only(), { KUBERNETES_SERVICE_HOST: '10.96.0.1' })).toBe(true);
    expect(insideContainer(only(), {})).toBe(false);
  });
});
