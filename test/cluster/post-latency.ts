/**
 * What forwarding a WHIP offer to another cluster node adds to the POST:
 * two nodes (CLI, one engine each) on a real Redis; node A carries one live
 * session, so a POST to A is placed on B (forwarded) and a POST to B stays
 * there (local). Each POST's session is deleted at once, so the loads stay as
 * they are. The rounds alternate, so both see the same machine load.
 *
 *   node --import tsx test/cluster/post-latency.ts [rounds]
 *
 * Not a test (nothing is asserted): the figures go into docs/scaling.md.
 */
import { fixturePath } from '../helpers/fixtures.js';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { sendAudio } from '../../src/client/audio-sender.js';
import { startCli } from './cli-server.js';
import { startRedis } from './redis-server.js';

const rounds = Number(process.argv[2] ?? 40);
const tone = fixturePath('tone-1k-48k.wav');

async function offer(): Promise<string> {
  const pc = new RTCPeerConnection({
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })] },
  });
  pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    else pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
  const sdp = pc.localDescription!.sdp;
  await pc.close();
  return sdp;
}

async function post(base: string, peer: string, sdp: string): Promise<{ ms: number; location: string }> {
  const t0 = performance.now();
  const res = await fetch(`${base}/whip/lat/${peer}`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: sdp });
  await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 201) throw new Error(`POST ${base}: ${res.status}`);
  return { ms, location: new URL(res.headers.get('location')!, base).href };
}

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1);
  return `median ${q(0.5)} ms, p90 ${q(0.9)} ms, min ${s[0].toFixed(1)} ms (n=${s.length})`;
}

const redis = await startRedis();
const [a, b] = await Promise.all([0, 1].map(() => startCli(['--cluster', redis.url, '--processes', '1', '--threads', '1', '--pipeline', 'raw'])));
const controller = new AbortController();
try {
  // Node A gets one live session (a POST to A with both idle stays on A).
  const busy = sendAudio({ url: `${a.url}/whip/lat/busy`, source: tone, loop: true, signal: controller.signal });
  busy.catch(() => undefined); // ends with the abort below
  await new Promise((r) => setTimeout(r, 3000));
  const sdp = await offer();
  // Check the premise: a POST to A lands on B, a POST to B stays on B.
  for (const [base, expected] of [[a.url, b.url], [b.url, b.url]] as const) {
    const { location } = await post(base, 'probe', sdp);
    const stats = (await (await fetch(`${a.url}/cluster/stats`)).json()) as { peers: Array<{ peer: string; node: string }>; server: { nodes: Array<{ node: string; url: string }> } };
    const node = stats.peers.find((p) => p.peer === 'probe')?.node;
    const url = stats.server.nodes.find((n) => n.node === node)?.url;
    if (url !== expected) throw new Error(`a POST to ${base} was placed on ${url}, expected ${expected}`);
    await fetch(location, { method: 'DELETE' });
    await new Promise((r) => setTimeout(r, 300));
  }
  const local: number[] = [];
  const forwarded: number[] = [];
  for (let i = 0; i < rounds + 2; i++) {
    for (const [base, into] of [[b.url, local], [a.url, forwarded]] as const) {
      const { ms, location } = await post(base, `p${i}`, sdp);
      await fetch(location, { method: 'DELETE' });
      // Until the engine's next load report (250 ms) the deleted session still counts on its node.
      await new Promise((r) => setTimeout(r, 300));
      if (i >= 2) into.push(ms); // the first rounds warm up connections and code paths
    }
  }
  controller.abort();
  await busy.catch(() => undefined);
  process.stdout.write(`local (POST to the node that answers): ${summary(local)}\nforwarded (POST to another node):    ${summary(forwarded)}\n`);
} finally {
  // Everything started here goes, whatever failed.
  controller.abort();
  await Promise.allSettled([a.stop(), b.stop()]);
  await Promise.allSettled([a.cleanup(), b.cleanup()]);
  await redis.kill();
}
