/**
 * The dashboard's HTTP side: the page and its assets at `/`, and recording
 * downloads a browser's <audio> can measure and seek (length and byte ranges).
 * The page itself is tested in Chromium by test/e2e/dashboard.test.ts.
 */
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer();
  await copyFile(fixturePath('tone-1k-48k.wav'), join(t.recordingsDir, 'tone.wav'));
});
afterAll(() => t.close());

describe('dashboard route', () => {
  it('serves the page at / with a same-origin content security policy, and its script and styles', async () => {
    const page = await fetch(`${t.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).toContain('data-testid="talk-button"');
    const script = await fetch(`${t.url}/dashboard.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${t.url}/dashboard.css`)).headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('leaves unknown paths to the problem+json 404', async () => {
    const res = await fetch(`${t.url}/dashboard.js.map`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});

describe('recording downloads', () => {
  const size = 288_044; // tone-1k-48k.wav: 3 s, 48 kHz, mono, 16-bit, 44-byte header

  it('send their length and accept byte ranges', async () => {
    const whole = await fetch(`${t.url}/recordings/tone.wav`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(size));
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    expect((await whole.arrayBuffer()).byteLength).toBe(size);

    const head = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range: 'bytes=0-11' } });
    expect(head.status).toBe(206);
    expect(head.headers.get('content-range')).toBe(`bytes 0-11/${size}`);
    const bytes = Buffer.from(await head.arrayBuffer());
    expect(bytes.toString('latin1', 0, 4) + bytes.toString('latin1', 8, 12)).toBe('RIFFWAVE');

    const tail = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range: 'bytes=-4' } });
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(`bytes ${size - 4}-${size - 1}/${size}`);

    // A suffix longer than the file is the whole file (RFC 9110 §14.1.3), not a 416.
    for (const suffix of [size, size + 1, 800_000]) {
      const all = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range: `bytes=-${suffix}` } });
      expect([suffix, all.status, all.headers.get('content-range')]).toEqual([suffix, 206, `bytes 0-${size - 1}/${size}`]);
      expect((await all.arrayBuffer()).byteLength).toBe(size);
    }
  });

  it('ignore a Range that is not a valid byte range: the whole file (RFC 9110 §14.2)', async () => {
    for (const range of ['bytes=10-5', 'bytes=abc', 'lines=1-2', 'bytes=-']) {
      const res = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range } });
      expect(res.status, range).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(size);
    }
  });

  it('send the range under If-Range only when its validator matches strongly (RFC 9110 §13.1.5)', async () => {
    const whole = await fetch(`${t.url}/recordings/tone.wav`);
    const etag = whole.headers.get('etag')!;
    const modified = whole.headers.get('last-modified')!;
    await whole.arrayBuffer();
    // Our entity tags are weak: as If-Range, a weak tag never matches, so the whole file comes.
    expect(etag).toMatch(/^W\//);
    for (const ifRange of [etag, etag.slice(2), 'W/"0-0"', '"other"', `"zzz", ${etag}`, `${etag.slice(2)}, ${etag.slice(2)}`]) {
      const res = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range: 'bytes=0-11', 'if-range': ifRange } });
      expect([ifRange, res.status]).toEqual([ifRange, 200]);
      expect((await res.arrayBuffer()).byteLength).toBe(size);
    }
    // The modification date the file still has: the range.
    const resumed = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range: 'bytes=0-11', 'if-range': modified } });
    expect(resumed.status).toBe(206);
    expect((await resumed.arrayBuffer()).byteLength).toBe(12);
  });

  it('answer a range beyond the end with 416 and the size', async () => {
    const res = await fetch(`${t.url}/recordings/tone.wav`, { headers: { range: `bytes=${size}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(((await res.json()) as { code: string }).code).toBe('EARSHOT_RANGE_NOT_SATISFIABLE');
  });
});
