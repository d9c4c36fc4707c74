/**
 * The HTTPS certificate and key (`tlsCert` / `tlsKey`, `--tls-cert` /
 * `--tls-key`), loaded and checked before anything listens, so a wrong path,
 * a key that belongs to another certificate or a missing half is one clear
 * error at start, not a server that accepts connections and fails every
 * handshake.
 *
 * Each value is PEM text (a string holding `-----BEGIN …`, or a Buffer)
 * or else a file path. The certificate may be a chain (leaf first, as in
 * Let's Encrypt's `fullchain.pem`). Files are read once, at start: restart
 * the server after renewing them.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { errors } from '../errors.js';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** The certificate and key as PEM buffers, or undefined when neither is set. Throws `EARSHOT_TLS_INVALID`. */
export function loadTls(cert: string | Buffer | undefined, key: string | Buffer | undefined): TlsFiles | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw errors.TLS_INVALID(`${cert === undefined ? 'a key (tlsKey, --tls-key) was given without its certificate (tlsCert, --tls-cert)' : 'a certificate (tlsCert, --tls-cert) was given without its private key (tlsKey, --tls-key)'}; give both, or neither for plain HTTP`);
  }
  const files = { cert: read('certificate', 'tlsCert', cert), key: read('private key', 'tlsKey', key) };
  // OpenSSL would only say "bad decrypt": a key protected by a passphrase, which nothing here asks for.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(files.key.toString('latin1'))) {
    throw errors.TLS_INVALID(`${describe('private key', key)} is encrypted (protected by a passphrase): give an unencrypted PEM key, e.g. decrypted once with \`openssl pkey -in <file> -out key.pem\`, readable only by the server's user`);
  }
  try {
    createSecureContext(files);
  } catch (e) {
    const why = (e as Error).message;
    throw errors.TLS_INVALID(`${describe('certificate', cert)} and ${describe('private key', key)} cannot be used together: ${why}${/mismatch/i.test(why) ? ' (the key does not belong to this certificate)' : ''}`);
  }
  return files;
}

function read(what: string, option: string, value: string | Buffer): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value !== 'string' || value.trim() === '') throw errors.TLS_INVALID(`options.${option} must be a file path, PEM text or a Buffer`);
  if (isPem(value)) return Buffer.from(value);
  let data: Buffer;
  try {
    data = readFileSync(value);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'not readable by the user earshot runs as' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw errors.TLS_INVALID(`cannot read the ${what} file ${value}: ${why}`);
  }
  if (!isPem(data.toString('latin1'))) throw errors.TLS_INVALID(`the ${what} file ${value} holds no PEM data ("-----BEGIN …"); convert a DER file with openssl`);
  return data;
}

function isPem(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]+-----/.test(text);
}

function describe(what: string, value: string | Buffer): string {
  return typeof value === 'string' && !isPem(value) ? `the ${what} file ${value}` : `the ${what}`;
}
