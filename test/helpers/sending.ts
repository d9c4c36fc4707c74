/**
 * Sending to a test server faster than real time, and proving that nothing was
 * lost on the way: a fast send is only worth having if the server received,
 * processed and recorded every frame, as it would have in real time.
 */
import { expect } from 'vitest';
import type { SendResult } from '../../src/client/audio-sender.js';
import type { PeerStatsSnapshot } from '../../src/index.js';

/**
 * `speed` for tests that only need the frames (content, duration, counts), not
 * their timing: five times real time. The server queues up to 2 s of a
 * stream's frames for its worker, so at 5× a worker may pause 0.4 s before
 * frames are dropped, ample on a loaded 2-core machine; `expectComplete` would
 * catch it if not. Tests of latency, jitter, bitrate, DTX or anything measured
 * against wall-clock time keep sending in real time.
 */
export const FAST = Number(process.env.EARSHOT_TEST_SPEED ?? 5);
// EARSHOT_TEST_SPEED=1 runs these sends in real time instead: to measure what the fast mode
// saves (docs/development.md), or to rule it out when a test fails.

/**
 * Asserts that the session of `peer` got every packet `sent` sent and lost no
 * frame between the socket and its recordings: no packet missing beyond the
 * simulated loss, none dropped from a full worker queue or played out late, no
 * worker restart, no gap or dropped frame in any recording. Returns the stats.
 * `fetch` reads them (e.g. one that trusts a test certificate).
 */
export async function expectComplete(serverUrl: string, peer: string, sent: SendResult, { fetch = globalThis.fetch }: { fetch?: typeof globalThis.fetch } = {}): Promise<PeerStatsSnapshot> {
  const res = await fetch(`${serverUrl}/stats/${encodeURIComponent(peer)}`);
  expect(res.status).toBe(200);
  const stats = (await res.json()) as PeerStatsSnapshot;
  expect({
    packetsReceived: stats.rtp.packetsReceived,
    packetsLost: stats.rtp.packetsLost,
    framesDropped: stats.processing.framesDropped,
    framesLate: stats.processing.framesLate,
    workerRestarts: stats.processing.workerRestarts,
  }).toEqual({ packetsReceived: sent.packetsSent, packetsLost: sent.packetsDropped, framesDropped: 0, framesLate: 0, workerRestarts: 0 });
  for (const r of stats.recordings) expect({ name: r.name, droppedFrames: r.droppedFrames, gapFrames: r.gapFrames }).toEqual({ name: r.name, droppedFrames: 0, gapFrames: 0 });
  return stats;
}

/**
 * A send whose session the server may end while it runs (the peer replaced,
 * the session deleted, the server drained or stopped): the sender then stops
 * with `EARSHOT_WHIP_SESSION_LOST` at once (the server closes DTLS), which
 * such a test expects. Marks the rejection handled from the start, so that it
 * is not reported as unhandled before the test awaits the promise; the promise
 * returned still rejects for whoever awaits it.
 */
export function mayBeEnded<T>(sending: Promise<T>): Promise<T> {
  sending.catch(() => undefined);
  return sending;
}

/** The statistics of `peer` once every recording of its session has stopped (polled for up to 10 s). */
export async function statsOnceRecorded(serverUrl: string, peer: string): Promise<PeerStatsSnapshot> {
  for (let i = 0; ; i++) {
    const stats = (await (await fetch(`${serverUrl}/stats/${peer}`)).json()) as PeerStatsSnapshot;
    if (stats.recordings.length > 0 && stats.recordings.every((r) => r.state === 'stopped')) return stats;
    if (i > 100) throw new Error(`the recording of ${peer} did not stop`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
