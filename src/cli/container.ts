/**
 * Whether `earshot serve` runs in a container, for one start-up warning: a
 * container's own addresses are private to its host (Docker's bridge,
 * a pod network), and without `--ice-host` they are what the media
 * candidates carry, so clients elsewhere get 201 and never connect.
 */
import { existsSync } from 'node:fs';

/**
 * True in Docker (`/.dockerenv`), Podman (`/run/.containerenv`) and
 * Kubernetes (`KUBERNETES_SERVICE_HOST` in every pod's environment).
 */
export function insideContainer(exists: (path: string) => boolean = existsSync, env: NodeJS.ProcessEnv = process.env): boolean {
  return exists('/.dockerenv') || exists('/run/.containerenv') || env.KUBERNETES_SERVICE_HOST !== undefined;
}
