/**
 * How many HTTP connections (WebSockets and event streams included) the
 * server holds at once. Each is a file descriptor, and so are the sessions'
 * UDP sockets, the recordings being written and the worker pipes: without a
 * bound, one client opening idle connections (each kept 72 s by keep-alive)
 * could use up the process's descriptors, and recordings would then fail to
 * open (EMFILE). Past the bound, Node closes a new connection at once.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';

/** Used where the process's descriptor limit cannot be read (not Linux). */
const FALLBACK_MAX_CONNECTIONS = 4096;

/**
 * The default bound: half the process's open-file limit (the other half for
 * sessions, recordings and the rest), between 64 and 16384; 4096 where the
 * limit cannot be read.
 */
export function defaultMaxConnections(): number {
  const soft = openFileLimit();
  if (soft === undefined) return FALLBACK_MAX_CONNECTIONS;
  return Math.min(16_384, Math.max(64, Math.floor(soft / 2)));
}

/** The soft limit on open files (`ulimit -n`), from /proc/self/limits; undefined where unknown or unlimited. */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) && soft > 0 ? soft : undefined;
  } catch {
    return undefined;
  }
}

export function applyConnectionLimit(server: Server, max: number | undefined): void {
  server.maxConnections = max ?? defaultMaxConnections();
}
