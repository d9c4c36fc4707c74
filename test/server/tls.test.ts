/**
 * HTTPS (RFC 9725 §6): a real WHIP publish over TLS with a self-signed
 * certificate made by openssl, the recording it leaves, plain HTTP refused on
 * the TLS port, and the configuration errors (one half missing, unreadable
 * file, a key of another certificate).
 */
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { createServer } from '../../src/index.js';
import { readWav } from '../helpers/audio.js';
import { fixturePath } from '../helpers/fixtures.js';
import { expectComplete, FAST } from '../helpers/sending.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { fetchTrusting, selfSignedCert, type SelfSigned } from '../helpers/tls.js';

let dir: string;
let cert: SelfSigned;
let t: TestServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'earshot-tls-'));
  cert = selfSignedCert(dir);
  t = await startServer({ tlsCert: cert.certFile, tlsKey: cert.keyFile, pipeline: { name: 'rec', sinks: [{ type: 'record' }] } });
});
afterAll(async () => {
  await t?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('HTTPS', () => {
  it('listen() resolves to an https:// URL, and the certificate is really checked', async () => {
    expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetchTrusting(cert.cert)(`${t.url}/health`);
    expect(health.status).toBe(200);
    // The global fetch does not trust a self-signed certificate: TLS is verified, not just spoken.
    const untrusted = await fetch(`${t.url}/health`).then(() => 'answered', (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message);
    expect(untrusted).toMatch(/SELF_SIGNED|self-signed|certificate/i);
  });

  it('a werift client publishes over HTTPS and the recording holds the audio', async () => {
    const sent = await sendAudio({ url: `${t.url}/whip/tls/ana`, source: fixturePath('tone-1k-48k.wav'), seconds: 1.5, fetch: fetchTrusting(cert.cert), speed: FAST });
    expect(sent.sessionUrl).toMatch(new RegExp(`^${t.url}/whip/sessions/`));
    expect(sent.packetsSent).toBe(75);
    await expectComplete(t.url, 'ana', sent, { fetch: fetchTrusting(cert.cert) });
    const files = (await readdir(t.recordingsDir)).filter((f) => f.startsWith('tls-ana-') && f.endsWith('.wav'));
    expect(files).toHaveLength(1);
    const wav = await readWav(join(t.recordingsDir, files[0]));
    expect(Math.abs(wav.durationSec - 1.5)).toBeLessThanOrEqual(0.04);
  });

  it('refuses plain HTTP on the TLS port', async () => {
    const plain = t.url.replace(/^https:/, 'http:');
    await expect(fetch(`${plain}/health`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
  });
});

describe('TLS configuration errors', () => {
  const start = (options: Parameters<typeof createServer>[0]) =>
    createServer({ port: 0, logLevel: 'silent', watchPipelines: false, ...options }).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: Error & { code?: string }) => e,
    );

  it('needs both the certificate and the key', async () => {
    const onlyCert = await start({ tlsCert: cert.certFile });
    expect(onlyCert).toMatchObject({ code: 'EARSHOT_TLS_INVALID' });
    expect(onlyCert?.message).toMatch(/without its private key.*--tls-key/);
    const onlyKey = await start({ tlsKey: cert.keyFile });
    expect(onlyKey?.message).toMatch(/without its certificate.*--tls-cert/);
  });

  it('names a file it cannot read', async () => {
    const missing = join(dir, 'nope.pem');
    const e = await start({ tlsCert: missing, tlsKey: cert.keyFile });
    expect(e).toMatchObject({ code: 'EARSHOT_TLS_INVALID' });
    expect(e?.message).toContain(`cannot read the certificate file ${missing}: no such file`);
    const notPem = await start({ tlsCert: cert.certFile, tlsKey: fixturePath('tone-1k-48k.wav') });
    expect(notPem?.message).toContain(`the private key file ${fixturePath('tone-1k-48k.wav')} holds no PEM data`);
  });

  it('refuses a key that belongs to another certificate', async () => {
    const other = selfSignedCert(dir, 'other');
    const e = await start({ tlsCert: cert.certFile, tlsKey: other.keyFile });
    expect(e).toMatchObject({ code: 'EARSHOT_TLS_INVALID' });
    expect(e?.message).toMatch(/cannot be used together.*does not belong to this certificate/);
  });

  it('names a key protected by a passphrase as encrypted (OpenSSL says only "bad decrypt")', async () => {
    const encrypted = join(dir, 'encrypted-key.pem');
    await writeFile(encrypted, createPrivateKey(cert.key).export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'secret' }));
    const e = await start({ tlsCert: cert.certFile, tlsKey: encrypted });
    expect(e).toMatchObject({ code: 'EARSHOT_TLS_INVALID' });
    expect(e?.message).toContain(`the private key file ${encrypted} is encrypted (protected by a passphrase): give an unencrypted PEM key`);
  });

  it('takes PEM text or Buffers as well as file paths', async () => {
    expect(await start({ tlsCert: (await readFile(cert.certFile)).toString(), tlsKey: cert.key })).toBeUndefined();
  });
});
