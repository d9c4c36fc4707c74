/**
 * The repository's examples as a user meets them: test/package/installed-package.test.ts
 * copies examples/ into the fresh project that installed the packed tarball, where
 * they must type-check against the package's declarations and run as they are
 * (they import 'earshot' by name, nothing of the repository). A server loads the
 * worker stage example (dc-blocker-stage.js) and runs the processor example
 * (energy-detector.ts) on a loopback session; prints one JSON line the test checks.
 *
 *   node out/examples.js <speech.wav>
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, sendAudio, type ProcessorEvent } from 'earshot';
import { energyDetector } from './examples/energy-detector.js';

const fixture = process.argv[2];
if (!fixture) throw new Error('usage: node out/examples.js <speech.wav>');

const recordings = await mkdtemp(join(tmpdir(), 'earshot-consumer-examples-'));
try {
  const server = await createServer({
    host: '127.0.0.1',
    port: 0,
    recordingsDir: recordings,
    logLevel: 'warn',
    // The stage module as shipped in examples/ (plain JavaScript, loaded in every worker).
    stageModules: [join(import.meta.dirname, '..', 'examples', 'dc-blocker-stage.js')],
    pipeline: { name: 'examples', stages: [{ type: 'dc-blocker', cutoffHz: 20 }], sinks: [{ type: 'processor', name: 'energy', options: { thresholdDb: -35 } }, { type: 'stats' }] },
  });
  server.registerProcessor('energy', energyDetector);
  const events: ProcessorEvent[] = [];
  server.events$.subscribe((e) => {
    if (e.processor === 'energy') events.push(e);
  });
  const url = await server.listen();
  const sent = await sendAudio({ url: `${url}/whip/examples/peer`, source: fixture, seconds: 4, speed: 5 });
  await server.close();
  console.log(JSON.stringify({ packetsSent: sent.packetsSent, events: events.map((e) => e.event) }));
} finally {
  await rm(recordings, { recursive: true, force: true });
}
