/**
 * Where a container's health check finds the server: `serve` writes the URL
 * it listens on to the file `EARSHOT_HEALTH_FILE` names (the image sets it),
 * so the check asks the right port and scheme however the server was
 * configured (`PORT`, `--port`, `--tls-cert` as arguments), rather than
 * assuming `PORT` (the image's HEALTHCHECK reads this file, then falls back to
 * `PORT`).
 */
import { writeFile } from 'node:fs/promises';

/** The variable that names the file. */
const HEALTH_FILE_VARIABLE = 'EARSHOT_HEALTH_FILE';

/** `listenUrl` (fastify's answer to listen) as a client on this machine reaches it: all-interfaces addresses become loopback. */
export function localUrlOf(listenUrl: string): string {
  const u = new URL(listenUrl);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  else if (u.hostname === '[::]') u.hostname = '[::1]';
  return u.origin;
}

/**
 * Writes the server's local URL to `$EARSHOT_HEALTH_FILE`, if set. Returns
 * why it could not (the caller warns; the server serves anyway), or undefined.
 */
export async function writeHealthFile(listenUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const file = env[HEALTH_FILE_VARIABLE];
  if (!file) return undefined;
  try {
    await writeFile(file, `${localUrlOf(listenUrl)}\n`);
    return undefined;
  } catch (e) {
    return `could not write ${HEALTH_FILE_VARIABLE} (${file}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; the health check falls back to PORT`;
  }
}
