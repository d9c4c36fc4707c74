/**
 * Prometheus counters never go down while a peer's session is replaced: the
 * old session still drains (here a processor stage holds 1.5 s of frames) and
 * finalizes after the new one took its place, and the totals count it all
 * along. A real server, real publishers over loopback WebRTC, /metrics read as
 * a scraper reads it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { delay } from 'rxjs';
import { afterAll, expect, it } from 'vitest';
import { sendAudio } from '../../src/client/audio-sender.js';
import { createServer, defaultProcessors, definePipeline, processorStage, recordSink, registerProcessor, statsSink, type EarshotServer } from '../../src/index.js';
import { fixturePath } from '../helpers/fixtures.js';

let server: EarshotServer | undefined;
let dir: string | undefined;
afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  // Process-wide: the test files after this one share the process.
  defaultProcessors.unregister('hold-1500ms');
});

const COUNTERS = ['earshot_rtp_packets_received_total', 'earshot_frames_decoded_total'];

it('keeps every counter from going down while a replaced session drains', async () => {
  registerProcessor('hold-1500ms', () => (frames$) => frames$.pipe(delay(1500)), { stage: true });
  const pipeline = definePipeline({ name: 'held', stages: [processorStage('hold-1500ms')], sinks: [statsSink(), recordSink()] });
  dir = await mkdtemp(join(tmpdir(), 'earshot-replace-'));
  server = await createServer({ pipeline, port: 0, host: '127.0.0.1', recordingsDir: dir, logLevel: 'warn', admission: false, processorDrainTimeoutMs: 2000 });
  const base = await server.listen();
  const scrape = async (): Promise<number[]> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return COUNTERS.map((name) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN));
  };
  const tone = fixturePath('tone-1k-48k.wav');
  const first = sendAudio({ url: `${base}/whip/demo/carol`, source: tone, seconds: 3 }).catch((e: Error) => e);
  for (const until = Date.now() + 10_000; Date.now() < until && (await scrape())[0] < 50; ) await new Promise((r) => setTimeout(r, 50));
  const second = sendAudio({ url: `${base}/whip/demo/carol`, source: tone, seconds: 1 });
  // Through the replacement and the old session's drain (its processor stage holds 1.5 s).
  const seen: number[][] = [];
  for (const until = Date.now() + 2500; Date.now() < until; ) {
    seen.push(await scrape());
    await new Promise((r) => setTimeout(r, 50));
  }
  await second;
  await first;
  seen.push(await scrape());
  expect(seen[0][0]).toBeGreaterThanOrEqual(50);
  for (let i = 1; i < seen.length; i++) {
    for (let k = 0; k < COUNTERS.length; k++) expect(seen[i][k], `${COUNTERS[k]} at scrape ${i}`).toBeGreaterThanOrEqual(seen[i - 1][k]);
  }
  expect(server.core.stats().endedBy).toMatchObject({ replaced: 1 });
});
