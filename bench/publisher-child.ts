/**
 * A publishing process of the capacity bench (`--publishers N`,
 * bench/publishers.ts): encodes the sources named in its argument once, says
 * `ready`, then publishes the shares of steps it is sent and watches its own
 * event loop's stalls when asked.
 */
import { encodedSources, publish, publisherStalls, SOURCES, type PublishJob, type SourceName } from './publishers.js';

const names = (process.argv[2] ?? '').split(',').filter((n): n is SourceName => n in SOURCES);
const sources = await encodedSources(new Set(names));
let stalls = publisherStalls();
const reply = (m: Record<string, unknown>) => process.send!(m);

process.on('message', (m: { type: string; job?: PublishJob }) => {
  if (m.type === 'publish') {
    const job = m.job!;
    publish(job, sources[job.source]!).then(
      (failed) => reply({ type: 'published', failed }),
      () => reply({ type: 'published', failed: job.peers.length }),
    );
  } else if (m.type === 'watch') {
    stalls = publisherStalls();
    stalls.start();
    reply({ type: 'watching' });
  } else if (m.type === 'watched') {
    reply({ type: 'stalls', stalls: stalls.stop() });
  }
});
process.on('SIGTERM', () => process.exit(0));
// The bench went away (killed, or failed): its publishers with it.
process.on('disconnect', () => process.exit(0));
reply({ type: 'ready' });
