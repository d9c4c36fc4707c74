/**
 * The answer asks the sender for DTX (RFC 7587 `usedtx=1`: no packets while
 * silent), unless the pipeline opts out with `"dtx": false`; a stereo pipeline
 * asks for stereo (`stereo=1`) even when the offer did not mention it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromeLikeOffer } from '../helpers/offers.js';
import { startServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startServer();
  await t.server.core.pipelines.put('continuous', { name: 'continuous', dtx: false, stages: [], sinks: [{ type: 'stats' }] });
  await t.server.core.pipelines.put('stereo', { name: 'stereo', channels: 2, stages: [], sinks: [{ type: 'stats' }] });
});
afterAll(() => t.close());

async function answerFor(peer: string, pipeline?: string): Promise<string> {
  const res = await fetch(`${t.url}/whip/dtx/${peer}${pipeline ? `?pipeline=${pipeline}` : ''}`, { method: 'POST', body: chromeLikeOffer(), headers: { 'content-type': 'application/sdp' } });
  expect(res.status).toBe(201);
  const answer = await res.text();
  await fetch(new URL(res.headers.get('location')!, t.url), { method: 'DELETE' });
  return answer;
}

describe('the Opus answer', () => {
  it('asks for DTX by default', async () => {
    expect(await answerFor('a')).toMatch(/^a=fmtp:111 [^\r\n]*usedtx=1/m);
  });

  it('does not when the pipeline says "dtx": false', async () => {
    const answer = await answerFor('b', 'continuous');
    expect(answer).toMatch(/^a=fmtp:111 /m);
    expect(answer).not.toMatch(/usedtx/);
  });

  it('asks for stereo when the pipeline decodes two channels, whatever the offer said', async () => {
    const answer = await answerFor('c', 'stereo');
    expect(answer).toMatch(/^a=fmtp:111 [^\r\n]*stereo=1/m);
    expect(answer).toMatch(/^a=fmtp:111 [^\r\n]*usedtx=1/m);
    // The offer's own parameters are kept.
    expect(answer).toMatch(/^a=fmtp:111 [^\r\n]*useinbandfec=1/m);
  });
});
