/**
 * The answer asks the sender for DTX (RFC 7587 `usedtx=1`: no packets while
 * silent), unless the pipeline opts out with `"dtx": false`; a stereo pipeline
 * asks for stereo (`stereo=1`) even when the offer did not mention it. It says
 * nothing else about Opus: not the offerer's own parameters (`useinbandfec`,
 * which the decoder cannot use; `sprop-stereo`; `minptime`), no RTCP feedback
 * earshot does not send, and `opus/48000/2` whatever the offer wrote (RFC 7587 §7).
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

async function answerFor(peer: string, pipeline?: string, offer = chromeLikeOffer()): Promise<string> {
  const res = await fetch(`${t.url}/whip/dtx/${peer}${pipeline ? `?pipeline=${pipeline}` : ''}`, { method: 'POST', body: offer, headers: { 'content-type': 'application/sdp' } });
  expect(res.status).toBe(201);
  const answer = await res.text();
  await fetch(new URL(res.headers.get('location')!, t.url), { method: 'DELETE' });
  return answer;
}

describe('the Opus answer', () => {
  const opusLines = (answer: string) => answer.split('\r\n').filter((l) => /^a=(rtpmap|fmtp|rtcp-fb):111 /.test(l));

  it('asks for DTX by default, and for nothing else', async () => {
    // The offer (Chrome's) has `minptime=10;useinbandfec=1` and `a=rtcp-fb:111 transport-cc`.
    expect(opusLines(await answerFor('a'))).toEqual(['a=rtpmap:111 opus/48000/2', 'a=fmtp:111 usedtx=1']);
  });

  it('does not when the pipeline says "dtx": false (no fmtp line at all)', async () => {
    expect(opusLines(await answerFor('b', 'continuous'))).toEqual(['a=rtpmap:111 opus/48000/2']);
  });

  it('asks for stereo when the pipeline decodes two channels, whatever the offer said', async () => {
    expect(opusLines(await answerFor('c', 'stereo'))).toEqual(['a=rtpmap:111 opus/48000/2', 'a=fmtp:111 stereo=1;usedtx=1']);
  });

  it("keeps none of a stereo offer's own parameters, and answers opus/48000/2 to an offer of opus/48000", async () => {
    const stereoOffer = chromeLikeOffer().replace('a=fmtp:111 minptime=10;useinbandfec=1', 'a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1;maxplaybackrate=48000');
    expect(opusLines(await answerFor('d', 'stereo', stereoOffer))).toEqual(['a=rtpmap:111 opus/48000/2', 'a=fmtp:111 stereo=1;usedtx=1']);
    expect(opusLines(await answerFor('e', undefined, chromeLikeOffer().replace('opus/48000/2', 'opus/48000')))).toEqual(['a=rtpmap:111 opus/48000/2', 'a=fmtp:111 usedtx=1']);
  });
});
