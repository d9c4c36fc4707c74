/**
 * TLS for tests: a throwaway self-signed certificate made with the openssl
 * CLI, and a `fetch` that trusts it (the global fetch trusts only the system
 * CAs, and NODE_EXTRA_CA_CERTS is read once, at process start).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

export interface SelfSigned {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/** A P-256 certificate for 127.0.0.1 (CN and subjectAltName), valid one day, written to `dir`. */
export function selfSignedCert(dir: string, name = 'server'): SelfSigned {
  const certFile = join(dir, `${name}-cert.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'pipe' });
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

/** Statuses whose Response must have no body (the fetch spec's null body statuses). */
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * A `fetch` over node:https that trusts `ca`: enough of fetch for the WHIP
 * client and simple requests (string bodies, plain-object headers, signal).
 */
export function fetchTrusting(ca: Buffer): typeof fetch {
  return ((input: string | URL, init: RequestInit = {}) =>
    new Promise<Response>((resolve, reject) => {
      const req = request(
        new URL(String(input)),
        { method: init.method ?? 'GET', headers: init.headers as Record<string, string> | undefined, ca, signal: init.signal ?? undefined },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const headers = new Headers();
            for (const [k, v] of Object.entries(res.headers)) for (const value of [v ?? []].flat()) headers.append(k, value);
            const status = res.statusCode ?? 0;
            resolve(new Response(NULL_BODY.has(status) ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage, headers }));
          });
        },
      );
      req.on('error', reject);
      req.end(typeof init.body === 'string' ? init.body : undefined);
    })) as typeof fetch;
}
