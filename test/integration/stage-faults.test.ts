/**
 * A worker stage that hangs, over real loopback WebRTC: the stream using it
 * ends with `pipeline-error`, a healthy stream on the same worker records
 * every frame, and /health and /metrics say what happened.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { dominantFrequency, readWav } from '../helpers/audio.js';
import { fixtureModule, fixturePath } from '../helpers/fixtures.js';
import { startServer, type TestServer } from '../helpers/server.js';

const HANG_MODULE = fixtureModule('hang-stage.js');
const RAW_PIPELINE = { name: 'raw', stages: [], sinks: [{ type: 'record' }, { type: 'stats' }] };
/** Passes audio through for 1 s (50 chunks), then loops for 15 s: what the reproduced fault did. */
const HANGING_PIPELINE = { name: 'hanging', stages: [{ type: 'hang', afterChunks: 50, forMs: 15_000 }], sinks: [{ type: 'record' }, { type: 'stats' }] };

let t: TestServer | undefined;
let pipelinesDir: string | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  if (pipelinesDir) await rm(pipelinesDir, { recursive: true, force: true });
  pipelinesDir = undefined;
});

type PeerStats = {
  state: string;
  endReason: string | null;
  processing: { workerRestarts: number; framesDropped: number; framesDecoded: number };
  recording: { name: string; state: string; gapFrames: number };
};
type Health = { status: string; reasons: string[]; workerRestarts: number; lastRestartAt: string | null; quarantined: Array<{ stage: string | null; reason: string; message: string }> };

const getJson = async <T>(path: string): Promise<T> => (await (await fetch(`${t!.url}${path}`)).json()) as T;

async function untilEnded(peer: string): Promise<PeerStats> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    const res = await fetch(`${t!.url}/stats/${peer}`);
    const s = res.ok ? ((await res.json()) as PeerStats) : undefined;
    if (s?.state === 'ended') return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${peer} did not end within 20 s`);
}

describe('stage faults over WebRTC', () => {
  it('ends the stream whose stage hangs with pipeline-error, while a stream on the same worker records every frame', async () => {
    // Two pipelines, picked per peer with ?pipeline=; one worker thread, so both peers' streams share it.
    pipelinesDir = await mkdtemp(join(tmpdir(), 'earshot-fault-pipelines-'));
    for (const p of [RAW_PIPELINE, HANGING_PIPELINE]) await writeFile(join(pipelinesDir, `${p.name}.json`), JSON.stringify(p));
    t = await startServer({ threads: 1, stageModules: [HANG_MODULE], pipelinesDir, pipeline: 'raw', watchPipelines: false });
    expect((await getJson<Health>('/health')).status).toBe('ok');

    // Watch /health while the audio flows.
    const seen: Health[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        seen.push(await getJson<Health>('/health'));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    const tone = fixturePath('tone-1k-48k.wav');
    const [healthy, hung] = await Promise.all([
      sendAudio({ url: `${t.url}/whip/faults/healthy`, source: tone, seconds: 4 }),
      // The server ends this session mid-stream; the sender's closing DELETE may then find it gone.
      sendAudio({ url: `${t.url}/whip/faults/hung?pipeline=hanging`, source: tone, seconds: 4 }).catch((e: Error) => e),
    ]);
    const healthyStats = await untilEnded('healthy');
    const hungStats = await untilEnded('hung');
    watching = false;
    await watcher;

    // The hung stream ended with the pipeline error, its recording finalized.
    expect(hungStats.endReason).toBe('pipeline-error');
    expect(hungStats.recording.state).toBe('stopped');
    expect(hung).toBeDefined();

    // The healthy stream lost nothing: every 20 ms frame sent is in its recording, at the right pitch.
    expect(healthyStats.endReason).not.toBe('pipeline-error');
    expect(healthyStats.processing.workerRestarts).toBeGreaterThanOrEqual(1); // rebuilt on another worker
    expect(healthyStats.processing.framesDropped).toBe(0);
    expect(healthyStats.recording.gapFrames).toBeLessThanOrEqual(960);
    const sent = healthy as { mediaSeconds: number; packetsSent: number };
    // Every packet counted as decoded, across its workers (the replacement counts from 0).
    expect(healthyStats.processing.framesDecoded).toBe(sent.packetsSent);
    const wav = await readWav(join(t.recordingsDir, healthyStats.recording.name));
    expect(Math.abs(wav.durationSec - sent.mediaSeconds)).toBeLessThanOrEqual(0.02);
    expect(Math.abs(dominantFrequency(wav.channels[0], 48000) - 1000)).toBeLessThan(10);

    // /health said degraded during the fault, naming the stage, and stays so within its window.
    const degraded = seen.filter((h) => h.status === 'degraded');
    expect(degraded.length).toBeGreaterThan(0);
    expect(degraded.some((h) => h.reasons.some((r) => r.includes('EARSHOT_STAGE_TIMEOUT') && r.includes('stage "hang"')))).toBe(true);
    const after = await getJson<Health>('/health');
    expect(after.status).toBe('degraded');
    expect(after.workerRestarts).toBe(1);
    expect(after.lastRestartAt).not.toBeNull();
    expect(after.quarantined).toMatchObject([{ stage: 'hang', reason: 'timeout', message: expect.stringMatching(/made no progress for 500 ms \(the stage timeout: --stage-timeout \/ stageTimeoutMs/) }]);

    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    const value = (name: string) => Number(metrics.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
    expect(value('earshot_pool_tasks_timed_out_total')).toBe(1);
    expect(value('earshot_pool_worker_restarts_total')).toBe(1);
    expect(value('earshot_pool_streams_quarantined_total')).toBe(1);
    expect(value('earshot_pool_degraded')).toBe(1);
    expect(metrics).toMatch(/earshot_sessions_ended_total\{reason="pipeline-error"\} 1/);
  }, 60_000);
});
